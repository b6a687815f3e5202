"""The experiment grid: which runs, seeds, directions and targets a (schema-validated) config implies.

Every function takes the config and returns names or paths of :mod:`denselink.pipeline.layout`;
``workflow/rules/common.smk`` turns them into Snakemake inputs and targets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from denselink.pipeline import layout as L
from denselink.pipeline.jobs import Wildcards, job_variant
from denselink.pipeline.layout import Layout
from denselink.vocabulary import BASELINES, FOUNDATION_BACKBONES, STUDIES, one_of, variant_name

Config = dict[str, Any]


# --------------------------------------------------------------------------- studies
def appc_studies(cfg: Config) -> list[str]:
    """The Appendix C studies a config runs: those with a section under ``appendix_c``."""
    return [study for study in STUDIES if study in cfg.get("appendix_c", {})]


def studies(cfg: Config) -> list[str]:
    """Every study a config runs, by its config section: ``table1``, ``appendix_c.<study>``.

    A study runs when its section is present; an absent section means "not run".
    """
    return ["table1"] * ("table1" in cfg) + [f"appendix_c.{study}" for study in appc_studies(cfg)]


def studies_line(cfg: Config) -> str:
    """One line naming the studies a config runs and those it does not (no section)."""
    every = ["table1", *(f"appendix_c.{study}" for study in STUDIES)]
    run = studies(cfg)
    skipped = [name for name in every if name not in run]
    line = f"studies this config runs: {', '.join(run) or 'none'}"
    return line + (f"; not run (no section): {', '.join(skipped)}" if skipped else "")


# --------------------------------------------------------------------------- names
def used_datasets(cfg: Config) -> list[str]:
    """Datasets the workflow tracks: Table 1's and, when a study of it runs, the Appendix C dataset."""
    names = set(cfg["table1"]["datasets"]) if "table1" in cfg else set()
    return sorted(names | ({cfg["appendix_c"]["dataset"]} if appc_studies(cfg) else set()))


def used_protocols(cfg: Config) -> list[str]:
    """Protocols of the studies a config runs."""
    names = set(cfg["table1"]["protocols"]) if "table1" in cfg else set()
    return sorted(names | (set(cfg["appendix_c"]["protocols"]) if appc_studies(cfg) else set()))


def directions(cfg: Config, protocol: str) -> list[tuple[str, str]]:
    """(train, eval) sequence pairs of a protocol."""
    return [(d["train"], d["eval"]) for d in cfg["protocols"][protocol]["directions"]]


def validation_seq(cfg: Config, protocol: str, train_seq: str) -> str | None:
    """The sequence val_loss is computed on while training on ``train_seq`` (None: none or the tail)."""
    spec = cfg["protocols"][protocol]["directions"]
    return next((d.get("val") for d in spec if d["train"] == train_seq), None)


def fusions(cfg: Config) -> list[str]:
    """The main fusion mode, then the ablations."""
    return [cfg["tracking"]["fusion"], *cfg["tracking"]["fusion_ablations"]]


def seeds_of(cfg: Config, variant: str) -> list[int]:
    """Training seeds of a variant; one not trained (the published model) has one run, seed 0."""
    return list(cfg["tracking"]["seeds"]) if job_variant(variant).trained else [0]


UNTRAINED = tuple(b for b in BASELINES if not job_variant(b).trained)
"""The variants scored as published, never trained: the published Trackastra model."""
TRAINED_VARIANT = rf"(?!(?:{one_of(UNTRAINED)})/)[^/]+"
"""The ``variant`` wildcard of a trained run (models, a cell's scoring): any name but an untrained one."""


def datasets_with(cfg: Config, source: str, download: bool | None = None) -> list[str]:
    """Names of the configured datasets with this source (and download flag)."""
    return [
        name
        for name, spec in cfg["datasets"].items()
        if spec["source"] == source and (download is None or spec["download"] == download)
    ]


def embedding_stem(cfg: Config, embedding: str) -> str:
    """Zarr stem of an embedding: ``sam`` -> ``sam-{upsampler}``; ``maester-RUN-epochN`` unchanged."""
    if embedding in FOUNDATION_BACKBONES:
        return f"{embedding}-{cfg['foundation'][embedding]['upsampler']}"
    return embedding


# --------------------------------------------------------------------------- job inputs
def features_path(cfg: Config, dataset: str, seq: str, variant: str) -> str:
    """The feature table a fused variant reads for one sequence."""
    parsed = job_variant(variant)
    stem = embedding_stem(cfg, str(parsed.embedding))
    return Layout.of(cfg).path(L.FEATURES, dataset=dataset, seq=seq, embedding=stem, agg=parsed.agg)


def train_inputs(cfg: Config, wildcards: Wildcards) -> dict[str, str]:
    """Cached data (+ features, + validation data and its features) of one training job."""
    layout, dataset, variant = Layout.of(cfg), wildcards.dataset, wildcards.variant
    fused = job_variant(variant).kind == "embedding"
    inputs = {"data": layout.path(L.TRACKASTRA_DATA, dataset=dataset, seq=wildcards.train_seq)}
    if fused:
        inputs["features"] = features_path(cfg, dataset, wildcards.train_seq, variant)
    val_seq = validation_seq(cfg, wildcards.protocol, wildcards.train_seq)
    if val_seq is not None:
        inputs["val_data"] = layout.path(L.TRACKASTRA_DATA, dataset=dataset, seq=val_seq)
        if fused:
            inputs["val_features"] = features_path(cfg, dataset, val_seq, variant)
    return inputs


# --------------------------------------------------------------------------- Table 1
def table1_variants(cfg: Config, dataset: str) -> list[str]:
    """Variant names of one dataset's Table 1 rows (baselines, every embedding x agg x fusion)."""
    names = [b for b in BASELINES if job_variant(b).trained or cfg["table1"]["pretrained"]]
    for backbone in cfg["table1"]["embeddings"]:
        ref = cfg["table1"]["maester"].get(dataset, {}) if backbone == "maester" else {}
        for agg in cfg["features"]["aggregations"]:
            for fusion in fusions(cfg):
                names.append(variant_name(backbone, agg, fusion, run=ref.get("run"), epoch=ref.get("epoch")))
    return names


def grid_metrics(
    cfg: Config, dataset: str, variants: list[str], protocols: list[str], all_directions: bool = True
) -> list[str]:
    """Metrics files of variants x protocols x directions x seeds."""
    layout, paths = Layout.of(cfg), []
    for protocol in protocols:
        pairs = directions(cfg, protocol)
        for train_seq, eval_seq in pairs if all_directions else pairs[:1]:
            for variant in variants:
                for seed in seeds_of(cfg, variant):
                    paths.append(
                        layout.path(
                            L.METRICS,
                            dataset=dataset,
                            protocol=protocol,
                            train_seq=train_seq,
                            eval_seq=eval_seq,
                            variant=variant,
                            seed=seed,
                        )
                    )
    return paths


def table1_targets(cfg: Config) -> list[str]:
    """Every metrics JSON that Table 1 summarises (none when the config has no ``table1``)."""
    if "table1" not in cfg:
        return []
    return [
        path
        for dataset in cfg["table1"]["datasets"]
        for path in grid_metrics(cfg, dataset, table1_variants(cfg, dataset), cfg["table1"]["protocols"])
    ]


# --------------------------------------------------------------------------- Appendix C
def study_checkpoints(cfg: Config, only: str | None = None) -> list[tuple[str, str, int]]:
    """(study, run, epoch) of every MAESTER checkpoint an Appendix C study the config runs uses."""
    appc, rows, run = cfg.get("appendix_c", {}), [], appc_studies(cfg)
    if only in (None, "compute_scaling") and "compute_scaling" in run:
        rows += [
            ("compute_scaling", appc["compute_scaling"]["run"], e) for e in appc["compute_scaling"]["epochs"]
        ]
    if only in (None, "transfer") and "transfer" in run:
        rows += [("transfer", r["run"], r["epoch"]) for r in appc["transfer"]["runs"]]
    if only in (None, "data_scaling") and "data_scaling" in run:
        ds = appc["data_scaling"]
        rows += [("data_scaling", run, e) for run in ds["runs"] for e in ds["epochs"]]
    return rows


def study_variants(cfg: Config, study: str) -> list[str]:
    """Variant names of one study's points (MAESTER, the studies' aggregation, the main fusion)."""
    agg, fusion = cfg["appendix_c"]["agg"], cfg["tracking"]["fusion"]
    return [
        variant_name("maester", agg, fusion, run=run, epoch=epoch)
        for _, run, epoch in study_checkpoints(cfg, study)
    ]


def appc_targets(cfg: Config, study: str) -> list[str]:
    """Metrics JSONs of one study (the first direction of each configured protocol); none when not run."""
    if study not in appc_studies(cfg):
        return []
    appc = cfg["appendix_c"]
    return grid_metrics(
        cfg, appc["dataset"], study_variants(cfg, study), appc["protocols"], all_directions=False
    )


def appc_baseline(cfg: Config) -> list[str]:
    """Metrics JSONs of the re-trained baseline the Appendix C figures draw as a line (none: no study)."""
    if not appc_studies(cfg):
        return []
    appc = cfg["appendix_c"]
    return grid_metrics(cfg, appc["dataset"], ["retrained"], appc["protocols"], all_directions=False)


# --------------------------------------------------------------------------- final targets
def figure_files(cfg: Config, study: str) -> list[str]:
    """The figure, its SVG and its points of an Appendix C study (none when the config does not run it)."""
    if study not in appc_studies(cfg):
        return []
    return [Layout.of(cfg).path(L.FIGURE, study=study, ext=ext) for ext in ("png", "svg", "json")]


def table1_files(cfg: Config) -> list[str]:
    """Table 1 as CSV and Markdown (none when the config has no ``table1``)."""
    if "table1" not in cfg:
        return []
    return [Layout.of(cfg).path(L.TABLE1, ext=ext) for ext in ("csv", "md")]


def all_targets(cfg: Config, fusion_gain_plot: Path) -> list[str]:
    """Table 1, every Appendix C figure of the studies configured and, once the benchmark has been run,
    its plot for the report."""
    files = table1_files(cfg) + [f for study in STUDIES for f in figure_files(cfg, study)]
    if fusion_gain_plot.is_file():
        files.append(Layout.of(cfg).path(L.FUSION_GAIN_REPORT))
    return files
