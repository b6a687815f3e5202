"""Settings of the MAESTER commands (paper Table 2 as defaults); importable without torch."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from denselink.compression import Compression
from denselink.errors import ConfigError
from denselink.settings import StageSettings


class MaesterModelSettings(StageSettings):
    """MAESTER architecture (paper Table 2); every key is a constructor argument of the model."""

    img_size: int = Field(80, gt=0, description="Side of the square field of view (FOV) in pixels.")
    patch_size: int = Field(5, gt=0, description="Side of a square patch; must be odd for cover-and-stride.")
    embed_dim: int = Field(192, gt=0, description="Encoder token width (the embedding dimension C).")
    depth: int = Field(14, gt=0, description="Number of encoder transformer blocks.")
    num_heads: int = Field(1, gt=0, description="Attention heads per encoder block.")
    decoder_embed_dim: int = Field(128, gt=0, description="Decoder token width.")
    decoder_depth: int = Field(7, gt=0, description="Number of decoder transformer blocks.")
    decoder_num_heads: int = Field(8, gt=0, description="Attention heads per decoder block.")
    mlp_ratio: float = Field(2.0, gt=0, description="MLP hidden width as a multiple of the token width.")
    mask_ratio: float = Field(0.5, ge=0, lt=1, description="Fraction of patches masked during pretraining.")
    pos_encode_w: float = Field(
        0.08, description="Weight of the encoder's fixed 2D sin-cos position embedding (decoder: 1)."
    )

    @field_validator("patch_size")
    @classmethod
    def _odd_patch(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"patch_size must be odd for cover-and-stride inference, got {value}")
        return value

    def check(self, where: str = "--settings model") -> MaesterModelSettings:
        """Raise :class:`ConfigError` when the geometry or widths do not fit together."""
        problems = []
        if self.img_size % self.patch_size:
            problems.append(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.embed_dim % 4:
            problems.append(f"embed_dim {self.embed_dim} must be a multiple of 4 (2D sin-cos embedding)")
        if self.decoder_embed_dim % 4:
            problems.append(f"decoder_embed_dim {self.decoder_embed_dim} must be a multiple of 4")
        if self.embed_dim % self.num_heads:
            problems.append(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.decoder_embed_dim % self.decoder_num_heads:
            problems.append(
                f"decoder_embed_dim {self.decoder_embed_dim} is not divisible by "
                f"decoder_num_heads {self.decoder_num_heads}"
            )
        if problems:
            raise ConfigError(where, "; ".join(problems))
        return self

    @property
    def grid_size(self) -> int:
        """Patches per FOV side."""
        return self.img_size // self.patch_size


PAPER_SAVE_EPOCHS = [
    49,
    149,
    449,
    1399,
    2399,
    4399,
    6399,
    8399,
    10399,
    12399,
    14399,
    16399,
    16599,
    17599,
    18249,
]


class MaesterTrainSettings(StageSettings):
    """Pretraining schedule and data sampling (paper Table 2 and the authors' fork)."""

    batch_size: int = Field(32, gt=0, description="Crops per optimisation step and process (4 GPUs: 128).")
    lr: float = Field(6e-5, gt=0, description="AdamW learning rate (constant, no schedule).")
    weight_decay: float = Field(1e-5, ge=0, description="AdamW weight decay.")
    samples_per_epoch: int = Field(20000, gt=0, description="Crops per epoch, split over all processes.")
    epochs: int = Field(
        18250, gt=0, description="Epochs to train (the last paper checkpoint is epoch 18249)."
    )
    save_epochs: list[int] = Field(
        default_factory=lambda: list(PAPER_SAVE_EPOCHS),
        description="0-based epochs after which checkpoints/epoch{N}.pt is kept (paper Appendix C).",
    )
    save_initial: bool = Field(
        False,
        description="Also keep the seeded initial weights, before any step, as checkpoints/init.pt "
        "(the random-weight control, variant maester-RUN-init).",
    )
    sampling: Literal["frame", "axis"] = Field(
        "frame",
        description="'frame': a crop is one time frame (fork); 'axis': random volume axis (original).",
    )
    augment: bool = Field(True, description="Random half-size crop resized back, plus a random flip.")
    pad: int = Field(4, ge=0, description="Zero padding of the volume on every axis before cropping.")
    pad_time: bool = Field(True, description="Also pad the time axis (the fork does: all-zero frames).")
    num_workers: int = Field(
        2, ge=0,
        description="DataLoader worker processes per training process, kept alive across epochs "
        "(0: crops are cut in the training process).",
    )  # fmt: skip
    keep_frame_store: bool = Field(
        False, description="Keep {out}/frames (the decoded, uncompressed frames) after the last epoch."
    )
    seed: int = Field(
        42, ge=0, lt=2**32, description="Seeds weights, crops and masks (crops: seed, epoch, rank, index)."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto': cuda when the job requested GPUs, else cpu (denselink.device)."
    )

    @model_validator(mode="after")
    def _save_epochs_in_range(self) -> MaesterTrainSettings:
        outside = [e for e in self.save_epochs if not 0 <= e < self.epochs]
        if outside:
            raise ValueError(f"save_epochs {outside} are outside [0, epochs={self.epochs})")
        return self


class MaesterSettings(StageSettings):
    """``--settings`` of ``maester train``: ``{"model": {...}, "train": {...}}``."""

    model: MaesterModelSettings = Field(default_factory=MaesterModelSettings)
    train: MaesterTrainSettings = Field(default_factory=MaesterTrainSettings)


class MaesterInferSettings(StageSettings):
    """Cover-and-stride inference (paper Table 2: central_patch 4)."""

    central_patch: int = Field(
        4, gt=0, description="Kept central tokens per FOV side (4 of 16 in the paper)."
    )
    batch_size: int = Field(256, gt=0, description="FOVs per encoder call.")
    legacy_offset: bool = Field(
        False,
        description="Reproduce the authors' placement: the token stored at (y, x) is centred at "
        "(y - p//2, x + p - p//2), i.e. (y-2, x+3) for p = 5. Default: centred on (y, x).",
    )
    autocast: Literal["auto", "off", "bf16", "fp16"] = Field(
        "auto", description="Encoder precision on CUDA ('auto': bf16 when supported, else fp16); CPU: fp32."
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="'auto': cuda when the job requested GPUs, else cpu (denselink.device)."
    )
    tile: int = Field(
        256, gt=0, description="Spatial chunk side of the zarr array (chunks (1, C, tile, tile))."
    )
    compression: Compression = Field(
        "blosc-zstd", description="Lossless codec of the volume: blosc-zstd (bit-shuffled), zstd or none."
    )
    compression_level: int = Field(5, ge=1, le=9, description="Level of the compression codec.")
