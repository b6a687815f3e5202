"""Outputs: written to a temporary sibling, renamed on success, never replacing what denselink did not write.

Nothing half-written is ever left under the final name: a crash leaves only a ``.tmp-<name>-<8 hex>``
sibling, which the next write of the same output removes (only siblings named exactly so).

Every output a command names (``--out``) carries a marker saying which command wrote it: a directory
holds ``.denselink-output`` (the command and the files it wrote), a file has the sibling
``.<name>.denselink-output`` (the command and the file's SHA-256). A command replaces an existing
output only when the marker says it is this command's earlier output, unchanged; anything else (a
user's file or folder, another command's output, a marked folder holding files denselink did not
write) stops with an :class:`~denselink.errors.OutputError` before any work, unless ``--force``. The
working directory, its parents and the home folder are never replaced, not even with ``--force``.
Snakemake removes a job's outputs itself before it reruns the job, so rules need no ``--force``.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from denselink.errors import OutputError

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


def _foreign(path: Path, command: str) -> str | None:
    """Why the existing ``path`` is not ``command``'s own earlier output (None when it is, or holds nothing).

    An empty folder has nothing to lose: Snakemake creates the parent folder of every output before a
    job runs, e.g. the run folder of ``maester/{run}/done.json``.
    """
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return None
    marker = _read_marker(path / MARKER if path.is_dir() else sidecar(path))
    if marker is None:
        return "exists and was not written by denselink (no .denselink-output marker)"
    if marker.get("written_by") != command:
        return f"is the output of `denselink {marker.get('written_by')}`, not of `denselink {command}`"
    if path.is_dir() and "files" in marker:
        extra = sorted(set(_files(path)) - set(marker["files"]))
        if extra:
            return f"holds {extra[0]!r}, which `denselink {command}` did not write"
    if not path.is_dir() and marker.get("sha256") != _sha256(path):
        return f"was changed after `denselink {command}` wrote it"
    return None


def _refuse_protected(path: Path) -> None:
    resolved = path.resolve()
    cwd = Path.cwd().resolve()
    if resolved == cwd or resolved in cwd.parents or resolved == Path.home().resolve():
        raise OutputError(path, "is the working directory, a parent of it or the home folder; never replaced")


def check_output(path: str | Path, command: str, force: bool = False) -> Path:
    """``path`` if ``command`` may write it: absent, an empty folder, its own unchanged earlier output,
    or ``force``.

    Raises an OutputError naming the path otherwise; call it before any expensive work.
    """
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return path
    _refuse_protected(path)
    problem = None if force else _foreign(path, command)
    if problem:
        raise OutputError(path, f"{problem}; choose another output path or pass --force to replace it")
    return path


def _write_marker(path: Path, record: dict[str, Any]) -> None:
    tmp = _temporary_sibling(path)
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path, command: str | None = None, force: bool = False) -> Iterator[Path]:
    """Yield a temporary path (file or directory) that is renamed to ``path`` on success.

    With ``command`` (a command's own output), an existing ``path`` is checked first
    (:func:`check_output`) and the result is marked as ``command``'s. Without, ``path`` must lie
    inside a directory the command owns (:func:`claim_directory`). An existing output is replaced
    only once the new one is complete.
    """
    final = Path(path)
    if command is not None:
        check_output(final, command, force)
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_siblings(final)
    tmp = _temporary_sibling(final)
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{final}: the writer produced nothing")
        if command is not None and tmp.is_dir():
            _write_marker(tmp / MARKER, {"written_by": command, "files": _files(tmp)})
        record = {"written_by": command, "sha256": _sha256(tmp)} if command and not tmp.is_dir() else None
        _remove(final)
        os.replace(tmp, final)
        if command is not None:
            marker = sidecar(final)
            if record is not None:
                _write_marker(marker, record)
            elif marker.exists():
                marker.unlink()  # a file output replaced by a directory (--force)
    finally:
        if tmp.exists():
            _remove(tmp)


def claim_directory(path: str | Path, command: str, force: bool = False) -> Path:
    """Create (or take back) the run directory ``path`` that ``command`` fills over time.

    An existing folder must be ``command``'s own (its marker); ``force`` replaces anything else.
    Files inside are then written with :func:`atomic_path` without ``command``.
    """
    path = check_output(path, command, force)
    if path.exists() and _foreign(path, command):
        _remove(path)  # only reached with force
    path.mkdir(parents=True, exist_ok=True)
    _write_marker(path / MARKER, {"written_by": command})
    return path


def add_force_flag(parser: argparse.ArgumentParser) -> None:
    """``--force``: replace an existing output that this command did not write."""
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace an existing output even if it is not this command's own earlier output "
        "(a user's file or folder is deleted)",
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
