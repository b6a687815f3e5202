"""The numbers behind the Appendix C figures, computed from metrics frames (no plotting here).

Each panel shows one protocol and only the runs trained under it (the protocol recorded in the
metrics JSON). One LNK per training run:
- ``paper``: the best valid LNK (> 0) over all Trackastra epochs of the run (the authors' Appendix C
  notebooks), then the mean over runs; a run without a valid epoch is dropped. Table 1 chooses one
  epoch for all seeds instead (the best seed mean), so its ``paper`` numbers are lower; the figures
  say which rule they use;
- ``clean``: the LNK of the checkpoint with the lowest validation loss (``protocols.select_clean``;
  a checkpoint that links nothing counts as 0).
The spread over seeds is the sample standard deviation (ddof=1), as in Table 1's ``clean`` part.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from denselink.evaluate.protocols import check_recorded_protocols, ok_runs, select_clean, valid_lnk
from denselink.vocabulary import PROTOCOLS, Variant, parse_variant


def protocols_of(runs: pd.DataFrame) -> list[str]:
    """The protocols the runs were trained under, in the figures' order (paper, then clean)."""
    check_recorded_protocols(runs)
    return [p for p in sorted(PROTOCOLS, reverse=True) if (runs["protocol"] == p).any()]


def run_scores(runs: pd.DataFrame, epochs: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """One LNK per run trained under ``protocol``: columns ``variant, seed, LNK``."""
    own = runs[runs["protocol"] == protocol]
    if protocol == "clean":
        return select_clean(own)[["variant", "seed", "LNK"]].reset_index(drop=True)
    if protocol != "paper":
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    rows = []
    for _, run in ok_runs(own).iterrows():
        values = epochs.loc[epochs["path"] == run["path"], "LNK"]
        values = values if len(values) else pd.Series([run["LNK"]])
        values = values[valid_lnk(values)]
        if len(values):
            rows.append({"variant": run["variant"], "seed": int(run["seed"]), "LNK": float(values.max())})
    return pd.DataFrame(rows, columns=["variant", "seed", "LNK"])


def summary(values: list[float], seeds: list[int]) -> dict[str, Any]:
    """Mean, SD (ddof=1; None for one seed), n and the raw values (sorted by seed) of one plotted point."""
    order = np.argsort(seeds, kind="stable")
    array = np.asarray(values, dtype=float)[order]
    return {
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if array.size > 1 else None,
        "n": int(array.size),
        "values": [float(v) for v in array],
        "seeds": [int(seeds[i]) for i in order],
    }


def maester_variants(names: list[str]) -> dict[str, Variant]:
    """The MAESTER variants among ``names``, parsed."""
    parsed = {name: parse_variant(name) for name in dict.fromkeys(names)}
    return {name: v for name, v in parsed.items() if v.backbone == "maester"}


def scaling_points(
    runs: pd.DataFrame, epochs: pd.DataFrame, expected: list[str], protocol: str
) -> tuple[list[dict], list[dict]]:
    """Points (series = MAESTER run, x = pretraining epoch) and missing expected runs of one protocol."""
    scores = run_scores(runs, epochs, protocol)
    variants = maester_variants([*runs["variant"], *expected])
    points, missing = [], []
    for name, variant in sorted(variants.items(), key=lambda item: (item[1].run, item[1].epoch)):
        mine = scores[scores["variant"] == name]
        base = {"series": variant.run, "x": variant.epoch, "variant": name, "protocol": protocol}
        if mine.empty:
            missing.append(base)
        else:
            points.append(base | summary(mine["LNK"].tolist(), mine["seed"].tolist()))
    return points, missing


def baseline_point(runs: pd.DataFrame, epochs: pd.DataFrame, protocol: str) -> dict | None:
    """The re-trained baseline's mean/SD over seeds under ``protocol``, or ``None`` if absent."""
    scores = run_scores(runs[runs["variant"] == "retrained"], epochs, protocol)
    if scores.empty:
        return None
    return {"protocol": protocol} | summary(scores["LNK"].tolist(), scores["seed"].tolist())


def epoch_curves(runs: pd.DataFrame, epochs: pd.DataFrame, variants: list[str], protocol: str) -> list[dict]:
    """Per-epoch LNK mean/SD over seeds of each variant's runs trained under ``protocol``.

    ``paper`` drops LNK <= 0 (the authors' rule); ``clean`` counts an epoch that links nothing as 0.
    """
    curves = []
    own = ok_runs(runs[runs["protocol"] == protocol])
    for name in variants:
        mine = epochs[(epochs["variant"] == name) & epochs["path"].isin(own["path"])]
        counted = valid_lnk(mine["LNK"]) if protocol == "paper" else mine["LNK"].notna()
        mine = mine[counted]
        points = [
            {"x": int(epoch)} | summary(group["LNK"].tolist(), group["seed"].tolist())
            for epoch, group in mine.groupby("epoch", sort=True)
        ]
        curves.append({"variant": name, "protocol": protocol, "points": points, "missing": not points})
    return curves
