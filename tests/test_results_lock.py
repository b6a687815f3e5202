"""Two runs on one results root: the second refuses and names the first; a dry run takes no lock.

The Snakemake tests use two working directories whose configs name the same absolute results_root (the
mini config, its generated dataset Synth-HeLa as the target: one `denselink data synth` job).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import yaml
from snakemake_cli import snakemake_cmd

from denselink.errors import LockError
from denselink.pipeline import lock

REPO = Path(__file__).resolve().parents[1]
DATASET = "Synth-HeLa"


def _refusal(root: Path, holder: lock.Holder) -> str:
    return (
        f"results root locked: {root / lock.LOCK_NAME}: another run uses this results root "
        f"({holder.describe()}); wait for it to end, or run this config with another results_root. If that "
        "run no longer runs (its node was lost), remove this file and start again"
    )


def _ended_process() -> tuple[int, float]:
    """The pid and start time of a process of this host that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    started = psutil.Process(child.pid).create_time()
    child.wait()
    return child.pid, started


@pytest.fixture
def shared(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(results root, working directory a, working directory b): one absolute results root, two configs."""
    root = tmp_path / "shared results"
    config = yaml.safe_load((REPO / "workflow/configs/mini.yaml").read_text())
    config.update(results_root=str(root), data_root=str(root / "raw"))
    config["mitocheck"]["root"] = str(root / "raw" / "mitocheck")
    workdirs = []
    for name in ("a", "b"):
        workdir = tmp_path / name
        workdir.mkdir()
        (workdir / "mini.yaml").write_text(yaml.safe_dump(config))
        workdirs.append(workdir)
    return root, workdirs[0], workdirs[1]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = snakemake_cmd(workdir, *args, config=workdir / "mini.yaml")
    env = {key: value for key, value in os.environ.items() if not key.startswith("DENSELINK_")}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)


# --------------------------------------------------------------------------- with Snakemake
def test_a_second_run_on_the_same_results_root_refuses_and_names_the_holder(
    shared: tuple[Path, Path, Path],
) -> None:
    root, first, second = shared
    holder = lock.acquire(root, first, ["snakemake", "--configfile", "mini.yaml"])  # the first run, still on
    target = str(root / "raw" / DATASET)
    refused = snakemake(second, target)
    assert refused.returncode == 1
    assert _refusal(root, holder) in refused.stderr.splitlines(), refused.stderr[-3000:]
    assert sorted(p.name for p in root.iterdir()) == [lock.LOCK_NAME]  # no job ran

    dry = snakemake(second, "-n", target)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "This was a dry-run" in dry.stdout + dry.stderr
    assert lock.read_holder(root / lock.LOCK_NAME) == holder

    assert lock.release(root)
    done = snakemake(second, target)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in (root / "raw" / DATASET).glob("0*")) == ["01", "01_GT", "02", "02_GT"]
    assert not (root / lock.LOCK_NAME).exists()  # released on success


def test_the_lock_of_a_run_that_ended_without_releasing_it_is_taken_over(
    shared: tuple[Path, Path, Path],
) -> None:
    """E.g. a Snakemake killed with SIGKILL: same host, its pid gone."""
    root, first, second = shared
    pid, started = _ended_process()
    stale = dataclasses.replace(
        lock.Holder.this_process(first, ["snakemake"]), pid=pid, process_started=started
    )
    root.mkdir()
    (root / lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(stale)))
    done = snakemake(second, str(root / "raw" / DATASET))
    assert done.returncode == 0, done.stderr[-3000:]
    line = f"denselink: taking over the lock of {root}: its run ({stale.describe()}) has ended"
    assert line in (done.stdout + done.stderr).splitlines()
    assert not (root / lock.LOCK_NAME).exists()


# --------------------------------------------------------------------------- the lock itself
def test_a_lock_taken_on_another_host_is_never_taken_over(tmp_path: Path) -> None:
    pid, started = _ended_process()
    holder = lock.Holder("node-17", pid, started, "/home/u/run", "2026-01-02T03:04:05Z", "snakemake")
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(holder)))
    with pytest.raises(LockError) as refused:
        lock.acquire(tmp_path, tmp_path / "b", ["snakemake"])
    assert str(refused.value) == _refusal(tmp_path, holder)
    assert "host node-17, pid" in str(refused.value) and "working directory /home/u/run" in str(refused.value)
    assert lock.read_holder(tmp_path / lock.LOCK_NAME) == holder


def test_a_pid_reused_by_another_process_does_not_hold_the_lock(tmp_path: Path) -> None:
    me = lock.Holder.this_process(tmp_path / "a", ["snakemake"])
    reused = dataclasses.replace(me, process_started=me.process_started - 3600)  # this pid, an hour earlier
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(reused)))
    logged: list[str] = []
    holder = lock.acquire(tmp_path, tmp_path / "b", ["snakemake"], log=logged.append)
    assert logged == [
        f"denselink: taking over the lock of {tmp_path}: its run ({reused.describe()}) has ended"
    ]
    assert lock.read_holder(tmp_path / lock.LOCK_NAME) == holder and holder.workdir == str(tmp_path / "b")
    assert sorted(p.name for p in tmp_path.iterdir()) == [lock.LOCK_NAME]


def test_only_the_holder_releases_the_lock(tmp_path: Path) -> None:
    other = lock.Holder(socket.gethostname(), os.getppid(), 0.0, "/elsewhere", "2026-01-02T03:04:05Z", "x")
    (tmp_path / lock.LOCK_NAME).write_text(json.dumps(dataclasses.asdict(other)))
    assert lock.release(tmp_path) is False and lock.read_holder(tmp_path / lock.LOCK_NAME) == other
    (tmp_path / lock.LOCK_NAME).unlink()
    lock.acquire(tmp_path, tmp_path, ["snakemake"])
    assert lock.release(tmp_path) is True and list(tmp_path.iterdir()) == []
    assert lock.release(tmp_path) is False


def test_an_unreadable_lock_is_left_for_the_user(tmp_path: Path) -> None:
    (tmp_path / lock.LOCK_NAME).write_text("")
    with pytest.raises(LockError) as refused:
        lock.acquire(tmp_path, tmp_path, ["snakemake"])
    assert str(refused.value) == (
        f"results root locked: {tmp_path / lock.LOCK_NAME}: exists but records no run (unreadable); if no "
        "denselink run uses this results root, remove this file and start again"
    )
