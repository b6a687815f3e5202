"""A Trackastra run's training log (:data:`denselink.filenames.TRAIN_LOG`): written each epoch by
``tracking train``, read for the epoch of the lowest validation loss."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

from denselink.atomic import atomic_path

LOG_COLUMNS = ("epoch", "train_loss", "val_loss", "lr", "seconds")


def write_log(path: Path, rows: list[dict[str, Any]]) -> None:
    """The log's rows so far, replacing the previous log once complete."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buffer.getvalue())


def lowest_val_loss(path: Path) -> tuple[float, int] | None:
    """(lowest finite val_loss, its epoch) of a log, the earliest epoch on ties; None without one."""
    with Path(path).open(newline="") as handle:
        rows = [(float(row["val_loss"]), int(row["epoch"])) for row in csv.DictReader(handle)]
    finite = [row for row in rows if math.isfinite(row[0])]
    return min(finite) if finite else None
