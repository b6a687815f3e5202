"""Outputs: written to a temporary sibling, renamed on success, never replacing what denselink did not write.

Nothing half-written is ever left under the final name: a crash leaves only a ``.tmp-<name>-<8 hex>``
sibling, which the next write of the same output removes (only siblings named exactly so). A write that
fails with an OSError (a full disk, a quota, a lost mount), or any error while the disk is full (torch's
zip writer reports one as ``RuntimeError: ... unexpected pos``), removes its temporary and stops with a
:class:`~denselink.errors.StorageError` naming the output, the error and the free space.

Every output a command names (``--out``) carries a marker saying which command wrote it: a directory
holds ``.denselink-output`` (the command and the files it wrote), a file has the sibling
``.<name>.denselink-output`` (the command and the file's SHA-256). A command replaces an existing
output only when the marker says it is this command's earlier output, unchanged; anything else stops
with an :class:`~denselink.errors.OutputError` before any work. ``--force`` replaces another command's
output or one changed since, but only what carries denselink's marker and holds no file denselink did
not write: a user's file or folder is never removed, nor a folder that is or contains the working
directory or the home folder. Snakemake removes a job's outputs itself before it reruns the job, so
rules need no ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denselink.errors import DenselinkError, OutputError, StorageError

MARKER = ".denselink-output"
_TMP_HEX = 8


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:_TMP_HEX]}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_stale_siblings(path: Path) -> None:
    """Remove the leftovers of a crashed write of ``path`` (names made by :func:`_temporary_sibling` only)."""
    made_here = re.compile(rf"\.tmp-{re.escape(path.name)}-[0-9a-f]{{{_TMP_HEX}}}")
    for stale in path.parent.glob(f".tmp-{glob.escape(path.name)}-*"):
        if made_here.fullmatch(stale.name):
            _remove(stale)


def sidecar(path: Path) -> Path:
    """The marker of a file output: ``.<name>.denselink-output`` beside it."""
    return path.with_name(f".{path.name}{MARKER}")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, sorted), the marker excepted."""
    found = (p.relative_to(folder).as_posix() for p in folder.rglob("*") if not p.is_dir())
    return sorted(name for name in found if name != MARKER)


def _read_marker(path: Path) -> dict[str, Any] | None:
    try:
        marker = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) else None


@dataclass(frozen=True)
class _Existing:
    """Why an existing output is not ``command``'s own earlier output, and whether --force may replace it."""

    problem: str
    forceable: bool


def _foreign(path: Path, command: str) -> _Existing | None:
    """Why the existing ``path`` is not ``command``'s own earlier output (None when it is, or holds nothing).

    An empty folder has nothing to lose: Snakemake creates the parent folder of every output before a
    job runs, e.g. the run folder of ``maester/{run}/done.json``.
    """
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return None
    marker = _read_marker(path / MARKER if path.is_dir() else sidecar(path))
    if marker is None:
        return _Existing("exists and was not written by denselink (no .denselink-output marker)", False)
    if path.is_dir() and "files" in marker:
        extra = sorted(set(_files(path)) - set(marker["files"]))
        if extra:
            return _Existing(
                f"holds {extra[0]!r}, which `denselink {marker.get('written_by')}` did not write", False
            )
    if marker.get("written_by") != command:
        return _Existing(
            f"is the output of `denselink {marker.get('written_by')}`, not of `denselink {command}`", True
        )
    if not path.is_dir() and marker.get("sha256") != _sha256(path):
        return _Existing(f"was changed after `denselink {command}` wrote it", True)
    return None


def _refuse_protected(path: Path) -> None:
    """Never replace a folder that is or contains the working directory or the home folder."""
    resolved = path.resolve()
    for name, folder in (("the working directory", Path.cwd()), ("the home folder", Path.home())):
        folder = folder.resolve()
        if resolved == folder or resolved in folder.parents:
            raise OutputError(
                path, f"is or contains {name} ({folder}); never replaced, not even with --force"
            )


def check_output(path: str | Path, command: str, force: bool = False) -> Path:
    """``path`` if ``command`` may write it: absent, an empty folder, its own unchanged earlier output,
    or, with ``force``, another denselink output that holds nothing denselink did not write.

    Raises an OutputError naming the path otherwise; call it before any expensive work.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    _refuse_protected(path)
    existing = _foreign(path, command)
    if existing is None or (force and existing.forceable):
        return path
    if existing.forceable:
        advice = "choose another output path or pass --force to replace it"
    else:
        advice = "choose another output path, or move it away (denselink never removes what it did not write)"
    raise OutputError(path, f"{existing.problem}; {advice}")


def _staged_marker(path: Path, record: dict[str, Any]) -> Path:
    """``record`` written to a temporary sibling of the marker ``path`` (removed again if the write fails)."""
    tmp = _temporary_sibling(path)
    try:
        tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write_marker(path: Path, record: dict[str, Any]) -> None:
    os.replace(_staged_marker(path, record), path)


def _size(n_bytes: int) -> str:
    """A byte count for people: ``0 B``, ``512 KiB``, ``1.5 GiB``."""
    if n_bytes < 1024:
        return f"{n_bytes} B"
    value = n_bytes / 1024
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def _mount_point(folder: Path) -> Path:
    """The folder where the filesystem holding ``folder`` is mounted."""
    device = folder.stat().st_dev
    while folder != folder.parent and folder.parent.stat().st_dev == device:
        folder = folder.parent
    return folder


def free_space(path: str | Path) -> str:
    """The free space of the filesystem holding ``path`` (its nearest existing folder), in words."""
    folder = Path(os.path.abspath(path))
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    try:
        usage = shutil.disk_usage(folder)
        mount = _mount_point(folder)
    except OSError as err:
        return f"free space at {folder} unknown ({describe_os_error(err)})"
    return f"{_size(usage.free)} free of {_size(usage.total)} on the filesystem mounted at {mount}"


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path).free == 0
    except OSError:
        return False


def describe_os_error(err: OSError) -> str:
    """``[Errno N] <what it means>`` (or the error's own text when it has no errno)."""
    if err.errno is None:
        return f"{type(err).__name__}: {err}"
    return f"[Errno {err.errno}] {os.strerror(err.errno)}"


def _write_failure(err: BaseException, tmp: Path, final: Path) -> StorageError | None:
    """The StorageError a failed write of ``final`` (through ``tmp``) stands for, or None if not one.

    An OSError about another file (an input read inside the ``with`` block) is not a write failure.
    """
    if isinstance(err, DenselinkError):
        return None
    full = _disk_full(final.parent)
    if isinstance(err, OSError):
        filename = Path(err.filename) if err.filename else None
        if filename is not None and filename != tmp and tmp not in filename.parents:
            return None
        reason = describe_os_error(err)
        if err.errno is None and full:  # a short write (tifffile, numpy): "N requested and M written"
            reason = f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)} ({err})"
        if filename is not None and filename != tmp:
            reason += f" (at {filename.relative_to(tmp).as_posix()})"
    elif full:  # torch's zip writer: RuntimeError "[enforce fail at inline_container.cc] unexpected pos"
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
        reason = f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)} ({type(err).__name__}: {first_line})"
    else:
        return None
    return StorageError(
        final, f"cannot be written: {reason}; {free_space(final.parent)}; nothing partial kept"
    )


def reserve_space(path: Path) -> None:
    """Allocate every block of the (sparse) file ``path`` now, so a full disk is an OSError here.

    A memory-mapped file written where the disk is full otherwise kills the process with SIGBUS.
    Systems and filesystems without ``posix_fallocate`` are left as they are.
    """
    if not hasattr(os, "posix_fallocate"):  # macOS
        return
    with open(path, "r+b") as handle:
        try:
            os.posix_fallocate(handle.fileno(), 0, os.fstat(handle.fileno()).st_size)
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise


@contextlib.contextmanager
def atomic_path(path: str | Path, command: str | None = None, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path (file or directory) that is renamed to ``path`` on success.

    With ``command`` (a command's own output), an existing ``path`` is checked first
    (:func:`check_output`) and the result is marked as ``command``'s. Without, ``path`` must lie
    inside a directory the command owns (:func:`claim_directory`). An existing output is replaced
    only once the new one is complete. A write that fails for lack of space (or any OSError) removes
    the temporary and raises a :class:`~denselink.errors.StorageError`.
    """
    final = Path(path)
    if command is not None:
        check_output(final, command, force)
    tmp = _temporary_sibling(final)
    staged: Path | None = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_siblings(final)
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"{final}: the writer produced nothing")
        if command is not None and tmp.is_dir():
            _write_marker(tmp / MARKER, {"written_by": command, "files": _files(tmp)})
        marker = sidecar(final)
        if command is not None and not tmp.is_dir():  # staged first: a full disk fails before any rename
            staged = _staged_marker(marker, {"written_by": command, "sha256": _sha256(tmp)})
        _remove(final)
        os.replace(tmp, final)
        if staged is not None:
            os.replace(staged, marker)
        elif command is not None and marker.exists():
            marker.unlink()  # a file output replaced by a directory (--force)
    except Exception as err:
        failure = _write_failure(err, tmp, final)
        if failure is None:
            raise
        raise failure from err
    finally:
        for leftover in (tmp, staged):
            if leftover is not None and (leftover.exists() or leftover.is_symlink()):
                _remove(leftover)


def claim_directory(path: str | Path, command: str, force: bool = False) -> Path:
    """Create (or take back) the run directory ``path`` that ``command`` fills over time.

    An existing folder must be ``command``'s own (its marker); ``force`` replaces another denselink output.
    Files inside are then written with :func:`atomic_path` without ``command``.
    """
    path = check_output(path, command, force)
    if path.exists() and _foreign(path, command):
        _remove(path)  # only reached with force, for another denselink output
    path.mkdir(parents=True, exist_ok=True)
    _write_marker(path / MARKER, {"written_by": command})
    return path


def add_force_flag(parser: argparse.ArgumentParser) -> None:
    """``--force``: replace an existing denselink output that is not this command's own unchanged one."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output that denselink wrote although it is another command's or was "
        "changed since; never a file or folder without denselink's marker, nor one holding files "
        "denselink did not write",
    )


def write_json(path: str | Path, data: Any, command: str | None = None, force: bool = False) -> None:
    """Write ``data`` as indented, key-sorted, strict JSON (no NaN), atomically (byte-stable across reruns).

    A non-finite float is an OutputError naming ``path``: strict JSON has no NaN or Infinity.
    """
    try:
        text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n"
    except ValueError as err:
        raise OutputError(
            path, f"a non-finite number (NaN or Infinity) cannot be written as strict JSON ({err})"
        ) from None
    with atomic_path(path, command, force) as tmp:
        tmp.write_text(text)
