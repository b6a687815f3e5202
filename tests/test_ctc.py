"""CTC validation: generated data passes; every kind of malformed input names its file and problem."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import CTC_TOY as SETTINGS  # the toy of the pristine/dataset fixtures

from denselink.data.ctc import main, read_man_track, validate_sequence
from denselink.data.manifest import load_manifest
from denselink.data.synthetic import generate_sequence
from denselink.errors import CTCFormatError


def _append_track(root: Path, line: str) -> None:
    path = root / "01_GT/TRA/man_track.txt"
    path.write_text(path.read_text() + line + "\n")


def _leaf_track(root: Path) -> int:
    tracks = read_man_track(root / "01_GT/TRA/man_track.txt")
    parents = set(tracks["parent"])
    return int(next(label for label in tracks["label"] if label not in parents))


def _drop_track(root: Path) -> None:
    path = root / "01_GT/TRA/man_track.txt"
    leaf = _leaf_track(root)
    path.write_text(
        "".join(line + "\n" for line in path.read_text().splitlines() if int(line.split()[0]) != leaf)
    )


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


CORRUPTIONS: list[tuple[str, Callable[[Path], None], str, str]] = [
    ("raw dir missing", lambda r: shutil.rmtree(r / "01"), "01", "directory is missing"),
    ("TRA dir missing", lambda r: shutil.rmtree(r / "01_GT/TRA"), "TRA", "directory is missing"),
    ("no frames", lambda r: [p.unlink() for p in (r / "01").glob("t*.tif")], "01", "empty sequence"),
    ("count mismatch", lambda r: (r / "01_GT/TRA/man_track007.tif").unlink(), "TRA", "7 TRA masks but 8 raw"),
    ("numbering gap", lambda r: (r / "01/t003.tif").unlink(), "t004.tif", "gap: t004.tif follows t002.tif"),
    (
        "not starting at 0",
        lambda r: (r / "01/t000.tif").rename(r / "01/t008.tif"),
        "t001.tif",
        "frame number 0",
    ),
    (
        "garbage TIFF",
        lambda r: (r / "01/t002.tif").write_bytes(b"not a tiff" * 50),
        "t002.tif",
        "corrupt TIFF",
    ),
    (
        "truncated TIFF",
        lambda r: _truncate(r / "01_GT/TRA/man_track005.tif"),
        "man_track005.tif",
        "truncated",
    ),
    (
        "frame shape",
        lambda r: tifffile.imwrite(r / "01/t004.tif", np.zeros((32, 64), np.uint16)),
        "t004.tif",
        "shape (32, 64) differs",
    ),
    (
        "mask shape",
        lambda r: tifffile.imwrite(r / "01_GT/TRA/man_track004.tif", np.zeros((64, 32), np.uint16)),
        "man_track004.tif",
        "mask shape (64, 32) differs",
    ),
    (
        "float mask",
        lambda r: tifffile.imwrite(r / "01_GT/TRA/man_track001.tif", np.zeros((64, 64), np.float32)),
        "man_track001.tif",
        "not an integer type",
    ),
    (
        "complex raw",
        lambda r: tifffile.imwrite(r / "01/t001.tif", np.zeros((64, 64), np.complex64)),
        "t001.tif",
        "not numeric",
    ),
    ("man_track missing", lambda r: (r / "01_GT/TRA/man_track.txt").unlink(), "man_track.txt", "missing"),
    ("man_track text", lambda r: _append_track(r, "a b c d"), "man_track.txt", "not an integer"),
    ("man_track columns", lambda r: _append_track(r, "40 1 2"), "man_track.txt", "expected 4 columns"),
    ("unknown label", _drop_track, "man_track", "is not a track in"),
    ("track not drawn", lambda r: _append_track(r, "99 0 3 0"), "man_track.txt", "track 99 (0-3) is absent"),
    ("missing parent", lambda r: _append_track(r, "99 2 3 98"), "man_track.txt", "parent 98, which is not"),
    (
        "parent overlaps child",
        lambda r: _append_track(r, "99 2 3 1"),
        "man_track.txt",
        "not before its child 99",
    ),
    ("beyond last frame", lambda r: _append_track(r, "99 2 8 0"), "man_track.txt", "ends at frame 8"),
]


@pytest.mark.parametrize(
    ("corrupt", "where", "problem"), [c[1:] for c in CORRUPTIONS], ids=[c[0] for c in CORRUPTIONS]
)
def test_malformed_input_names_file_and_problem(
    dataset: Path, corrupt: Callable[[Path], None], where: str, problem: str
) -> None:
    corrupt(dataset)
    with pytest.raises(CTCFormatError) as info:
        validate_sequence(dataset, "toy", "01")
    assert where in Path(info.value.path).name or where in info.value.path
    assert problem in info.value.problem
    assert info.value.path in str(info.value)


def test_manifest_round_trip_reads_generated_arrays(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "results/data/toy/01/manifest.json"
    assert main(["--dataset-dir", str(dataset), "--dataset", "toy", "--seq", "01", "--out", str(out)]) == 0
    manifest = load_manifest(out)
    expected = generate_sequence(SETTINGS, 0)
    assert (manifest.dataset, manifest.sequence, manifest.n_frames) == ("toy", "01", 8)
    assert all(p.is_absolute() for p in manifest.frames + manifest.masks)
    np.testing.assert_array_equal(manifest.read_masks(), expected.masks)
    np.testing.assert_array_equal(manifest.read_frame(5), expected.frames[5])


def test_lzw_compressed_sequence_validates(dataset: Path) -> None:
    for path in sorted(dataset.rglob("*.tif")):
        tifffile.imwrite(path, tifffile.imread(path), compression="lzw")
    manifest = validate_sequence(dataset, "toy", "01")
    np.testing.assert_array_equal(manifest.read_masks(), generate_sequence(SETTINGS, 0).masks)


def test_read_man_track_columns_and_values(dataset: Path) -> None:
    tracks = read_man_track(dataset / "01_GT/TRA/man_track.txt")
    expected = generate_sequence(SETTINGS, 0).tracks
    assert list(tracks.columns) == ["label", "start", "end", "parent"]
    assert tracks.to_numpy().tolist() == expected.to_numpy().tolist()
    assert (tracks["parent"] > 0).sum() >= 2
