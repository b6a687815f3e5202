"""The hand-crafted appearance feature: hand-made frames with known histograms and gradient directions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from denselink import cli
from denselink.features.handcrafted import HandcraftedSettings, handcrafted_features
from denselink.tracking.fusion import FeatureTable

CROP = Path(__file__).parent / "data" / "ctc_sim_crop"
SHARP = HandcraftedSettings(bins=4, orientations=4, sigma=0.0)


def _two_cells() -> tuple[np.ndarray, np.ndarray]:
    """Cell 7 (left) has vertical stripes (x gradient), cell 3 (right) horizontal ones (y gradient)."""
    image = np.zeros((16, 32))
    stripes = np.tile([0.0, 0.0, 10.0, 10.0], 4)
    image[:, 0:16] = stripes[None, :]
    image[:, 16:32] = stripes[:, None]
    mask = np.zeros((16, 32), np.int32)
    mask[2:14, 2:14] = 7
    mask[2:14, 18:30] = 3
    return image, mask


def test_labels_ascending_background_excluded_histograms_sum_to_one() -> None:
    image, mask = _two_cells()
    labels, features = handcrafted_features(image, mask, SHARP)
    assert labels.tolist() == [3, 7]
    assert features.shape == (2, SHARP.dim) == (2, 8)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features[:, :4].sum(axis=1), 1.0, rtol=1e-6)
    # half the pixels of each cell are 0 (first bin), half are 10 (the 99.8th percentile: last bin)
    np.testing.assert_allclose(features[:, :4], [[0.5, 0, 0, 0.5], [0.5, 0, 0, 0.5]], atol=1e-6)


def test_gradient_energy_lies_in_the_stripes_direction() -> None:
    image, mask = _two_cells()
    _, features = handcrafted_features(image, mask, SHARP)
    energy = features[:, 4:]
    # label 3 (horizontal stripes): the gradient points along y, 90 degrees -> bin 2 of 4
    assert energy[0, 2] > 0 and np.count_nonzero(energy[0]) == 1
    # label 7 (vertical stripes): along x, 0 or 180 degrees -> bin 0; the same energy as label 3
    assert energy[1, 0] > 0 and np.count_nonzero(energy[1]) == 1
    np.testing.assert_allclose(energy[1, 0], energy[0, 2], rtol=1e-6)


def test_gradient_energy_of_a_ramp_is_its_slope() -> None:
    image = np.tile(np.arange(20.0), (20, 1))  # x ramp: p1..p99.8 spans 0.19..18.96
    mask = np.zeros((20, 20), np.int32)
    mask[5:15, 5:15] = 1
    _, features = handcrafted_features(image, mask, SHARP)
    low, high = np.percentile(image, (1.0, 99.8))
    np.testing.assert_allclose(features[0, 4:], [1 / (high - low), 0, 0, 0], rtol=1e-5)


def test_rows_follow_the_labels_not_their_numbers() -> None:
    image, mask = _two_cells()
    relabelled = np.select([mask == 7, mask == 3], [1, 9], 0)
    _, before = handcrafted_features(image, mask, SHARP)
    labels, after = handcrafted_features(image, relabelled, SHARP)
    assert labels.tolist() == [1, 9]
    np.testing.assert_array_equal(after, before[::-1])


def test_empty_mask_and_shape_mismatch() -> None:
    labels, features = handcrafted_features(np.ones((4, 4)), np.zeros((4, 4), np.int32))
    assert labels.shape == (0,) and features.shape == (0, 16)
    with pytest.raises(ValueError, match="one shape"):
        handcrafted_features(np.ones((4, 4)), np.zeros((4, 5), np.int32))


def test_sequence_table_has_one_row_per_gt_cell(tmp_path: Path) -> None:
    manifest, table = tmp_path / "01.json", tmp_path / "hc.parquet"
    argv = ["data", "validate", "--dataset-dir", str(CROP), "--dataset", "crop", "--seq", "01"]
    assert cli.main([*argv, "--out", str(manifest)]) == 0
    settings = '{"bins": 6, "orientations": 10}'
    assert cli.main(["features", "handcrafted", "--manifest", str(manifest), "--out", str(table),
                     "--settings", settings]) == 0  # fmt: skip
    frame = pd.read_parquet(table)
    cells = sum(len(np.unique(m)) - 1 for m in _masks(CROP / "01_GT" / "TRA"))
    assert len(frame) == cells
    reader = FeatureTable(table)
    assert reader.dim == 16
    np.testing.assert_allclose(reader.values[:, :6].sum(axis=1), 1.0, rtol=1e-5)


def _masks(folder: Path) -> list[np.ndarray]:
    import tifffile

    return [tifffile.imread(p) for p in sorted(folder.glob("man_track*.tif"))]
