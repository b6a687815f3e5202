"""Fusion modes change trackastra's input exactly as specified; the data side joins by (frame, label)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from trackastra.model import TrackingTransformer

from denselink.errors import FeatureTableError
from denselink.tracking.fusion import (
    FUSION_IMPLEMENTATIONS,
    FeatureTable,
    FusedTrackingTransformer,
    FusedWindows,
    check_implemented,
)
from denselink.tracking.settings import TrackastraSettings
from denselink.vocabulary import FUSIONS

SETTINGS = TrackastraSettings(
    window=4,
    d_model=16,
    num_encoder_layers=1,
    num_decoder_layers=1,
    pos_embed_per_dim=8,
    feat_embed_per_dim=4,
)
CONFIG = SETTINGS.transformer_kwargs(7)
D = 5


def _inputs(n: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    t = torch.arange(n) // 3
    coords = torch.cat([t[:, None].float(), 60 * torch.rand(n, 2, generator=gen)], dim=-1)[None]
    features = torch.cat([torch.rand(n, 7, generator=gen), torch.randn(n, D, generator=gen)], dim=-1)[None]
    return coords, features


def _pair(fusion: str) -> tuple[TrackingTransformer, FusedTrackingTransformer]:
    torch.manual_seed(0)
    base = TrackingTransformer(**CONFIG).eval()
    fused = FusedTrackingTransformer(fusion=fusion, embed_dim=D, concat_dim=3, **CONFIG).eval()
    state = base.state_dict()
    if fusion == "concat":
        weight = fused.proj.weight.detach().clone()
        weight[:, : base.proj.in_features] = state.pop("proj.weight")
        state["proj.weight"] = weight
    missing, unexpected = fused.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("fusion_proj", "feature_", "proj.weight")) for k in missing)
    return base, fused


def _zero_last(module: torch.nn.Module) -> torch.nn.Linear:
    last = module[-1] if isinstance(module, torch.nn.Sequential) else module
    torch.nn.init.zeros_(last.weight)
    torch.nn.init.zeros_(last.bias)
    return last


@pytest.mark.parametrize("fusion", ["add_wrfeat", "add_token", "concat"])
def test_zeroed_fusion_projection_equals_unfused_model(fusion: str) -> None:
    base, fused = _pair(fusion)
    _zero_last(fused.fusion_proj)
    coords, features = _inputs()
    with torch.no_grad():
        expected = base(coords, features[..., :7])
        got = fused(coords, features)
    if fusion == "concat":  # a wider input projection: the zero columns change the summation order
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    else:
        assert torch.equal(got, expected)


def _capture(module: torch.nn.Module, model: torch.nn.Module, run) -> torch.Tensor:
    seen: list[torch.Tensor] = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    with torch.no_grad():
        run(model)
    handle.remove()
    return seen[0]


def test_add_wrfeat_adds_exactly_wf_plus_b_to_the_seven_features() -> None:
    base, fused = _pair("add_wrfeat")
    coords, features = _inputs()
    seen = _capture(fused.feat_embed, fused, lambda m: m(coords, features))
    proj = fused.fusion_proj
    expected = features[..., :7] + features[..., 7:] @ proj.weight.detach().T + proj.bias.detach()
    assert proj.weight.shape == (7, D)
    torch.testing.assert_close(seen, expected, rtol=0, atol=1e-6)


def test_add_token_adds_projection_after_input_layernorm_for_encoder_and_decoder() -> None:
    base, fused = _pair("add_token")
    coords, features = _inputs()
    tokens = _capture(base.encoder[0], base, lambda m: m(coords, features[..., :7]))
    proj = fused.fusion_proj
    expected = tokens + features[..., 7:] @ proj.weight.detach().T + proj.bias.detach()
    assert proj.weight.shape == (16, D)
    for layer in (fused.encoder[0], fused.decoder[0]):
        seen = _capture(layer, fused, lambda m: m(coords, features))
        torch.testing.assert_close(seen, expected, rtol=0, atol=1e-6)


def test_concat_appends_mlp_output_before_the_input_projection() -> None:
    base, fused = _pair("concat")
    coords, features = _inputs()
    assert fused.proj.in_features == base.proj.in_features + 3
    seen = _capture(fused.proj, fused, lambda m: m(coords, features))
    embedded = _capture(base.proj, base, lambda m: m(coords, features[..., :7]))
    with torch.no_grad():
        reduced = fused.fusion_proj(features[..., 7:])
    assert seen.shape[-1] == base.proj.in_features + 3
    assert torch.equal(seen[..., : base.proj.in_features], embedded)
    assert torch.equal(seen[..., base.proj.in_features :], reduced)


def test_normalisation_modes() -> None:
    x = torch.tensor([[3.0, 4.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 1.0]])
    l2 = FusedTrackingTransformer(fusion="add_token", embed_dim=D, normalize="l2", **CONFIG)
    torch.testing.assert_close(l2.normalize_features(x)[0], torch.tensor([0.6, 0.8, 0.0, 0.0, 0.0]))
    torch.testing.assert_close(l2.normalize_features(x).norm(dim=-1), torch.ones(2))
    z = FusedTrackingTransformer(fusion="add_token", embed_dim=D, normalize="zscore", **CONFIG)
    z.set_feature_statistics(np.full(D, 1.0), np.full(D, 2.0))
    torch.testing.assert_close(z.normalize_features(x)[0], torch.tensor([1.0, 1.5, -0.5, -0.5, -0.5]))
    none = FusedTrackingTransformer(fusion="add_token", embed_dim=D, **CONFIG)
    assert torch.equal(none.normalize_features(x), x)


def _table(path: Path, cells: list[tuple[int, int]]) -> Path:
    rows = [[t, label, 0.0, 0.0, 1, 10.0 * t + label, -label] for t, label in cells]
    pd.DataFrame(rows, columns=["frame", "label", "y", "x", "area", "f000", "f001"]).to_parquet(path)
    return path


def test_missing_cell_raises_feature_table_error_naming_file_frame_label(tmp_path: Path) -> None:
    table = FeatureTable(_table(tmp_path / "feat.parquet", [(0, 1), (0, 2), (1, 1)]))
    np.testing.assert_array_equal(table.lookup(np.array([1, 0]), np.array([1, 2])), [[11, -1], [2, -2]])
    with pytest.raises(FeatureTableError) as err:
        table.lookup(np.array([0, 1]), np.array([1, 2]))
    assert "feat.parquet" in str(err.value) and "frame 1, label 2" in str(err.value)


class _Windows(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 1

    def __getitem__(self, n: int) -> dict[str, torch.Tensor]:
        return {
            "features": torch.zeros(3, 7),
            "timepoints": torch.tensor([0, 0, 1]),
            "labels": torch.tensor([2, 1, 1]),
        }


def test_fused_windows_append_the_rows_of_each_token(tmp_path: Path) -> None:
    table = FeatureTable(_table(tmp_path / "feat.parquet", [(0, 1), (0, 2), (1, 1)]))
    item = FusedWindows(_Windows(), table)[0]
    assert item["features"].shape == (3, 9)
    np.testing.assert_array_equal(item["features"][:, 7:].numpy(), [[2, -2], [1, -1], [11, -1]])


def test_every_fusion_mode_has_an_implementation() -> None:
    assert sorted(FUSION_IMPLEMENTATIONS) == sorted(FUSIONS)


def test_a_mode_without_implementation_is_named() -> None:
    with pytest.raises(NotImplementedError, match=r"fusion modes \['gated'\] of .*; \[\] are implemented"):
        check_implemented(FUSION_IMPLEMENTATIONS, (*FUSIONS, "gated"))
    with pytest.raises(NotImplementedError, match=r"fusion modes \[\] of .*; \['concat'\] are implemented"):
        check_implemented(FUSION_IMPLEMENTATIONS, ("add_wrfeat", "add_token", "etultra"))


def test_a_fusion_mode_added_to_the_vocabulary_alone_fails_at_import() -> None:
    """A new mode in FUSIONS without an implementation cannot silently become another mode."""
    code = "import denselink.vocabulary as v; v.FUSIONS += ('gated',); import denselink.tracking.fusion"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("NotImplementedError: denselink.tracking.fusion: fusion modes ['gated'] of")
