"""``foundation embed``: zarr layout, attrs, exact values, fallbacks and errors."""

from __future__ import annotations

import hashlib
import json
import logging

import numpy as np
import pytest
import tifffile
import torch
import zarr
from test_foundation_sam import TINY, save_sam_checkpoint
from test_foundation_upsample import anyup_clone, anyup_repo  # noqa: F401 (fixtures)

from denselink.cli import main as cli_main
from denselink.data.manifest import SequenceManifest
from denselink.errors import CheckpointError, ConfigError
from denselink.foundation.embed import FoundationSettings, embed_sequence
from denselink.foundation.sam import encode_batch, load_encoder
from denselink.foundation.upsample import AnyUpUpsampler, GuidedUpsampler, load_anyup
from denselink.settings import load_settings

TINY_ENCODER = {"img_size": TINY.img_size, "embed_dim": TINY.embed_dim, "depth": TINY.depth, "num_heads": 2}


def write_sequence(root, n_frames=3, shape=(40, 30), seed=0):
    """A raw-only CTC-like sequence (uint16 TIFFs) and its manifest."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_frames):
        path = root / f"t{t:03d}.tif"
        tifffile.imwrite(path, rng.integers(0, 4000, shape).astype(np.uint16))
        frames.append(path)
    manifest = SequenceManifest("synthetic", "01", frames, shape, "uint16")
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest.to_dict()))
    return path, manifest


def settings(**overrides) -> FoundationSettings:
    return FoundationSettings.model_validate({"encoder": TINY_ENCODER, "chunk": 16, **overrides})


def test_embedding_zarr_holds_encoder_plus_anyup(tmp_path, anyup_clone):  # noqa: F811 (fixture)
    clone, commit = anyup_clone
    manifest_path, manifest = write_sequence(tmp_path)
    checkpoint = tmp_path / "vit_b_lm_tiny.pth"
    save_sam_checkpoint(checkpoint)
    torch.manual_seed(0)
    weights = tmp_path / "anyup_paper.pth"
    torch.save(load_anyup(str(clone), "local", pretrained=False, commit=None)[0].state_dict(), weights)
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    anyup = {"repo": str(clone), "source": "local", "commit": commit, "weights_url": weights.as_uri()}
    anyup.update(weights_sha256=sha256, tile_pixels=500)
    cache = str(tmp_path / "cache")
    config = settings(checkpoint=str(checkpoint), anyup=anyup, batch_size=2, device="cpu", cache_dir=cache)
    out = tmp_path / "musam-anyup.zarr"
    attrs = embed_sequence(manifest_path, out, "musam", config)
    array = zarr.open_group(out, mode="r")["embedding"]
    assert array.shape == (3, 256, 40, 30) and array.dtype == np.float16
    assert array.chunks == (1, 256, 16, 16)
    assert (
        attrs["upsampler"] == "anyup" and attrs["model_type"] == "vit_b_lm" and attrs["backbone"] == "musam"
    )
    assert array.attrs["checkpoint_sha256"] == attrs["checkpoint_sha256"]
    assert (array.attrs["anyup_commit"], array.attrs["anyup_weights_sha256"]) == (commit, sha256)
    assert array.attrs["image_shape"] == [40, 30] and array.attrs["grid_valid"] == [4, 3]
    # the same numbers computed directly (same AnyUp weights, untiled)
    encoder, _ = load_encoder("vit_b_lm", TINY, checkpoint=checkpoint)
    model, _ = load_anyup(str(clone), "local", True, "cpu", commit, weights.as_uri(), sha256, cache)
    frames = manifest.read_frames()
    features = encode_batch(encoder, list(frames), TINY, torch.device("cpu"))
    expected = AnyUpUpsampler(model, tile_pixels=10**6)(features, frames, (40, 30)).numpy()
    np.testing.assert_allclose(array[:].astype(np.float32), expected, atol=2e-2, rtol=2e-3)


def test_fallback_is_declared_logged_and_recorded(tmp_path, caplog):
    manifest_path, manifest = write_sequence(tmp_path, n_frames=2)
    out = tmp_path / "sam-guided.zarr"
    with caplog.at_level(logging.WARNING):
        attrs = embed_sequence(manifest_path, out, "sam", settings(random_init=True, upsampler="guided"))
    assert any(r.levelno == logging.WARNING and "guided" in r.getMessage() for r in caplog.records)
    assert any(r.levelno == logging.WARNING and "RANDOMLY" in r.getMessage() for r in caplog.records)
    group = zarr.open_group(out, mode="r")
    assert group.attrs["upsampler"] == "guided" and attrs["random_init"] is True
    assert group.attrs["model_type"] == "vit_b" and group.attrs["checkpoint"] is None
    encoder, _ = load_encoder("vit_b", TINY, random_init=True, seed=0)
    frames = manifest.read_frames()
    expected = GuidedUpsampler()(
        encode_batch(encoder, list(frames), TINY, torch.device("cpu")), frames, (40, 30)
    )
    np.testing.assert_allclose(
        group["embedding"][:].astype(np.float32), expected.numpy(), atol=2e-2, rtol=2e-3
    )


def test_same_seed_same_embedding(tmp_path):
    manifest_path, _ = write_sequence(tmp_path, n_frames=2)
    config = settings(random_init=True, upsampler="bilinear", seed=3)
    embed_sequence(manifest_path, tmp_path / "a.zarr", "sam", config)
    embed_sequence(manifest_path, tmp_path / "b.zarr", "sam", config)
    a = zarr.open_group(tmp_path / "a.zarr", mode="r")["embedding"][:]
    b = zarr.open_group(tmp_path / "b.zarr", mode="r")["embedding"][:]
    np.testing.assert_array_equal(a, b)


def test_unloadable_anyup_or_checkpoint_fails_before_writing(tmp_path):
    manifest_path, _ = write_sequence(tmp_path, n_frames=1)
    out = tmp_path / "x.zarr"
    bad_anyup = {"repo": str(tmp_path / "no_anyup"), "source": "local", "pretrained": False}
    with pytest.raises(CheckpointError, match="no_anyup"):
        embed_sequence(manifest_path, out, "sam", settings(random_init=True, anyup=bad_anyup))
    with pytest.raises(CheckpointError, match="nowhere.pth"):
        embed_sequence(
            manifest_path,
            out,
            "sam",
            settings(checkpoint=str(tmp_path / "nowhere.pth"), upsampler="bilinear"),
        )
    assert not out.exists()


def test_settings_defaults_are_the_paper_setup_and_unknown_keys_fail():
    defaults = load_settings(FoundationSettings, None)
    assert (
        defaults.upsampler == "anyup"
        and defaults.anyup.repo == "wimmerth/anyup"
        and defaults.anyup.pretrained
    )
    assert (defaults.encoder.img_size, defaults.encoder.embed_dim, defaults.encoder.depth) == (1024, 768, 12)
    assert defaults.random_init is False and defaults.model_type is None
    with pytest.raises(ConfigError, match="upsample"):
        load_settings(FoundationSettings, '{"upsample": "bilinear"}')
    with pytest.raises(ConfigError, match="img_size"):
        load_settings(FoundationSettings, '{"encoder": {"img_size": 100}}')


def test_cli_writes_the_zarr(tmp_path, capsys):
    manifest_path, _ = write_sequence(tmp_path, n_frames=1, shape=(20, 24))
    out = tmp_path / "sam-bilinear.zarr"
    config = json.dumps({"encoder": TINY_ENCODER, "random_init": True, "upsampler": "bilinear"})
    argv = ["foundation", "embed", "--model", "sam", "--manifest", str(manifest_path), "--out", str(out)]
    assert cli_main([*argv, "--settings", config]) == 0
    assert zarr.open_group(out, mode="r")["embedding"].shape == (1, 256, 20, 24)
    assert cli_main([*argv, "--settings", '{"random_init": true, "checkpoint": "x.pth"}']) == 2
    assert "random_init" in capsys.readouterr().err
