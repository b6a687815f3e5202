"""Mitocheck plates: Tables 3/4, synthetic miniature -> plate manifests -> dataset union, named errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from denselink.data.manifest import load_manifests
from denselink.data.mitocheck import (
    DATASETS,
    PLATES,
    MitocheckSynthSettings,
    main,
    plate_manifest,
    union_manifests,
    validate_plate,
    write_synthetic_plates,
)
from denselink.errors import MitocheckFormatError

pytestmark = pytest.mark.filterwarnings("ignore:.*Table 3 lists:UserWarning")

SETTINGS = MitocheckSynthSettings(sequences_per_plate=2, n_frames=3, shape=(24, 32), n_cells=3)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mito") / "mitocheck"
    write_synthetic_plates(root, SETTINGS)
    return root


@pytest.fixture
def root(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "mitocheck"
    shutil.copytree(pristine, copy)
    return copy


def test_tables_3_and_4() -> None:
    assert [PLATES[n].n_sequences for n in (1, 2, 3, 4)] == [318, 384, 384, 318]
    sizes = {size: sum(PLATES[n].n_sequences for n in plates) for size, plates in DATASETS.items()}
    assert sizes == {100: 318, 200: 702, 300: 1086, 400: 1404}
    assert PLATES[1].plate_id == "dfdcb304-ffe1-4844-bae3-9ee1ed4749a7"


def test_synth_layout(pristine: Path) -> None:
    plates = sorted(p.name for p in pristine.iterdir() if p.is_dir())
    assert plates == sorted(p.plate_id for p in PLATES.values())
    sequence = pristine / PLATES[2].plate_id / "W00002"
    assert sorted(p.name for p in sequence.iterdir()) == ["t000.tif", "t001.tif", "t002.tif"]
    assert tifffile.imread(sequence / "t001.tif").shape == (24, 32)
    first = tifffile.imread(pristine / PLATES[1].plate_id / "W00001" / "t000.tif")
    other = tifffile.imread(pristine / PLATES[2].plate_id / "W00001" / "t000.tif")
    assert not np.array_equal(first, other)


def test_round_trip_plates_to_dataset(pristine: Path, tmp_path: Path) -> None:
    manifests = []
    for number in (1, 2):
        out = tmp_path / f"plate{number}.json"
        assert (
            main(["manifest", "--mitocheck-root", str(pristine), "--plate", str(number), "--out", str(out)])
            == 0
        )
        data = json.loads(out.read_text())
        assert data["plate"] == PLATES[number].plate_id
        assert [s["sequence"] for s in data["sequences"]] == ["W00001", "W00002"]
        assert all(s["masks"] == [] and s["man_track"] is None for s in data["sequences"])
        manifests.append(out)
    out = tmp_path / "200.json"
    assert main(["dataset", "--manifests", *map(str, manifests), "--size", "200", "--out", str(out)]) == 0
    sequences = load_manifests(out)
    assert len(sequences) == 4
    assert json.loads(out.read_text())["dataset"] == "Mitocheck (200%)"
    assert {s.dataset for s in sequences} == {"mitocheck-plate1", "mitocheck-plate2"}
    assert sequences[3].read_frames().shape == (3, 24, 32)
    assert sequences[0].shape == (24, 32)


def test_count_mismatch_warns_unless_strict(pristine: Path) -> None:
    with pytest.warns(UserWarning, match="2 sequences, Table 3 lists 318"):
        assert len(validate_plate(pristine, 1)) == 2
    with pytest.raises(MitocheckFormatError, match="Table 3 lists 384") as info:
        validate_plate(pristine, PLATES[3].plate_id, strict=True)
    assert info.value.path.endswith(PLATES[3].plate_id)


def _sequence(root: Path) -> Path:
    return root / PLATES[1].plate_id / "W00002"


@pytest.mark.parametrize(
    ("corrupt", "where", "problem"),
    [
        (
            lambda r: shutil.rmtree(r / PLATES[1].plate_id),
            PLATES[1].plate_id,
            "directory of plate 1 is missing",
        ),
        (lambda r: [p.unlink() for p in _sequence(r).iterdir()], "W00002", "empty sequence"),
        (
            lambda r: tifffile.imwrite(_sequence(r) / "t001.tif", np.zeros((24, 30), np.uint16)),
            "t001.tif",
            "shape (24, 30) differs",
        ),
        (lambda r: (_sequence(r) / "t002.tif").write_bytes(b"\0" * 64), "t002.tif", "corrupt TIFF"),
    ],
    ids=["missing plate", "empty sequence", "inconsistent shape", "corrupt tiff"],
)
def test_malformed_plate_names_file_and_problem(root: Path, corrupt, where: str, problem: str) -> None:
    corrupt(root)
    with pytest.raises(MitocheckFormatError) as info:
        plate_manifest(root, 1)
    assert info.value.path.endswith(where)
    assert problem in info.value.problem


def test_dataset_rejects_wrong_plates_and_bad_manifests(pristine: Path, tmp_path: Path) -> None:
    plate3 = tmp_path / "plate3.json"
    plate3.write_text(json.dumps(plate_manifest(pristine, 3)))
    with pytest.raises(MitocheckFormatError, match=r"Mitocheck \(100%\) needs plates"):
        union_manifests([plate3], size=100)
    with pytest.raises(MitocheckFormatError, match="given twice"):
        union_manifests([plate3, plate3])
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"sequences": []}')
    with pytest.raises(MitocheckFormatError, match="not a plate manifest") as info:
        union_manifests([bogus])
    assert info.value.path == str(bogus)
    assert len(union_manifests([plate3])["sequences"]) == 2


def test_unknown_plate_is_named() -> None:
    with pytest.raises(MitocheckFormatError, match="unknown plate"):
        plate_manifest("/nonexistent", 5)
