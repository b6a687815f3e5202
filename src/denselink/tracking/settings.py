"""Trackastra settings: the paper's training run as defaults, plus fusion and protocol keys.

The defaults are trackastra's ``scripts/train.py`` defaults overridden by the example config the
authors trained with (window 6, 5+5 layers, crop 256, max_tokens 2048, dropout 0.01). One model
serves ``tracking prepare``, ``tracking train`` and ``tracking evaluate``, so the Snakefile passes
the same config section to all three.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from denselink.settings import StageSettings
from denselink.vocabulary import FUSIONS

FusionOrNone = Literal[("none", *FUSIONS)]  # type: ignore[valid-type]
DATA_KEYS = ("window", "features", "ndim")


def min_frames(window: int, val_fraction: float) -> int:
    """Fewest frames a training sequence needs: one window; with ``val_fraction`` > 0, a train window
    before a held-out tail of ``max(window, ceil(val_fraction * n))`` frames (``train.split_tail``).
    """
    n = window
    while val_fraction > 0 and n - max(window, math.ceil(val_fraction * n)) < window:
        n += 1
    return n


class TrackastraSettings(StageSettings):
    """Hyperparameters of trackastra's data, model, training and greedy linking."""

    # data (these define the cached per-sequence data of `tracking prepare`)
    window: int = Field(6, ge=2, description="Frames per window (train.py --window).")
    features: Literal["wrfeat"] = Field("wrfeat", description="Shallow per-cell features (7 in 2D).")
    ndim: Literal[2] = Field(2, description="Spatial dimensions of the data.")
    prepare_parallel: bool = Field(
        False, description="Extract wrfeat with trackastra's 8 joblib jobs as threads (else sequential)."
    )
    # model (trackastra.model.TrackingTransformer)
    d_model: int = Field(256, ge=4, description="Token width (train.py --d_model).")
    nhead: int = Field(4, ge=1, description="Attention heads (TrackingTransformer default).")
    num_encoder_layers: int = Field(5, ge=0, description="Encoder layers.")
    num_decoder_layers: int = Field(5, ge=0, description="Decoder layers.")
    dropout: float = Field(0.01, ge=0, lt=1, description="Dropout in attention.")
    pos_embed_per_dim: int = Field(32, ge=1, description="Sinusoidal embedding size per coordinate.")
    feat_embed_per_dim: int = Field(8, ge=2, description="Sinusoidal embedding size per wrfeat feature.")
    spatial_pos_cutoff: int = Field(256, ge=1, description="Spatial attention / linking cutoff in pixels.")
    attn_positional_bias: Literal["rope", "bias", "none"] = Field("rope", description="Positional bias.")
    attn_positional_bias_n_spatial: int = Field(16, ge=1, description="Spatial bins of the bias.")
    attn_dist_mode: str = Field("v0", description="trackastra's attention distance mode.")
    causal_norm: Literal["none", "linear", "softmax", "quiet_softmax"] = Field(
        "quiet_softmax", description="Normalisation of the association matrix (loss and linking)."
    )
    # training (train.py WrappedLightningModule + BalancedDataModule)
    epochs: int = Field(100, ge=1, description="Training epochs; a checkpoint is written after each.")
    warmup_epochs: int = Field(10, ge=0, description="Linear warm-up epochs before the cosine decay.")
    lr: float = Field(1e-4, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(1e-5, ge=0, description="AdamW weight decay (train.py constant).")
    cosine_final: float = Field(0.001, ge=0, le=1, description="Final lr factor of the cosine schedule.")
    batch_size: int = Field(8, ge=1, description="Windows per batch.")
    train_samples: int = Field(50000, ge=1, description="Windows drawn (with replacement) per epoch.")
    n_pool_sampler: int = Field(8, ge=1, description="Batches per size-sorted pool of the sampler.")
    weight_by_ndivs: bool = Field(True, description="Oversample windows with divisions.")
    crop_size: list[int] | None = Field([256, 256], description="Random crop (y, x) of each window.")
    max_tokens: int | None = Field(2048, ge=1, description="Clip windows to this many detections.")
    augment: Literal[0, 1, 2, 3] = Field(3, description="wrfeat augmentation level.")
    delta_cutoff: int = Field(2, ge=1, description="Largest frame distance that enters the loss.")
    div_upweight: float = Field(2.0, ge=0, description="Loss weight of division links.")
    mixed_precision: bool = Field(True, description="16-bit mixed precision on GPU (always fp32 on CPU).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Training device; auto: cuda when the job requested GPUs, else cpu."
    )
    early_stopping: bool = Field(
        False,
        description="Stop after max(1, epochs//6) epochs without a lower val_loss (retrained baseline).",
    )
    val_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Hold out this last fraction of the training frames for val_loss "
        "(windows fully inside the tail); 0 trains on all frames as the authors did.",
    )
    # fusion of learned per-cell features (denselink.tracking.fusion)
    fusion: FusionOrNone = Field(
        "none",
        description="none; add_wrfeat (paper: Linear(D->7) added to the wrfeat features); "
        "add_token (authors' code: Linear(D->d_model) added after the input projection + LayerNorm); "
        "concat (MLP-reduced features concatenated before the input projection); etultra (trackastra's "
        "own pretrained-feature model: Linear + LayerNorm, concatenated, float32 input projection).",
    )
    normalize: Literal["none", "zscore", "l2"] = Field(
        "none",
        description="Learned-feature normalisation: none (authors), zscore (per column, training-table "
        "statistics stored in the checkpoint) or l2 (unit length per cell).",
    )
    concat_dim: int = Field(16, ge=1, description="Width the concat MLP reduces learned features to.")
    concat_hidden: int = Field(64, ge=1, description="Hidden width of the concat MLP.")
    etultra_dim: int = Field(
        128, ge=1, description="Width etultra reduces learned features to (reduced_pretrained_feat_dim)."
    )
    # linking
    link_mode: Literal["greedy", "greedy_nodiv"] = Field("greedy", description="trackastra linking mode.")
    edge_threshold: float = Field(0.05, ge=0, le=1, description="Smallest association kept as an edge.")

    def data_key(self) -> dict[str, Any]:
        """The settings a prepared cache depends on."""
        return {key: getattr(self, key) for key in DATA_KEYS}

    def transformer_kwargs(self, feat_dim: int) -> dict[str, Any]:
        """Keyword arguments of ``trackastra.model.TrackingTransformer``."""
        return dict(
            coord_dim=self.ndim,
            feat_dim=feat_dim,
            d_model=self.d_model,
            nhead=self.nhead,
            num_encoder_layers=self.num_encoder_layers,
            num_decoder_layers=self.num_decoder_layers,
            dropout=self.dropout,
            pos_embed_per_dim=self.pos_embed_per_dim,
            feat_embed_per_dim=self.feat_embed_per_dim,
            window=self.window,
            spatial_pos_cutoff=self.spatial_pos_cutoff,
            attn_positional_bias=self.attn_positional_bias,
            attn_positional_bias_n_spatial=self.attn_positional_bias_n_spatial,
            causal_norm=self.causal_norm,
            attn_dist_mode=self.attn_dist_mode,
        )
