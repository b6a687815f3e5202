"""MAESTER model and crop sampling: paper settings, masked-patch loss, reproducible random crops."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from torch.utils.data import DataLoader

from denselink.data.manifest import SequenceManifest
from denselink.errors import ConfigError
from denselink.maester.dataset import EpochSampler, MaesterCropDataset, minmax_scale
from denselink.maester.frame_store import FrameStore, build_frame_store
from denselink.maester.model import MaesterModel, MaesterModelSettings, build_model, sincos_pos_embed_2d
from denselink.maester.train import MaesterSettings
from denselink.settings import load_settings

MINI = {
    "img_size": 20, "patch_size": 5, "embed_dim": 16, "depth": 2, "num_heads": 1,
    "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1,
}  # fmt: skip


def test_defaults_are_the_paper_table_2() -> None:
    s = MaesterModelSettings()
    assert (s.img_size, s.patch_size, s.embed_dim, s.depth, s.num_heads) == (80, 5, 192, 14, 1)
    assert (s.decoder_embed_dim, s.decoder_depth, s.decoder_num_heads) == (128, 7, 8)
    assert (s.mlp_ratio, s.mask_ratio, s.pos_encode_w) == (2.0, 0.5, 0.08)


def test_even_patch_size_is_rejected_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"model\.patch_size.*odd"):
        load_settings(MaesterSettings, '{"model": {"patch_size": 4}}')


def test_parameter_names_match_the_original_model() -> None:
    keys = set(MaesterModel(MaesterModelSettings(**MINI)).state_dict())
    expected = [
        "patch_embed.proj.weight", "cls_token", "pos_embed", "blocks.1.attn.qkv.weight",
        "blocks.0.mlp.fc2.bias", "norm.weight", "decoder_embed.weight", "mask_token", "decoder_pos_embed",
        "decoder_blocks.0.norm1.bias", "decoder_norm.weight", "decoder_pred.bias",
    ]  # fmt: skip
    for key in expected:
        assert key in keys


def test_position_embedding_is_scaled_by_pos_encode_w() -> None:
    model = build_model(MaesterModelSettings(**{**MINI, "pos_encode_w": 0.25}), seed=0)
    crops = torch.zeros(1, 1, 20, 20)
    tokens = model._embed(crops) - model.patch_embed(crops)
    table = torch.from_numpy(sincos_pos_embed_2d(16, 4)).float()
    torch.testing.assert_close(tokens[0], 0.25 * table)


def test_loss_is_the_mse_over_masked_patches_only() -> None:
    model = build_model(MaesterModelSettings(**MINI), seed=0)
    crops = torch.rand(3, 1, 20, 20, generator=torch.Generator().manual_seed(0))
    loss, pred, mask = model(crops, generator=torch.Generator().manual_seed(1))
    assert mask.sum().item() == 3 * 8  # half of the 16 patches of each crop
    per_patch = ((pred - model.patchify(crops)) ** 2).mean(-1)
    torch.testing.assert_close(loss, per_patch[mask.bool()].mean())
    again = model(crops, generator=torch.Generator().manual_seed(1))[0]
    assert loss.item() == again.item()


def test_same_seed_same_weights() -> None:
    a = build_model(MaesterModelSettings(**MINI), seed=5).state_dict()
    b = build_model(MaesterModelSettings(**MINI), seed=5).state_dict()
    c = build_model(MaesterModelSettings(**MINI), seed=6).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], c["blocks.0.attn.qkv.weight"])


@pytest.fixture
def sequence(tmp_path: Path) -> SequenceManifest:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(16):
        path = tmp_path / f"t{t:03d}.tif"
        tifffile.imwrite(path, (rng.random((30, 34)) * 1000 + 100 * t).astype(np.uint16), compression="lzw")
        frames.append(path)
    return SequenceManifest("toy", "01", frames, (30, 34), "uint16")


@pytest.fixture
def store(sequence: SequenceManifest, tmp_path: Path) -> FrameStore:
    return build_frame_store([sequence], tmp_path / "frames")


def test_minmax_scale_per_frame(sequence: SequenceManifest) -> None:
    frame = minmax_scale(sequence.read_frame(3))
    assert (frame.min(), frame.max()) == (0.0, 1.0)
    assert (minmax_scale(np.full((4, 4), 7)) == 0).all()


def test_store_regions_equal_the_scaled_decoded_frame(sequence: SequenceManifest, store: FrameStore) -> None:
    assert store.shapes == [(16, 30, 34)]
    for t in (0, 7, 15):
        whole = minmax_scale(sequence.read_frame(t))
        assert np.array_equal(store.region(0, t, slice(3, 25), slice(0, 34)), whole[3:25])
        assert np.array_equal(store.region(0, t, slice(0, 30), slice(5, 9)), whole[:, 5:9])


def test_store_is_reused_until_a_source_changes(sequence: SequenceManifest, tmp_path: Path) -> None:
    root = tmp_path / "frames"
    build_frame_store([sequence], root)
    built = (root / "seq00000.npy").stat().st_mtime_ns
    build_frame_store([sequence], root)
    assert (root / "seq00000.npy").stat().st_mtime_ns == built
    tifffile.imwrite(sequence.frames[2], np.full((30, 34), 9, np.uint16))
    rebuilt = build_frame_store([sequence], root)
    assert (root / "seq00000.npy").stat().st_mtime_ns != built
    assert (rebuilt.region(0, 2, slice(0, 30), slice(0, 34)) == 0).all()  # a constant frame scales to 0


def test_processes_share_the_build(sequence: SequenceManifest, tmp_path: Path) -> None:
    other = SequenceManifest("toy", "02", sequence.frames[::-1], (30, 34), "uint16")
    root = tmp_path / "frames"
    with ThreadPoolExecutor(2) as pool:
        stores = list(pool.map(lambda r: build_frame_store([sequence, other], root, r, 2, 0.05), (0, 1)))
    for store in stores:
        assert np.array_equal(
            store.region(1, 0, slice(0, 30), slice(0, 34)), minmax_scale(sequence.read_frame(15))
        )


def test_frame_crops_are_padded_cuts_of_one_scaled_frame(
    sequence: SequenceManifest, store: FrameStore
) -> None:
    data = MaesterCropDataset(store, img_size=20, samples=40, seed=1, augment=False)
    volume = np.pad(np.stack([minmax_scale(sequence.read_frame(t)) for t in range(16)]), 4)
    windows = np.lib.stride_tricks.sliding_window_view(volume, (1, 20, 20))[..., 0, :, :]
    for i in range(40):
        crop = data[i][0].numpy()
        assert crop.shape == (20, 20)
        assert (windows == crop).all(axis=(-1, -2)).any()
    assert any((data[i] == 0).all() for i in range(40))  # the fork pads the time axis too


def test_axis_sampling_cuts_along_time(sequence: SequenceManifest, store: FrameStore) -> None:
    data = MaesterCropDataset(store, img_size=20, samples=60, seed=1, augment=False, sampling="axis")
    volume = np.pad(np.stack([minmax_scale(sequence.read_frame(t)) for t in range(16)]), 4)
    through_time = np.lib.stride_tricks.sliding_window_view(volume, (20, 1, 20))[..., 0, :]
    hits = sum(bool((through_time == data[i][0].numpy()).all(axis=(-1, -2)).any()) for i in range(60))
    assert 5 < hits < 60


def test_crops_differ_across_epochs_and_ranks_and_repeat_with_the_seed(store: FrameStore) -> None:
    def crops(epochs: list[int], rank: int, workers: int = 0) -> list[torch.Tensor]:
        data = MaesterCropDataset(store, img_size=20, samples=8, seed=7, rank=rank)
        sampler = EpochSampler(len(data))
        loader = DataLoader(data, 4, sampler=sampler, num_workers=workers, persistent_workers=workers > 0)
        out = []
        for epoch in epochs:  # persistent workers learn the epoch from the sampler's indices
            sampler.set_epoch(epoch)
            out.append(torch.cat(list(loader)))
        return out

    first, second = crops([0, 1], 0)
    assert torch.equal(first, crops([0], 0)[0])
    persistent = crops([0, 1], 0, workers=2)
    assert torch.equal(first, persistent[0]) and torch.equal(second, persistent[1])
    assert not torch.equal(first, second)
    assert not torch.equal(first, crops([0], 1)[0])
    assert first.shape == (8, 1, 20, 20) and first.min() >= 0 and first.max() <= 1


def test_too_small_volume_is_rejected(store: FrameStore) -> None:
    with pytest.raises(ConfigError, match="too small"):
        MaesterCropDataset(store, img_size=80, samples=4, seed=0)
