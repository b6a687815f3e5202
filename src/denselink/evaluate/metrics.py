"""CTC scores (LNK, TRA, DET) as the Cell Tracking Challenge computes them, and the metrics JSON files.

LNK, TRA and DET follow the Cell Tracking Challenge definitions (Matula et al. 2015, Maska et al.
2023) as its own Python implementation, py-ctcmetrics, computes them: with ``AOGM-A = 1*ED +
1.5*EA + 1*EC`` (redundant, missing and wrong-semantics edges) and ``AOGM-A_0 = 1.5 * |GT edges|``,
``LNK = 1 - min(AOGM-A, AOGM-A_0) / AOGM-A_0``; TRA and DET are the analogous normalised AOGM
(node errors NS, FN, FP weighted 5, 10, 1, plus the edge errors) and AOGM-D. :func:`score_ctc`
scores a CTC result folder with py-ctcmetrics itself; :func:`ctc_scores` turns error counts into
the same scores with py-ctcmetrics' formulas (the array scorer, :mod:`denselink.tracking.scoring`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from denselink.atomic import write_json
from denselink.errors import CTCFormatError, DenselinkError
from denselink.json_files import read_json

SCORES = ("LNK", "TRA", "DET")
REQUIRED_KEYS = ("dataset", "variant", "seed")
EPOCH_KEYS = ("epoch", "LNK", "TRA", "DET", "val_loss")
ERROR_COUNTS = ("NS", "FN", "FP", "ED", "EA", "EC")
"""The CTC's graph errors: split, missing and redundant nodes; redundant, missing, wrong-semantics edges."""
CTC_KEYS = (*SCORES, "AOGM", "AOGM_0", *(f"AOGM_{name}" for name in ERROR_COUNTS))
"""What :func:`score_ctc` and :func:`ctc_scores` return, named as py-ctcmetrics names them."""


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


def ctc_scores(counts: dict[str, int], num_vertices: int, num_edges: int) -> dict[str, float]:
    """LNK, TRA, DET, AOGM, AOGM_0 and the error counts (``AOGM_NS`` ...) from the CTC's error counts.

    ``counts`` holds NS, FN, FP, ED, EA, EC; the GT has ``num_vertices`` nodes and ``num_edges``
    edges. A score whose normaliser is 0 (no GT edge for LNK, no GT node for all) is NaN.
    """
    from ctc_metrics.metrics import det, lnk, tra

    counts = {name: int(counts[name]) for name in ERROR_COUNTS}
    result = dict.fromkeys(("LNK", "TRA", "DET", "AOGM", "AOGM_0"), math.nan)
    if num_vertices:
        tra_score, aogm, aogm_0 = tra(**counts, num_vertices=num_vertices, num_edges=num_edges)
        result |= {"TRA": tra_score, "DET": det(**counts, num_vertices=num_vertices)}
        result |= {"AOGM": float(aogm), "AOGM_0": float(aogm_0)}
    if num_edges:
        result["LNK"] = lnk(**counts, num_edges=num_edges)
    return result | {f"AOGM_{name}": counts[name] for name in ERROR_COUNTS}


def _tiffs(directory: Path) -> list[Path]:
    """The ``*.tif`` frames of a CTC folder, as py-ctcmetrics lists them."""
    return sorted(path for path in directory.iterdir() if path.name.endswith(".tif"))


def _check_ctc_folder(directory: Path, track_name: str) -> list[Path]:
    if not directory.is_dir():
        raise CTCFormatError(directory, "directory does not exist")
    if not (directory / track_name).is_file():
        raise CTCFormatError(directory / track_name, "track file is missing")
    frames = _tiffs(directory)
    if not frames:
        raise CTCFormatError(directory, "no *.tif masks found")
    return frames


def score_ctc(gt_tra_dir: Path, res_dir: Path) -> dict[str, float]:
    """Score a CTC result (``mask*.tif`` + ``res_track.txt``) against ``{seq}_GT/TRA`` with py-ctcmetrics.

    The reference itself (``ctc_evaluate``'s loading, matching, validity check and counting, for
    the metrics Valid, DET, TRA and LNK). Returns :data:`CTC_KEYS`; an invalid result (as
    ``ctc_evaluate`` finds it) or unreadable folders raise :class:`CTCFormatError` naming the path.
    """
    import tifffile
    from ctc_metrics.metrics import valid
    from ctc_metrics.scripts.evaluate import calculate_metrics, match_computed_to_reference_masks
    from ctc_metrics.utils.filesystem import read_tracking_file

    gt_dir, res_dir = Path(gt_tra_dir), Path(res_dir)
    gt_masks = _check_ctc_folder(gt_dir, "man_track.txt")
    res_masks = _check_ctc_folder(res_dir, "res_track.txt")
    if len(res_masks) != len(gt_masks):
        raise CTCFormatError(res_dir, f"{len(res_masks)} masks, the GT {gt_dir} has {len(gt_masks)}")
    shapes = []
    for path in (gt_masks[0], res_masks[0]):
        with tifffile.TiffFile(path) as tif:
            shapes.append(tif.series[0].shape)
    if shapes[0] != shapes[1]:
        raise CTCFormatError(res_masks[0], f"frame shape {shapes[1]} differs from the GT's {shapes[0]}")
    tracks = {}
    for path in (gt_dir / "man_track.txt", res_dir / "res_track.txt"):
        try:
            tracks[path.name] = read_tracking_file(str(path))
        except ValueError as err:
            raise CTCFormatError(path, f"not a CTC track file (label begin end parent): {err}") from err
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            traj = match_computed_to_reference_masks(list(map(str, gt_masks)), list(map(str, res_masks)), 1)
            is_valid = valid(list(map(str, res_masks)), tracks["res_track.txt"], traj["labels_comp"])
            if is_valid:
                results = calculate_metrics(
                    tracks["res_track.txt"], tracks["man_track.txt"], traj, {}, ["DET", "TRA", "LNK"], True
                )
        except (AssertionError, IndexError, ValueError, ZeroDivisionError) as err:
            problem = f"{type(err).__name__}: {err}".rstrip(": ")
            raise CTCFormatError(res_dir, f"py-ctcmetrics cannot score the result ({problem})") from err
    if not is_valid:
        said = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        reasons = "; ".join(dict.fromkeys(said)) or "no reason given"
        raise CTCFormatError(res_dir, f"py-ctcmetrics finds the result invalid: {reasons}")
    scores = {key: float(results[key]) for key in (*SCORES, "AOGM", "AOGM_0")}
    return scores | {f"AOGM_{name}": int(results[f"AOGM_{name}"]) for name in ERROR_COUNTS}


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
    record = read_json(path, MetricsFormatError, "file does not exist")
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
