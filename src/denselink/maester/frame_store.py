"""Pretraining frames decoded once into an uncompressed store that crops read through a memory map.

Decoding a compressed TIFF costs milliseconds (~10 ms for a 1024x1024 LZW frame), while a MAESTER crop
needs 80x80 pixels of it. :func:`build_frame_store` decodes every frame of every sequence once into
``{root}/seq{i:05d}.npy`` (``(T, H, W)``, the raw dtype) beside ``seq{i:05d}.json`` (per-frame minimum
and maximum, and the size and modification time of every source file). A crop then reads only its rows
of the memory-mapped array and is min-max scaled with its frame's stored extrema: the same float32
arithmetic as :func:`denselink.maester.dataset.minmax_scale` on the whole frame, so crops are identical.
A store whose sources are unchanged is reused; several processes share the build (sequence ``i`` is
decoded by process ``i % world``) and wait for each other's files.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from denselink.atomic import atomic_path, reserve_space
from denselink.data.manifest import SequenceManifest
from denselink.errors import CTCFormatError


def _sources(sequence: SequenceManifest) -> list[list[Any]]:
    """``[path, size, mtime_ns]`` of every frame file (a changed file invalidates the store)."""
    rows = []
    for path in sequence.frames:
        if not path.is_file():
            raise CTCFormatError(path, "frame file is missing")
        stat = path.stat()
        rows.append([str(path), stat.st_size, stat.st_mtime_ns])
    return rows


def _is_current(index: Path, sources: list[list[Any]]) -> bool:
    try:
        return json.loads(index.read_text())["sources"] == sources
    except (OSError, ValueError, KeyError):
        return False


def _decode_sequence(sequence: SequenceManifest, array_path: Path, index: Path, sources: list) -> None:
    """Decode every frame of ``sequence`` into ``array_path`` and its extrema into ``index``."""
    if not sequence.frames:
        raise CTCFormatError(
            sequence.sequence, f"sequence {sequence.dataset}/{sequence.sequence} has no frames"
        )
    shape = (sequence.n_frames, *sequence.shape)
    extrema = np.zeros((sequence.n_frames, 2), dtype=np.float64)
    with atomic_path(array_path) as tmp:
        frames = None
        for t in range(sequence.n_frames):
            frame = sequence.read_frame(t)
            if frame.shape != tuple(sequence.shape):
                raise CTCFormatError(
                    sequence.frames[t], f"frame shape {frame.shape} != manifest shape {sequence.shape}"
                )
            if frames is None:
                frames = np.lib.format.open_memmap(tmp, mode="w+", dtype=frame.dtype, shape=shape)
                reserve_space(tmp)
            frames[t] = frame
            scaled = np.asarray(frame, dtype=np.float32)
            extrema[t] = float(scaled.min()), float(scaled.max())
        assert frames is not None
        frames.flush()
        del frames
    record = {"sources": sources, "shape": list(shape), "extrema": extrema.tolist()}
    with atomic_path(index) as tmp:
        tmp.write_text(json.dumps(record))


def build_frame_store(
    sequences: list[SequenceManifest], root: Path, rank: int = 0, world: int = 1, poll_s: float = 1.0
) -> FrameStore:
    """Decode or reuse the store of ``sequences`` in ``root``; this process decodes ``i % world == rank``.

    Returns once every sequence is in place (decoded here or by the other processes).
    """
    root.mkdir(parents=True, exist_ok=True)
    sources = [_sources(seq) for seq in sequences]
    for i, seq in enumerate(sequences):
        index = root / f"seq{i:05d}.json"
        if i % world == rank and not _is_current(index, sources[i]):
            index.unlink(missing_ok=True)
            _decode_sequence(seq, root / f"seq{i:05d}.npy", index, sources[i])
    for i in range(len(sequences)):
        while not _is_current(root / f"seq{i:05d}.json", sources[i]):
            time.sleep(poll_s)  # another process is still decoding sequence i
    return FrameStore(root, len(sequences))


class FrameStore:
    """Read access to a built store; memory maps are opened lazily in each process (cheap to pickle)."""

    def __init__(self, root: Path, n_sequences: int) -> None:
        self.root = Path(root)
        records = [json.loads((self.root / f"seq{i:05d}.json").read_text()) for i in range(n_sequences)]
        self.shapes: list[tuple[int, int, int]] = [tuple(r["shape"]) for r in records]  # type: ignore[misc]
        self.extrema = [np.asarray(r["extrema"], dtype=np.float64) for r in records]
        self._maps: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.shapes)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_maps": {}}

    def _frames(self, seq: int) -> np.ndarray:
        if seq not in self._maps:
            self._maps[seq] = np.load(self.root / f"seq{seq:05d}.npy", mmap_mode="r")
        return self._maps[seq]

    def region(self, seq: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        """Rows x cols of frame ``t`` of sequence ``seq``, min-max scaled to [0, 1] over the whole frame."""
        part = np.asarray(self._frames(seq)[t, rows, cols], dtype=np.float32)
        low, high = (float(v) for v in self.extrema[seq][t])
        if high <= low:
            return np.zeros_like(part)
        return (part - np.float32(low)) / np.float32(high - low)
