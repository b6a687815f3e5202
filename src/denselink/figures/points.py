"""The numbers behind the Appendix C figures, computed from metrics frames (no plotting here).

Measures of one training run's LNK:
- ``authors``: the best LNK over all Trackastra epochs of the run (the authors' Appendix C
  notebooks), then the mean over runs;
- ``clean``: the LNK of the checkpoint with the lowest validation loss (``protocols.select_clean``).
The spread over seeds is the population standard deviation (ddof=0, the root of the paper's variance).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from denselink.evaluate.protocols import select_clean
from denselink.evaluate.variants import Variant, parse_variant
from denselink.figures.settings import MEASURES


def _ok(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].fillna("ok") != "skipped"]


def run_scores(runs: pd.DataFrame, epochs: pd.DataFrame, measure: str) -> pd.DataFrame:
    """One LNK per run under ``measure``: columns ``variant, seed, LNK``."""
    if measure == "clean":
        chosen = select_clean(runs, epochs)
        return chosen[["variant", "seed", "LNK"]].dropna().reset_index(drop=True)
    if measure != "authors":
        raise ValueError(f"unknown measure {measure!r}; expected one of {MEASURES}")
    rows = []
    for _, run in _ok(runs).iterrows():
        values = epochs.loc[epochs["path"] == run["path"], "LNK"]
        values = values[values > 0] if len(values) else pd.Series([run["LNK"]])
        if values.notna().any():
            rows.append({"variant": run["variant"], "seed": int(run["seed"]), "LNK": float(values.max())})
    return pd.DataFrame(rows, columns=["variant", "seed", "LNK"])


def summary(values: list[float], seeds: list[int]) -> dict[str, Any]:
    """Mean, population SD, n and the raw values (sorted by seed) of one plotted point."""
    order = np.argsort(seeds, kind="stable")
    array = np.asarray(values, dtype=float)[order]
    return {
        "mean": float(array.mean()),
        "sd": float(array.std()),
        "n": int(array.size),
        "values": [float(v) for v in array],
        "seeds": [int(seeds[i]) for i in order],
    }


def maester_variants(names: list[str]) -> dict[str, Variant]:
    """The MAESTER variants among ``names``, parsed."""
    parsed = {name: parse_variant(name) for name in dict.fromkeys(names)}
    return {name: v for name, v in parsed.items() if v.backbone == "maester"}


def scaling_points(
    runs: pd.DataFrame, epochs: pd.DataFrame, expected: list[str], measure: str
) -> tuple[list[dict], list[dict]]:
    """Points (series = MAESTER run, x = pretraining epoch) and missing expected runs for one measure."""
    scores = run_scores(runs, epochs, measure)
    variants = maester_variants([*runs["variant"], *expected])
    points, missing = [], []
    for name, variant in sorted(variants.items(), key=lambda item: (item[1].run, item[1].epoch)):
        mine = scores[scores["variant"] == name]
        base = {"series": variant.run, "x": variant.epoch, "variant": name, "measure": measure}
        if mine.empty:
            missing.append(base)
        else:
            points.append(base | summary(mine["LNK"].tolist(), mine["seed"].tolist()))
    return points, missing


def baseline_point(runs: pd.DataFrame, epochs: pd.DataFrame, measure: str) -> dict | None:
    """The re-trained baseline's mean/SD over seeds under ``measure``, or ``None`` if absent."""
    scores = run_scores(runs[runs["variant"] == "retrained"], epochs, measure)
    if scores.empty:
        return None
    return {"measure": measure} | summary(scores["LNK"].tolist(), scores["seed"].tolist())


def epoch_curves(runs: pd.DataFrame, epochs: pd.DataFrame, variants: list[str]) -> list[dict]:
    """Per-epoch LNK mean/SD over seeds of each variant's training (valid values only)."""
    curves = []
    ok_paths = set(_ok(runs)["path"])
    for name in variants:
        mine = epochs[(epochs["variant"] == name) & epochs["path"].isin(ok_paths) & (epochs["LNK"] > 0)]
        points = [
            {"x": int(epoch)} | summary(group["LNK"].tolist(), group["seed"].tolist())
            for epoch, group in mine.groupby("epoch", sort=True)
        ]
        curves.append({"variant": name, "points": points, "missing": not points})
    return curves
