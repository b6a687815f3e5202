"""A full disk (or any OSError) while writing: one line naming the path, the error and the free space,
and nothing partial left behind.

The commands write onto a 1 MiB tmpfs mounted by the test (it needs root or CAP_SYS_ADMIN, and skips
with the reason elsewhere); a writer that raises an OSError shows the same without any mount.
"""

from __future__ import annotations

import errno
import gc
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from denselink import cli
from denselink.atomic import _size, atomic_path
from denselink.errors import StorageError

SIZE = r"\d+(\.\d)? (B|KiB|MiB|GiB|TiB|PiB)"
NO_SPACE = "[Errno 28] No space left on device"
SYNTH = {"shape": [32, 32], "n_frames": 6, "n_cells": 3, "sequences": ["01", "02"], "seed": 0}
TRACKING = {"window": 4, "d_model": 32, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1}
TRACKING |= {"epochs": 1, "warmup_epochs": 0, "batch_size": 2, "train_samples": 4, "crop_size": None}
TRACKING |= {"max_tokens": 256, "val_fraction": 0.0, "augment": 1}
MODEL = {"img_size": 20, "patch_size": 5, "embed_dim": 16, "depth": 1, "num_heads": 1}
MODEL |= {"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1}
MAESTER_TRAIN = {"batch_size": 4, "samples_per_epoch": 8, "epochs": 1, "save_epochs": [0]}
MAESTER_TRAIN |= {"num_workers": 0, "device": "cpu", "seed": 7}


def _mount_point(folder: Path) -> Path:
    while folder != folder.parent and folder.parent.stat().st_dev == folder.stat().st_dev:
        folder = folder.parent
    return folder


def _free(folder: Path) -> str:
    """The free-space clause of a storage error, with the byte counts as a pattern."""
    return rf"{SIZE} free of {SIZE} on the filesystem mounted at {re.escape(str(folder))}"


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines, "no error printed"
    return lines[-1]


def _everything(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


# --------------------------------------------------------------------------- without a mount
def test_a_writer_failing_with_enospc_gives_one_error_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "table.parquet"

    def full_disk_writer(tmp: Path) -> None:
        tmp.write_bytes(b"half a table")
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")

    with pytest.raises(StorageError) as caught, atomic_path(out, "features aggregate") as tmp:
        full_disk_writer(tmp)
    assert re.fullmatch(
        rf"storage error: {re.escape(str(out))}: cannot be written: {re.escape(NO_SPACE)}; "
        rf"{_free(_mount_point(tmp_path))}; nothing partial kept",
        str(caught.value),
    ), str(caught.value)
    assert _everything(tmp_path) == []


def test_a_failed_write_keeps_the_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "zarr"
    with atomic_path(out, "maester infer") as tmp:
        (tmp / "c").mkdir(parents=True)
        (tmp / "c" / "0").write_bytes(b"old")
    with (
        pytest.raises(StorageError, match=r"cannot be written: \[Errno 122\] Disk quota exceeded \(at c/1\)"),
        atomic_path(out, "maester infer") as tmp,
    ):
        (tmp / "c").mkdir(parents=True)
        raise OSError(errno.EDQUOT, "Disk quota exceeded", str(tmp / "c" / "1"))
    assert _everything(tmp_path) == ["zarr", "zarr/.denselink-output", "zarr/c", "zarr/c/0"]
    assert (out / "c" / "0").read_bytes() == b"old"


def test_an_error_reading_another_file_is_not_called_a_write_error(tmp_path: Path) -> None:
    elsewhere = tmp_path / "input.tif"
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.json", "data validate") as tmp:
        tmp.write_text("{}")
        elsewhere.read_bytes()
    assert _everything(tmp_path) == []


def test_an_oserror_reaching_the_command_line_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("not a folder\n")
    out = tmp_path / "a-file" / "ds"
    assert cli.main(["data", "synth", "--out", str(out), "--settings", json.dumps(SYNTH)]) == 2
    line = _error_line(capsys)
    assert re.fullmatch(
        rf"denselink: storage error: {re.escape(str(tmp_path / 'a-file'))}: \[Errno 17\] File exists; "
        rf"{_free(_mount_point(tmp_path))}",
        line,
    ), line
    assert (tmp_path / "a-file").read_text() == "not a folder\n"


def test_byte_counts_are_written_in_binary_units() -> None:
    sizes = {0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 4096: "4.0 KiB", 1 << 20: "1.0 MiB"}
    sizes |= {1536 << 30: "1.5 TiB", 5 << 50: "5.0 PiB"}
    assert {n: _size(n) for n in sizes} == sizes


# --------------------------------------------------------------------------- on a small filesystem
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs at ``tmp_path/disk``; skipped where this process may not mount one."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot create a size-limited filesystem")
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        reason = proc.stderr.strip() or f"exit {proc.returncode}"
        pytest.skip(f"cannot mount a 1 MiB tmpfs (needs root or CAP_SYS_ADMIN, uid {os.getuid()}): {reason}")
    try:
        yield disk
    finally:
        gc.collect()  # a failed writer (torch's, pyarrow's) may hold its file until its traceback is freed
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(disk)], check=True)


def _fill(disk: Path, leave: int) -> None:
    """A ballast file that leaves about ``leave`` bytes free on ``disk``."""
    free = shutil.disk_usage(disk).free
    (disk / "ballast").write_bytes(b"\0" * max(free - leave, 0))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Generated data, a manifest, a trackastra cache and a MAESTER checkpoint (on the ordinary disk)."""
    root = tmp_path_factory.mktemp("inputs")
    assert cli.main(["data", "synth", "--out", str(root / "Synth"), "--settings", json.dumps(SYNTH)]) == 0
    manifest = root / "02.json"
    argv = ["data", "validate", "--dataset-dir", str(root / "Synth"), "--dataset", "Synth", "--seq", "02"]
    assert cli.main([*argv, "--out", str(manifest)]) == 0
    cache = root / "02.pt"
    settings = json.dumps(TRACKING)
    assert (
        cli.main(
            ["tracking", "prepare", "--manifest", str(manifest), "--out", str(cache), "--settings", settings]
        )
        == 0
    )
    maester = json.dumps({"model": MODEL, "train": MAESTER_TRAIN})
    run = root / "maester"
    assert (
        cli.main(["maester", "train", "--manifest", str(manifest), "--out", str(run), "--settings", maester])
        == 0
    )
    checkpoint = run / "checkpoints" / "epoch0.pt"
    return {"root": root, "manifest": manifest, "cache": cache, "checkpoint": checkpoint}


def _assert_storage_error(line: str, path: Path, disk: Path, detail: str = "") -> None:
    assert re.fullmatch(
        rf"denselink: storage error: {re.escape(str(path))}: cannot be written: {re.escape(NO_SPACE)}"
        rf"{detail}; {_free(disk)}; nothing partial kept",
        line,
    ), line


def test_tiff_frames_on_a_full_disk(small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    big = SYNTH | {"shape": [256, 256], "n_frames": 12}
    out = small_disk / "Synth"
    assert cli.main(["data", "synth", "--out", str(out), "--settings", json.dumps(big)]) == 2
    _assert_storage_error(_error_line(capsys), out, small_disk, r" \(\d+ requested and \d+ written\)")
    assert _everything(small_disk) == []


def test_json_on_a_full_disk(small_disk: Path, prepared: dict[str, Path], capsys) -> None:
    _fill(small_disk, 0)
    out = small_disk / "02.json"
    argv = ["data", "validate", "--dataset-dir", str(prepared["root"] / "Synth"), "--dataset", "Synth"]
    assert cli.main([*argv, "--seq", "02", "--out", str(out)]) == 2
    _assert_storage_error(_error_line(capsys), out, small_disk)
    assert _everything(small_disk) == ["ballast"]


def test_torch_checkpoint_of_tracking_train_on_a_full_disk(
    small_disk: Path, prepared: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Was ``RuntimeError: [enforce fail at inline_container.cc:672] . unexpected pos ...``."""
    _fill(small_disk, 64 << 10)  # the run folder's marker and config.json fit, a checkpoint does not
    run = small_disk / "run"
    argv = ["tracking", "train", "--data", str(prepared["cache"]), "--out", str(run), "--seed", "0"]
    assert cli.main([*argv, "--settings", json.dumps(TRACKING)]) == 2
    checkpoint = run / "checkpoints" / "epoch000.pt"
    torch_detail = (
        r" \(RuntimeError: \[enforce fail at inline_container\.cc:\d+\] \. unexpected pos \d+ vs \d+\)"
    )
    _assert_storage_error(_error_line(capsys), checkpoint, small_disk, torch_detail)
    left = _everything(small_disk)
    assert not [name for name in left if ".tmp-" in name] and "run/done.json" not in left
    assert not (run / "checkpoints").exists() or not any((run / "checkpoints").iterdir())


def _infer_argv(prepared: dict[str, Path], out: Path) -> list[str]:
    """``maester infer`` of the prepared checkpoint and sequence into ``out`` (a small tiled CPU run)."""
    settings = json.dumps({"device": "cpu", "batch_size": 64, "tile": 16})
    return ["maester", "infer", "--checkpoint", str(prepared["checkpoint"]),
            "--manifest", str(prepared["manifest"]), "--out", str(out), "--settings", settings]  # fmt: skip


def test_zarr_embedding_on_a_full_disk(small_disk: Path, prepared: dict[str, Path], capsys) -> None:
    _fill(small_disk, 32 << 10)
    out = small_disk / "e.zarr"
    assert cli.main(_infer_argv(prepared, out)) == 2
    _assert_storage_error(_error_line(capsys), out, small_disk)
    assert _everything(small_disk) == ["ballast"]


def test_parquet_features_on_a_full_disk(
    small_disk: Path, prepared: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    embedding = tmp_path / "e.zarr"
    assert cli.main(_infer_argv(prepared, embedding)) == 0
    _fill(small_disk, 0)
    out = small_disk / "f.parquet"
    argv = ["features", "aggregate", "--embedding", str(embedding), "--manifest", str(prepared["manifest"])]
    assert cli.main([*argv, "--agg", "mma", "--out", str(out)]) == 2
    _assert_storage_error(_error_line(capsys), out, small_disk)
    assert _everything(small_disk) == ["ballast"]


def test_maester_frame_store_on_a_full_disk_is_an_error_not_a_bus_error(
    small_disk: Path, prepared: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """The frame store is a memory-mapped file: written on a full disk it killed the process (SIGBUS)."""
    _fill(small_disk, 16 << 10)
    run = small_disk / "run"
    maester = json.dumps({"model": MODEL, "train": MAESTER_TRAIN})
    argv = [
        "maester",
        "train",
        "--manifest",
        str(prepared["manifest"]),
        "--out",
        str(run),
        "--settings",
        maester,
    ]
    denselink = str(Path(sys.executable).with_name("denselink"))
    proc = subprocess.run([denselink, *argv], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    _assert_storage_error(line, run / "frames" / "seq00000.npy", small_disk)
    assert not [name for name in _everything(small_disk) if ".tmp-" in name]
