"""Files a CTC sequence is read from are checked where ``data validate`` reads them, file and line named.

Each case damages a copy of the real CTC crop (tests/data/ctc_sim_crop, Fluo-N2DH-SIM+) the way
a user's tools do: a man_track.txt with tabs, runs of spaces or blank lines of spaces, a mask saved as
``(Y, X, 1)``, frames named ``.tiff``, a frame copied as ``t0000.tif`` beside ``t000.tif``. What
``data validate`` accepts, ``tracking prepare`` accepts; what it refuses, ``tracking prepare`` refuses
too when handed a manifest written before the file was damaged.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile

from denselink import cli
from denselink.data.ctc import read_man_track, validate_sequence
from denselink.errors import CTCFormatError
from denselink.tracking.prepare import prepare
from denselink.tracking.settings import TrackastraSettings

CROP = Path(__file__).parent / "data" / "ctc_sim_crop"
REAL = Path("/work/ctc/Fluo-N2DH-GOWT1/01_GT/TRA/man_track.txt")
SETTINGS = TrackastraSettings(window=4, val_fraction=0.25)


@pytest.fixture
def crop(tmp_path: Path) -> Path:
    """A copy of the real CTC crop that the test may damage."""
    return Path(shutil.copytree(CROP, tmp_path / "SIM", ignore=shutil.ignore_patterns("*.py", "*.md")))


def _tra(crop: Path) -> Path:
    return crop / "01_GT" / "TRA"


def _rewrite_man_track(crop: Path, edit: Callable[[list[str]], list[str]]) -> Path:
    path = _tra(crop) / "man_track.txt"
    path.write_text("".join(edit(path.read_text().splitlines(keepends=True))))
    return path


def _manifest(crop: Path, tmp_path: Path) -> Path:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(validate_sequence(crop, "SIM", "01").to_dict()))
    return manifest


def _tab_on_line_2(lines: list[str]) -> list[str]:
    return [lines[0], lines[1].replace(" ", "\t"), *lines[2:]]


def _double_space_on_line_3(lines: list[str]) -> list[str]:
    return [*lines[:2], lines[2].replace(" ", "  ", 1), *lines[3:]]


def _trailing_space_on_line_1(lines: list[str]) -> list[str]:
    return [lines[0].replace("\n", " \n"), *lines[1:]]


def _spaces_on_trailing_blank_line(lines: list[str]) -> list[str]:
    return [*lines, "\n", "   \n"]


def _track_listed_twice(lines: list[str]) -> list[str]:
    return [*lines, lines[1]]


SINGLE_SPACES = "fields must be separated by single spaces, none at the start or end"
MAN_TRACK_CASES = {
    "tab separators": (
        _tab_on_line_2,
        "line 2: a tab between fields; the CTC format separates them by single spaces",
    ),
    "two spaces": (_double_space_on_line_3, f"line 3: {SINGLE_SPACES}"),
    "trailing space": (_trailing_space_on_line_1, f"line 1: {SINGLE_SPACES}"),
    "blank line of spaces": (
        _spaces_on_trailing_blank_line,
        "spaces on an otherwise blank line; leave it empty",
    ),
    "track listed twice": (_track_listed_twice, "is listed more than once (also line 2)"),
}


@pytest.mark.parametrize("case", MAN_TRACK_CASES)
def test_man_track_format_is_named_with_its_line_by_validate_and_prepare(
    case: str, crop: Path, tmp_path: Path
) -> None:
    manifest = _manifest(crop, tmp_path)  # written while the table was sound
    edit, problem = MAN_TRACK_CASES[case]
    man_track = _rewrite_man_track(crop, edit)
    n_lines = len(man_track.read_text().splitlines())
    expected = problem if case != "blank line of spaces" else f"line {n_lines}: {problem}"
    if case == "track listed twice":
        label = read_man_track(CROP / "01_GT" / "TRA" / "man_track.txt")["label"][1]
        expected = f"line {n_lines}: track {label} {problem}"
    for run in (
        lambda: validate_sequence(crop, "SIM", "01"),
        lambda: prepare(manifest, tmp_path / "01.pt", SETTINGS),
    ):
        with pytest.raises(CTCFormatError) as info:
            run()
        assert info.value.path == str(man_track) and expected in info.value.problem, info.value
    assert not (tmp_path / "01.pt").exists()


def test_empty_lines_are_skipped_alike_by_validate_and_prepare(crop: Path, tmp_path: Path) -> None:
    _rewrite_man_track(crop, lambda lines: [lines[0], "\n", *lines[1:], "\n", "\n"])
    tracks = read_man_track(_tra(crop) / "man_track.txt")
    assert tracks.equals(read_man_track(CROP / "01_GT" / "TRA" / "man_track.txt"))
    prepare(_manifest(crop, tmp_path), tmp_path / "01.pt", SETTINGS)
    assert (tmp_path / "01.pt").is_file()


@pytest.mark.skipif(not REAL.is_file(), reason="the real CTC data are not extracted at /work/ctc")
def test_real_man_track_with_tabs_is_refused_at_line_1(tmp_path: Path) -> None:
    assert len(read_man_track(REAL)) == len(REAL.read_text().splitlines())
    tabbed = tmp_path / "man_track.txt"
    tabbed.write_text(REAL.read_text().replace(" ", "\t"))
    with pytest.raises(CTCFormatError, match="line 1: a tab between fields"):
        read_man_track(tabbed)


def test_singleton_axis_mask_is_refused_by_validate_and_prepare(crop: Path, tmp_path: Path) -> None:
    manifest = _manifest(crop, tmp_path)
    mask = _tra(crop) / "man_track004.tif"
    image = tifffile.imread(mask)
    tifffile.imwrite(mask, image[..., np.newaxis])  # (Y, X, 1), as some tools save label images
    problem = f"stored with shape {(*image.shape, 1)}; frames and masks are 2D images {image.shape}"
    for run in (
        lambda: validate_sequence(crop, "SIM", "01"),
        lambda: prepare(manifest, tmp_path / "01.pt", SETTINGS),
    ):
        with pytest.raises(CTCFormatError) as info:
            run()
        assert info.value.path == str(mask) and problem in info.value.problem, info.value


def test_tiff_extension_frames_pass_validate_in_time_order(crop: Path) -> None:
    for path in (crop / "01").glob("t*.tif"):
        path.rename(path.with_suffix(".tiff"))
    manifest = validate_sequence(crop, "SIM", "01")
    assert [p.name for p in manifest.frames] == [f"t{t:03d}.tiff" for t in range(manifest.n_frames)]
    assert manifest.n_frames == len(list((CROP / "01").glob("t*.tif")))


def _copy(source: str, target: str) -> Callable[[Path], Path]:
    def damage(crop: Path) -> Path:
        shutil.copy(crop / source, crop / target)
        return crop / target

    return damage


FRAME_CASES = {
    "t0000.tif beside t000.tif": (
        _copy("01/t000.tif", "01/t0000.tif"),
        "t000.tif and t0000.tif are both frame 0",
    ),
    "man_track0003.tif beside man_track003.tif": (
        _copy("01_GT/TRA/man_track003.tif", "01_GT/TRA/man_track0003.tif"),
        "man_track003.tif and man_track0003.tif are both frame 3",
    ),
    "a copy named t005 copy.tif": (
        _copy("01/t005.tif", "01/t005 copy.tif"),
        "a TIFF in the raw frame folder that is not named t<frame number>.tif",
    ),
    "t1.tif among t000.tif ...": (
        lambda crop: (crop / "01/t001.tif").rename(crop / "01/t1.tif"),
        "frame numbers of different widths (t1.tif, t000.tif) do not sort in time order by name",
    ),
}


@pytest.mark.parametrize("case", FRAME_CASES)
def test_frame_names_that_do_not_order_the_movie_are_named(case: str, crop: Path) -> None:
    damage, problem = FRAME_CASES[case]
    path = damage(crop)
    with pytest.raises(CTCFormatError) as info:
        validate_sequence(crop, "SIM", "01")
    assert problem in info.value.problem and Path(info.value.path).parent == path.parent, info.value


def test_numbering_gap_names_the_missing_frames(crop: Path) -> None:
    for t in (3, 4):
        (crop / "01" / f"t{t:03d}.tif").unlink()
    with pytest.raises(CTCFormatError) as info:
        validate_sequence(crop, "SIM", "01")
    assert info.value.path == str(crop / "01" / "t005.tif")
    assert info.value.problem == "frame numbering gap: t005.tif follows t002.tif (frame 3-4 missing)"


def test_validate_cli_names_the_tab_line_in_one_line(
    crop: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    man_track = _rewrite_man_track(crop, _tab_on_line_2)
    argv = ["data", "validate", "--dataset-dir", str(crop), "--dataset", "SIM", "--seq", "01"]
    assert cli.main([*argv, "--out", str(tmp_path / "m.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"denselink: CTC format error: {man_track}: line 2: a tab between fields; "
        "the CTC format separates them by single spaces"
    )
    assert not (tmp_path / "m.json").exists()
