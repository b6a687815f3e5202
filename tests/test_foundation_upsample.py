"""Upsamplers: AnyUp tiled over query pixels equals AnyUp untiled; the declared fallbacks."""

from __future__ import annotations

import hashlib
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import denselink.foundation.anyup
from denselink.errors import CheckpointError
from denselink.foundation.upsample import (
    ANYUP_COMMIT,
    AnyUpUpsampler,
    BilinearUpsampler,
    GuidedUpsampler,
    guidance_rgb,
    hub_spec,
    load_anyup,
    local_commit,
)

VENDORED = Path(denselink.foundation.anyup.__file__).parent


@pytest.fixture(scope="module")
def anyup_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AnyUp's repository layout (``hubconf.py`` + ``anyup/``) rebuilt from the shipped copy."""
    root = tmp_path_factory.mktemp("anyup_repo") / "anyup"
    ignore = shutil.ignore_patterns("__pycache__", "hubconf.py", "LICENSE", "README.md", "SHA256SUMS")
    shutil.copytree(VENDORED, root / "anyup", ignore=ignore)
    shutil.copy(VENDORED / "hubconf.py", root / "hubconf.py")
    return root


@pytest.fixture(scope="module")
def anyup_model():
    torch.manual_seed(0)
    return load_anyup(pretrained=False)[0]


def test_shipped_anyup_is_upstream_byte_for_byte():
    lines = (VENDORED / "SHA256SUMS").read_text().splitlines()
    expected = {name.removeprefix("./"): digest for digest, name in (line.split() for line in lines)}
    found = {str(p.relative_to(VENDORED)): p for p in VENDORED.rglob("*.py")}
    assert sorted(found) == sorted(expected)
    assert {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in found.items()} == expected
    assert "Attribution 4.0 International" in (VENDORED / "LICENSE").read_text()
    assert ANYUP_COMMIT in (VENDORED / "README.md").read_text()


def test_shipped_anyup_needs_no_torch_hub(monkeypatch):
    def no_hub(*args, **kwargs):
        raise AssertionError("torch.hub.load was called")

    monkeypatch.setattr(torch.hub, "load", no_hub)
    model, provenance = load_anyup(pretrained=False)
    assert type(model).__module__ == "denselink.foundation.anyup.model"
    assert provenance["anyup_commit"] == ANYUP_COMMIT
    with pytest.raises(CheckpointError, match="is not the shipped AnyUp"):
        load_anyup(pretrained=False, commit="1" * 40)


def test_shipped_anyup_equals_the_hub_loaded_clone(anyup_repo):
    torch.manual_seed(5)
    hub, _ = load_anyup(str(anyup_repo), "local", pretrained=False, commit=None)
    shipped, _ = load_anyup(pretrained=False)
    shipped.load_state_dict(hub.state_dict())
    assert type(hub).__module__ == "anyup.model" and hub.state_dict().keys() == shipped.state_dict().keys()
    frames = np.random.default_rng(1).random((1, 20, 16)).astype(np.float32)
    features = torch.randn(1, 4, 5, 4, generator=torch.Generator().manual_seed(1))
    image = guidance_rgb(frames, (20, 16))
    with torch.no_grad():
        torch.testing.assert_close(shipped(image, features), hub(image, features), atol=0, rtol=0)
    ours = AnyUpUpsampler(shipped, tile_pixels=64).forward_tiled(image, features)
    torch.testing.assert_close(ours, AnyUpUpsampler(hub, tile_pixels=64).forward_tiled(image, features))


def test_local_weights_path_is_hash_checked_and_recorded(tmp_path):
    torch.manual_seed(2)
    weights = tmp_path / "my_anyup.pth"
    torch.save(load_anyup(pretrained=False)[0].state_dict(), weights)
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    url = "https://example.invalid/never-downloaded.pth"
    model, provenance = load_anyup(weights_url=url, weights_sha256=sha256, weights_path=weights)
    assert provenance["anyup_weights_url"] == str(weights)
    assert provenance["anyup_weights_sha256"] == sha256
    expected = torch.load(weights, weights_only=True)
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_anyup(weights_url=url, weights_sha256="0" * 64, weights_path=weights)
    with pytest.raises(CheckpointError, match="weights_path is not an existing file"):
        load_anyup(weights_path=tmp_path / "absent.pth")


def guided_reference(features, frame, extent, sigma_s, sigma_r):
    """Joint bilateral upsampling written as plain loops over pixels and cells."""
    c, h, w = features.shape
    height, width = frame.shape
    g = (frame - frame.min()) / (frame.max() - frame.min() + 1e-7)
    g = np.pad(g, ((0, extent[0] - height), (0, extent[1] - width)), mode="edge")
    cell_h, cell_w = extent[0] / h, extent[1] / w
    low = np.array(
        [
            [
                g[int(i * cell_h) : int((i + 1) * cell_h), int(j * cell_w) : int((j + 1) * cell_w)].mean()
                for j in range(w)
            ]
            for i in range(h)
        ]
    )
    radius = max(1, math.ceil(2 * sigma_s))
    out = np.zeros((c, height, width))
    for y in range(height):
        for x in range(width):
            py, px = (y + 0.5) / cell_h - 0.5, (x + 0.5) / cell_w - 0.5
            acc, norm = np.zeros(c), 0.0
            for i in range(h):
                for j in range(w):
                    if not (
                        -radius < i - math.floor(py) <= radius and -radius < j - math.floor(px) <= radius
                    ):
                        continue
                    wgt = math.exp(-((py - i) ** 2 + (px - j) ** 2) / (2 * sigma_s**2))
                    wgt *= math.exp(-((g[y, x] - low[i, j]) ** 2) / (2 * sigma_r**2))
                    acc += wgt * features[:, i, j]
                    norm += wgt
            out[:, y, x] = acc / norm
    return out


@pytest.mark.parametrize("tile_pixels", [1, 97, 480, 10_000])
def test_anyup_tiled_equals_untiled(anyup_model, tile_pixels):
    rng = np.random.default_rng(0)
    frames = rng.random((2, 24, 20)).astype(np.float32)
    image = guidance_rgb(frames, (24, 20))
    features = torch.randn(2, 8, 6, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        untiled = anyup_model(image, features)
    tiled = AnyUpUpsampler(anyup_model, tile_pixels=tile_pixels).forward_tiled(image, features)
    assert tiled.shape == (2, 8, 24, 20)
    torch.testing.assert_close(tiled, untiled, atol=1e-5, rtol=1e-5)


def test_anyup_output_is_cropped_from_the_padded_extent(anyup_model):
    frames = np.random.default_rng(1).random((1, 30, 21)).astype(np.float32)
    features = torch.randn(1, 4, 4, 3)
    upsampler = AnyUpUpsampler(anyup_model, tile_pixels=256)
    out = upsampler(features, frames, (32, 24))
    with torch.no_grad():
        full = anyup_model(guidance_rgb(frames, (32, 24)), features)
    assert out.shape == (1, 4, 30, 21)
    torch.testing.assert_close(out, full[..., :30, :21], atol=1e-5, rtol=1e-5)


def test_anyup_that_cannot_be_loaded_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match=str(tmp_path)):
        load_anyup(str(tmp_path), "local", pretrained=False)


def test_guidance_is_imagenet_normalised_and_zero_padded():
    frames = np.array([[[0.0, 2.0], [1.0, 2.0]]], np.float32)
    x = guidance_rgb(frames, (3, 2))
    assert x.shape == (1, 3, 3, 2)
    torch.testing.assert_close(
        x[0, :, 0, 1], (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    )
    torch.testing.assert_close(
        x[0, :, 1, 0], (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    )
    assert torch.all(x[:, :, 2] == 0)


def test_bilinear_keeps_constants_and_crops():
    features = torch.full((1, 3, 4, 4), 2.5)
    out = BilinearUpsampler()(features, np.zeros((1, 15, 16)), (16, 16))
    assert out.shape == (1, 3, 15, 16)
    torch.testing.assert_close(out, torch.full_like(out, 2.5))


@pytest.mark.parametrize("sigma_s,sigma_r", [(1.0, 0.1), (0.6, 0.3)])
def test_guided_matches_the_loop_reference(sigma_s, sigma_r):
    rng = np.random.default_rng(2)
    features = rng.normal(size=(3, 4, 5)).astype(np.float32)
    frame = rng.random((15, 20)).astype(np.float32)
    ours = GuidedUpsampler(sigma_s, sigma_r)(torch.as_tensor(features)[None], frame[None], (16, 20))
    expected = guided_reference(features, frame, (16, 20), sigma_s, sigma_r)
    np.testing.assert_allclose(ours[0].numpy(), expected, atol=1e-5)


def test_guided_row_tiles_and_constants():
    rng = np.random.default_rng(3)
    features = torch.as_tensor(rng.normal(size=(2, 4, 6, 6)).astype(np.float32))
    frames = rng.random((2, 24, 24)).astype(np.float32)
    whole = GuidedUpsampler(tile_pixels=10**6)(features, frames, (24, 24))
    rows = GuidedUpsampler(tile_pixels=24 * 5)(features, frames, (24, 24))
    torch.testing.assert_close(whole, rows)
    constant = GuidedUpsampler(sigma_range=0.01)(torch.full((1, 2, 6, 6), -1.5), frames[:1], (24, 24))
    torch.testing.assert_close(constant, torch.full_like(constant, -1.5))


def test_github_source_is_pinned_to_the_commit():
    assert hub_spec("wimmerth/anyup", "github", ANYUP_COMMIT) == f"wimmerth/anyup:{ANYUP_COMMIT}"
    assert hub_spec("wimmerth/anyup", "github", None) == "wimmerth/anyup"
    assert hub_spec("/src/anyup", "local", ANYUP_COMMIT) == "/src/anyup"


@pytest.fixture(scope="module")
def anyup_clone(tmp_path_factory: pytest.TempPathFactory, anyup_repo: Path) -> tuple[Path, str]:
    """A git clone of AnyUp's repository layout (one commit) and that commit."""
    clone = tmp_path_factory.mktemp("anyup") / "anyup"
    shutil.copytree(anyup_repo, clone, ignore=shutil.ignore_patterns("__pycache__", ".git"))
    git = ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git[:3], "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "AnyUp"], check=True)
    return clone, local_commit(clone)


def test_weights_hash_and_commit_are_checked_and_recorded(anyup_clone, tmp_path):
    clone, commit = anyup_clone
    torch.manual_seed(1)
    weights = tmp_path / "anyup_paper.pth"
    torch.save(load_anyup(str(clone), "local", pretrained=False, commit=None)[0].state_dict(), weights)
    sha256 = hashlib.sha256(weights.read_bytes()).hexdigest()
    url, cache = weights.as_uri(), tmp_path / "cache"
    model, provenance = load_anyup(str(clone), "local", True, "cpu", commit, url, sha256, cache)
    assert provenance == {
        "anyup_repo": str(clone),
        "anyup_commit": commit,
        "anyup_weights_url": url,
        "anyup_weights_sha256": sha256,
    }
    expected = torch.load(weights, weights_only=True)
    assert all(torch.equal(value, expected[key]) for key, value in model.state_dict().items())
    with pytest.raises(CheckpointError, match="weights_sha256"):
        load_anyup(str(clone), "local", True, "cpu", commit, url, "0" * 64, tmp_path / "cache2")
    with pytest.raises(CheckpointError, match="checked out at"):
        load_anyup(str(clone), "local", False, "cpu", "1" * 40)


def test_config_weights_path_must_exist_before_any_job(tmp_path):
    from test_paths import mini_config

    from denselink.errors import ConfigError
    from denselink.pipeline.paths import check_config_paths

    config = mini_config()
    config["table1"]["embeddings"] = ["sam", "maester"]
    config["foundation"]["sam"] = {"upsampler": "anyup", "anyup": {"weights_path": "weights/anyup.pth"}}
    with pytest.raises(
        ConfigError, match="foundation.sam.anyup.weights_path: .* is not an existing weights file"
    ):
        check_config_paths(config, tmp_path)
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "anyup.pth").write_bytes(b"x")
    paths = check_config_paths(config, tmp_path)
    assert paths["foundation.sam.anyup.weights_path"] == tmp_path / "weights" / "anyup.pth"
