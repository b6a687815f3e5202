"""CTC scores (LNK, TRA, DET) with traccuracy, and the metrics JSON files that carry them.

LNK, TRA and DET follow the Cell Tracking Challenge definitions (Maska et al. 2023), as
traccuracy's ``CTCMetrics`` implements them: with ``AOGM-A = 1*FP_edges + 1.5*FN_edges +
1*WS_edges`` and ``AOGM-A_0 = 1.5 * |GT edges|``, ``LNK = 1 - min(AOGM-A, AOGM-A_0) / AOGM-A_0``;
TRA and DET are the analogous normalised AOGM and AOGM-D.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from denselink.atomic import write_json
from denselink.errors import CTCFormatError, DenselinkError

SCORES = ("LNK", "TRA", "DET")
REQUIRED_KEYS = ("dataset", "variant", "seed")
EPOCH_KEYS = ("epoch", "LNK", "TRA", "DET", "val_loss")


class MetricsFormatError(DenselinkError):
    """A metrics JSON file is malformed."""

    kind = "metrics format error"


def _track_file(directory: Path, name: str) -> Path:
    if not directory.is_dir():
        raise CTCFormatError(directory, "directory does not exist")
    track_file = directory / name
    if not track_file.is_file():
        raise CTCFormatError(track_file, "track file is missing")
    if not any(directory.glob("*.tif*")):
        raise CTCFormatError(directory, "no TIFF masks found")
    return track_file


def load_ctc_graph(directory: Path, track_name: str, name: str | None = None) -> Any:
    """Load a CTC mask directory plus its track file as a traccuracy ``TrackingGraph``."""
    from traccuracy.loaders import load_ctc_data

    track_file = _track_file(Path(directory), track_name)
    try:
        return load_ctc_data(str(directory), str(track_file), name=name or str(directory), run_checks=True)
    except ValueError as err:
        raise CTCFormatError(directory, str(err)) from err


def score_graphs(gt: Any, pred: Any) -> dict[str, float]:
    """CTC scores and error counts of a predicted ``TrackingGraph`` against the ground truth one.

    Returns LNK, TRA, DET plus traccuracy's AOGM and its node/edge error counts.
    """
    from traccuracy.matchers import CTCMatcher

    return score_matched(CTCMatcher().compute_mapping(gt, pred))


def score_matched(matched: Any) -> dict[str, float]:
    """CTC scores and error counts of a traccuracy ``Matched`` (GT and result graphs plus node mapping)."""
    from traccuracy.metrics import CTCMetrics

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = CTCMetrics().compute(matched).results
    return {key: float(value) for key, value in result.items()}


def score_ctc(gt_tra_dir: Path, res_dir: Path) -> dict[str, float]:
    """Score a CTC result directory (``mask*.tif`` + ``res_track.txt``) against ``{seq}_GT/TRA``.

    Returns at least ``LNK``, ``TRA`` and ``DET`` (floats in [0, 1]), plus the error counts.
    """
    gt_dir, res_dir = Path(gt_tra_dir), Path(res_dir)
    _track_file(gt_dir, "man_track.txt")
    _track_file(res_dir, "res_track.txt")
    logging.getLogger("traccuracy").setLevel(logging.WARNING)
    gt = load_ctc_graph(gt_dir, "man_track.txt", name="GT")
    pred = load_ctc_graph(res_dir, "res_track.txt", name="RES")
    if gt.segmentation.shape != pred.segmentation.shape:
        raise CTCFormatError(
            res_dir, f"mask stack shape {pred.segmentation.shape} differs from GT {gt.segmentation.shape}"
        )
    return score_graphs(gt, pred)


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def metrics_record(
    *,
    dataset: str,
    variant: str | None,
    seed: int,
    protocol: str,
    train_seq: str,
    eval_seq: str,
    checkpoint: str | None,
    scores: dict[str, float] | None,
    per_epoch: Iterable[dict[str, Any]] = (),
    status: str | None = None,
    reason: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build one metrics JSON record (docs/architecture.md); NaN scores become ``null``."""
    record: dict[str, Any] = {
        "dataset": dataset,
        "variant": variant,
        "seed": int(seed),
        "protocol": protocol,
        "train_seq": train_seq,
        "eval_seq": eval_seq,
        "checkpoint": checkpoint,
        "per_epoch": [
            {key: (int(row[key]) if key == "epoch" else _finite_or_none(row.get(key))) for key in EPOCH_KEYS}
            for row in per_epoch
        ],
    }
    for key in SCORES:
        record[key] = _finite_or_none((scores or {}).get(key))
    if status is not None:
        record["status"] = status
        record["reason"] = reason or ""
    record.update(extra)
    return record


def write_metrics(
    path: Path, record: dict[str, Any], command: str | None = None, force: bool = False
) -> None:
    """Validate ``record`` and write it atomically as a metrics JSON file (as ``command``'s output)."""
    _validate(Path(path), record)
    write_json(path, record, command, force)


def _validate(path: Path, record: Any) -> None:
    if not isinstance(record, dict):
        raise MetricsFormatError(path, f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in record]
    if missing:
        raise MetricsFormatError(path, f"missing keys {missing}")
    if not isinstance(record["seed"], int) or isinstance(record["seed"], bool):
        raise MetricsFormatError(path, f"'seed' must be an integer, got {record['seed']!r}")
    skipped = record.get("status") == "skipped"
    for key in SCORES:
        value = record.get(key)
        if value is None and skipped:
            continue
        if key not in record:
            raise MetricsFormatError(path, f"missing key {key!r} (only skipped runs may omit scores)")
        if value is not None and not isinstance(value, (int, float)):
            raise MetricsFormatError(path, f"{key!r} must be a number or null, got {value!r}")
    per_epoch = record.get("per_epoch", [])
    if not isinstance(per_epoch, list):
        raise MetricsFormatError(path, "'per_epoch' must be a list")
    for i, row in enumerate(per_epoch):
        if not isinstance(row, dict) or "epoch" not in row:
            raise MetricsFormatError(path, f"per_epoch[{i}] must be an object with an 'epoch'")
        for key in SCORES + ("val_loss",):
            value = row.get(key)
            if value is not None and not isinstance(value, (int, float)):
                raise MetricsFormatError(path, f"per_epoch[{i}].{key} must be a number or null")


def read_metrics(path: Path) -> dict[str, Any]:
    """Read and validate one metrics JSON file."""
    path = Path(path)
    if not path.is_file():
        raise MetricsFormatError(path, "file does not exist")
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise MetricsFormatError(path, f"not valid JSON: {err}") from err
    _validate(path, record)
    return record


def load_metrics(paths: Iterable[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Load metrics JSONs into (one row per file, one row per file and epoch).

    The run frame has the record's scalar keys plus ``path``; missing optional keys are
    ``None`` (``status`` defaults to ``"ok"``). The epoch frame has ``dataset, variant, seed,
    protocol, train_seq, eval_seq, path`` and the per-epoch keys.
    """
    runs: list[dict[str, Any]] = []
    epochs: list[dict[str, Any]] = []
    id_keys = ("dataset", "variant", "seed", "protocol", "train_seq", "eval_seq")
    for path in paths:
        record = read_metrics(Path(path))
        row = {key: value for key, value in record.items() if key != "per_epoch"}
        row.setdefault("status", "ok")
        row.setdefault("reason", None)
        for key in ("protocol", "train_seq", "eval_seq", "checkpoint", *SCORES):
            row.setdefault(key, None)
        row["path"] = str(path)
        runs.append(row)
        for epoch_row in record.get("per_epoch", []):
            epochs.append(
                {
                    **{key: row[key] for key in id_keys},
                    "path": str(path),
                    **{key: epoch_row.get(key) for key in EPOCH_KEYS},
                }
            )
    run_columns = ["dataset", "variant", "seed", "protocol", "train_seq", "eval_seq", "checkpoint", *SCORES]
    run_frame = pd.DataFrame(runs, columns=None if runs else run_columns + ["status", "reason", "path"])
    epoch_frame = pd.DataFrame(epochs, columns=[*id_keys, "path", *EPOCH_KEYS])
    for key in (*SCORES, "val_loss"):
        epoch_frame[key] = pd.to_numeric(epoch_frame[key], errors="coerce")
    for key in SCORES:
        run_frame[key] = pd.to_numeric(run_frame[key], errors="coerce")
    return run_frame, epoch_frame
