"""Listing and ordering the TIFF frames of a folder: one rule for ``data validate`` and ``tracking track``.

A frame file is a ``.tif`` or ``.tiff`` (any case) whose name carries its frame number. In a CTC
folder (``prefix`` given) every TIFF is named ``{prefix}{number}.tif`` with numbers of one width, so
that tools which order the files by name (traccuracy, trackastra) see the time order; in a user's
movie the number is the last run of digits in the name. Either way two files with one number, a
TIFF without a number and a gap in the numbering are errors naming the files.
"""

from __future__ import annotations

import re
from pathlib import Path

from denselink.errors import CTCFormatError

TIFF_SUFFIXES = (".tif", ".tiff")
_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)")


def is_tiff(path: Path) -> bool:
    """Whether ``path`` names a TIFF (``.tif`` or ``.tiff``, any case)."""
    return path.suffix.lower() in TIFF_SUFFIXES


def _number(path: Path, prefix: str | None, kind: str) -> int:
    if prefix is not None:
        match = re.fullmatch(rf"{re.escape(prefix)}(\d+)", path.stem)
        if match is None:
            raise CTCFormatError(
                path, f"a TIFF in the {kind} folder that is not named {prefix}<frame number>.tif"
            )
        return int(match.group(1))
    match = _LAST_NUMBER.search(path.stem)
    if match is None:
        raise CTCFormatError(path, f"{kind} file name holds no frame number")
    return int(match.group(1))


def list_frames(
    directory: str | Path, kind: str, prefix: str | None = None, first: int | None = 0
) -> list[tuple[int, Path]]:
    """``(frame number, path)`` of every TIFF in ``directory``, in time order, numbered without gaps.

    Args:
        directory: the folder of frames (other files than TIFFs are ignored).
        kind: what the files are, for messages ("raw frame", "TRA mask", "mask").
        prefix: CTC naming ``{prefix}{number}.tif``; None: any name, numbered by its last number.
        first: the number the first frame must carry; None: any.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise CTCFormatError(directory, "directory is missing")
    tiffs = sorted(p for p in directory.iterdir() if is_tiff(p) and not p.name.startswith("."))
    numbered = sorted(
        ((_number(p, prefix, kind), p) for p in tiffs),
        key=lambda item: (item[0], len(item[1].stem), item[1].name),
    )
    if not numbered:
        raise CTCFormatError(directory, f"no {kind} files (empty sequence)")
    if first is not None and numbered[0][0] != first:
        raise CTCFormatError(
            numbered[0][1], f"first {kind} is {numbered[0][1].name}, expected frame number {first}"
        )
    for (number, path), (next_number, next_path) in zip(numbered, numbered[1:], strict=False):
        if next_number == number:
            raise CTCFormatError(next_path, f"{path.name} and {next_path.name} are both frame {number}")
        if next_number != number + 1:
            missing = f"{number + 1}" if next_number == number + 2 else f"{number + 1}-{next_number - 1}"
            raise CTCFormatError(
                next_path,
                f"frame numbering gap: {next_path.name} follows {path.name} (frame {missing} missing)",
            )
    if prefix is not None:
        short = min((p for _, p in numbered), key=lambda p: len(p.stem))
        long = max((p for _, p in numbered), key=lambda p: len(p.stem))
        if len(short.stem) != len(long.stem):
            padded = f"{prefix}{0:0{len(long.stem) - len(prefix)}d}.tif"
            raise CTCFormatError(
                long,
                f"frame numbers of different widths ({short.name}, {long.name}) do not sort in time order "
                f"by name; pad them to one width as CTC does ({padded})",
            )
    return numbered
