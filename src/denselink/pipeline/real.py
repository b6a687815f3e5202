"""The real-data study's grid: its arms (variants), checks and files (``real_gain`` config section).

Five arms per dataset, trained on the clean protocol's first direction and scored on its eval
sequence, all with one Trackastra recipe:

- ``retrained``: Trackastra without learned features (the baseline);
- ``maester``: MAESTER pretrained on the training sequence only;
- ``maester_paper``: MAESTER pretrained on the scored sequence, as the paper did (transductive);
- ``maester_untrained``: the ``maester`` run's seeded initial weights (isolates self-supervision);
- ``handcrafted``: the hand-crafted appearance feature (isolates "any appearance").
"""

from __future__ import annotations

from typing import Any

from denselink.errors import ConfigError
from denselink.pipeline import layout as L
from denselink.pipeline.layout import Layout
from denselink.vocabulary import HANDCRAFTED, MAESTER_INIT, variant_name

Config = dict[str, Any]
ARMS = ("retrained", "maester", "maester_paper", "maester_untrained", "handcrafted")
PROTOCOL = "clean"
DOWNSAMPLED = "downsampled/{dataset}"
"""The pipeline's downsampled copy of a dataset (``datasets.NAME.downsample`` > 1)."""


def direction(cfg: Config) -> tuple[str, str]:
    """(train, eval) sequences of the study: the clean protocol's first direction."""
    first = cfg["protocols"][PROTOCOL]["directions"][0]
    return first["train"], first["eval"]


def arm_variants(cfg: Config, dataset: str) -> dict[str, str]:
    """Variant name of every arm of ``dataset``."""
    study, fusion = cfg["real_gain"], cfg["tracking"]["fusion"]
    ref, agg = study["maester"][dataset], study["agg"]
    return {
        "retrained": "retrained",
        "maester": variant_name("maester", agg, fusion, run=ref["train"], epoch=ref["epoch"]),
        "maester_paper": variant_name("maester", agg, fusion, run=ref["paper"], epoch=ref["epoch"]),
        "maester_untrained": variant_name(f"maester-{ref['train']}-{MAESTER_INIT}", agg, fusion),
        "handcrafted": variant_name(HANDCRAFTED, "mma", fusion),
    }


def check_real_gain(cfg: Config) -> None:
    """The study's names exist: datasets, the clean protocol, MAESTER runs, their sources and epochs."""
    study = cfg.get("real_gain")
    if not study or not study["datasets"]:
        return
    if PROTOCOL not in cfg["protocols"]:
        raise ConfigError("protocols", "real_gain needs the clean protocol")
    train, evaluate = direction(cfg)
    runs, saved = cfg["maester"]["runs"], set(cfg["maester"]["train"].get("save_epochs", []))
    if not cfg["maester"]["train"].get("save_initial"):
        raise ConfigError("maester.train.save_initial", "real_gain's maester_untrained arm needs true")
    for name in study["datasets"]:
        key = f"real_gain.maester.{name}"
        if name not in cfg["datasets"]:
            raise ConfigError("real_gain.datasets", f"{name!r} is not in datasets")
        if name not in study["maester"]:
            raise ConfigError("real_gain.maester", f"no MAESTER runs for {name}")
        ref = study["maester"][name]
        for role, seq in (("train", train), ("paper", evaluate)):
            if runs.get(ref[role]) != [f"{name}/{seq}"]:
                raise ConfigError(f"{key}.{role}", f"run {ref[role]!r} must pretrain on {name}/{seq} only")
        if ref["epoch"] not in saved:
            raise ConfigError(f"{key}.epoch", f"{ref['epoch']} is not in maester.train.save_epochs")


def dataset_folder(cfg: Config, dataset: str) -> str:
    """The folder validation reads: the downsampled copy when the dataset declares a factor > 1."""
    if cfg["datasets"][dataset].get("downsample", 1) > 1:
        return Layout.of(cfg).path(DOWNSAMPLED, dataset=dataset)
    return Layout.of(cfg).dataset_dir(dataset)


def dataset_inputs(cfg: Config, dataset: str) -> dict[str, Any]:
    """What the ``real_gain`` job reads of one dataset: every arm's metrics, CTC results and training record,
    the data."""
    layout, (train, evaluate) = Layout.of(cfg), direction(cfg)
    arms: dict[str, list[dict[str, Any]]] = {}
    for arm, variant in arm_variants(cfg, dataset).items():
        fields = dict(dataset=dataset, protocol=PROTOCOL, train_seq=train, eval_seq=evaluate, variant=variant)
        arms[arm] = [
            {
                "seed": seed,
                "metrics": layout.path(L.METRICS, **fields, seed=seed),
                "tracks": layout.path(L.TRACKS, **fields, seed=seed),
                "model": layout.path(L.MODEL, **fields, seed=seed),
            }
            for seed in cfg["tracking"]["seeds"]
        ]
    return {
        "downsample": cfg["datasets"][dataset].get("downsample", 1),
        "variants": arm_variants(cfg, dataset),
        "manifests": {seq: layout.manifest(f"{dataset}/{seq}") for seq in (train, evaluate)},
        "train_seq": train,
        "eval_seq": evaluate,
        "arms": arms,
    }


def study_inputs(cfg: Config) -> dict[str, dict[str, Any]]:
    """:func:`dataset_inputs` of every dataset of the study."""
    return {name: dataset_inputs(cfg, name) for name in cfg["real_gain"]["datasets"]}


def input_files(cfg: Config) -> list[str]:
    """Every file and folder the ``real_gain`` job reads."""
    files = []
    for spec in study_inputs(cfg).values():
        files += list(spec["manifests"].values())
        runs = [run for arm_runs in spec["arms"].values() for run in arm_runs]
        files += [run[key] for run in runs for key in ("metrics", "tracks", "model")]
    return files
