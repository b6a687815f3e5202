"""Cell Tracking Challenge sequences: reading ``man_track.txt`` and validating a sequence.

A CTC sequence ``{seq}`` of a dataset directory holds raw frames ``{seq}/t000.tif ...`` and
tracking ground truth ``{seq}_GT/TRA/man_track000.tif ...`` plus ``{seq}_GT/TRA/man_track.txt``
(one line ``label start end parent`` per track, parent 0 = none). Validation runs the cheap
checks first (names, counts, the track table, TIFF headers) and decodes pixels last. It rejects
what later stages cannot use: multi-page TIFFs (z-stacks), non-finite raw pixels, labels that do
not fit the 16-bit CTC label images the tracking results are written as, and a track missing from
a frame inside its span (CTC marks a gap as a new track whose parent is the old one).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from tqdm import tqdm

from denselink import arg_types
from denselink.atomic import add_force_flag, write_json
from denselink.command import command_parser, parse
from denselink.data.frames import list_frames
from denselink.data.manifest import SequenceManifest, file_sha256
from denselink.errors import ConfigError, CTCFormatError, DenselinkError

MAN_TRACK_COLUMNS = ["label", "start", "end", "parent"]
MAX_BINCOUNT_LABEL = 1 << 20  # larger labels are counted with np.unique instead
MAX_LABEL = 65535  # CTC label images are 16-bit; tracking results are written as uint16


def _digits(n_frames: int) -> int:
    return max(3, len(str(n_frames - 1)))


def frame_name(t: int, n_frames: int) -> str:
    """CTC file name of raw frame ``t`` (three digits, four for sequences of 1000+ frames)."""
    return f"t{t:0{_digits(n_frames)}d}.tif"


def mask_name(t: int, n_frames: int) -> str:
    """CTC file name of the TRA mask of frame ``t``."""
    return f"man_track{t:0{_digits(n_frames)}d}.tif"


def write_man_track(path: Path, tracks: pd.DataFrame) -> None:
    """Write a track table as ``man_track.txt`` (``label start end parent`` per line)."""
    lines = [" ".join(str(int(v)) for v in row) for row in tracks[MAN_TRACK_COLUMNS].itertuples(index=False)]
    path.write_text("".join(f"{line}\n" for line in lines))


def _parse_line(path: Path, number: int, line: str) -> list[int]:
    """The four integers of one ``man_track.txt`` line, read as trackastra and traccuracy read it."""
    if "\t" in line:
        raise CTCFormatError(
            path, f"line {number}: a tab between fields; the CTC format separates them by single spaces"
        )
    if not line.strip():
        raise CTCFormatError(path, f"line {number}: spaces on an otherwise blank line; leave it empty")
    fields = line.split(" ")
    if "" in fields:
        raise CTCFormatError(
            path, f"line {number}: fields must be separated by single spaces, none at the start or end"
        )
    if len(fields) != 4:
        raise CTCFormatError(
            path, f"line {number}: expected 4 columns (label start end parent), got {len(fields)}"
        )
    try:
        values = [int(f) for f in fields]
    except ValueError as err:
        raise CTCFormatError(path, f"line {number}: not an integer ({err})") from err
    if min(values) < 0:
        raise CTCFormatError(path, f"line {number}: negative label, frame or parent")
    if values[0] == 0:
        raise CTCFormatError(path, f"line {number}: label 0 is the background and cannot be a track")
    if values[1] > values[2]:
        raise CTCFormatError(
            path, f"line {number}: track {values[0]} starts ({values[1]}) after it ends ({values[2]})"
        )
    return values


def parse_man_track(path: str | Path) -> tuple[pd.DataFrame, dict[int, int]]:
    """:func:`read_man_track` plus the line of ``man_track.txt`` each track is on (by label)."""
    path = Path(path)
    if not path.is_file():
        raise CTCFormatError(path, "man_track.txt is missing")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise CTCFormatError(path, f"unreadable ({type(err).__name__}: {err})") from err
    rows: list[list[int]] = []
    lines: dict[int, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line:
            continue
        row = _parse_line(path, number, line)
        if row[0] in lines:
            raise CTCFormatError(
                path, f"line {number}: track {row[0]} is listed more than once (also line {lines[row[0]]})"
            )
        lines[row[0]] = number
        rows.append(row)
    tracks = pd.DataFrame(rows, columns=MAN_TRACK_COLUMNS, dtype=np.int64)
    if tracks.empty:
        raise CTCFormatError(path, "man_track.txt has no tracks")
    return tracks, lines


def read_man_track(path: str | Path) -> pd.DataFrame:
    """Parse ``man_track.txt`` into a DataFrame with integer columns label, start, end, parent.

    Lines are ``label start end parent`` separated by single spaces, as the CTC writes them and as
    trackastra and traccuracy read them (a tab or a run of spaces is an error naming the line);
    empty lines are skipped.
    """
    return parse_man_track(path)[0]


def _check_tracks(tracks: pd.DataFrame, lines: dict[int, int], path: Path, n_frames: int) -> None:
    """Track-table rules that need the frame count; errors name the line of the offending track."""
    for row in tracks.itertuples(index=False):
        where = f"line {lines[row.label]}: "
        if row.label > MAX_LABEL:
            raise CTCFormatError(
                path, f"{where}track label {row.label} exceeds {MAX_LABEL} (CTC label images are 16-bit)"
            )
        if row.end >= n_frames:
            raise CTCFormatError(
                path, f"{where}track {row.label} ends at frame {row.end} but there are {n_frames} frames"
            )
    by_label = tracks.set_index("label")
    for row in tracks[tracks["parent"] > 0].itertuples(index=False):
        where = f"line {lines[row.label]}: "
        if row.parent not in by_label.index:
            raise CTCFormatError(
                path, f"{where}track {row.label} has parent {row.parent}, which is not a track"
            )
        parent_end = int(by_label.at[row.parent, "end"])
        if parent_end >= row.start:
            raise CTCFormatError(
                path,
                f"{where}parent {row.parent} ends at frame {parent_end}, not before its child {row.label} "
                f"starts (frame {row.start})",
            )


def tiff_header(
    path: Path, error: type[DenselinkError] = CTCFormatError, singleton_axes: bool = True
) -> tuple[tuple[int, int], np.dtype]:
    """2D shape and dtype of a TIFF from its header (no decoding); checks its data lies inside the file.

    A TIFF of more than one page (a z-stack or a time series in one file) is an error. An image stored
    with axes of length 1 (``(Y, X, 1)``, ``(1, Y, X)``) counts as 2D when ``singleton_axes``, else it
    is an error: trackastra and traccuracy read CTC frames and masks as stored, without squeezing.
    """
    try:
        size = path.stat().st_size
        with tifffile.TiffFile(path) as tif:
            n_pages = len(tif.pages)
            page = tif.pages.first
            shape, dtype = tuple(int(n) for n in tif.series[0].shape), np.dtype(page.dtype)
            data_end = max(
                (o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)), default=0
            )
    except Exception as err:  # tifffile raises many types for corrupt files
        raise error(path, f"unreadable or corrupt TIFF ({type(err).__name__}: {err})") from err
    if data_end > size:
        raise error(path, f"truncated TIFF: image data ends at byte {data_end}, file has {size}")
    if n_pages > 1:
        raise error(
            path, f"multi-page TIFF ({n_pages} pages, e.g. a z-stack); expected one 2D image per file"
        )
    squeezed = tuple(n for n in shape if n != 1)
    if len(squeezed) != 2:
        raise error(path, f"expected a 2D image, got shape {shape}")
    if len(shape) != 2 and not singleton_axes:
        raise error(
            path,
            f"stored with shape {shape}; frames and masks are 2D images {squeezed}, which the tracking "
            "and scoring libraries read as stored: save it without the axes of length 1 (np.squeeze)",
        )
    return (squeezed[0], squeezed[1]), dtype


def decode_tiff(path: Path, error: type[DenselinkError] = CTCFormatError) -> np.ndarray:
    """A TIFF's pixels without axes of length 1; ``error`` naming the file when it cannot be decoded."""
    try:
        return np.squeeze(tifffile.imread(path))
    except Exception as err:  # tifffile raises many types for corrupt files
        raise error(path, f"unreadable or corrupt TIFF ({type(err).__name__}: {err})") from err


def check_headers(frames: list[Path], masks: list[Path]) -> tuple[tuple[int, int], np.dtype]:
    """Shape and dtype of the raw frames from their TIFF headers; every mask must share the shape.

    Frames and masks must be stored as 2D images (no axes of length 1). Returns the frames' shape and
    dtype. ``data validate`` and ``tracking track`` check their frames with this one function.
    """
    shape, raw_dtype = tiff_header(frames[0], singleton_axes=False)
    for path in frames:
        frame_shape, dtype = tiff_header(path, singleton_axes=False)
        if dtype.kind not in "uif":
            raise CTCFormatError(path, f"raw frame dtype {dtype} is not numeric")
        if frame_shape != shape:
            raise CTCFormatError(path, f"shape {frame_shape} differs from {frames[0].name} {shape}")
    for path in masks:
        mask_shape, dtype = tiff_header(path, singleton_axes=False)
        if dtype.kind not in "ui":
            raise CTCFormatError(path, f"mask dtype {dtype} is not an integer type")
        if mask_shape != shape:
            raise CTCFormatError(path, f"mask shape {mask_shape} differs from the frames' shape {shape}")
    return shape, raw_dtype


def check_finite(frame: np.ndarray, path: Path, error: type[DenselinkError] = CTCFormatError) -> None:
    """Raise ``error`` naming the first NaN or infinite pixel of a float frame."""
    if frame.dtype.kind != "f":
        return
    bad = ~np.isfinite(frame)
    if bad.any():
        y, x = (int(i) for i in np.argwhere(bad)[0])
        raise error(
            path,
            f"{int(bad.sum())} non-finite pixels (NaN or inf), the first at (y={y}, x={x}): {frame[y, x]}",
        )


def check_labels(mask: np.ndarray, path: Path) -> None:
    """Raise naming ``path`` when a label image holds negative labels or labels past 16 bits."""
    if mask.dtype.kind == "i" and mask.size and mask.min() < 0:
        raise CTCFormatError(path, "negative labels in mask")
    if mask.size and int(mask.max()) > MAX_LABEL:
        raise CTCFormatError(
            path, f"label {int(mask.max())} exceeds {MAX_LABEL} (CTC label images are 16-bit)"
        )


def _frame_labels(frame_path: Path, mask_path: Path) -> tuple[set[int], str]:
    """Decode one frame and its mask; return the mask's nonzero labels and the frame file's sha256."""
    check_finite(decode_tiff(frame_path), frame_path)
    mask = decode_tiff(mask_path).ravel()
    check_labels(mask, mask_path)
    if not mask.size or int(mask.max()) > MAX_BINCOUNT_LABEL:
        labels = np.unique(mask)
    else:
        labels = np.flatnonzero(np.bincount(mask))
    return {int(label) for label in labels if label != 0}, file_sha256(frame_path)


def _check_pixels(frames: list[Path], masks: list[Path], tracks: pd.DataFrame, man_track: Path) -> list[str]:
    """Decode every frame and mask, check labels against the track table; the frames' sha256 hashes."""
    spans = {int(r.label): (int(r.start), int(r.end)) for r in tracks.itertuples(index=False)}
    present: list[set[int]] = []
    hashes: list[str] = []
    decoded = map(_frame_labels, frames, masks)
    for t, (labels, digest) in enumerate(
        tqdm(decoded, total=len(frames), desc="validating frames", unit="frame")
    ):
        for label in sorted(labels):
            if label not in spans:
                raise CTCFormatError(masks[t], f"label {label} is not a track in {man_track}")
            start, end = spans[label]
            if not start <= t <= end:
                raise CTCFormatError(
                    masks[t],
                    f"label {label} in frame {t}, outside its span {start}-{end} in {man_track.name}",
                )
        present.append(labels)
        hashes.append(digest)
    for label, (start, end) in sorted(spans.items()):
        for t in range(start, end + 1):
            if label not in present[t]:
                inside = start < t < end
                gap = (
                    f"; a gap inside a track is written as a new track whose parent is {label}"
                    if inside
                    else ""
                )
                raise CTCFormatError(
                    man_track,
                    f"track {label} ({start}-{end}) is absent from its frame {t} ({masks[t].name}){gap}",
                )
    return hashes


def validate_sequence(
    dataset_dir: str | Path, dataset: str, seq: str, min_frames: int = 0, min_frames_key: str = "--min-frames"
) -> SequenceManifest:
    """Check one CTC sequence end to end and return its manifest (absolute paths).

    ``min_frames``: the fewest frames the sequence must hold (what tracking's window and validation
    tail need); a shorter one is a ConfigError naming ``min_frames_key``, the config key that asks it.
    """
    root = Path(dataset_dir).resolve()
    raw_dir, tra_dir = root / seq, root / f"{seq}_GT" / "TRA"
    for directory in (raw_dir, tra_dir):
        if not directory.is_dir():
            raise CTCFormatError(directory, "directory is missing")
    frames = [path for _, path in list_frames(raw_dir, "raw frame", prefix="t")]
    masks = [path for _, path in list_frames(tra_dir, "TRA mask", prefix="man_track")]
    if len(frames) != len(masks):
        raise CTCFormatError(
            tra_dir, f"{len(masks)} TRA masks but {len(frames)} raw frames in {raw_dir.name}"
        )
    man_track = tra_dir / "man_track.txt"
    tracks, lines = parse_man_track(man_track)
    _check_tracks(tracks, lines, man_track, len(frames))
    shape, raw_dtype = check_headers(frames, masks)
    hashes = _check_pixels(frames, masks, tracks, man_track)
    if len(frames) < min_frames:  # the data are sound but too short for the tracking config
        raise ConfigError(
            min_frames_key,
            f"{raw_dir} has {len(frames)} frames; window and validation tail need at least {min_frames}",
        )
    return SequenceManifest(
        dataset=dataset,
        sequence=seq,
        frames=frames,
        shape=shape,
        dtype=str(raw_dtype),
        masks=masks,
        man_track=man_track,
        frame_hashes=hashes,
    )


COMMAND = "data validate"


def write_manifest(manifest: SequenceManifest, out: str | Path, force: bool = False) -> None:
    """Write a sequence manifest as JSON, atomically (an existing ``out`` only if this command wrote it)."""
    write_json(out, manifest.to_dict(), COMMAND, force)


def main(argv: list[str] | None = None) -> int:
    """``denselink data validate``: validate a CTC sequence and write its manifest."""
    parser = command_parser(
        COMMAND, "Validate one CTC sequence (raw frames, TRA masks, man_track.txt), write its manifest."
    )
    parser.add_argument(
        "--dataset-dir", type=Path, required=True, help="CTC dataset directory (holds 01/, 01_GT/)"
    )
    parser.add_argument("--dataset", required=True, help="dataset name recorded in the manifest")
    parser.add_argument("--seq", required=True, help="sequence id, e.g. 01")
    parser.add_argument(
        "--min-frames",
        type=arg_types.count,
        default=0,
        help="fewest frames the sequence must hold (tracking's needs)",
    )
    parser.add_argument(
        "--min-frames-key", default="--min-frames", help="config key named when the sequence is shorter"
    )
    parser.add_argument("--out", type=Path, required=True, help="manifest JSON to write")
    add_force_flag(parser)
    args = parse(parser, argv, COMMAND)
    manifest = validate_sequence(
        args.dataset_dir, args.dataset, args.seq, args.min_frames, args.min_frames_key
    )
    write_manifest(manifest, args.out, args.force)
    print(f"{args.dataset}/{args.seq}: {manifest.n_frames} frames of {manifest.shape} valid -> {args.out}")
    return 0
