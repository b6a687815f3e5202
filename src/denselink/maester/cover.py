"""Cover-and-stride: dense per-pixel embeddings from a patch-token encoder (MAESTER, Xie et al. 2023).

An ``S x S`` field of view (FOV) gives a ``G x G`` grid of patch tokens (``G = S / p``). Only the central
``cp x cp`` tokens are kept (edge bias). Shifting the FOV by 1 px ``p`` times ("cover") places a kept token
on every pixel of a ``cp*p`` square; the FOV then jumps ahead ("stride"). The walk is the original one:
``p`` one-pixel shifts, then a jump of ``cp*p - p`` (so blocks overlap by one pixel and the later window
wins), then single-pixel steps once a jump would leave the image.

Two placements:
- default: pixel ``(y, x)`` receives the token whose patch is centred on it;
- ``legacy_offset``: the authors' placement (pad ``cp``-centre + ``p//2``, cls token removed twice), where the
  token stored at ``(y, x)`` is centred at ``(y - p//2, x + p - p//2)``, i.e. ``(y-2, x+3)`` for ``p = 5``.

An encoder is any callable mapping ``(N, 1, S, S)`` float crops to ``(N, G*G, C)`` patch tokens.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from denselink.errors import ConfigError

Encoder = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class CoverGeometry:
    """FOV size, patch size and kept central tokens, plus the placement convention."""

    img_size: int = 80
    patch_size: int = 5
    central_patch: int = 4
    legacy_offset: bool = False

    def __post_init__(self) -> None:
        if self.patch_size % 2 == 0:
            raise ConfigError("patch_size", f"must be odd for cover-and-stride, got {self.patch_size}")
        if self.img_size % self.patch_size:
            raise ConfigError(
                "img_size", f"{self.img_size} is not a multiple of patch_size {self.patch_size}"
            )
        if not 0 < self.central_patch <= self.grid:
            raise ConfigError("central_patch", f"must be in [1, {self.grid}], got {self.central_patch}")
        last = self.token_index(self.central_patch - 1, self.central_patch - 1)
        if last >= self.grid**2:
            raise ConfigError(
                "legacy_offset", f"the shifted token index {last} exceeds the {self.grid}x{self.grid} grid"
            )

    @property
    def grid(self) -> int:
        """Tokens per FOV side."""
        return self.img_size // self.patch_size

    @property
    def first(self) -> int:
        """Grid row/column of the first kept token."""
        return (self.grid - self.central_patch) // 2

    @property
    def pad(self) -> int:
        """Zero padding before the image (and after it in legacy mode)."""
        centre = self.first * self.patch_size + self.patch_size // 2
        return centre + (self.patch_size // 2 if self.legacy_offset else 0)

    def token_index(self, r: int | np.ndarray, c: int | np.ndarray) -> int | np.ndarray:
        """Flat token index of kept token ``(r, c)`` (legacy: one further, the double cls removal)."""
        shift = 1 if self.legacy_offset else 0
        return (self.first + r) * self.grid + self.first + c + shift


def window_walk(padded_length: int, geometry: CoverGeometry) -> list[int]:
    """FOV start positions along one axis, in the original order (cover, then stride)."""
    p, limit = geometry.patch_size, padded_length - geometry.img_size + 1
    jump = geometry.central_patch * p - p
    starts, i, count = [], 0, 0
    while i < limit:
        starts.append(i)
        count += 1
        if count == p and i + jump < limit:
            i, count = i + jump, 0
        else:
            i += 1
    return starts


def _axis_placement(length: int, pad_after: int, geometry: CoverGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Walk index and kept-token offset that write each of ``length`` pixels last (-1: never written)."""
    walk = window_walk(length + geometry.pad + pad_after, geometry)
    window = np.full(length, -1, dtype=np.int64)
    offset = np.zeros(length, dtype=np.int64)
    for k, start in enumerate(walk):
        for r in range(geometry.central_patch):
            pos = start + r * geometry.patch_size
            if pos < length:
                window[pos], offset[pos] = k, r
    return np.asarray(walk, dtype=np.int64), np.stack([window, offset])


@dataclass(frozen=True)
class CoverPlan:
    """Which FOV and which kept token fills every pixel of an ``(H, W)`` image."""

    geometry: CoverGeometry
    shape: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right
    starts_h: np.ndarray  # used FOV starts (padded coordinates)
    starts_w: np.ndarray
    window_h: np.ndarray  # (H,) index into starts_h, -1 where no token lands
    window_w: np.ndarray
    token_r: np.ndarray  # (H,) kept-token row
    token_c: np.ndarray

    @property
    def n_windows(self) -> int:
        """FOV evaluations needed for one frame."""
        return len(self.starts_h) * len(self.starts_w)


def _pad_after(length: int, geometry: CoverGeometry) -> int:
    """Legacy: symmetric. Default: the smallest extra padding for which every pixel receives a token."""
    if geometry.legacy_offset:
        return geometry.pad
    pad = geometry.pad
    while (_axis_placement(length, pad, geometry)[1][0] < 0).any():
        pad += 1
    return pad


def plan_cover(shape: tuple[int, int], geometry: CoverGeometry) -> CoverPlan:
    """The cover-and-stride placement for an image of ``shape``; only FOVs whose tokens survive are kept."""
    height, width = shape
    if geometry.legacy_offset and min(height, width) + 2 * geometry.pad < geometry.img_size:
        raise ConfigError("image", f"{shape} is too small for a {geometry.img_size}px FOV in legacy mode")
    axes = []
    for length in (height, width):
        after = _pad_after(length, geometry)
        walk, (window, offset) = _axis_placement(length, after, geometry)
        used = np.unique(window[window >= 0])
        remap = np.full(len(walk), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        axes.append((after, walk[used], np.where(window >= 0, remap[window], -1), offset))
    (after_h, starts_h, window_h, token_r), (after_w, starts_w, window_w, token_c) = axes
    return CoverPlan(
        geometry, (height, width), (geometry.pad, after_h, geometry.pad, after_w),
        starts_h, starts_w, window_h, window_w, token_r, token_c,
    )  # fmt: skip


def _as_tensor(frame: np.ndarray, device: torch.device | str) -> torch.Tensor:
    if frame.ndim != 2:
        raise ValueError(f"expected a 2D frame, got shape {frame.shape}")
    return torch.as_tensor(np.asarray(frame, dtype=np.float32), device=device)


def cover_and_stride_reference(
    encoder: Encoder,
    frame: np.ndarray,
    geometry: CoverGeometry = CoverGeometry(),
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Literal cover-and-stride: one encoder call per FOV position, tokens written in walk order.

    Returns ``(C, H, W)`` float32; pixels no FOV writes stay zero (possible only in legacy mode).
    """
    g, p, cp = geometry, geometry.patch_size, geometry.central_patch
    height, width = frame.shape
    after_h, after_w = _pad_after(height, g), _pad_after(width, g)
    padded = F.pad(_as_tensor(frame, device), (g.pad, after_w, g.pad, after_h))
    adj_h, adj_w = padded.shape
    rows, cols = np.meshgrid(np.arange(cp), np.arange(cp), indexing="ij")
    kept = torch.as_tensor(np.asarray(g.token_index(rows, cols)).reshape(-1), device=device)
    d_rows = torch.as_tensor(rows.reshape(-1) * p, device=device)
    d_cols = torch.as_tensor(cols.reshape(-1) * p, device=device)
    out: torch.Tensor | None = None
    with torch.no_grad():
        i_h, h_count = 0, 0
        while i_h < adj_h - g.img_size + 1:
            i_w, w_count = 0, 0
            while i_w < adj_w - g.img_size + 1:
                window = padded[i_h : i_h + g.img_size, i_w : i_w + g.img_size]
                tokens = encoder(window[None, None])[0].float()
                if out is None:
                    out = torch.zeros(tokens.shape[1], adj_h, adj_w, device=device)
                out[:, i_h + d_rows, i_w + d_cols] = tokens[kept].T
                w_count += 1
                if w_count == p and i_w + cp * p - p < adj_w - g.img_size + 1:
                    i_w, w_count = i_w + cp * p - p, 0
                else:
                    i_w += 1
            h_count += 1
            if h_count == p and i_h + cp * p - p < adj_h - g.img_size + 1:
                i_h, h_count = i_h + cp * p - p, 0
            else:
                i_h += 1
    if out is None:
        raise ConfigError("image", f"{frame.shape} is too small for a {g.img_size}px FOV in legacy mode")
    return out[:, :height, :width].cpu().numpy()


def cover_and_stride(
    encoder: Encoder,
    frame: np.ndarray,
    geometry: CoverGeometry = CoverGeometry(),
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    autocast_dtype: torch.dtype | None = None,
    progress: bool = False,
) -> np.ndarray:
    """Fast cover-and-stride: all needed FOVs in large batches, then one gather. Same result as the reference.

    ``frame`` is a 2D float image (already normalised); returns ``(C, H, W)`` float32 embeddings.
    ``autocast_dtype`` (CUDA only) runs the encoder in bf16/fp16.
    """
    plan = plan_cover(frame.shape, geometry)
    g = geometry
    top, bottom, left, right = plan.pads
    padded = F.pad(_as_tensor(frame, device), (left, right, top, bottom))
    fovs = padded.unfold(0, g.img_size, 1).unfold(1, g.img_size, 1)  # (Lh, Lw, S, S) view
    starts_h = torch.as_tensor(plan.starts_h, device=device)
    starts_w = torch.as_tensor(plan.starts_w, device=device)

    token_ids = np.asarray(g.token_index(plan.token_r[:, None], plan.token_c[None, :]))
    needed, slot = np.unique(token_ids, return_inverse=True)
    slot = slot.reshape(token_ids.shape)
    needed_t = torch.as_tensor(needed, device=device)

    n_w = len(plan.starts_w)
    tokens: torch.Tensor | None = None
    amp = (
        torch.autocast(device_type="cuda", dtype=autocast_dtype)
        if autocast_dtype is not None
        else contextlib.nullcontext()
    )
    batches = range(0, plan.n_windows, batch_size)
    with torch.no_grad(), amp:
        for begin in tqdm(batches, desc="cover-and-stride", leave=False, disable=not progress):
            ids = torch.arange(begin, min(begin + batch_size, plan.n_windows), device=device)
            batch = fovs[starts_h[ids // n_w], starts_w[ids % n_w]].unsqueeze(1)
            out = encoder(batch)[:, needed_t].float()
            if tokens is None:
                tokens = torch.empty(plan.n_windows, len(needed), out.shape[-1], device=device)
            tokens[ids] = out
    assert tokens is not None
    rows = torch.as_tensor(np.maximum(plan.window_h, 0), device=device)
    cols = torch.as_tensor(np.maximum(plan.window_w, 0), device=device)
    window = rows[:, None] * n_w + cols[None, :]
    dense = tokens[window, torch.as_tensor(slot, device=device)]  # (H, W, C)
    covered = torch.as_tensor((plan.window_h[:, None] >= 0) & (plan.window_w[None, :] >= 0), device=device)
    dense = dense * covered[..., None]
    return dense.permute(2, 0, 1).contiguous().cpu().numpy()
