"""Shared infrastructure: atomic writes, settings parsing, the CLI edge, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from denselink import cli
from denselink.atomic import atomic_path, write_json
from denselink.data.manifest import SequenceManifest, load_manifest, load_manifests, read_tiff
from denselink.errors import ConfigError, CTCFormatError
from denselink.settings import StageSettings, load_settings


class _Demo(StageSettings):
    epochs: int = 3
    lr: float = 1e-4


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "result.txt"
    with pytest.raises(RuntimeError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_directory_only_when_complete(tmp_path: Path) -> None:
    out = tmp_path / "store.zarr"
    out.mkdir()
    (out / "old").write_text("old")
    with atomic_path(out) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
        assert (out / "old").exists()
    assert sorted(p.name for p in out.iterdir()) == ["new"]


def test_atomic_path_removes_stale_temporaries(tmp_path: Path) -> None:
    stale = tmp_path / ".tmp-x.json-deadbeef"
    stale.write_text("stale")
    write_json(tmp_path / "x.json", {"b": 1, "a": 2})
    assert not stale.exists()
    assert (tmp_path / "x.json").read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'


def test_settings_defaults_inline_json_and_file(tmp_path: Path) -> None:
    assert load_settings(_Demo, None).epochs == 3
    assert load_settings(_Demo, '{"epochs": 7}').epochs == 7
    path = tmp_path / "s.yaml"
    path.write_text("lr: 0.5\n")
    assert load_settings(_Demo, str(path)).lr == 0.5


@pytest.mark.parametrize(
    ("source", "fragment"),
    [('{"epochs": 1, "epohcs": 2}', "epohcs"), ('{"epochs": "many"}', "epochs"), ("{not json", "JSON")],
)
def test_settings_errors_name_the_problem(source: str, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        load_settings(_Demo, source)


def test_cli_prints_one_line_error_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["nonexistent", "command"])
    assert code == 2
    assert "usage: denselink" in capsys.readouterr().err


def _write_sequence(root: Path, n: int = 3) -> SequenceManifest:
    frames, masks = [], []
    for t in range(n):
        frame, mask = root / f"t{t:03d}.tif", root / f"man_track{t:03d}.tif"
        tifffile.imwrite(frame, np.full((4, 5), t, dtype=np.uint16))
        tifffile.imwrite(mask, np.eye(4, 5, dtype=np.uint16))
        frames.append(frame)
        masks.append(mask)
    return SequenceManifest("demo", "01", frames, (4, 5), "uint16", masks, root / "man_track.txt")


def test_manifest_round_trip_and_reading(tmp_path: Path) -> None:
    manifest = _write_sequence(tmp_path)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest.to_dict()))
    loaded = load_manifest(path)
    assert loaded == manifest
    assert loaded.read_frames().shape == (3, 4, 5)
    assert loaded.read_frames()[2].max() == 2
    plate = tmp_path / "plate.json"
    plate.write_text(json.dumps({"sequences": [manifest.to_dict(), manifest.to_dict()]}))
    assert len(load_manifests(plate)) == 2
    with pytest.raises(CTCFormatError, match="expected one sequence"):
        load_manifest(plate)


def test_corrupt_tiff_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "t000.tif"
    bad.write_bytes(b"II*\x00garbage")
    with pytest.raises(CTCFormatError, match="t000.tif.*corrupt"):
        read_tiff(bad)
