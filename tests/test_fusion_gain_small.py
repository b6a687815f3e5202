"""The fusion-gain benchmark's machinery: oracle dose, shuffled control, swap links, validation swaps,
power, paired stats."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from scipy import stats

from denselink.data.ctc import validate_sequence, write_manifest
from denselink.data.synthetic import SynthSettings, generate_sequence, write_dataset

BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "fusion_gain.py"
SYNTH = dict(mode="texture", shape=(64, 64), n_frames=10, n_cells=8, division_prob=0.0, swap_every=2, seed=3)


@pytest.fixture(scope="module")
def fusion_gain():
    spec = importlib.util.spec_from_file_location("fusion_gain", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sequence(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("fusion_gain")
    settings = SynthSettings(**SYNTH)
    write_dataset(root / "synth", settings)
    manifests = {}
    for seq in settings.sequences:
        manifests[seq] = root / f"{seq}.json"
        write_manifest(validate_sequence(root / "synth", "Synth", seq), manifests[seq])
    truth = {seq: generate_sequence(settings, i) for i, seq in enumerate(settings.sequences)}
    assert all(set(t.textures.values()) == {0, 1, 2, 3} for t in truth.values())  # every class to probe
    return {"root": root, "manifests": manifests, "truth": truth}


def _codes(table: pd.DataFrame) -> np.ndarray:
    return table.filter(regex=r"^f\d+$").to_numpy()


def test_oracle_codes_name_the_texture_and_noise_dilutes_them(fusion_gain, sequence) -> None:
    cells = fusion_gain.cell_rows(sequence["manifests"]["01"])
    textures = sequence["truth"]["01"].textures
    labels = [textures[int(label)] for label in cells["label"]]
    exact = _codes(fusion_gain.oracle_table(cells, textures, 0.0, seed=0))
    for texture in set(labels):  # one code per orientation, different orientations differ
        rows = exact[np.array(labels) == texture]
        np.testing.assert_array_equal(rows, np.repeat(rows[:1], len(rows), axis=0))
    assert len(np.unique(exact, axis=0)) == len(set(labels))
    # dose-response: the code's share of the feature falls with the noise; infinite noise is noise only
    shares = []
    for noise in (0.5, 2.0, math.inf):
        noisy = _codes(fusion_gain.oracle_table(cells, textures, noise, seed=0))
        shares.append(np.corrcoef(noisy.ravel(), exact.ravel())[0, 1])
    assert 1 > shares[0] > shares[1] > 0.2
    assert abs(shares[2]) < 0.1


def _track_codes(table: pd.DataFrame) -> dict[int, tuple]:
    """The one code of each track (asserting that it is one)."""
    out = {}
    for label, rows in table.groupby("label"):
        codes = np.unique(_codes(rows), axis=0)
        assert len(codes) == 1, f"track {label} carries {len(codes)} codes"
        out[int(label)] = tuple(codes[0])
    return out


def test_shuffled_control_moves_whole_tracks(fusion_gain, sequence) -> None:
    cells = fusion_gain.cell_rows(sequence["manifests"]["01"])
    truth = sequence["truth"]["01"]
    exact = fusion_gain.oracle_table(cells, truth.textures, 0.0, seed=0)
    shuffled = fusion_gain.oracle_table(cells, truth.textures, 0.0, seed=0, shuffle=True)
    pd.testing.assert_frame_equal(exact[["frame", "label"]], shuffled[["frame", "label"]])
    # every track keeps one code in all its frames, and the tracks' codes are the exact ones permuted
    own, moved = _track_codes(exact), _track_codes(shuffled)
    assert sorted(own.values()) == sorted(moved.values())
    # ... but a track's code no longer names its texture
    assert sum(moved[label] != own[label] for label in own) >= len(own) // 3
    # partners: the exact codes always tell them apart, the shuffled ones only where they drew two codes
    assert fusion_gain.partners_told_apart(exact, truth.swaps) == 1.0
    apart = np.mean([moved[a] != moved[b] for _, a, b in truth.swaps.itertuples(index=False)])
    assert fusion_gain.partners_told_apart(shuffled, truth.swaps) == apart < 1.0


@pytest.fixture(scope="module")
def benchmark_data(fusion_gain, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The benchmark's own generated dataset, its manifests and the prepared training sequence 02."""
    from denselink.tracking.prepare import prepare
    from denselink.tracking.settings import TrackastraSettings

    root = tmp_path_factory.mktemp("fusion_gain_data")
    settings = SynthSettings(**fusion_gain.SYNTH)
    write_dataset(root / "synth", settings)
    manifests = {}
    for seq in settings.sequences:
        manifests[seq] = root / f"{seq}.json"
        write_manifest(validate_sequence(root / "synth", "Synth", seq), manifests[seq])
    prepare(manifests["02"], root / "02.pt", TrackastraSettings(**fusion_gain.TRACKASTRA))
    truth = {seq: generate_sequence(settings, i) for i, seq in enumerate(settings.sequences)}
    return {"root": root, "manifests": manifests, "truth": truth}


def test_validation_frames_of_the_training_sequence_hold_swaps(fusion_gain, benchmark_data) -> None:
    swaps = benchmark_data["truth"]["02"].swaps
    start, inside = fusion_gain.validation_swaps(benchmark_data["root"] / "02.pt", swaps)
    # 40 frames, val_fraction 0.25: frames 30..39 validate; 4 pairs swap every 4 frames
    assert start == 30
    assert inside == int((swaps["frame"] > 30).sum()) >= 8
    # without keep_pairs the pairs of this sequence have broken up before its validation frames
    broken = generate_sequence(SynthSettings(**{**fusion_gain.SYNTH, "keep_pairs": False}), 1).swaps
    assert fusion_gain.validation_swaps(benchmark_data["root"] / "02.pt", broken)[1] == 0


def test_swap_link_recall_counts_kept_and_broken_swap_links(fusion_gain, sequence, tmp_path: Path) -> None:
    truth = sequence["truth"]["01"]
    assert len(truth.swaps) >= 4
    perfect, motion = tmp_path / "perfect", tmp_path / "motion"
    perfect.mkdir()
    motion.mkdir()
    # a perfect result relabels nothing; a motion-only linker gives each place, not each cell, one track
    swapped = truth.masks.copy()
    for t, first, second in truth.swaps.itertuples(index=False):
        later = swapped[t:].copy()
        swapped[t:][later == first], swapped[t:][later == second] = second, first
    for t in range(len(truth.masks)):
        tifffile.imwrite(perfect / f"mask{t:03d}.tif", truth.masks[t])
        tifffile.imwrite(motion / f"mask{t:03d}.tif", swapped[t])
    assert fusion_gain.swap_link_recall(perfect, truth.masks, truth.swaps) == 1.0
    assert fusion_gain.swap_link_recall(motion, truth.masks, truth.swaps) == 0.0


def test_power_calculation_matches_the_normal_approximation(fusion_gain) -> None:
    # n ~ ((z_{1-a/2} + z_{power}) * sd / effect)^2, plus ~2 for the t distribution's heavier tails
    n = fusion_gain.seeds_for_power(sd_diff=0.1, effect=0.1, alpha=0.05, power=0.8, floor=2)
    assert n == 10
    assert fusion_gain.seeds_for_power(0.05, 0.1, 0.05, 0.8, 2) < n
    assert fusion_gain.seeds_for_power(0.01, 0.1, 0.05, 0.8, 4) == 4  # the floor


def test_paired_stats_and_texture_probe(fusion_gain, sequence, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    baseline = np.array([0.70, 0.72, 0.68, 0.71, 0.69])
    better = fusion_gain.paired_stats(baseline + 0.2 + rng.normal(0, 0.01, 5), baseline)
    assert better["delta_mean"] == pytest.approx(0.2, abs=0.02)
    assert 0.15 < better["ci_low"] < better["ci_high"] < 0.25 and better["p_value"] < 1e-4
    noise = fusion_gain.paired_stats(baseline + rng.normal(0, 0.01, 5), baseline)
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["p_value"] > 0.05
    # 3 seeds: the paired t interval, mean -+ t(0.975, 2) * sd / sqrt(3), wider than the range
    three = fusion_gain.paired_stats(np.array([0.9, 0.8, 0.75]), np.array([0.7, 0.7, 0.7]))
    half = 4.302652729911275 * np.std([0.2, 0.1, 0.05], ddof=1) / np.sqrt(3)
    assert three["ci_low"] == pytest.approx(0.35 / 3 - half) and three["ci_high"] == pytest.approx(
        0.35 / 3 + half
    )
    assert (three["diff_min"], three["diff_max"]) == pytest.approx((0.05, 0.2))
    assert three["ci_low"] < three["diff_min"] and three["p_value"] == pytest.approx(
        stats.ttest_rel([0.9, 0.8, 0.75], [0.7, 0.7, 0.7]).pvalue
    )
    textures = {seq: truth.textures for seq, truth in sequence["truth"].items()}
    for seq, manifest in sequence["manifests"].items():
        cells = fusion_gain.cell_rows(manifest)
        fusion_gain.oracle_table(cells, textures[seq], 0.0, 1).to_parquet(tmp_path / f"oracle-{seq}.parquet")
        fusion_gain.oracle_table(cells, textures[seq], math.inf, 1).to_parquet(
            tmp_path / f"noise-{seq}.parquet"
        )
    assert fusion_gain.texture_probe(tmp_path, "oracle", textures) == 1.0
    assert fusion_gain.texture_probe(tmp_path, "noise", textures) < 0.6


def test_handcrafted_arm_reads_the_texture(fusion_gain, benchmark_data) -> None:
    root, manifests = benchmark_data["root"], benchmark_data["manifests"]
    seconds = fusion_gain.embedding_tables(root, manifests, ["retrained", "handcrafted"])
    assert set(seconds) == {"handcrafted"}
    textures = {seq: truth.textures for seq, truth in benchmark_data["truth"].items()}
    table = pd.read_parquet(root / "handcrafted-01.parquet")
    assert _codes(table).shape == (len(fusion_gain.cell_rows(manifests["01"])), 16)
    # intensity histogram + oriented-gradient energies name the stripes' orientation: appearance
    # without any learning reads the cue this data is built on
    assert fusion_gain.texture_probe(root, "handcrafted", textures) > 0.9
