"""What a CTC dataset folder holds, read from file names and TIFF headers (a few masks decoded).

``denselink init`` proposes a config from it, and ``denselink plan`` sizes a sequence whose manifest
does not exist yet. The full check of a sequence stays ``denselink data validate``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from denselink.data.ctc import tiff_header
from denselink.errors import CTCFormatError

SEQUENCE = re.compile(r"^\d+$")
FRAME = re.compile(r"^t\d+\.tif$")
SAMPLED_MASKS = 3  # TRA masks decoded to estimate the cells per frame: first, middle, last


@dataclass(frozen=True)
class SequenceScan:
    """One sequence: frames, their shape and dtype, and its ground truth."""

    name: str
    frames: int
    shape: tuple[int, int]
    dtype: str
    tra: bool  # {seq}_GT/TRA with man_track.txt and one mask per frame
    seg_frames: int  # frames with a {seq}_GT/SEG mask
    cells_per_frame: float | None  # mean labels of SAMPLED_MASKS TRA masks; None without TRA
    cell_diameter: float | None  # median equivalent diameter (px) of their labels; None without TRA


def frame_files(folder: Path) -> list[Path]:
    """The ``t*.tif`` frames of a sequence folder, sorted by name."""
    return sorted(p for p in folder.iterdir() if FRAME.match(p.name)) if folder.is_dir() else []


def scan_sequence(dataset: Path, seq: str) -> SequenceScan:
    """Frames, shape, dtype and ground truth of ``dataset/seq`` (CTC layout)."""
    frames = frame_files(dataset / seq)
    if not frames:
        raise CTCFormatError(dataset / seq, "no t*.tif frames")
    shape, dtype = tiff_header(frames[0])
    tra = dataset / f"{seq}_GT" / "TRA"
    masks = sorted(tra.glob("man_track*.tif")) if tra.is_dir() else []
    has_tra = (tra / "man_track.txt").is_file() and len(masks) == len(frames)
    seg = dataset / f"{seq}_GT" / "SEG"
    seg_frames = len(list(seg.glob("man_seg*.tif"))) if seg.is_dir() else 0
    cells = diameter = None
    if has_tra:
        picks = sorted({0, len(masks) // 2, len(masks) - 1})[:SAMPLED_MASKS]
        areas = [np.bincount(tifffile.imread(masks[i]).ravel())[1:] for i in picks]
        cells = float(np.mean([np.count_nonzero(a) for a in areas]))
        present = np.concatenate([a[a > 0] for a in areas])
        diameter = float(np.median(np.sqrt(4 * present / np.pi))) if present.size else 0.0
    return SequenceScan(seq, len(frames), shape, str(dtype), has_tra, seg_frames, cells, diameter)


def scan_dataset(dataset: Path) -> list[SequenceScan]:
    """Every sequence (a folder of digits holding ``t*.tif`` frames) of a CTC dataset folder."""
    if not dataset.is_dir():
        raise CTCFormatError(dataset, "is not a folder")
    names = sorted(p.name for p in dataset.iterdir() if SEQUENCE.match(p.name) and frame_files(p))
    if not names:
        raise CTCFormatError(dataset, "holds no CTC sequence (folders 01, 02, ... of t*.tif frames)")
    return [scan_sequence(dataset, name) for name in names]
