"""Settings of ``foundation embed`` (paper: SAM vit_b / muSAM vit_b_lm + AnyUp); importable without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pydantic

from denselink.compression import Compression
from denselink.settings import StageSettings

if TYPE_CHECKING:
    from denselink.foundation.sam import EncoderSpec

# wimmerth/anyup at its newest commit (2026-04-17) and the sha256 of its paper checkpoint
ANYUP_COMMIT = "351807a9c4287368732cc247f26c7c81c9139af4"
ANYUP_WEIGHTS_URL = "https://github.com/wimmerth/anyup/releases/download/checkpoint/anyup_paper.pth"
ANYUP_WEIGHTS_SHA256 = "9d035c0f27114a6f32bdd3d8ed93b6cd39dad4b8f8bf94e69fddbfbf022901b2"


class EncoderOverrides(StageSettings):
    """Architecture of the image encoder. The defaults are vit_b; change them only for tests and the
    miniature demo (with ``random_init: true``), since no released weights fit other sizes."""

    img_size: int = pydantic.Field(1024, description="input side S (long side resized to S, padded to SxS)")
    embed_dim: int = pydantic.Field(768, ge=8, description="ViT width")
    depth: int = pydantic.Field(12, ge=1, description="number of ViT blocks")
    num_heads: int = pydantic.Field(12, ge=1, description="attention heads per block")

    @pydantic.model_validator(mode="after")
    def _consistent(self) -> EncoderOverrides:
        if self.img_size % 16 or self.img_size < 32:
            raise ValueError("img_size must be a multiple of the patch size 16 (and >= 32)")
        if self.embed_dim % self.num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        return self

    def spec(self) -> EncoderSpec:
        """The encoder geometry as :class:`denselink.foundation.sam.EncoderSpec`."""
        from denselink.foundation.sam import EncoderSpec

        return EncoderSpec(
            img_size=self.img_size, embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads
        )


class AnyUpSettings(StageSettings):
    """Where AnyUp comes from (pinned commit, hash-checked weights) and how its output is tiled."""

    repo: str = pydantic.Field(
        "wimmerth/anyup", description="GitHub owner/name (source github), or a local clone directory (local)"
    )
    source: Literal["vendored", "github", "local"] = pydantic.Field(
        "vendored",
        description="vendored: the AnyUp code shipped with denselink (no network); github, local: torch.hub",
    )
    commit: str | None = pydantic.Field(
        ANYUP_COMMIT,
        pattern="^[0-9a-f]{40}$",
        description="full commit of the AnyUp repository (vendored: the shipped copy's; a local git clone "
        "must be checked out at it); null: the default branch, unpinned (github) or unchecked (local)",
    )
    pretrained: bool = pydantic.Field(True, description="load AnyUp's released weights (paper checkpoint)")
    weights_url: str = pydantic.Field(ANYUP_WEIGHTS_URL, description="URL of the weights (paper checkpoint)")
    weights_path: str | None = pydantic.Field(
        None, description="local weights file used instead of downloading weights_url (sha256 still checked)"
    )
    weights_sha256: str | None = pydantic.Field(
        ANYUP_WEIGHTS_SHA256,
        pattern="^[0-9a-f]{64}$",
        description="required sha256 of the weights file; null: not checked (it is recorded either way)",
    )
    tile_pixels: int = pydantic.Field(
        4096, ge=1, description="query pixels per attention tile (memory bound)"
    )


class GuidedSettings(StageSettings):
    """Joint bilateral (guided) upsampler, a declared fallback for AnyUp."""

    sigma_spatial: float = pydantic.Field(1.0, gt=0, description="spatial Gaussian sigma in grid cells")
    sigma_range: float = pydantic.Field(0.1, gt=0, description="intensity Gaussian sigma (frames in [0, 1])")


class FoundationSettings(StageSettings):
    """Settings of ``foundation embed`` (defaults: the paper's SAM vit_b / muSAM vit_b_lm + AnyUp)."""

    model_type: Literal["vit_b", "vit_b_lm"] | None = pydantic.Field(
        None, description="registry weights; null: vit_b for --model sam, vit_b_lm for --model musam"
    )
    checkpoint: str | None = pydantic.Field(None, description="local checkpoint file instead of the registry")
    cache_dir: str | None = pydantic.Field(
        None,
        description="download cache of the encoder and AnyUp weights (null: micro_sam's cache, else "
        "~/.cache/denselink/models, and torch.hub's checkpoints folder for AnyUp)",
    )
    implementation: Literal["auto", "micro_sam", "denselink"] = pydantic.Field(
        "auto",
        description="micro_sam: its get_sam_model and preprocessing; denselink: the copy of both; "
        "auto: micro_sam when importable (released vit_b architecture), else the copy",
    )
    random_init: bool = pydantic.Field(False, description="random encoder weights (tests and demo only)")
    seed: int = pydantic.Field(0, ge=0, lt=2**32, description="seed of the random initialisation")
    encoder: EncoderOverrides = pydantic.Field(default_factory=EncoderOverrides)
    upsampler: Literal["anyup", "bilinear", "guided"] = pydantic.Field(
        "anyup", description="anyup (paper) or a declared fallback: bilinear | guided"
    )
    anyup: AnyUpSettings = pydantic.Field(default_factory=AnyUpSettings)
    guided: GuidedSettings = pydantic.Field(default_factory=GuidedSettings)
    batch_size: int = pydantic.Field(1, ge=1, description="frames per encoder/upsampler batch")
    device: str = pydantic.Field(
        "auto", description="auto (cuda when the job requested GPUs, else cpu) | cpu | cuda[:N]"
    )
    chunk: int = pydantic.Field(256, ge=1, description="zarr chunk side in pixels (tileY = tileX)")
    compression: Compression = pydantic.Field(
        "blosc-zstd", description="lossless codec of the volume: blosc-zstd (bit-shuffled), zstd or none"
    )
    compression_level: int = pydantic.Field(5, ge=1, le=9, description="level of the compression codec")

    @pydantic.model_validator(mode="after")
    def _weights_source(self) -> FoundationSettings:
        if self.random_init and self.checkpoint is not None:
            raise ValueError("random_init and checkpoint exclude each other")
        return self
