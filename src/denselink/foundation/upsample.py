"""Feature upsampling from the encoder grid to pixels: AnyUp (tiled), or a declared fallback.

Each upsampler maps features ``(B, C, h, w)`` covering ``extent`` pixels (the image plus less than
one grid cell of padding, see :class:`denselink.foundation.sam.GridGeometry`) to ``(B, C, H, W)``
on the image, guided by the raw frames ``(B, H, W)``.

AnyUp's model code ships with denselink (``denselink.foundation.anyup``, the upstream files at
``ANYUP_COMMIT``, CC BY 4.0); ``torch.hub`` (GitHub at a pinned commit, or a local clone) is the
alternative source. Its weights are checked against a pinned sha256, and it runs query tile by query tile:
its cross-attention is per output pixel, so tiling the queries bounds memory without changing the
result (the full image and key encoders, whose GroupNorm statistics are global, run untiled).
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from denselink.atomic import atomic_path
from denselink.errors import CheckpointError
from denselink.foundation.settings import ANYUP_COMMIT, ANYUP_WEIGHTS_SHA256, ANYUP_WEIGHTS_URL
from denselink.foundation.weights import file_hashes

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


def hub_spec(repo: str, source: str, commit: str | None) -> str:
    """The ``torch.hub`` repository argument: ``owner/name:commit`` on GitHub, the folder when local."""
    return f"{repo}:{commit}" if source == "github" and commit else repo


def local_commit(folder: str | Path) -> str | None:
    """The checked-out commit of a local clone, or None when the folder is not a git checkout."""
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return result.stdout.strip() or None


def fetch_anyup_weights(
    url: str, sha256: str | None, cache_dir: str | Path | None = None, local_path: str | Path | None = None
) -> tuple[Path, str]:
    """The AnyUp weights file and its sha256, checked when given.

    ``local_path`` is used as it is; otherwise ``url`` is downloaded once into the cache.
    """
    if local_path is not None:
        target = Path(local_path).expanduser()
        if not target.is_file():
            raise CheckpointError(target, "anyup.weights_path is not an existing file")
    else:
        cache = Path(cache_dir).expanduser() if cache_dir else Path(torch.hub.get_dir()) / "checkpoints"
        target = cache / Path(urllib.parse.urlparse(url).path).name
    if not target.is_file():
        log.info("downloading AnyUp weights %s", url)
        try:
            with atomic_path(target) as tmp:
                torch.hub.download_url_to_file(url, str(tmp), progress=False)
        except OSError as err:
            raise CheckpointError(url, f"cannot download AnyUp weights ({err})") from err
    actual = file_hashes(target)["sha256"]
    if sha256 is not None and actual != sha256:
        raise CheckpointError(
            target,
            f"sha256 {actual} is not the configured anyup.weights_sha256 {sha256}; delete or re-pin it",
        )
    return target, actual


def vendored_anyup(commit: str | None) -> torch.nn.Module:
    """AnyUp built from the copy shipped with denselink (upstream ``hubconf.anyup(pretrained=False)``)."""
    if commit is not None and commit != ANYUP_COMMIT:
        raise CheckpointError(
            "anyup.commit", f"{commit} is not the shipped AnyUp ({ANYUP_COMMIT}); use source github or local"
        )
    from denselink.foundation.anyup.model import AnyUp

    return AnyUp()


def hub_anyup(repo: str, source: str, commit: str | None) -> torch.nn.Module:
    """AnyUp through ``torch.hub`` from GitHub at ``commit`` or from a local clone."""
    try:
        return torch.hub.load(
            hub_spec(repo, source, commit), "anyup", source=source, pretrained=False, trust_repo=True,
            **({"skip_validation": True} if source == "github" else {}),
        )  # fmt: skip
    except Exception as err:  # hub raises many types (network, missing dir, bad hubconf)
        raise CheckpointError(repo, f"cannot load AnyUp via torch.hub ({type(err).__name__}: {err})") from err


def load_anyup(
    repo: str = "wimmerth/anyup",
    source: str = "vendored",
    pretrained: bool = True,
    device: str | torch.device = "cpu",
    commit: str | None = ANYUP_COMMIT,
    weights_url: str = ANYUP_WEIGHTS_URL,
    weights_sha256: str | None = ANYUP_WEIGHTS_SHA256,
    cache_dir: str | Path | None = None,
    weights_path: str | Path | None = None,
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """AnyUp at ``commit``, with hash-checked weights, and its provenance.

    ``source`` "vendored" builds the copy shipped with denselink (``commit`` must be its commit or
    None); "github" downloads the repository at ``commit`` through ``torch.hub`` (the default branch
    when None); "local" uses a clone, whose checked-out commit must equal ``commit`` when it is a git
    checkout. Weights come from ``weights_path`` when given, else from ``weights_url`` (cached).
    Provenance: ``anyup_repo``, ``anyup_commit`` (None when unknown), ``anyup_weights_url`` (the
    local path when given) and ``anyup_weights_sha256`` (None without pretrained weights). Any failure
    is a CheckpointError.
    """
    if source == "vendored":
        model, commit = vendored_anyup(commit), ANYUP_COMMIT
    else:
        if source == "local":
            checked_out = local_commit(repo)
            if commit and checked_out and checked_out != commit:
                raise CheckpointError(repo, f"checked out at {checked_out}, but anyup.commit is {commit}")
            if checked_out is None:
                log.warning("AnyUp folder %s is no git checkout: its commit is not verified", repo)
            commit = checked_out
        elif commit is None:
            log.warning("AnyUp is loaded from the default branch of %s (anyup.commit null): unpinned", repo)
        model = hub_anyup(repo, source, commit)
    block = getattr(model, "cross_decode", None)
    if not all(hasattr(block, name) for name in ("conv2d", "cross_attn", "window_ratio")):
        raise CheckpointError(repo, "AnyUp's standard cross-attention block is required for query tiling")
    provenance: dict[str, Any] = {
        "anyup_repo": repo,
        "anyup_commit": commit,
        "anyup_weights_url": None,
        "anyup_weights_sha256": None,
    }
    if pretrained:
        path, sha256 = fetch_anyup_weights(weights_url, weights_sha256, cache_dir, weights_path)
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except (RuntimeError, EOFError, ValueError) as err:
            raise CheckpointError(path, f"not AnyUp's weights ({type(err).__name__}: {err})") from err
        source_of_weights = str(path) if weights_path is not None else weights_url
        provenance.update(anyup_weights_url=source_of_weights, anyup_weights_sha256=sha256)
    log.info("AnyUp loaded: %s", provenance)
    return model.to(device).eval(), provenance


def _anyup_helpers(model: torch.nn.Module) -> tuple[object, object]:
    """AnyUp's own coordinate and attention-window functions, from the package the model came from."""
    package = type(model).__module__.rsplit(".", 1)[0]  # "anyup" (hub) or "denselink.foundation.anyup"
    img = importlib.import_module(f"{package}.utils.img")
    masking = importlib.import_module(f"{package}.layers.attention.attention_masking")
    return img.create_coordinate, masking.window2d


class AnyUpUpsampler:
    """AnyUp with the output computed in tiles of ``tile_pixels`` query pixels."""

    name = "anyup"

    def __init__(
        self, model: torch.nn.Module, tile_pixels: int = 4096, provenance: dict[str, Any] | None = None
    ) -> None:
        self.model = model
        self.tile_pixels = tile_pixels
        self.provenance = provenance or {}
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
