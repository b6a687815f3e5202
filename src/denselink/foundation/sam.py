"""SAM / muSAM image embeddings: micro_sam's preprocessing, the ViT-B image encoder, grid geometry.

When micro_sam is importable (the GPU environment installs it from conda-forge; elsewhere the
``microsam`` extra), the encoder is micro_sam's own: ``micro_sam.util.get_sam_model`` loads the
weights and ``micro_sam.util.precompute_image_embeddings`` preprocesses and encodes each frame.
Otherwise (the CPU ``.venv``: micro_sam is not installed, or cannot import beside CPU torch without
a matching torchvision) denselink's copy of the same steps runs: :func:`preprocess` is micro_sam's
``_to_image`` plus SAM's ``ResizeLongestSide`` and ``Sam.preprocess``. The setting ``implementation``
chooses explicitly.

``segment_anything``'s package ``__init__`` imports torchvision (for its predictor); only the
modeling code is needed here, so :func:`sam_modeling` registers the package without running its
``__init__`` when torchvision is missing. Every other module imports SAM through this one.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import sys
import types
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from denselink.errors import CheckpointError, ConfigError
from denselink.foundation.weights import fetch_checkpoint, file_hashes, load_encoder_state

log = logging.getLogger(__name__)

PIXEL_MEAN = (123.675, 116.28, 103.53)
PIXEL_STD = (58.395, 57.12, 57.375)


def sam_modeling() -> types.ModuleType:
    """``segment_anything.modeling``, importable with or without torchvision."""
    if "segment_anything" not in sys.modules and importlib.util.find_spec("torchvision") is None:
        spec = importlib.util.find_spec("segment_anything")
        if spec is None or not spec.submodule_search_locations:
            raise ImportError("segment_anything is not installed")
        package = types.ModuleType("segment_anything")
        package.__path__ = list(spec.submodule_search_locations)
        package.__file__ = spec.origin
        sys.modules["segment_anything"] = package
    return importlib.import_module("segment_anything.modeling")


@dataclass(frozen=True)
class EncoderSpec:
    """Architecture of a SAM image encoder (defaults: vit_b, as SAM and micro_sam build it)."""

    img_size: int = 1024
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    patch_size: int = 16
    out_chans: int = 256
    window_size: int = 14

    @property
    def global_attn_indexes(self) -> tuple[int, ...]:
        """Four evenly spaced global-attention blocks ((2, 5, 8, 11) for vit_b's depth 12)."""
        return tuple(sorted({(k + 1) * self.depth // 4 - 1 for k in range(4)} - {-1}))

    @property
    def grid(self) -> int:
        return self.img_size // self.patch_size


def build_encoder(spec: EncoderSpec) -> torch.nn.Module:
    """An (untrained) ``ImageEncoderViT`` of the given architecture."""
    modeling = sam_modeling()
    return modeling.ImageEncoderViT(
        depth=spec.depth,
        embed_dim=spec.embed_dim,
        img_size=spec.img_size,
        mlp_ratio=4,
        norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        num_heads=spec.num_heads,
        patch_size=spec.patch_size,
        qkv_bias=True,
        use_rel_pos=True,
        global_attn_indexes=spec.global_attn_indexes,
        window_size=spec.window_size,
        out_chans=spec.out_chans,
    )


def micro_sam_util() -> types.ModuleType | None:
    """``micro_sam.util`` when micro_sam is installed and importable, else None."""
    if importlib.util.find_spec("micro_sam") is None:
        return None
    try:
        return importlib.import_module("micro_sam.util")
    except ImportError as err:
        log.warning("micro_sam is installed but cannot be imported (%s); using denselink's copy", err)
        return None


class MicroSamEncoder(torch.nn.Module):
    """micro_sam's predictor as an encoder: its preprocessing and image encoder, frame by frame."""

    def __init__(self, predictor: Any, util: types.ModuleType) -> None:
        super().__init__()
        self.predictor = predictor
        self.sam = predictor.model
        self.util = util

    @torch.no_grad()
    def encode(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """``(B, 256, 64, 64)`` embeddings by ``micro_sam.util.precompute_image_embeddings``."""
        features = [
            self.util.precompute_image_embeddings(self.predictor, np.asarray(frame), ndim=2, verbose=False)
            for frame in frames
        ]
        return torch.cat([torch.as_tensor(np.asarray(f["features"])) for f in features])


def _use_micro_sam(implementation: str, spec: EncoderSpec, random_init: bool) -> types.ModuleType | None:
    if implementation == "denselink":
        return None
    util = micro_sam_util()
    if implementation == "micro_sam":
        if util is None:
            raise ConfigError("implementation", "micro_sam is requested but cannot be imported")
        if random_init or spec != EncoderSpec():
            raise ConfigError("implementation", "micro_sam loads released vit_b weights only")
    if random_init or spec != EncoderSpec():
        return None
    return util


def load_encoder(
    model_type: str,
    spec: EncoderSpec,
    checkpoint: str | Path | None = None,
    cache_dir: str | Path | None = None,
    random_init: bool = False,
    seed: int = 0,
    implementation: str = "auto",
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The image encoder in eval mode and a record of where its weights came from.

    Weights come from ``checkpoint`` when given, else from the registry of ``model_type``.
    ``random_init`` (explicit only) skips loading and seeds a random initialisation.
    ``implementation``: ``micro_sam`` (its ``get_sam_model`` and preprocessing), ``denselink``
    (the copy) or ``auto`` (micro_sam when importable for the released vit_b architecture).
    """
    torch.manual_seed(seed)
    util = _use_micro_sam(implementation, spec, random_init)
    info: dict[str, Any] = {"model_type": model_type, "encoder": asdict(spec), "random_init": random_init}
    if util is not None:
        path = Path(checkpoint).expanduser() if checkpoint else fetch_checkpoint(model_type, cache_dir)
        try:
            predictor = util.get_sam_model(model_type=model_type, device="cpu", checkpoint_path=str(path))
        except (ValueError, RuntimeError, KeyError, OSError) as err:
            raise CheckpointError(path, f"micro_sam cannot load these weights ({err})") from err
        version = getattr(importlib.import_module("micro_sam"), "__version__", "unknown")
        hashes = file_hashes(path)
        info.update(
            implementation=f"micro_sam {version}",
            checkpoint=str(path),
            checkpoint_sha256=hashes["sha256"],
            checkpoint_xxh128=hashes["xxh128"],
        )
        log.info("loaded %s encoder with micro_sam %s from %s", model_type, version, path)
        return MicroSamEncoder(predictor, util).eval(), info
    info["implementation"] = "denselink"
    encoder = build_encoder(spec)
    if random_init:
        if checkpoint is not None:
            raise ConfigError("random_init", "random_init and a checkpoint exclude each other")
        log.warning("%s encoder is RANDOMLY INITIALISED (random_init: true, seed %d)", model_type, seed)
        info.update(checkpoint=None, checkpoint_sha256=None)
        return encoder.eval(), info
    path = (
        Path(checkpoint).expanduser() if checkpoint is not None else fetch_checkpoint(model_type, cache_dir)
    )
    state = load_encoder_state(path)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise CheckpointError(path, f"weights do not fit the encoder {asdict(spec)}: {err}") from err
    hashes = file_hashes(path)
    info.update(checkpoint=str(path), checkpoint_sha256=hashes["sha256"], checkpoint_xxh128=hashes["xxh128"])
    log.info("loaded %s encoder from %s (sha256 %s)", model_type, path, hashes["sha256"])
    return encoder.eval(), info


def to_uint8_rgb(frame: np.ndarray) -> np.ndarray:
    """micro_sam's input conversion: replicate to 3 channels, min-max per channel to uint8."""
    image = np.repeat(np.asarray(frame, dtype=np.float32)[..., None], 3, axis=-1)
    image -= image.min(axis=(0, 1))[None, None]
    image /= image.max(axis=(0, 1))[None, None] + 1e-7
    return (image * 255).astype(np.uint8)


def preprocess_shape(height: int, width: int, long_side: int) -> tuple[int, int]:
    """SAM's ``ResizeLongestSide.get_preprocess_shape``: size after scaling the long side."""
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


@dataclass(frozen=True)
class GridGeometry:
    """Where the encoder's token grid lies on the original image.

    The encoder sees the image resized to ``input_size`` and zero-padded to a square; only the
    first ``valid`` grid cells overlap the image. Those cells cover ``extent`` original pixels
    (the image plus less than one cell of padding at the bottom/right).
    """

    image_shape: tuple[int, int]
    input_size: tuple[int, int]
    valid: tuple[int, int]
    extent: tuple[int, int]


def grid_geometry(image_shape: Sequence[int], spec: EncoderSpec) -> GridGeometry:
    """Valid grid part and covered pixel extent for an image of ``image_shape`` (H, W)."""
    height, width = int(image_shape[0]), int(image_shape[1])
    new_h, new_w = preprocess_shape(height, width, spec.img_size)
    valid = (math.ceil(new_h / spec.patch_size), math.ceil(new_w / spec.patch_size))
    extent = (
        max(height, round(valid[0] * spec.patch_size * height / new_h)),
        max(width, round(valid[1] * spec.patch_size * width / new_w)),
    )
    return GridGeometry((height, width), (new_h, new_w), valid, extent)


def preprocess(frame: np.ndarray, spec: EncoderSpec) -> torch.Tensor:
    """One raw 2D frame as the encoder's ``(3, S, S)`` input, exactly as micro_sam prepares it.

    uint8 conversion, PIL bilinear resize of the long side to ``S`` (what SAM's
    ``ResizeLongestSide.apply_image`` does through torchvision), SAM pixel mean/std, zero padding.
    """
    image = to_uint8_rgb(frame)
    new_h, new_w = preprocess_shape(image.shape[0], image.shape[1], spec.img_size)
    resized = np.asarray(Image.fromarray(image).resize((new_w, new_h), Image.BILINEAR))
    tensor = torch.tensor(resized, dtype=torch.float32).permute(2, 0, 1)
    mean = torch.tensor(PIXEL_MEAN).view(3, 1, 1)
    std = torch.tensor(PIXEL_STD).view(3, 1, 1)
    tensor = (tensor - mean) / std
    return torch.nn.functional.pad(tensor, (0, spec.img_size - new_w, 0, spec.img_size - new_h))


@torch.no_grad()
def encode_batch(
    encoder: torch.nn.Module, frames: Sequence[np.ndarray], spec: EncoderSpec, device: torch.device
) -> torch.Tensor:
    """Embeddings ``(B, out_chans, gh, gw)`` of equally shaped frames, cropped to the valid grid part."""
    gh, gw = grid_geometry(frames[0].shape, spec).valid
    if isinstance(encoder, MicroSamEncoder):
        return encoder.to(device).encode(frames).to(device)[:, :, :gh, :gw]
    batch = torch.stack([preprocess(frame, spec) for frame in frames]).to(device)
    return encoder.to(device)(batch)[:, :, :gh, :gw]
