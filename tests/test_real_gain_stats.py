"""The real-data study's statistics: paired t intervals, Holm over the arms, power from the observed SD."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from denselink.evaluate.metrics import CTC_KEYS
from denselink.evaluate.real_gain import (
    EDGE_ERRORS,
    compare_arms,
    detectable_delta,
    markdown_summary,
    paired_power,
    paired_t,
    seeds_needed,
)

REPO = Path(__file__).resolve().parents[1]


def test_paired_t_by_hand() -> None:
    # differences 0.1, 0.2, 0.3: mean 0.2, SD 0.1, t(0.975, 2) = 4.3027
    row = paired_t([0.6, 0.7, 0.8], [0.5, 0.5, 0.5], 0.95)
    half = stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3)
    assert row["n"] == 3
    assert row["delta_mean"] == pytest.approx(0.2)
    assert row["sd_diff"] == pytest.approx(0.1)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.2 - half, 0.2 + half))
    assert half == pytest.approx(0.24841, abs=1e-5)
    t = 0.2 / (0.1 / math.sqrt(3))
    assert row["p_unadjusted"] == pytest.approx(2 * stats.t.sf(t, 2))


def test_paired_t_without_spread_and_with_one_pair() -> None:
    same = paired_t([0.5, 0.6], [0.4, 0.5], 0.95)
    assert (same["ci_low"], same["ci_high"], same["p_unadjusted"]) == pytest.approx((0.1, 0.1, 0.0))
    one = paired_t([0.5], [0.4], 0.95)
    assert one["delta_mean"] == pytest.approx(0.1) and math.isnan(one["ci_low"])


def test_compare_arms_pairs_by_seed_and_adjusts_by_holm() -> None:
    rng = np.random.default_rng(0)
    base = {s: 0.9 + 0.01 * rng.standard_normal() for s in range(8)}
    arms = {"retrained": base}
    for arm, shift in (("a", 0.02), ("b", 0.0), ("c", -0.01)):
        arms[arm] = {s: v + shift + 0.01 * rng.standard_normal() for s, v in base.items()}
    arms["c"].pop(7)  # a seed missing from one arm: compared over the seeds both have
    rows = compare_arms(arms, "retrained", 0.95)
    assert list(rows) == ["a", "b", "c"] and rows["c"]["n"] == 7
    raw = {arm: stats.ttest_rel([arms[arm][s] for s in range(rows[arm]["n"])],
                                [base[s] for s in range(rows[arm]["n"])]).pvalue for arm in rows}  # fmt: skip
    order = sorted(raw, key=raw.get)
    expected, running = {}, 0.0
    for rank, arm in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[arm]))
        expected[arm] = running
    for arm in rows:
        assert rows[arm]["p_unadjusted"] == pytest.approx(raw[arm])
        assert rows[arm]["p_value"] == pytest.approx(expected[arm])


def test_detectable_delta_has_the_power_asked() -> None:
    delta = detectable_delta(0.02, 8, 0.05, 0.8)
    assert paired_power(delta, 0.02, 8, 0.05) == pytest.approx(0.8, abs=1e-6)
    assert delta / 0.02 == pytest.approx(1.156, abs=0.002)  # the standardised effect 8 pairs detect
    # an independent check: simulated paired t-tests at that true difference reject 80 % of the time
    rng = np.random.default_rng(1)
    diffs = delta + 0.02 * rng.standard_normal((20000, 8))
    p = stats.ttest_1samp(diffs, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.015)
    assert math.isnan(detectable_delta(0.0, 8, 0.05, 0.8))
    assert math.isnan(detectable_delta(0.02, 2, 0.05, 0.8))


def test_seeds_needed_inverts_detectable_delta() -> None:
    delta = detectable_delta(0.02, 8, 0.05, 0.8)
    assert seeds_needed(delta * 1.0001, 0.02, 0.05, 0.8) == 8
    assert seeds_needed(delta * 0.9, 0.02, 0.05, 0.8) > 8
    assert seeds_needed(0.01, 0.0, 0.05, 0.8) is None


def test_edge_errors_are_counts_the_scorer_returns() -> None:
    """fn/fp/ws edges: the CTC's missing, redundant, wrong-semantics edge counts by the scorer's names."""
    assert EDGE_ERRORS == {"fn_edges": "AOGM_EA", "fp_edges": "AOGM_ED", "ws_edges": "AOGM_EC"}
    assert set(EDGE_ERRORS.values()) <= set(CTC_KEYS)


def test_markdown_summary_of_the_first_version() -> None:
    """The Markdown of version 1's JSON gives the rows the README quotes (no training record then)."""
    result = json.loads((REPO / "benchmarks" / "results" / "real_gain_v1.json").read_text())
    text = markdown_summary(result)
    assert text.startswith("config sha256 `abf05c4181ab…`, commit `627b2a3`, version 1, seeds 0–7\n")
    assert (
        "| maester_paper | 0.9801 ± 0.0085 | -0.0092 [-0.0155, -0.0029] | 0.042 | -0.0029 [-0.0138, +0.0081] "
        "| 1.000 | 22.9 / 12.9 / 13.4 | 0.38 | – | – | – |\n"
    ) in text
    assert text.count("| retrained | ") == 2 and "hard-link recall | epochs run" in text
    assert (
        "seeds needed for ΔLNK = 0.01: handcrafted 104, maester 53, maester_paper 59, maester_untrained 37."
        in text
    )
