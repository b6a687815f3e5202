"""Random FOV crops from 2D+t sequences for MAESTER pretraining.

Follows the authors' fork (MAESTER_fix): every frame is min-max scaled to [0, 1], the (T, H, W) volume is
zero-padded by ``pad`` on every axis, an ``img_size`` square is cut at a random position, and the
augmentation takes a random half-size crop, resizes it back bilinearly and flips both axes with
probability 0.5 (MONAI ``RandSpatialCrop`` + ``Resize`` + ``RandFlip`` as configured there).

``sampling="frame"`` cuts each crop from one time frame (the fork); ``sampling="axis"`` picks a random axis
of the volume first, so a crop may span time (original MAESTER). Frames come from a memory-mapped
:class:`~denselink.maester.frame_store.FrameStore` (decoded once), so a Mitocheck plate never has to fit
in memory and a crop reads only its own pixels. Crop ``i`` of epoch
``e`` on rank ``r`` comes from ``numpy.random.default_rng([seed, e, r, i])``: different in every epoch,
rank and worker, identical for any number of workers, and reproducible from the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from denselink.errors import ConfigError
from denselink.maester.frame_store import FrameStore

Sampling = Literal["frame", "axis"]


def minmax_scale(frame: np.ndarray) -> np.ndarray:
    """Scale one frame to [0, 1] (a constant frame becomes zeros), as float32."""
    frame = np.asarray(frame, dtype=np.float32)
    low, high = float(frame.min()), float(frame.max())
    if high <= low:
        return np.zeros_like(frame)
    return (frame - low) / (high - low)


def _padded_slab(store: FrameStore, seq: int, pad: tuple[int, int, int], box: list[slice]) -> np.ndarray:
    """Region ``box`` (slices in padded (T, H, W) coordinates) of the zero-padded scaled volume."""
    out = np.zeros([s.stop - s.start for s in box], dtype=np.float32)
    inner = []
    for s, n, p in zip(box, store.shapes[seq], pad, strict=True):
        lo = max(s.start - p, 0)
        hi = max(min(s.stop - p, n), lo)
        inner.append((lo, hi, lo + p - s.start))
    (t0, t1, ot), (y0, y1, oy), (x0, x1, ox) = inner
    for t in range(t0, t1):
        out[ot + t - t0, oy : oy + y1 - y0, ox : ox + x1 - x0] = store.region(
            seq, t, slice(y0, y1), slice(x0, x1)
        )
    return out


def _padded(shape: tuple[int, int, int], pad: tuple[int, int, int]) -> tuple[int, int, int]:
    return tuple(n + 2 * p for n, p in zip(shape, pad, strict=True))  # type: ignore[return-value]


def check_volume_fits(
    where: object, shape: tuple[int, int, int], img_size: int, sampling: Sampling, pad: tuple[int, int, int]
) -> None:
    """Raise :class:`ConfigError` naming ``where`` when the padded ``(T, H, W)`` volume is too small."""
    padded = _padded(shape, pad)
    needs = padded[1:] if sampling == "frame" else padded
    if min(needs) < img_size + 2:
        raise ConfigError(
            where,
            f"padded volume {padded} (T, H, W) is too small for {img_size}px crops in "
            f"'{sampling}' sampling (each sampled axis needs img_size + 2)",
        )


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
    """``samples`` random crops ``(1, img_size, img_size)`` per epoch for one rank.

    Item ``epoch * samples + i`` is crop ``i`` of ``epoch`` (:class:`EpochSampler` yields them), so the
    epoch reaches persistent DataLoader workers through the indices alone.
    """

    def __init__(
        self,
        store: FrameStore,
        img_size: int,
        samples: int,
        seed: int,
        rank: int = 0,
        sampling: Sampling = "frame",
        augment: bool = True,
        pad: int = 4,
        pad_time: bool = True,
    ) -> None:
        if not len(store):
            raise ConfigError("--manifest", "no sequences to sample from")
        self.store = store
        self.size, self.samples, self.seed, self.rank = img_size, samples, seed, rank
        self.sampling, self.augment = sampling, augment
        self.pad = (pad if pad_time else 0, pad, pad)
        for seq in range(len(store)):
            self._check(seq)

    def _check(self, seq: int) -> None:
        check_volume_fits(self.store.root / f"seq{seq:05d}.npy", self.store.shapes[seq], self.size,
                          self.sampling, self.pad)  # fmt: skip

    def _padded_shape(self, seq: int) -> tuple[int, int, int]:
        return _padded(self.store.shapes[seq], self.pad)

    def __len__(self) -> int:
        return self.samples

    def __getitem__(self, index: int) -> torch.Tensor:
        epoch, i = divmod(index, self.samples)
        rng = np.random.default_rng([self.seed, epoch, self.rank, i])
        seq = int(rng.integers(len(self.store)))
        axis = 0 if self.sampling == "frame" else int(rng.integers(3))
        crop = torch.from_numpy(self._crop(seq, axis, rng))[None]
        return augment(crop, rng) if self.augment else crop

    def _crop(self, seq: int, axis: int, rng: np.random.Generator) -> np.ndarray:
        size = self.size
        padded = self._padded_shape(seq)
        # the sliced axis takes any index; the two crop axes start in [0, n - size - 1) as in the original
        starts = [int(rng.integers(0, n if a == axis else n - size - 1)) for a, n in enumerate(padded)]
        box = [slice(s, s + size) for s in starts]
        box[axis] = slice(starts[axis], starts[axis] + 1)
        slab = _padded_slab(self.store, seq, self.pad, box)
        return np.ascontiguousarray(np.squeeze(slab, axis=axis))


class EpochSampler(Sampler[int]):
    """Indices of one epoch's crops, ``epoch * samples .. epoch * samples + samples - 1``, in order."""

    def __init__(self, samples: int, epoch: int = 0) -> None:
        self.samples, self.epoch = samples, epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the crops of ``epoch`` (call before iterating the DataLoader)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.samples

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.epoch * self.samples, (self.epoch + 1) * self.samples))
