"""MAESTER inference into zarr: layout, attributes, values, checkpoint formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import zarr
from zarr.codecs import BloscCodec

from denselink import __version__
from denselink.cli import main as cli_main
from denselink.data.manifest import SequenceManifest
from denselink.maester.checkpoint import load_model, save_checkpoint
from denselink.maester.cover import CoverGeometry, cover_and_stride
from denselink.maester.dataset import minmax_scale
from denselink.maester.infer import MaesterInferSettings, infer_sequence
from denselink.maester.model import MaesterModelSettings, build_model

MINI = MaesterModelSettings(
    img_size=20, patch_size=5, embed_dim=16, depth=2, num_heads=1,
    decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=1,
)  # fmt: skip


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(3):
        path = tmp_path / f"t{t:03d}.tif"
        tifffile.imwrite(path, (rng.random((30, 41)) * 3000).astype(np.uint16))
        frames.append(path)
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(SequenceManifest("toy", "02", frames, (30, 41), "uint16").to_dict()))
    model = build_model(MINI, seed=0)
    checkpoint = tmp_path / "epoch7.pt"
    save_checkpoint(
        checkpoint, {"model_settings": MINI.model_dump(), "state_dict": model.state_dict(), "epoch": 7}
    )
    return checkpoint, manifest


def test_zarr_layout_attrs_and_values(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, manifest = inputs
    settings = MaesterInferSettings(central_patch=2, batch_size=64, tile=16, device="cpu")
    out = infer_sequence(checkpoint, manifest, tmp_path / "emb.zarr", settings)
    array = zarr.open_group(out, mode="r")["embedding"]
    assert array.shape == (3, 16, 30, 41) and array.dtype == np.float16 and array.chunks == (1, 16, 16, 16)
    attrs = dict(array.attrs)
    assert attrs["backbone"] == "maester" and attrs["epoch"] == 7 and attrs["image_shape"] == [30, 41]
    assert attrs["checkpoint"] == str(checkpoint) and attrs["denselink_version"] == __version__
    assert attrs["settings"]["central_patch"] == 2 and len(attrs["source_hashes"]) == 3
    assert attrs["device"] == "cpu" and attrs["device_name"]
    model, _ = load_model(checkpoint)
    frame = minmax_scale(tifffile.imread(json.loads(manifest.read_text())["frames"][1]))
    expected = cover_and_stride(model.encode, frame, CoverGeometry(20, 5, 2))
    np.testing.assert_array_equal(array[1], expected.astype(np.float16))
    assert not list(tmp_path.glob(".tmp-*"))


def test_volumes_are_compressed_losslessly(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    checkpoint, manifest = inputs
    arrays = {}
    for codec in ("blosc-zstd", "none"):
        settings = MaesterInferSettings(central_patch=2, tile=16, device="cpu", compression=codec)
        out = infer_sequence(checkpoint, manifest, tmp_path / f"{codec}.zarr", settings)
        arrays[codec] = zarr.open_group(out, mode="r")["embedding"]
    (blosc,) = arrays["blosc-zstd"].compressors
    assert isinstance(blosc, BloscCodec) and blosc.cname.value == "zstd" and blosc.clevel == 5
    assert arrays["none"].compressors == ()
    np.testing.assert_array_equal(arrays["blosc-zstd"][:], arrays["none"][:])


def test_cli_writes_zarr_and_reports_a_missing_checkpoint(
    inputs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint, manifest = inputs
    out = tmp_path / "cli.zarr"
    args = ["maester", "infer", "--manifest", str(manifest), "--out", str(out)]
    assert (
        cli_main(
            [
                *args,
                "--checkpoint",
                str(checkpoint),
                "--settings",
                '{"central_patch": 2, "legacy_offset": true}',
            ]
        )
        == 0
    )
    assert zarr.open_group(out, mode="r")["embedding"].attrs["settings"]["legacy_offset"] is True
    assert cli_main([*args, "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    assert "nope.pt: checkpoint file does not exist" in capsys.readouterr().err


def test_original_state_dicts_load_with_paper_settings(tmp_path: Path) -> None:
    model = build_model(MaesterModelSettings(), seed=0)
    path = tmp_path / "model_18249.pt"
    torch.save(model.state_dict(), path)
    loaded, state = load_model(path)
    assert state["epoch"] == 18249 and loaded.settings == MaesterModelSettings()
    assert torch.equal(loaded.blocks[13].mlp.fc2.weight, model.blocks[13].mlp.fc2.weight)
