"""The real-data study's inputs as ``denselink evaluate real-gain --spec`` reads them.

The study's grid is :mod:`denselink.pipeline.real`; its rules are workflow/rules/real.smk.
"""

from __future__ import annotations

import json

from denselink.pipeline import layout as L
from denselink.pipeline import real as real_study
from denselink.pipeline.jobs import Config, Wildcards
from denselink.pipeline.layout import Layout


def real_gain_spec(cfg: Config, wildcards: Wildcards) -> str:
    """Every dataset's arms, score cache, validation fraction and window, the seeds and the data root."""
    datasets = real_study.study_inputs(cfg)
    protocol = cfg["protocols"][real_study.PROTOCOL]
    layout = Layout.of(cfg)
    for name, spec in datasets.items():
        spec["score_cache"] = layout.path(L.SCORE_CACHE, dataset=name, seq=spec["eval_seq"])
        spec["val_fraction"] = protocol["val_fraction"]
        spec["window"] = cfg["tracking"]["settings"].get("window", 6)
    spec = {"seeds": cfg["tracking"]["seeds"], "data_root": cfg["data_root"]}
    return json.dumps(spec | {"datasets": datasets})
