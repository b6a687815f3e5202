"""Settings of ``foundation embed`` (paper: SAM vit_b / muSAM vit_b_lm + AnyUp); importable without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import pydantic

from denselink.settings import StageSettings

if TYPE_CHECKING:
    from denselink.foundation.sam import EncoderSpec


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
    """Where AnyUp comes from and how its output is tiled."""

    repo: str = pydantic.Field("wimmerth/anyup", description="GitHub owner/name, or a local clone directory")
    source: Literal["github", "local"] = pydantic.Field("github", description="torch.hub source")
    pretrained: bool = pydantic.Field(True, description="load AnyUp's released weights (paper checkpoint)")
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
        None, description="download cache (null: micro_sam's cache, else ~/.cache/denselink/models)"
    )
    random_init: bool = pydantic.Field(False, description="random encoder weights (tests and demo only)")
    seed: int = pydantic.Field(0, description="seed of the random initialisation")
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

    @pydantic.model_validator(mode="after")
    def _weights_source(self) -> FoundationSettings:
        if self.random_init and self.checkpoint is not None:
            raise ValueError("random_init and checkpoint exclude each other")
        return self
