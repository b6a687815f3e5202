"""Comparisons of a variant's LNK against the re-trained baseline, and Holm's adjustment.

- ``paired``: the project's own runs, where the same seed means the same data order and
  initialisation. Primary test: the paired t-test over the seeds both have, with the t interval of
  the mean paired difference; the Wilcoxon signed-rank test beside it.
- ``unpaired``: runs whose seed numbers carry no pairing (the authors' published CSVs, numbered
  by file order). Primary test: Welch's t-test, with the Welch t interval of the difference of
  means; the Mann-Whitney U test beside it.
A t-test with no spread and no difference (every paired difference 0, or two equal constant
groups) has p = 1: no evidence of a difference, and the comparison keeps its row. ``holm`` adjusts
the p-values of one family of comparisons.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from scipy import stats

KEYS = (
    "comparison",
    "primary_test",
    "rank_test",
    "n_pairs",
    "n_baseline",
    "dLNK_mean",
    "dLNK_ci_low",
    "dLNK_ci_high",
    "ci",
    "p_primary",
    "p_rank",
)
TESTS = {"paired": ("paired t", "Wilcoxon signed-rank"), "unpaired": ("Welch t", "Mann–Whitney U")}


def _empty(comparison: str) -> dict:
    primary, rank = TESTS[comparison]
    return dict.fromkeys(KEYS, math.nan) | {
        "comparison": comparison,
        "primary_test": primary,
        "rank_test": rank,
        "n_pairs": 0,
        "n_baseline": 0,
        "ci": "",
    }


def _t_result(result: Any, difference: float, confidence: float) -> tuple[float, float, float]:
    """(p, CI low, CI high) of a scipy t-test result.

    Without spread the interval is the difference itself, and p is 1 where there is no difference either.
    """
    interval = result.confidence_interval(confidence_level=confidence)
    low, high = float(interval.low), float(interval.high)
    if math.isnan(low) or math.isnan(high):
        low = high = difference
    p = float(result.pvalue)
    return (1.0 if math.isnan(p) else p), low, high


def paired_comparison(values: dict[int, float], baseline: dict[int, float], confidence: float) -> dict:
    """Paired t-test (primary), its interval and Wilcoxon of ``values - baseline`` over shared seeds."""
    seeds = sorted(set(values) & set(baseline))
    out = _empty("paired") | {"n_pairs": len(seeds), "n_baseline": len(baseline)}
    if len(seeds) < 2:
        return out
    a = np.asarray([values[s] for s in seeds], dtype=float)
    b = np.asarray([baseline[s] for s in seeds], dtype=float)
    diffs = a - b
    out["dLNK_mean"] = float(diffs.mean())
    out["ci"] = f"paired t {confidence * 100:g} % CI, n={len(seeds)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p, out["dLNK_ci_low"], out["dLNK_ci_high"] = _t_result(
            stats.ttest_rel(a, b), out["dLNK_mean"], confidence
        )
        out["p_primary"] = p
        out["p_rank"] = 1.0 if np.all(diffs == 0) else float(stats.wilcoxon(diffs).pvalue)
    return out


def unpaired_comparison(values: list[float], baseline: list[float], confidence: float) -> dict:
    """Welch's t-test (primary), its interval and Mann-Whitney U of ``mean(values) - mean(baseline)``."""
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    out = _empty("unpaired") | {"n_pairs": 0, "n_baseline": len(b)}
    if len(a) < 2 or len(b) < 2:
        return out
    out["dLNK_mean"] = float(a.mean() - b.mean())
    out["ci"] = f"Welch t {confidence * 100:g} % CI, n={len(a)} vs {len(b)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(a, b, equal_var=False)
        out["p_primary"], out["dLNK_ci_low"], out["dLNK_ci_high"] = _t_result(
            result, out["dLNK_mean"], confidence
        )
        out["p_rank"] = float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)
    return out


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values; NaN entries stay NaN and do not count."""
    finite = [(p, i) for i, p in enumerate(p_values) if not math.isnan(p)]
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(finite)):
        running = max(running, min(1.0, (len(finite) - rank) * p))
        adjusted[i] = running
    return adjusted
