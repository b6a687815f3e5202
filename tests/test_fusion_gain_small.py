"""The fusion-gain benchmark's machinery: oracle dose, shuffled control, swap links, power, paired stats."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

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


def test_shuffled_control_keeps_the_codes_but_not_the_cells(fusion_gain, sequence) -> None:
    cells = fusion_gain.cell_rows(sequence["manifests"]["01"])
    textures = sequence["truth"]["01"].textures
    exact = fusion_gain.oracle_table(cells, textures, 0.0, seed=0)
    shuffled = fusion_gain.oracle_table(cells, textures, 0.0, seed=0, shuffle=True)
    pd.testing.assert_frame_equal(exact[["frame", "label"]], shuffled[["frame", "label"]])
    # the same multiset of codes ...
    np.testing.assert_array_equal(np.sort(_codes(exact), axis=0), np.sort(_codes(shuffled), axis=0))
    # ... on other cells: a track's code changes between frames
    per_track = [len(np.unique(_codes(rows), axis=0)) for _, rows in shuffled.groupby("label")]
    assert np.mean(np.array(per_track) > 1) > 0.8


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
    better = fusion_gain.paired_stats(baseline + 0.2 + rng.normal(0, 0.01, 5), baseline, rng)
    assert better["delta_mean"] == pytest.approx(0.2, abs=0.02)
    assert 0.15 < better["ci_low"] < better["ci_high"] < 0.25 and better["p_value"] < 1e-4
    noise = fusion_gain.paired_stats(baseline + rng.normal(0, 0.01, 5), baseline, rng)
    assert noise["ci_low"] < 0 < noise["ci_high"] and noise["p_value"] > 0.05
    textures = {seq: truth.textures for seq, truth in sequence["truth"].items()}
    for seq, manifest in sequence["manifests"].items():
        cells = fusion_gain.cell_rows(manifest)
        fusion_gain.oracle_table(cells, textures[seq], 0.0, 1).to_parquet(tmp_path / f"oracle-{seq}.parquet")
        fusion_gain.oracle_table(cells, textures[seq], math.inf, 1).to_parquet(
            tmp_path / f"noise-{seq}.parquet"
        )
    assert fusion_gain.texture_probe(tmp_path, "oracle", textures) == 1.0
    assert fusion_gain.texture_probe(tmp_path, "noise", textures) < 0.6
