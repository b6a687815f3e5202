"""Comparisons of a variant's LNK against the re-trained baseline, and Holm's adjustment.

- ``paired``: the project's own runs, where the same seed means the same data order and
  initialisation: paired t-test, Wilcoxon signed-rank test and a bootstrap CI of the mean paired
  difference, over the seeds both have.
- ``unpaired``: runs whose seed numbers carry no pairing (the authors' published CSVs, numbered
  by file order): Welch's t-test, Mann-Whitney U test and a bootstrap CI of the difference of
  means (each group resampled on its own).
The bootstrap is seeded; ``holm`` adjusts the p-values of the comparisons of one table section.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

KEYS = (
    "comparison",
    "n_pairs",
    "n_baseline",
    "dLNK_mean",
    "dLNK_ci_low",
    "dLNK_ci_high",
    "p_ttest",
    "p_rank",
)


def _empty(comparison: str) -> dict:
    return dict.fromkeys(KEYS, math.nan) | {"comparison": comparison, "n_pairs": 0, "n_baseline": 0}


def _interval(boot: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(boot, [tail, 1 - tail])
    return float(low), float(high)


def paired_comparison(
    values: dict[int, float], baseline: dict[int, float], samples: int, seed: int, confidence: float
) -> dict:
    """Paired statistics of ``values - baseline`` over the seeds present in both."""
    seeds = sorted(set(values) & set(baseline))
    out = _empty("paired") | {"n_pairs": len(seeds), "n_baseline": len(seeds)}
    if len(seeds) < 2:
        return out
    a = np.asarray([values[s] for s in seeds], dtype=float)
    b = np.asarray([baseline[s] for s in seeds], dtype=float)
    diffs = a - b
    rng = np.random.default_rng(seed)
    boot = diffs[rng.integers(0, len(diffs), size=(samples, len(diffs)))].mean(axis=1)
    out["dLNK_mean"] = float(diffs.mean())
    out["dLNK_ci_low"], out["dLNK_ci_high"] = _interval(boot, confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["p_ttest"] = float(stats.ttest_rel(a, b).pvalue)
        out["p_rank"] = 1.0 if np.all(diffs == 0) else float(stats.wilcoxon(diffs).pvalue)
    return out


def unpaired_comparison(
    values: list[float], baseline: list[float], samples: int, seed: int, confidence: float
) -> dict:
    """Welch's t-test, Mann-Whitney U and a bootstrap CI of ``mean(values) - mean(baseline)``."""
    a, b = np.asarray(values, dtype=float), np.asarray(baseline, dtype=float)
    out = _empty("unpaired") | {"n_pairs": 0, "n_baseline": len(b)}
    if len(a) < 2 or len(b) < 2:
        return out
    rng = np.random.default_rng(seed)
    boot_a = a[rng.integers(0, len(a), size=(samples, len(a)))].mean(axis=1)
    boot_b = b[rng.integers(0, len(b), size=(samples, len(b)))].mean(axis=1)
    out["dLNK_mean"] = float(a.mean() - b.mean())
    out["dLNK_ci_low"], out["dLNK_ci_high"] = _interval(boot_a - boot_b, confidence)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out["p_ttest"] = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
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
