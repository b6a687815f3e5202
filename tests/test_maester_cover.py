"""Cover-and-stride: the fast implementation equals the literal one; tokens land where their patch is."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from denselink.errors import ConfigError
from denselink.maester.cover import (
    CoverGeometry,
    cover_and_stride,
    cover_and_stride_reference,
    plan_cover,
    window_walk,
)
from denselink.maester.model import MaesterModelSettings, build_model

MINI = MaesterModelSettings(
    img_size=20, patch_size=5, embed_dim=16, depth=2, num_heads=1,
    decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=1,
)  # fmt: skip


def centre_pixel_encoder(patch_size: int):
    """An 'encoder' whose token is the value of its patch's centre pixel: shows where tokens land."""

    def encode(crops: torch.Tensor) -> torch.Tensor:
        centres = crops[:, 0, patch_size // 2 :: patch_size, patch_size // 2 :: patch_size]
        return centres.reshape(crops.shape[0], -1, 1)

    return encode


def coordinate_image(height: int, width: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (yy * width + xx + 1).astype(np.float32)


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("shape", [(37, 45), (64, 64), (25, 31)])
def test_fast_cover_and_stride_equals_reference(legacy: bool, shape: tuple[int, int]) -> None:
    torch.manual_seed(0)
    model = build_model(MINI, seed=3).eval()
    frame = np.random.default_rng(1).random(shape).astype(np.float32)
    geometry = CoverGeometry(20, 5, 2, legacy)
    reference = cover_and_stride_reference(model.encode, frame, geometry)
    fast = cover_and_stride(model.encode, frame, geometry, batch_size=97)
    assert fast.shape == reference.shape == (16, *shape)
    assert np.abs(fast - reference).max() <= 1e-5


def test_paper_geometry_walk_and_padding() -> None:
    legacy = CoverGeometry(80, 5, 4, legacy_offset=True)
    assert legacy.pad == 34  # the original code's PAD
    assert window_walk(68 + 40, legacy)[:12] == [0, 1, 2, 3, 4, 19, 20, 21, 22, 23, 24, 25]
    assert CoverGeometry(80, 5, 4).pad == 32  # centre of the first kept token
    assert legacy.token_index(0, 0) == 6 * 16 + 6 + 1  # one past token (6, 6): double cls removal


def test_default_placement_centres_each_token_on_its_pixel() -> None:
    image = coordinate_image(41, 53)
    geometry = CoverGeometry(40, 5, 4)
    dense = cover_and_stride(centre_pixel_encoder(5), image, geometry)[0]
    np.testing.assert_array_equal(dense, image)


def test_legacy_placement_reproduces_the_original_shift() -> None:
    height, width = 41, 53
    image = coordinate_image(height, width)
    geometry = CoverGeometry(40, 5, 4, legacy_offset=True)
    dense = cover_and_stride(centre_pixel_encoder(5), image, geometry)[0]
    reference = cover_and_stride_reference(centre_pixel_encoder(5), image, geometry)[0]
    np.testing.assert_array_equal(dense, reference)
    plan = plan_cover((height, width), geometry)
    written = (plan.window_h[:, None] >= 0) & (plan.window_w[None, :] >= 0)
    expected = np.zeros_like(image)
    expected[2:, : width - 3] = image[:-2, 3:]  # token centred at (y - 2, x + 3); zero padding beyond
    np.testing.assert_array_equal(dense[written], expected[written])
    # the original walk leaves columns 42, 47 and 52 of a 53-px-wide image without any token
    assert sorted(set(np.nonzero(~written)[1])) == [42, 47, 52]
    assert (dense[~written] == 0).all()
    assert (dense != image).mean() > 0.99


@pytest.mark.parametrize("length", range(12, 140, 7))
def test_default_plan_covers_every_pixel(length: int) -> None:
    for geometry in (CoverGeometry(80, 5, 4), CoverGeometry(20, 5, 2)):
        plan = plan_cover((length, length + 3), geometry)
        assert (plan.window_h >= 0).all() and (plan.window_w >= 0).all()


def test_paper_image_sizes_are_fully_covered_in_legacy_mode() -> None:
    legacy = CoverGeometry(80, 5, 4, legacy_offset=True)
    for shape in [(700, 1100), (512, 512)]:  # Fluo-N2DL-HeLa, DIC-C2DH-HeLa
        plan = plan_cover(shape, legacy)
        assert (plan.window_h >= 0).all() and (plan.window_w >= 0).all()


def test_geometry_rejects_even_patches_and_oversized_centres() -> None:
    with pytest.raises(ConfigError, match="odd"):
        CoverGeometry(80, 4, 4)
    with pytest.raises(ConfigError, match="central_patch"):
        CoverGeometry(20, 5, 5)
