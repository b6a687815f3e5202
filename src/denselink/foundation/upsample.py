"""Feature upsampling from the encoder grid to pixels: AnyUp (tiled), or a declared fallback.

Each upsampler maps features ``(B, C, h, w)`` covering ``extent`` pixels (the image plus less than
one grid cell of padding, see :class:`denselink.foundation.sam.GridGeometry`) to ``(B, C, H, W)``
on the image, guided by the raw frames ``(B, H, W)``.

AnyUp is loaded through ``torch.hub`` (GitHub or a local clone) and run query tile by query tile:
its cross-attention is per output pixel, so tiling the queries bounds memory without changing the
result (the full image and key encoders, whose GroupNorm statistics are global, run untiled).
"""

from __future__ import annotations

import importlib
import logging
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from denselink.errors import CheckpointError

log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def unit_range(frames: np.ndarray) -> torch.Tensor:
    """Frames ``(B, H, W)`` min-max scaled to [0, 1] per frame, float32."""
    x = torch.as_tensor(np.asarray(frames, dtype=np.float32))
    low = x.amin(dim=(-2, -1), keepdim=True)
    high = x.amax(dim=(-2, -1), keepdim=True)
    return (x - low) / (high - low + 1e-7)


def guidance_rgb(frames: np.ndarray, extent: tuple[int, int]) -> torch.Tensor:
    """AnyUp's guidance: grey frames as RGB in [0, 1], ImageNet-normalised, zero-padded to ``extent``."""
    x = unit_range(frames)[:, None].expand(-1, 3, -1, -1)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    x = (x - mean) / std
    return F.pad(x, (0, extent[1] - x.shape[-1], 0, extent[0] - x.shape[-2]))


class Upsampler(Protocol):
    name: str

    def __call__(self, features: torch.Tensor, frames: np.ndarray, extent: tuple[int, int]) -> torch.Tensor:
        """``(B, C, h, w)`` covering ``extent`` -> ``(B, C, H, W)`` on the frames' pixels."""
        ...


class BilinearUpsampler:
    """Plain bilinear interpolation (declared fallback; ignores the image)."""

    name = "bilinear"

    def __call__(self, features: torch.Tensor, frames: np.ndarray, extent: tuple[int, int]) -> torch.Tensor:
        height, width = frames.shape[-2:]
        up = F.interpolate(features, size=extent, mode="bilinear", align_corners=False)
        return up[..., :height, :width]


class GuidedUpsampler:
    """Joint bilateral upsampling (Kopf et al. 2007), vectorised over pixels and channels.

    Each output pixel averages the features of the grid cells within ``2 * sigma_spatial`` cells,
    weighted by a Gaussian of the distance (in cells) and a Gaussian of the difference between its
    intensity and the cell's mean intensity (frames scaled to [0, 1]). Rows are processed in blocks
    of about ``tile_pixels`` pixels to bound memory.
    """

    name = "guided"

    def __init__(
        self, sigma_spatial: float = 1.0, sigma_range: float = 0.1, tile_pixels: int = 65536
    ) -> None:
        self.sigma_spatial = sigma_spatial
        self.sigma_range = sigma_range
        self.tile_pixels = tile_pixels

    def __call__(self, features: torch.Tensor, frames: np.ndarray, extent: tuple[int, int]) -> torch.Tensor:
        height, width = frames.shape[-2:]
        _, _, h, w = features.shape
        guide = unit_range(frames).to(features.device)
        guide = F.pad(guide, (0, extent[1] - width, 0, extent[0] - height), mode="replicate")
        guide_low = F.adaptive_avg_pool2d(guide[:, None], (h, w))[:, 0]
        # output pixel centres in grid-cell coordinates (cell centres at integers)
        py = (torch.arange(height, device=features.device) + 0.5) * h / extent[0] - 0.5
        px = (torch.arange(width, device=features.device) + 0.5) * w / extent[1] - 0.5
        radius = max(1, int(np.ceil(2 * self.sigma_spatial)))
        offsets = range(-radius + 1, radius + 1)
        rows = max(1, self.tile_pixels // width)
        out = torch.empty(features.shape[:2] + (height, width), dtype=features.dtype, device=features.device)
        for y0 in range(0, height, rows):
            y1 = min(height, y0 + rows)
            out[..., y0:y1, :] = self._rows(
                features, guide[:, y0:y1, :width], guide_low, py[y0:y1], px, offsets
            )
        return out

    def _rows(
        self,
        features: torch.Tensor,
        guide: torch.Tensor,
        guide_low: torch.Tensor,
        py: torch.Tensor,
        px: torch.Tensor,
        offsets: range,
    ) -> torch.Tensor:
        _, _, h, w = features.shape
        terms = []
        for dy in offsets:
            qy = torch.floor(py).long() + dy
            for dx in offsets:
                qx = torch.floor(px).long() + dx
                inside = ((qy >= 0) & (qy < h))[:, None] & ((qx >= 0) & (qx < w))[None, :]
                qyc, qxc = qy.clamp(0, h - 1), qx.clamp(0, w - 1)
                dist2 = (py - qyc)[:, None] ** 2 + (px - qxc)[None, :] ** 2
                value = guide_low[:, qyc[:, None], qxc[None, :]]
                logw = -dist2 / (2 * self.sigma_spatial**2) - (guide - value) ** 2 / (2 * self.sigma_range**2)
                terms.append((qyc, qxc, torch.where(inside, logw, torch.full_like(logw, -torch.inf))))
        peak = torch.stack([t[2] for t in terms]).amax(dim=0)
        acc = torch.zeros(features.shape[:2] + peak.shape[-2:], dtype=features.dtype, device=features.device)
        norm = torch.zeros_like(peak)
        for qyc, qxc, logw in terms:
            weight = torch.exp(logw - peak)
            acc += weight[:, None] * features[:, :, qyc[:, None], qxc[None, :]]
            norm += weight
        return acc / norm[:, None]


def load_anyup(
    repo: str = "wimmerth/anyup",
    source: str = "github",
    pretrained: bool = True,
    device: str | torch.device = "cpu",
) -> torch.nn.Module:
    """AnyUp through ``torch.hub`` (``source`` "github" or "local"); any failure is a CheckpointError."""
    try:
        model = torch.hub.load(repo, "anyup", source=source, pretrained=pretrained, trust_repo=True)
    except Exception as err:  # hub raises many types (network, missing dir, bad hubconf)
        raise CheckpointError(repo, f"cannot load AnyUp via torch.hub ({type(err).__name__}: {err})") from err
    block = getattr(model, "cross_decode", None)
    if not all(hasattr(block, name) for name in ("conv2d", "cross_attn", "window_ratio")):
        raise CheckpointError(repo, "AnyUp's standard cross-attention block is required for query tiling")
    log.info("AnyUp loaded from %s (%s, pretrained=%s)", repo, source, pretrained)
    return model.to(device).eval()


def _anyup_helpers(model: torch.nn.Module) -> tuple[object, object]:
    """AnyUp's own coordinate and attention-window functions, from the package the model came from."""
    package = type(model).__module__.split(".")[0]
    img = importlib.import_module(f"{package}.utils.img")
    masking = importlib.import_module(f"{package}.layers.attention.attention_masking")
    return img.create_coordinate, masking.window2d


class AnyUpUpsampler:
    """AnyUp with the output computed in tiles of ``tile_pixels`` query pixels."""

    name = "anyup"

    def __init__(self, model: torch.nn.Module, tile_pixels: int = 4096) -> None:
        self.model = model
        self.tile_pixels = tile_pixels
        self.create_coordinate, self.window2d = _anyup_helpers(model)

    @torch.no_grad()
    def __call__(self, features: torch.Tensor, frames: np.ndarray, extent: tuple[int, int]) -> torch.Tensor:
        height, width = frames.shape[-2:]
        image = guidance_rgb(frames, extent).to(features.device, features.dtype)
        return self.forward_tiled(image, features)[..., :height, :width]

    def forward_tiled(self, image: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """Same result as ``model(image, features)``, with the attention run per query tile."""
        m = self.model
        b, c, h, w = features.shape
        height, width = image.shape[-2:]
        enc = m.image_encoder(image)
        coords = self.create_coordinate(height, width, device=enc.device, dtype=enc.dtype)
        enc = m.rope(enc.flatten(2).transpose(1, 2), coords).transpose(1, 2).reshape(enc.shape)
        q = F.adaptive_avg_pool2d(m.query_encoder(enc), output_size=(height, width))
        k = F.adaptive_avg_pool2d(m.key_encoder(enc), output_size=(h, w))
        k = m.aggregation(torch.cat([k, m.key_features_encoder(F.normalize(features, dim=1))], dim=1))
        block = m.cross_decode
        q = block.conv2d(q).flatten(2).transpose(1, 2)
        k = k.flatten(2).transpose(1, 2)
        v = features.flatten(2).transpose(1, 2)
        if block.window_ratio > 0:
            win = self.window2d((h, w), (height, width), block.window_ratio, device=str(q.device))
            win = win.reshape(height * width, 4)
        rows = torch.arange(h, device=q.device)
        cols = torch.arange(w, device=q.device)
        out = torch.empty(b, height * width, c, dtype=features.dtype, device=features.device)
        for start in range(0, height * width, self.tile_pixels):
            end = min(start + self.tile_pixels, height * width)
            mask = None
            if block.window_ratio > 0:
                r0, r1, c0, c1 = (win[start:end, i : i + 1] for i in range(4))
                inside = ((rows >= r0) & (rows < r1))[:, :, None] & ((cols >= c0) & (cols < c1))[:, None, :]
                mask = ~inside.reshape(end - start, h * w)
            out[:, start:end] = block.cross_attn(q[:, start:end], k, v, mask=mask)[0]
        return out.transpose(1, 2).reshape(b, c, height, width)
