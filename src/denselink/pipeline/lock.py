"""One run at a time per results root: a lock file that names its holder.

Snakemake locks the outputs of one working directory (``.snakemake/locks``); two working directories
whose configs name the same ``results_root`` would run at once, read each other's half-written files and
delete each other's outputs. So a real run (never a dry run) takes ``<results_root>/.denselink-run.lock``
in Snakemake's ``onstart`` and removes it on success or error. The lock is a small JSON record (host,
pid and start time of the Snakemake process, working directory, time taken, command line), put in place
with ``os.link`` of a complete temporary file: atomic, and a reader never sees half of it.

A second run refuses with the holder named. A lock whose process is gone (same host; its pid dead or
reused by another process) is taken over, with a log line; a lock taken on another host cannot be
checked from here, so the message says how to clear it by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from denselink.errors import LockError

LOCK_NAME = ".denselink-run.lock"


@dataclass(frozen=True)
class Holder:
    """Who holds a results root: a process on a host, started in a working directory."""

    host: str
    pid: int
    process_started: float  # the process's creation time (seconds since the epoch), to spot a reused pid
    workdir: str
    since: str  # when the lock was taken (UTC, ISO 8601)
    command: str

    @classmethod
    def this_process(cls, workdir: Path, command: list[str]) -> Holder:
        process = psutil.Process()
        return cls(
            host=socket.gethostname(),
            pid=process.pid,
            process_started=process.create_time(),
            workdir=str(workdir),
            since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            command=" ".join(command),
        )

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, working directory {self.workdir}, since {self.since}"

    def is_gone(self) -> bool:
        """True when this holder's process certainly no longer runs (only decidable on its own host)."""
        if self.host != socket.gethostname():
            return False
        try:
            started = psutil.Process(self.pid).create_time()
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:
            return False
        return abs(started - self.process_started) > 1.0  # the pid now belongs to another process


def lock_path(results_root: Path) -> Path:
    return results_root / LOCK_NAME


def read_holder(lock: Path) -> Holder | None:
    """The holder recorded in ``lock``, or None when it is absent (or not a lock this module wrote)."""
    try:
        return Holder(**json.loads(lock.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _link_new(lock: Path, holder: Holder) -> bool:
    """Put ``holder``'s record at ``lock`` unless a lock is there already (atomic); True if it was put."""
    tmp = lock.with_name(f".tmp-{lock.name}-{uuid.uuid4().hex[:8]}")
    tmp.write_text(json.dumps(asdict(holder), indent=2) + "\n")
    try:
        os.link(tmp, lock)
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True


def _take_over(lock: Path, stale: Holder) -> bool:
    """Remove ``lock`` if it still records ``stale``; False if it is gone or another run replaced it."""
    aside = lock.with_name(f".tmp-{lock.name}-{uuid.uuid4().hex[:8]}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return False
    if read_holder(aside) == stale:
        aside.unlink()
        return True
    with contextlib.suppress(FileExistsError):  # a fresh lock moved aside by mistake: put it back
        os.link(aside, lock)
    aside.unlink()
    return False


def acquire(
    results_root: Path, workdir: Path, command: list[str], log: Callable[[str], None] = print
) -> Holder:
    """Lock ``results_root`` for this process, or raise a LockError naming the run that holds it."""
    results_root.mkdir(parents=True, exist_ok=True)
    lock = lock_path(results_root)
    me = Holder.this_process(workdir, command)
    for _ in range(3):
        if _link_new(lock, me):
            atexit.register(release, results_root)
            return me
        holder = read_holder(lock)
        if holder is None:
            raise LockError(
                lock,
                "exists but records no run (unreadable); if no denselink run uses this results root, "
                "remove this file and start again",
            )
        if not holder.is_gone():
            raise LockError(
                lock,
                f"another run uses this results root ({holder.describe()}); wait for it to end, or run "
                f"this config with another results_root. If that run no longer runs (its node was lost), "
                f"remove this file and start again",
            )
        if _take_over(lock, holder):
            log(f"denselink: taking over the lock of {results_root}: its run ({holder.describe()}) has ended")
    raise LockError(lock, "other runs keep taking this results root; start again once they have ended")


def release(results_root: Path) -> bool:
    """Remove the lock of ``results_root`` if this process holds it; True if it was removed."""
    lock = lock_path(results_root)
    holder = read_holder(lock)
    if holder is None or (holder.host, holder.pid) != (socket.gethostname(), os.getpid()):
        return False
    lock.unlink(missing_ok=True)
    return True
