"""The metrics JSONs that ``evaluate table`` and ``figures appendix-c`` read, checked at their boundary.

Before any summary, every file is read and checked; a ``MetricsFormatError`` names the file and key:
- LNK, TRA and DET (top level and every ``per_epoch`` row) are null or a number in [0, 1]; NaN,
  infinity and numbers outside the range are errors (null is a failed or unscored evaluation);
- a ``clean`` run that is not skipped has a top-level LNK (its chosen checkpoint's score: a
  linking that links nothing scores 0, never null);
- one run is one file: two files recording the same origin, dataset, protocol, direction, variant
  and seed (e.g. a renamed copy of a seed file) are an error naming both.
A path given twice is read once, with a note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from denselink.evaluate.metrics import SCORES, MetricsFormatError, load_metrics, read_metrics

OWN_ORIGIN = "denselink"
IDENTITY = ("origin", "dataset", "protocol", "train_seq", "eval_seq", "variant", "seed")


def _check_score(path: Path, key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, float) and math.isnan(value):
        raise MetricsFormatError(
            path, f"{key} is NaN; a failed evaluation is null, a linking without links 0"
        )
    if not 0.0 <= value <= 1.0:
        raise MetricsFormatError(path, f"{key} is {value!r}, outside [0, 1]")


def check_record(path: Path, record: dict[str, Any]) -> None:
    """Scores in [0, 1] or null, and a score where the ``clean`` protocol needs one."""
    for key in SCORES:
        _check_score(path, key, record.get(key))
    for i, row in enumerate(record.get("per_epoch", [])):
        for key in SCORES:
            _check_score(path, f"per_epoch[{i}].{key}", row.get(key))
    skipped = record.get("status") == "skipped"
    if record.get("protocol") == "clean" and not skipped and record.get("LNK") is None:
        raise MetricsFormatError(
            path, "LNK is null in a clean run that is not skipped (a linking without links scores 0)"
        )


def identity(record: dict[str, Any]) -> tuple:
    """What makes a run one run: origin, dataset, protocol, direction, variant and seed."""
    return tuple(
        record.get("origin") or OWN_ORIGIN if key == "origin" else record.get(key) for key in IDENTITY
    )


def unique_paths(paths: Iterable[Path]) -> tuple[list[Path], list[str]]:
    """``paths`` with repeats (the same file, however spelled) removed, and a note for each repeat."""
    seen: dict[Path, Path] = {}
    notes = []
    for path in map(Path, paths):
        key = path.resolve()
        if key in seen:
            notes.append(f"{path}: given more than once; read once")
        else:
            seen[key] = path
    return list(seen.values()), list(dict.fromkeys(notes))


def load_checked(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Checked metrics files as ``load_metrics`` frames (one row per run; per epoch), and notes."""
    unique, notes = unique_paths(paths)
    owners: dict[tuple, Path] = {}
    for path in unique:
        record = read_metrics(path)
        check_record(path, record)
        key = identity(record)
        if key in owners:
            described = ", ".join(f"{name} {value!r}" for name, value in zip(IDENTITY, key, strict=True))
            raise MetricsFormatError(
                path, f"records the same run as {owners[key]} ({described}): one run, one file"
            )
        owners[key] = path
    runs, epochs = load_metrics(unique)
    return runs, epochs, notes
