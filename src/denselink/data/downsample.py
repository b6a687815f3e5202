"""``denselink data downsample``: a CTC dataset shrunk by an integer factor, as the pipeline's own copy.

Frames are cropped to a multiple of the factor and averaged over ``factor x factor`` blocks (rounded
back to their integer type); TRA masks take the label at each block's centre pixel. A cell that this
sampling would lose (smaller than a block, or thin) is kept: its label is written at its downsampled
centroid, so every track stays present in every frame of its span and ``man_track.txt`` is copied
unchanged. ``downsample.json`` records the factor, the source folder, the shapes before and after
and the cells kept this way.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from scipy import ndimage
from tqdm import tqdm

from denselink.atomic import add_force_flag, atomic_path, check_output, write_json
from denselink.command import command_parser
from denselink.data.frames import list_frames
from denselink.errors import ConfigError, CTCFormatError

COMMAND = "data downsample"
RECORD = "downsample.json"


def downsample_frame(frame: np.ndarray, factor: int) -> np.ndarray:
    """Mean over ``factor x factor`` blocks of ``frame`` cropped to a multiple of ``factor``; same dtype."""
    h, w = (n // factor for n in frame.shape)
    blocks = frame[: h * factor, : w * factor].astype(np.float64).reshape(h, factor, w, factor)
    mean = blocks.mean(axis=(1, 3))
    if frame.dtype.kind in "ui":
        info = np.iinfo(frame.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(frame.dtype)
    return mean.astype(frame.dtype)


def downsample_mask(mask: np.ndarray, factor: int) -> tuple[np.ndarray, list[int]]:
    """The label at each block's centre; labels this loses are written at their downsampled centroid.

    Returns the mask and the labels written at their centroid. Raises ValueError when two such cells
    fall on one pixel (or one lands on the only pixel of another): the factor is too large.
    """
    h, w = (n // factor for n in mask.shape)
    cropped = mask[: h * factor, : w * factor]
    small = cropped[factor // 2 :: factor, factor // 2 :: factor].copy()
    before = np.unique(mask[mask > 0])
    lost = np.setdiff1d(before, small[small > 0])
    if lost.size:
        centres = ndimage.center_of_mass(np.ones(mask.shape), mask, lost)
        for label, (y, x) in zip(lost.tolist(), centres, strict=True):
            small[min(int(y // factor), h - 1), min(int(x // factor), w - 1)] = label
        missing = np.setdiff1d(before, small[small > 0])
        if missing.size:
            raise ValueError(f"labels {missing.tolist()} cannot be kept at factor {factor}")
    return small, [int(label) for label in lost]


def downsample_dataset(
    source: str | Path, sequences: list[str], factor: int, out: str | Path, force: bool = False
) -> dict[str, Any]:
    """Write ``sequences`` of the CTC dataset ``source`` shrunk by ``factor`` to ``out``; the record."""
    source, out = Path(source), Path(out)
    check_output(out, COMMAND, force)
    if factor < 1:
        raise ConfigError("--factor", f"must be a positive integer, got {factor}")
    record: dict[str, Any] = {"factor": factor, "source": str(source.resolve()), "sequences": {}}
    with atomic_path(out, COMMAND, force) as tmp:
        for seq in sequences:
            raw, tra = source / seq, source / f"{seq}_GT" / "TRA"
            for folder in (raw, tra):
                if not folder.is_dir():
                    raise CTCFormatError(folder, "directory is missing")
            (tmp / seq).mkdir(parents=True)
            (tmp / f"{seq}_GT" / "TRA").mkdir(parents=True)
            shapes, kept = set(), {}
            frames = list_frames(raw, "raw frame", prefix="t")
            for _, path in tqdm(frames, desc=f"downsample {seq}", unit="frame"):
                frame = np.squeeze(tifffile.imread(path))
                shapes.add(frame.shape)
                small = downsample_frame(frame, factor)
                tifffile.imwrite(tmp / seq / path.name, small, compression="zlib")
            for _, path in list_frames(tra, "TRA mask", prefix="man_track"):
                try:
                    small, lost = downsample_mask(np.squeeze(tifffile.imread(path)), factor)
                except ValueError as err:
                    raise ConfigError(f"downsample factor {factor}", f"{path}: {err}") from err
                if lost:
                    kept[path.name] = lost
                tifffile.imwrite(tmp / f"{seq}_GT" / "TRA" / path.name, small, compression="zlib")
            shutil.copyfile(tra / "man_track.txt", tmp / f"{seq}_GT" / "TRA" / "man_track.txt")
            before = sorted(shapes)
            record["sequences"][seq] = {
                "shape_before": [list(s) for s in before],
                "shape_after": [[n // factor for n in s] for s in before],
                "kept_at_centroid": kept,
            }
        write_json(tmp / RECORD, record)
    return record


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink data downsample``."""
    parser = command_parser(
        COMMAND,
        "Shrink CTC sequences by an integer factor (block-mean frames, centre-sampled TRA masks "
        "keeping every cell) into a new CTC dataset folder with downsample.json.",
    )
    parser.add_argument("--dataset-dir", type=Path, required=True, help="CTC dataset folder (01/, 01_GT/TRA)")
    parser.add_argument("--sequences", nargs="+", required=True, help="sequence ids, e.g. 01 02")
    parser.add_argument("--factor", type=int, required=True, help="spatial factor (1 copies the data)")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write")
    add_force_flag(parser)
    args = parser.parse_args(argv)
    record = downsample_dataset(args.dataset_dir, args.sequences, args.factor, args.out, args.force)
    kept = sum(len(v) for s in record["sequences"].values() for v in s["kept_at_centroid"].values())
    print(f"{args.dataset_dir} / {args.factor} -> {args.out} ({kept} small cells kept at their centroid)")
    return 0
