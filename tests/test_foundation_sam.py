"""SAM / muSAM encoder: micro_sam's preprocessing, grid geometry, checkpoint loading."""

from __future__ import annotations

import hashlib
import sys

import numpy as np
import pytest
import torch

from denselink.errors import CheckpointError, ConfigError, DownloadError
from denselink.foundation.sam import (
    PIXEL_MEAN,
    PIXEL_STD,
    EncoderSpec,
    build_encoder,
    encode_batch,
    grid_geometry,
    load_encoder,
    micro_sam_util,
    preprocess,
    preprocess_shape,
    sam_modeling,
    to_uint8_rgb,
)
from denselink.foundation.weights import REGISTRY, fetch_checkpoint, file_hashes, load_encoder_state

TINY = EncoderSpec(img_size=64, embed_dim=32, depth=2, num_heads=2)


def save_sam_checkpoint(path, spec=TINY, seed=0, micro_sam_format=False):
    """A randomly initialised encoder saved the way SAM (or micro_sam/torch_em) stores weights."""
    torch.manual_seed(seed)
    encoder = build_encoder(spec)
    state = {f"image_encoder.{k}": v for k, v in encoder.state_dict().items()}
    state["mask_decoder.iou_token.weight"] = torch.zeros(1, 256)
    if micro_sam_format:
        state = {"model_state": {f"sam.{k}": v for k, v in state.items()}, "decoder_state": {}}
    torch.save(state, path)
    return encoder.eval()


def test_segment_anything_modeling_imports_without_torchvision():
    modeling = sam_modeling()
    assert hasattr(modeling, "ImageEncoderViT")
    assert "torchvision" not in sys.modules


def test_vit_b_spec_matches_sam():
    spec = EncoderSpec()
    assert spec.global_attn_indexes == (2, 5, 8, 11)
    assert spec.grid == 64


def test_preprocess_shape_matches_resize_longest_side():
    assert preprocess_shape(700, 1100, 1024) == (652, 1024)
    assert preprocess_shape(512, 512, 1024) == (1024, 1024)
    assert preprocess_shape(1024, 1024, 1024) == (1024, 1024)


def test_grid_geometry_keeps_only_the_image_part():
    fluo = grid_geometry((700, 1100), EncoderSpec())
    assert fluo.valid == (41, 64)  # 652 / 16 = 40.75 -> 41 cells, the last one partly padding
    assert fluo.extent == (704, 1100)
    dic = grid_geometry((512, 512), EncoderSpec())
    assert dic.valid == (64, 64) and dic.extent == (512, 512)
    small = grid_geometry((64, 40), TINY)
    assert small.input_size == (64, 40) and small.valid == (4, 3) and small.extent == (64, 48)


def test_uint8_conversion_is_per_frame_min_max():
    frame = np.array([[100, 300], [500, 100]], dtype=np.uint16)
    rgb = to_uint8_rgb(frame)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], [[0, 127], [255, 0]])
    np.testing.assert_array_equal(rgb[..., 0], rgb[..., 2])


def test_preprocess_normalises_and_zero_pads():
    frame = np.zeros((32, 20), np.uint16)
    frame[:, 10:] = 1000
    x = preprocess(frame, TINY)
    assert x.shape == (3, 64, 64)
    # resized to 64 x 40, padding to the right is zero
    assert torch.all(x[:, :, 40:] == 0)
    black = (0 - torch.tensor(PIXEL_MEAN)) / torch.tensor(PIXEL_STD)
    white = (255 - torch.tensor(PIXEL_MEAN)) / torch.tensor(PIXEL_STD)
    torch.testing.assert_close(x[:, 10, 2], black)
    torch.testing.assert_close(x[:, 10, 37], white)


@pytest.mark.parametrize("micro_sam_format", [False, True])
def test_checkpoint_roundtrip_gives_the_same_embedding(tmp_path, micro_sam_format):
    path = tmp_path / "vit_tiny.pth"
    reference = save_sam_checkpoint(path, micro_sam_format=micro_sam_format)
    encoder, info = load_encoder("vit_b_lm", TINY, checkpoint=path, seed=123)
    assert info["checkpoint_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["random_init"] is False
    frame = np.random.default_rng(0).integers(0, 4096, (48, 64)).astype(np.uint16)
    ours = encode_batch(encoder, [frame], TINY, torch.device("cpu"))
    with torch.no_grad():
        expected = reference(preprocess(frame, TINY)[None])[:, :, :3, :4]
    assert ours.shape == (1, 256, 3, 4)
    torch.testing.assert_close(ours, expected)


def test_batched_encoding_equals_single_frames(tmp_path):
    encoder, _ = load_encoder("vit_b", TINY, random_init=True, seed=1)
    frames = np.random.default_rng(1).random((3, 40, 64)).astype(np.float32)
    batched = encode_batch(encoder, list(frames), TINY, torch.device("cpu"))
    singles = torch.cat([encode_batch(encoder, [f], TINY, torch.device("cpu")) for f in frames])
    torch.testing.assert_close(batched, singles, atol=1e-5, rtol=1e-5)


def test_random_init_is_seeded_and_excludes_a_checkpoint(tmp_path):
    a, info = load_encoder("vit_b", TINY, random_init=True, seed=7)
    b, _ = load_encoder("vit_b", TINY, random_init=True, seed=7)
    assert info["random_init"] is True and info["checkpoint"] is None
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(pa, pb), name
    with pytest.raises(ConfigError):
        load_encoder("vit_b", TINY, checkpoint=tmp_path / "x.pth", random_init=True)


def test_missing_corrupt_or_mismatched_checkpoint_is_named(tmp_path):
    missing = tmp_path / "missing.pth"
    with pytest.raises(CheckpointError, match="missing.pth"):
        load_encoder("vit_b", TINY, checkpoint=missing)
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        load_encoder("vit_b", TINY, checkpoint=corrupt)
    other = tmp_path / "other.pth"
    save_sam_checkpoint(other)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_encoder("vit_b", EncoderSpec(img_size=64, embed_dim=64, depth=2, num_heads=2), checkpoint=other)
    no_encoder = tmp_path / "no_encoder.pth"
    torch.save({"mask_decoder.w": torch.zeros(1)}, no_encoder)
    with pytest.raises(CheckpointError, match="image_encoder"):
        load_encoder_state(no_encoder)


def test_registry_lists_micro_sam_urls_and_rejects_a_bad_cached_file(tmp_path):
    assert REGISTRY["vit_b"].url.endswith("sam_vit_b_01ec64.pth")
    assert REGISTRY["vit_b_lm"].url.endswith("diplomatic-bug/1.2/files/vit_b.pt")
    (tmp_path / "vit_b_lm").write_bytes(b"truncated download")
    with pytest.raises(DownloadError, match="xxh128"):
        fetch_checkpoint("vit_b_lm", tmp_path)
    assert (tmp_path / "vit_b_lm.corrupt").is_file()
    assert (
        file_hashes(tmp_path / "vit_b_lm.corrupt")["sha256"]
        == hashlib.sha256(b"truncated download").hexdigest()
    )
    with pytest.raises(CheckpointError):
        fetch_checkpoint("vit_h", tmp_path)


def test_without_micro_sam_the_copy_runs_and_is_recorded(tmp_path):
    checkpoint = tmp_path / "tiny.pth"
    save_sam_checkpoint(checkpoint)
    _, info = load_encoder("vit_b", TINY, checkpoint=checkpoint)
    assert info["implementation"] == "denselink"  # micro_sam builds the released vit_b only
    if micro_sam_util() is None:
        with pytest.raises(ConfigError, match="implementation"):
            load_encoder("vit_b", EncoderSpec(), checkpoint=checkpoint, implementation="micro_sam")


def test_micro_sam_and_the_copy_give_the_same_embeddings(tmp_path):
    """Runs where micro_sam is importable (the GPU environment): same weights, same frames."""
    if micro_sam_util() is None:
        pytest.skip("micro_sam is not importable here")
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    checkpoint = tmp_path / "sam_vit_b_random.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), checkpoint)
    frames = list(np.random.default_rng(0).integers(0, 4000, (2, 200, 150)).astype(np.uint16))
    device = torch.device("cpu")
    ours, ours_info = load_encoder("vit_b", EncoderSpec(), checkpoint, implementation="denselink")
    theirs, theirs_info = load_encoder("vit_b", EncoderSpec(), checkpoint, implementation="micro_sam")
    assert theirs_info["implementation"].startswith("micro_sam ")
    assert theirs_info["checkpoint_sha256"] == ours_info["checkpoint_sha256"]
    expected = encode_batch(ours, frames, EncoderSpec(), device)
    torch.testing.assert_close(
        encode_batch(theirs, frames, EncoderSpec(), device), expected, atol=1e-4, rtol=1e-4
    )
