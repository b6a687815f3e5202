"""Per-cell aggregation: equals a plain numpy loop; streaming table; shape errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from denselink.cli import main as cli_main
from denselink.data.manifest import SequenceManifest, file_sha256
from denselink.errors import EmbeddingError
from denselink.features.aggregate import aggregate_frame, aggregate_sequence, feature_columns


def reference(embedding, mask, agg):
    """One label at a time, straight from the definitions."""
    rows = []
    for label in np.unique(mask[mask > 0]):
        ys, xs = np.nonzero(mask == label)
        if agg == "mma":
            feature = embedding[:, ys, xs].astype(np.float64).mean(axis=1)
            coord = (ys.mean(), xs.mean())
        else:
            if agg == "centroid":
                cy = int(np.floor((ys.min() + ys.max()) / 2 + 0.5))
                cx = int(np.floor((xs.min() + xs.max()) / 2 + 0.5))
            else:
                cy, cx = int(np.round(ys.mean())), int(np.round(xs.mean()))
            feature = embedding[:, cy, cx]
            coord = (cy, cx)
        rows.append((label, coord, ys.size, feature))
    return rows


def sample_mask():
    """Cells on every border, a one-pixel cell, a U-shaped cell whose box centre is background."""
    mask = np.zeros((12, 14), np.uint16)
    mask[0:3, 0:4] = 5  # top-left corner
    mask[9:12, 10:14] = 2  # bottom-right corner
    mask[6, 0] = 9  # one pixel on the left border
    mask[4:9, 5:10] = 300
    mask[4:7, 6:9] = 0  # U shape: centre (6, 7) of its box is background
    mask[0, 13] = 7
    return mask


@pytest.mark.parametrize("agg", ["centroid", "mma", "mask_centroid"])
def test_aggregate_frame_matches_numpy(agg):
    mask = sample_mask()
    embedding = np.random.default_rng(0).normal(size=(6, *mask.shape)).astype(np.float16)
    labels, coords, area, features = aggregate_frame(embedding, mask, agg)
    expected = reference(embedding, mask, agg)
    np.testing.assert_array_equal(labels, [r[0] for r in expected])
    np.testing.assert_array_equal(area, [r[2] for r in expected])
    np.testing.assert_allclose(coords, [r[1] for r in expected])
    np.testing.assert_allclose(features, np.stack([r[3] for r in expected]), rtol=1e-5, atol=1e-6)
    assert features.dtype == np.float32 and features.shape == (5, 6)


def test_centroid_takes_the_box_centre_even_outside_the_mask():
    mask = sample_mask()
    embedding = np.arange(mask.size, dtype=np.float32).reshape(1, *mask.shape)
    labels, coords, _, features = aggregate_frame(embedding, mask, "centroid")
    u = list(labels).index(300)
    assert tuple(coords[u]) == (6, 7) and mask[6, 7] == 0
    assert features[u, 0] == 6 * 14 + 7
    one = list(labels).index(9)
    assert tuple(coords[one]) == (6, 0) and features[one, 0] == 6 * 14


def test_empty_frame_gives_no_rows():
    labels, coords, area, features = aggregate_frame(np.ones((4, 5, 5)), np.zeros((5, 5), int), "mma")
    assert labels.size == 0 and coords.shape == (0, 2) and area.size == 0 and features.shape == (0, 4)


def test_feature_column_names():
    assert feature_columns(3) == ["f000", "f001", "f002"]
    assert feature_columns(1500)[-1] == "f1499"


def write_masked_sequence(root, embedding, masks):
    frames, mask_paths = [], []
    for t, mask in enumerate(masks):
        frames.append(root / f"t{t:03d}.tif")
        tifffile.imwrite(frames[-1], np.zeros(mask.shape, np.uint16))
        mask_paths.append(root / f"man_track{t:03d}.tif")
        tifffile.imwrite(mask_paths[-1], mask)
    manifest = SequenceManifest("synthetic", "01", frames, masks[0].shape, "uint16", masks=mask_paths)
    (root / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    group = zarr.open_group(root / "emb.zarr", mode="w", zarr_format=3)
    array = group.create_array("embedding", data=embedding, chunks=(1, embedding.shape[1], 8, 8))
    array.attrs["source_hashes"] = {path.name: file_sha256(path) for path in frames}
    return root / "emb.zarr", root / "manifest.json"


@pytest.mark.parametrize("agg", ["centroid", "mma"])
def test_sequence_table_equals_per_frame_reference(tmp_path, agg):
    base = sample_mask()
    masks = [base, np.zeros_like(base), np.where(base == 300, 0, base).astype(np.uint16)]
    embedding = np.random.default_rng(1).normal(size=(3, 5, *base.shape)).astype(np.float16)
    zarr_path, manifest = write_masked_sequence(tmp_path, embedding, masks)
    rows = aggregate_sequence(zarr_path, manifest, agg, tmp_path / "out.parquet")
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert rows == len(table) == 5 + 0 + 4
    assert list(table.columns) == ["frame", "label", "y", "x", "area", "f000", "f001", "f002", "f003", "f004"]
    assert table["f000"].dtype == np.float32
    assert 1 not in set(table["frame"])
    for t in (0, 2):
        expected = reference(embedding[t], masks[t], agg)
        got = table[table["frame"] == t]
        np.testing.assert_array_equal(got["label"], [r[0] for r in expected])
        np.testing.assert_array_equal(got["area"], [r[2] for r in expected])
        np.testing.assert_allclose(got[feature_columns(5)].to_numpy(), [r[3] for r in expected], rtol=1e-5)


def test_mismatched_embedding_is_a_named_error(tmp_path):
    base = sample_mask()
    zarr_path, manifest = write_masked_sequence(tmp_path, np.zeros((2, 3, 12, 13), np.float16), [base, base])
    with pytest.raises(EmbeddingError, match="emb.zarr"):
        aggregate_sequence(zarr_path, manifest, "mma", tmp_path / "out.parquet")
    with pytest.raises(EmbeddingError, match="does not exist"):
        aggregate_sequence(tmp_path / "none.zarr", manifest, "mma", tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()


def test_frame_count_mismatch_and_cli(tmp_path):
    base = sample_mask()
    zarr_path, manifest = write_masked_sequence(tmp_path, np.ones((3, 2, 12, 14), np.float16), [base, base])
    argv = ["features", "aggregate", "--embedding", str(zarr_path), "--manifest", str(manifest)]
    assert cli_main([*argv, "--agg", "mma", "--out", str(tmp_path / "a.parquet")]) == 2
    ok = tmp_path / "ok"
    ok.mkdir()
    zarr_path, manifest = write_masked_sequence(ok, np.ones((2, 2, 12, 14), np.float16), [base, base])
    argv = ["features", "aggregate", "--embedding", str(zarr_path), "--manifest", str(manifest)]
    assert cli_main([*argv, "--agg", "centroid", "--out", str(ok / "a.parquet")]) == 0
    table = pd.read_parquet(ok / "a.parquet")
    assert len(table) == 10 and np.all(table[["f000", "f001"]].to_numpy() == 1.0)
