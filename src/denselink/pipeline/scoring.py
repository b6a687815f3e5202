"""Scoring a cell: what one ``tracking evaluate`` job reads, writes and is told (workflow/rules/scoring.smk).

A cell (:data:`denselink.pipeline.layout.CELL`) is one variant trained and scored in one direction under
one protocol. One job scores every checkpoint of every seed of a cell, so the sequence's score cache,
windows and features are read once; the published model (``pretrained``) is scored alone, from the
manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from denselink.pipeline import layout as L
from denselink.pipeline.grid import UNTRAINED, features_path, seeds_of
from denselink.pipeline.jobs import Config, Wildcards, job_variant, tracking_settings
from denselink.pipeline.layout import Layout

(PUBLISHED,) = UNTRAINED
"""The published Trackastra model's variant (``pretrained``): the one variant not trained, scored alone."""


def evaluate_inputs(cfg: Config, wildcards: Wildcards) -> dict[str, str | list[str]]:
    """Eval manifest (+ every seed's trained model and the score cache, + features) of one cell."""
    layout, w = Layout.of(cfg), wildcards
    variant = job_variant(w.variant)
    inputs: dict[str, str | list[str]] = {"manifest": layout.manifest(f"{w.dataset}/{w.eval_seq}")}
    if variant.trained:
        fields = dict(dataset=w.dataset, protocol=w.protocol, train_seq=w.train_seq, variant=w.variant)
        inputs["models"] = [layout.path(L.MODEL, **fields, seed=seed) for seed in seeds_of(cfg, w.variant)]
        inputs["score_cache"] = layout.path(L.SCORE_CACHE, dataset=w.dataset, seq=w.eval_seq)
    if variant.kind == "embedding":
        inputs["features"] = features_path(cfg, w.dataset, w.eval_seq, w.variant)
    return inputs


def cell_outputs(cfg: Config, pattern: str) -> list[str]:
    """``pattern`` (``METRICS`` or ``TRACKS``) for every training seed, the cell's fields wildcards."""
    layout = Layout.of(cfg)
    return [layout.path(pattern, seed=seed) for seed in cfg["tracking"]["seeds"]]


def model_dirs(cfg: Config, wildcards: Wildcards, input: Any) -> list[str]:
    """The run folders of a cell's trained models (the folders of its ``models`` inputs)."""
    return [str(Path(p).parent) for p in input.models]


def scored_epochs(cfg: Config, wildcards: Wildcards) -> str:
    """``all`` or ``chosen``: the checkpoints a protocol scores."""
    return cfg["protocols"][wildcards.protocol]["epochs"]


def published_settings(cfg: Config, wildcards: Wildcards) -> str:
    """The settings of scoring the published model under the job's protocol."""
    return tracking_settings(cfg, wildcards.protocol, PUBLISHED)
