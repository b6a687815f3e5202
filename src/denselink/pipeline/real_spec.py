"""The real-data study's inputs as ``denselink evaluate real-gain --spec`` reads them.

The study's grid is :mod:`denselink.pipeline.real`; its rules are workflow/rules/real.smk.
"""

from __future__ import annotations

import json

from denselink.pipeline import layout as L
from denselink.pipeline import real as real_study
from denselink.pipeline.jobs import Config, Wildcards
from denselink.pipeline.layout import Layout


def score_caches(cfg: Config) -> dict[str, str]:
    """The score cache of every dataset's scored sequence (the clean protocol's first direction)."""
    names, layout = cfg["real_gain"]["datasets"], Layout.of(cfg)
    if not names:  # no study: the clean protocol need not exist
        return {}
    eval_seq = real_study.direction(cfg)[1]
    return {name: layout.path(L.SCORE_CACHE, dataset=name, seq=eval_seq) for name in names}


def real_gain_spec(cfg: Config, wildcards: Wildcards) -> str:
    """Every dataset's arms, score cache, validation fraction and window, the seeds and the data root."""
    datasets, caches = real_study.study_inputs(cfg), score_caches(cfg)
    protocol = cfg["protocols"][real_study.PROTOCOL]
    for name, spec in datasets.items():
        spec["score_cache"] = caches[name]
        spec["val_fraction"] = protocol["val_fraction"]
        spec["window"] = cfg["tracking"]["settings"].get("window", 6)
    spec = {"seeds": cfg["tracking"]["seeds"], "data_root": cfg["data_root"]}
    return json.dumps(spec | {"datasets": datasets})
