"""Trackastra with learned per-cell features, and the data side that joins them to detections.

Learned features ride along as extra columns of trackastra's ``features`` tensor (wrfeat first,
then the D learned columns), so trackastra's windows, crops, augmentation, token clipping,
padding and prediction code carry them unchanged. :class:`FusedTrackingTransformer` splits the
columns again and fuses them as :data:`FUSION_IMPLEMENTATIONS` says for its mode (one entry per mode
of :data:`denselink.vocabulary.FUSIONS`; importing this module fails while a mode has none):

- ``add_wrfeat`` (paper text): ``wrfeat + Linear(D -> 7)(f)`` before trackastra's feature embedding;
- ``add_token`` (authors' code): ``LayerNorm(proj(...)) + Linear(D -> d_model)(f)``, feeding encoder
  and decoder;
- ``concat`` (as trackastra-pretrained-feats): ``MLP(D -> k)(f)`` concatenated to the embedded
  features before the input projection (which grows by k inputs);
- ``etultra`` (trackastra's own pretrained-feature model, ``TrackingTransformerwPretrainedFeats`` of
  trackastra-pretrained-feats): ``LayerNorm(Linear(D -> 128)(f))`` concatenated to the embedded
  features, the input projection in float32 and clamped to float16's range, as that class computes it
  (``tests/test_etultra.py`` checks equal outputs against the class).

Everything else is trackastra's own ``TrackingTransformer.forward``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from torch import nn
from torch.utils.data import Dataset
from trackastra.model import TrackingTransformer

from denselink.errors import FeatureTableError
from denselink.vocabulary import FUSIONS

NORMALIZE_MODES = ("none", "zscore", "l2")


class FeatureTable:
    """Per-cell learned features of one sequence, looked up by (frame, label)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FeatureTableError(self.path, "feature table does not exist")
        try:
            frame = pd.read_parquet(self.path)
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise FeatureTableError(self.path, f"unreadable parquet ({type(err).__name__}: {err})") from err
        columns = sorted(c for c in frame.columns if c.startswith("f") and c[1:].isdigit())
        missing = [c for c in ("frame", "label") if c not in frame.columns]
        if missing or not columns:
            raise FeatureTableError(
                self.path, f"needs columns frame, label, f000..; missing {missing or 'f000'}"
            )
        keys = list(zip(frame["frame"].astype(int), frame["label"].astype(int), strict=True))
        if len(set(keys)) != len(keys):
            raise FeatureTableError(self.path, "duplicate (frame, label) rows")
        self.values = frame[columns].to_numpy(np.float32)
        if not np.isfinite(self.values).all():
            raise FeatureTableError(self.path, "features contain NaN or inf")
        self.index = {key: i for i, key in enumerate(keys)}
        self.columns = columns
        self.dim = len(columns)

    def lookup(self, frames: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Feature rows ``(N, D)`` of the cells ``(frames[i], labels[i])``."""
        rows = []
        for t, label in zip(np.asarray(frames).tolist(), np.asarray(labels).tolist(), strict=True):
            row = self.index.get((int(t), int(label)))
            if row is None:
                raise FeatureTableError(self.path, f"no features for the cell at frame {t}, label {label}")
            rows.append(row)
        return self.values[np.asarray(rows, dtype=np.int64)].reshape(len(rows), self.dim)

    def check_covers(self, frames: np.ndarray, labels: np.ndarray) -> None:
        """Raise FeatureTableError (naming frame and label) unless every cell has features."""
        self.lookup(frames, labels)


def check_same_columns(table: FeatureTable, train_features: str | Path | None, embed_dim: int | None) -> None:
    """FeatureTableError naming both tables unless ``table`` has the feature columns a model was trained on.

    The training table's columns are read from its parquet schema; when it is gone, only the
    number of features the model was built for (``embed_dim``) can be compared.
    """
    if train_features is not None and Path(train_features).is_file():
        try:
            names = pq.read_schema(train_features).names
        except Exception as err:  # pyarrow raises many types for corrupt files
            raise FeatureTableError(
                train_features, f"unreadable parquet ({type(err).__name__}: {err})"
            ) from err
        trained = sorted(c for c in names if c.startswith("f") and c[1:].isdigit())
        if trained != table.columns:
            differ = sorted(set(trained) ^ set(table.columns))
            raise FeatureTableError(
                f"{train_features} (training) and {table.path} (evaluation)",
                f"feature columns differ: {len(trained)} vs {len(table.columns)} features, "
                f"e.g. {differ[:3]} in only one of them",
            )
    elif embed_dim is not None and embed_dim != table.dim:
        raise FeatureTableError(
            table.path, f"{table.dim} features, but the model was trained on {embed_dim} ({train_features})"
        )


class FusedWindows(Dataset):
    """trackastra windows (a ``CTCData``) with learned features appended to ``features``."""

    def __init__(self, data: Dataset, table: FeatureTable | None) -> None:
        self.data = data
        self.table = table

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        item = self.data[n]
        if self.table is not None:
            extra = self.table.lookup(item["timepoints"].numpy(), item["labels"].numpy())
            item["features"] = torch.cat([item["features"], torch.from_numpy(extra)], dim=-1)
        return item


class Float32(nn.Module):
    """``module`` run in float32 with autocast off, optionally clamped to float16's range (``etultra``)."""

    def __init__(self, module: nn.Module, clamp_to_half: bool = False) -> None:
        super().__init__()
        self.module = module
        self.clamp_to_half = clamp_to_half

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            out = self.module(x.float())
        if self.clamp_to_half:
            out = out.clamp(torch.finfo(torch.float16).min, torch.finfo(torch.float16).max)
        return out


class FusedTrackingTransformer(TrackingTransformer):
    """trackastra's ``TrackingTransformer`` whose tokens also carry learned per-cell features."""

    def __init__(
        self,
        *,
        fusion: str,
        embed_dim: int,
        normalize: str = "none",
        concat_dim: int = 16,
        concat_hidden: int = 64,
        etultra_dim: int = 128,
        **config: Any,
    ) -> None:
        if fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {fusion!r}")
        if normalize not in NORMALIZE_MODES:
            raise ValueError(f"normalize must be one of {NORMALIZE_MODES}, got {normalize!r}")
        super().__init__(**config)
        self.base_feat_dim = int(config["feat_dim"])
        self.fusion_config = dict(
            fusion=fusion,
            embed_dim=embed_dim,
            normalize=normalize,
            concat_dim=concat_dim,
            concat_hidden=concat_hidden,
        )
        if fusion == "etultra":
            self.fusion_config["etultra_dim"] = etultra_dim
        self.fusion_proj = FUSION_IMPLEMENTATIONS[fusion].build(self)
        self.register_buffer("feature_mean", torch.zeros(embed_dim))
        self.register_buffer("feature_std", torch.ones(embed_dim))
        self._fused: torch.Tensor | None = None

    def set_feature_statistics(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Store the training table's statistics used by ``normalize="zscore"``."""
        self.feature_mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
        self.feature_std.copy_(torch.as_tensor(std, dtype=torch.float32))

    def normalize_features(self, extra: torch.Tensor) -> torch.Tensor:
        """Apply the configured normalisation to learned features ``(..., D)``."""
        mode = self.fusion_config["normalize"]
        if mode == "zscore":
            return (extra - self.feature_mean) / self.feature_std.clamp_min(1e-6)
        if mode == "l2":
            return extra / extra.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        return extra

    def _add_to_tokens(self, module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
        return output + self._fused if self._fused is not None else output

    def _concat_to_input(self, module: nn.Module, inputs: tuple[torch.Tensor]) -> tuple[torch.Tensor]:
        return (torch.cat([inputs[0], self._fused.to(inputs[0].dtype)], dim=-1),)

    @contextmanager
    def fusing(self, fused: torch.Tensor) -> Iterator[None]:
        """Within this block the hooks of ``add_token``/``concat`` fuse ``fused`` into the tokens."""
        self._fused = fused
        try:
            yield
        finally:
            self._fused = None

    def fusion_inputs(self, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """trackastra's ``features`` input and what the hooks fuse (None for ``add_wrfeat``).

        ``features`` holds the wrfeat columns, then the learned ones.
        """
        expected = self.base_feat_dim + self.fusion_config["embed_dim"]
        if features is None or features.shape[-1] != expected:
            got = None if features is None else features.shape[-1]
            raise ValueError(f"expected {expected} feature columns (wrfeat + learned), got {got}")
        base, extra = features[..., : self.base_feat_dim], features[..., self.base_feat_dim :]
        projected = self.fusion_proj(self.normalize_features(extra))
        if FUSION_IMPLEMENTATIONS[self.fusion_config["fusion"]].into_wrfeat:
            return base + projected, None
        return base, projected

    def forward(self, coords, features=None, padding_mask=None):
        """Association logits; ``features`` holds the wrfeat columns, then the learned ones."""
        features, fused = self.fusion_inputs(features)
        if fused is None:
            return super().forward(coords, features, padding_mask=padding_mask)
        with self.fusing(fused):
            return super().forward(coords, features, padding_mask=padding_mask)


@dataclass(frozen=True)
class Fusion:
    """How one fusion mode joins the learned features to trackastra's input."""

    build: Callable[[FusedTrackingTransformer], nn.Module]
    """Makes the projection of the learned features (and installs the mode's hooks on the model)."""
    into_wrfeat: bool
    """The projection is added to the wrfeat columns (else the model's hooks fuse it into the tokens)."""


def _add_wrfeat(model: FusedTrackingTransformer) -> nn.Module:
    return nn.Linear(model.fusion_config["embed_dim"], model.base_feat_dim)


def _add_token(model: FusedTrackingTransformer) -> nn.Module:
    model.norm.register_forward_hook(model._add_to_tokens)
    return nn.Linear(model.fusion_config["embed_dim"], model.config["d_model"])


def _concat(model: FusedTrackingTransformer) -> nn.Module:
    embed_dim, hidden, width = (model.fusion_config[k] for k in ("embed_dim", "concat_hidden", "concat_dim"))
    projection = nn.Sequential(nn.Linear(embed_dim, hidden), nn.GELU(), nn.Linear(hidden, width))
    model.proj = nn.Linear(model.proj.in_features + width, model.config["d_model"])
    model.proj.register_forward_pre_hook(model._concat_to_input)
    return projection


def _etultra(model: FusedTrackingTransformer) -> nn.Module:
    embed_dim, width = model.fusion_config["embed_dim"], model.fusion_config["etultra_dim"]
    projection = Float32(nn.Sequential(nn.Linear(embed_dim, width), nn.LayerNorm(width)))
    model.proj = Float32(
        nn.Linear(model.proj.in_features + width, model.config["d_model"]), clamp_to_half=True
    )
    model.proj.register_forward_pre_hook(model._concat_to_input)
    return projection


FUSION_IMPLEMENTATIONS: dict[str, Fusion] = {
    "add_wrfeat": Fusion(_add_wrfeat, into_wrfeat=True),
    "add_token": Fusion(_add_token, into_wrfeat=False),
    "concat": Fusion(_concat, into_wrfeat=False),
    "etultra": Fusion(_etultra, into_wrfeat=False),
}
"""The implementation of each fusion mode of :data:`denselink.vocabulary.FUSIONS`."""


def check_implemented(implementations: Mapping[str, Fusion], modes: Sequence[str]) -> None:
    """NotImplementedError naming every mode without an implementation (or implementation without a mode)."""
    missing = [mode for mode in modes if mode not in implementations]
    unknown = [mode for mode in implementations if mode not in modes]
    if missing or unknown:
        raise NotImplementedError(
            f"denselink.tracking.fusion: fusion modes {missing} of denselink.vocabulary.FUSIONS have no "
            f"implementation in FUSION_IMPLEMENTATIONS; {unknown} are implemented but not in FUSIONS"
        )


check_implemented(FUSION_IMPLEMENTATIONS, FUSIONS)


def build_model(model_config: dict[str, Any], fusion_config: dict[str, Any] | None) -> TrackingTransformer:
    """A plain or fused transformer from the two configs a checkpoint stores."""
    if not fusion_config:
        return TrackingTransformer(**model_config)
    return FusedTrackingTransformer(**fusion_config, **model_config)
