"""Random FOV crops from 2D+t sequences for MAESTER pretraining.

Follows the authors' fork (MAESTER_fix): every frame is min-max scaled to [0, 1], the (T, H, W) volume is
zero-padded by ``pad`` on every axis, an ``img_size`` square is cut at a random position, and the
augmentation takes a random half-size crop, resizes it back bilinearly and flips both axes with
probability 0.5 (MONAI ``RandSpatialCrop`` + ``Resize`` + ``RandFlip`` as configured there).

``sampling="frame"`` cuts each crop from one time frame (the fork); ``sampling="axis"`` picks a random axis
of the volume first, so a crop may span time (original MAESTER). Frames are decoded lazily, and kept in a
per-process cache up to ``cache_mb``, so a Mitocheck plate never has to fit in memory. Crop ``i`` of epoch
``e`` on rank ``r`` comes from ``numpy.random.default_rng([seed, e, r, i])``: different in every epoch,
rank and worker, identical for any number of workers, and reproducible from the seed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from denselink.data.manifest import SequenceManifest
from denselink.errors import ConfigError, CTCFormatError

Sampling = Literal["frame", "axis"]


def minmax_scale(frame: np.ndarray) -> np.ndarray:
    """Scale one frame to [0, 1] (a constant frame becomes zeros), as float32."""
    frame = np.asarray(frame, dtype=np.float32)
    low, high = float(frame.min()), float(frame.max())
    if high <= low:
        return np.zeros_like(frame)
    return (frame - low) / (high - low)


class FrameCache:
    """Min-max scaled frames of several sequences, decoded on demand, least recently used evicted."""

    def __init__(self, sequences: list[SequenceManifest], cache_mb: float) -> None:
        self.sequences = sequences
        self.budget = int(cache_mb * 2**20)
        self._frames: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, seq: int, t: int) -> np.ndarray:
        key = (seq, t)
        if key in self._frames:
            self._frames.move_to_end(key)
            return self._frames[key]
        frame = minmax_scale(self.sequences[seq].read_frame(t))
        self._frames[key] = frame
        self._bytes += frame.nbytes
        while self._bytes > self.budget and len(self._frames) > 1:
            _, old = self._frames.popitem(last=False)
            self._bytes -= old.nbytes
        return frame


def _padded_slab(
    cache: FrameCache, seq: int, shape: tuple[int, int, int], pad: tuple[int, int, int], box: list[slice]
) -> np.ndarray:
    """Region ``box`` (slices in padded (T, H, W) coordinates) of the zero-padded scaled volume."""
    out = np.zeros([s.stop - s.start for s in box], dtype=np.float32)
    inner = []
    for s, n, p in zip(box, shape, pad, strict=True):
        lo = max(s.start - p, 0)
        hi = max(min(s.stop - p, n), lo)
        inner.append((lo, hi, lo + p - s.start))
    (t0, t1, ot), (y0, y1, oy), (x0, x1, ox) = inner
    for t in range(t0, t1):
        frame = cache.get(seq, t)
        out[ot + t - t0, oy : oy + y1 - y0, ox : ox + x1 - x0] = frame[y0:y1, x0:x1]
    return out


def augment(crop: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """Random half-size crop resized back (bilinear, align_corners=False), both axes flipped w.p. 0.5."""
    size = crop.shape[-1]
    roi = size // 2
    y0, x0 = (int(rng.integers(0, size - roi + 1)) for _ in range(2))
    part = crop[:, y0 : y0 + roi, x0 : x0 + roi]
    out = F.interpolate(part[None], size=(size, size), mode="bilinear", align_corners=False)[0]
    if rng.random() < 0.5:
        out = out.flip(-1, -2)
    return out


class MaesterCropDataset(Dataset):
    """``samples`` random crops ``(1, img_size, img_size)`` per epoch for one rank."""

    def __init__(
        self,
        sequences: list[SequenceManifest],
        img_size: int,
        samples: int,
        seed: int,
        rank: int = 0,
        sampling: Sampling = "frame",
        augment: bool = True,
        pad: int = 4,
        pad_time: bool = True,
        cache_mb: float = 1024,
    ) -> None:
        if not sequences:
            raise ConfigError("--manifest", "no sequences to sample from")
        self.sequences = sequences
        self.size, self.samples, self.seed, self.rank = img_size, samples, seed, rank
        self.sampling, self.augment = sampling, augment
        self.pad = (pad if pad_time else 0, pad, pad)
        self.cache = FrameCache(sequences, cache_mb)
        self.epoch = 0
        for seq in sequences:
            self._check(seq)

    def _check(self, seq: SequenceManifest) -> None:
        where = seq.frames[0].parent if seq.frames else seq.sequence
        if not seq.frames:
            raise CTCFormatError(where, f"sequence {seq.dataset}/{seq.sequence} has no frames")
        missing = [p for p in seq.frames if not p.is_file()]
        if missing:
            raise CTCFormatError(missing[0], f"frame file is missing ({len(missing)} missing in total)")
        padded = self._padded_shape(seq)
        needs = padded[1:] if self.sampling == "frame" else padded
        if min(needs) < self.size + 2:
            raise ConfigError(
                where,
                f"padded volume {padded} (T, H, W) is too small for {self.size}px crops in "
                f"'{self.sampling}' sampling (each sampled axis needs img_size + 2)",
            )

    def _padded_shape(self, seq: SequenceManifest) -> tuple[int, int, int]:
        shape = (seq.n_frames, *seq.shape)
        return tuple(n + 2 * p for n, p in zip(shape, self.pad, strict=True))  # type: ignore[return-value]

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (call before iterating)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, index])
        seq = int(rng.integers(len(self.sequences)))
        axis = 0 if self.sampling == "frame" else int(rng.integers(3))
        crop = torch.from_numpy(self._crop(seq, axis, rng))[None]
        return augment(crop, rng) if self.augment else crop

    def _crop(self, seq: int, axis: int, rng: np.random.Generator) -> np.ndarray:
        sequence, size = self.sequences[seq], self.size
        padded = self._padded_shape(sequence)
        # the sliced axis takes any index; the two crop axes start in [0, n - size - 1) as in the original
        starts = [int(rng.integers(0, n if a == axis else n - size - 1)) for a, n in enumerate(padded)]
        box = [slice(s, s + size) for s in starts]
        box[axis] = slice(starts[axis], starts[axis] + 1)
        slab = _padded_slab(self.cache, seq, (sequence.n_frames, *sequence.shape), self.pad, box)
        return np.ascontiguousarray(np.squeeze(slab, axis=axis))
