"""``tracking track`` checks its movie and its model as ``data validate`` checks a sequence.

The model is a real one at tiny size: ``tracking train`` for one epoch on the generated toy sequence
(conftest), and the same checkpoint exported as a trackastra model folder. Each case damages a copy
of the toy movie or of the model the way a user meets it, and must stop before any linking with an
error naming the file (or folder) and the problem; nothing is written to ``--out``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from denselink import cli
from denselink.data.ctc import validate_sequence
from denselink.errors import CheckpointError, ConfigError, CTCFormatError
from denselink.tracking.predict import export_trackastra_folder
from denselink.tracking.prepare import prepare
from denselink.tracking.settings import TrackastraSettings
from denselink.tracking.track import chosen_checkpoint, track
from denselink.tracking.train import train

SETTINGS = TrackastraSettings(
    window=4, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, epochs=1,
    batch_size=2, train_samples=4, crop_size=None, max_tokens=256, augment=0, mixed_precision=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def models(pristine: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A one-epoch run folder of ``tracking train`` on the toy sequence and its trackastra folder."""
    root = tmp_path_factory.mktemp("models")
    manifest = root / "01.json"
    manifest.write_text(json.dumps(validate_sequence(pristine, "toy", "01").to_dict()))
    prepare(manifest, root / "01.pt", SETTINGS)
    train(root / "01.pt", root / "run", 0, SETTINGS)
    export_trackastra_folder(chosen_checkpoint(root / "run"), root / "folder")
    return {"run": root / "run", "folder": root / "folder"}


@pytest.fixture
def movie(pristine: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the toy movie: raw frames and its label masks, in two folders."""
    images = Path(shutil.copytree(pristine / "01", tmp_path / "images"))
    masks = Path(shutil.copytree(pristine / "01_GT" / "TRA", tmp_path / "masks"))
    (masks / "man_track.txt").unlink()
    return images, masks


def _copy_first(images: Path, masks: Path) -> tuple[Path, str]:
    shutil.copy(images / "t000.tif", images / "t0000.tif")
    shutil.copy(masks / "man_track000.tif", masks / "man_track0000.tif")
    return images / "t0000.tif", "t000.tif and t0000.tif are both frame 0"


def _gap(images: Path, masks: Path) -> tuple[Path, str]:
    (images / "t003.tif").unlink()
    (masks / "man_track003.tif").unlink()
    return images / "t004.tif", "frame numbering gap: t004.tif follows t002.tif (frame 3 missing)"


def _nan_frame(images: Path, masks: Path) -> tuple[Path, str]:
    frame = images / "t002.tif"
    tifffile.imwrite(frame, np.full(tifffile.imread(frame).shape, np.nan, dtype=np.float32))
    return frame, "4096 non-finite pixels (NaN or inf), the first at (y=0, x=0): nan"


def _masks_from_one(images: Path, masks: Path) -> tuple[Path, str]:
    for t in reversed(range(8)):
        (masks / f"man_track{t:03d}.tif").rename(masks / f"man_track{t + 1:03d}.tif")
    return images / "t000.tif", f"frame 0 has no mask in {masks}"


def _renamed_frame(images: Path, masks: Path) -> tuple[Path, str]:
    (images / "t005.tif").rename(images / "frame.tif")
    return images / "frame.tif", "raw frame file name holds no frame number"


def _singleton_axis_mask(images: Path, masks: Path) -> tuple[Path, str]:
    mask = masks / "man_track004.tif"
    tifffile.imwrite(mask, tifffile.imread(mask)[..., np.newaxis])
    return mask, (
        "stored with shape (64, 64, 1); frames and masks are 2D images (64, 64), which the tracking and "
        "scoring libraries read as stored: save it without the axes of length 1 (np.squeeze)"
    )


def _empty_masks(images: Path, masks: Path) -> tuple[Path, str]:
    for path in masks.glob("*.tif"):
        tifffile.imwrite(path, np.zeros_like(tifffile.imread(path)))
    return masks, "no cells in any frame: all 8 masks are 0 (background)"


MOVIE_CASES: dict[str, Callable[[Path, Path], tuple[Path, str]]] = {
    "t0000.tif beside t000.tif": _copy_first,
    "numbering gap": _gap,
    "all-NaN frame": _nan_frame,
    "masks numbered from 1, frames from 0": _masks_from_one,
    "a frame renamed without its number": _renamed_frame,
    "(Y, X, 1) mask": _singleton_axis_mask,
    "all-empty masks": _empty_masks,
}


@pytest.mark.parametrize("case", MOVIE_CASES)
def test_movie_problems_are_named_before_linking(
    case: str, models: dict[str, Path], movie: tuple[Path, Path], tmp_path: Path
) -> None:
    images, masks = movie
    path, problem = MOVIE_CASES[case](images, masks)
    with pytest.raises(CTCFormatError) as info:
        track(models["run"], images, masks, tmp_path / "RES", tmp_path / "tracks.csv")
    assert (info.value.path, info.value.problem) == (str(path), problem)
    assert not (tmp_path / "RES").exists() and not (tmp_path / "tracks.csv").exists()


def test_tiff_frames_are_one_movie_for_validate_and_track(
    models: dict[str, Path], pristine: Path, tmp_path: Path
) -> None:
    dataset = Path(shutil.copytree(pristine, tmp_path / "toy"))
    images, masks = dataset / "01", dataset / "01_GT" / "TRA"
    expected = track(models["folder"], images, masks, tmp_path / "RES_tif")
    for path in [*images.glob("*.tif"), *masks.glob("*.tif")]:
        path.rename(path.with_suffix(".tiff"))
    manifest = validate_sequence(dataset, "toy", "01")
    assert [p.name for p in manifest.frames] == [f"t{t:03d}.tiff" for t in range(8)]
    tracked = track(models["folder"], images, masks, tmp_path / "RES_tiff")
    assert tracked.equals(expected) and len(expected) > 0
    assert (tmp_path / "RES_tiff" / "res_track.txt").read_text() == (
        tmp_path / "RES_tif" / "res_track.txt"
    ).read_text()


def _edit_config_json(run: Path) -> tuple[Path, str]:
    config_path = run / "config.json"
    config = json.loads(config_path.read_text())
    config["settings"]["d_model"] = 64
    config_path.write_text(json.dumps(config))
    checkpoint = chosen_checkpoint(run)
    return config_path, (
        f"settings gives d_model 64, but {checkpoint} holds a model with d_model 16; "
        "this config.json does not describe that checkpoint"
    )


def _broken_config_json(run: Path) -> tuple[Path, str]:
    (run / "config.json").write_text('{"settings": {"window": 4,')
    return run / "config.json", "unreadable run config (JSONDecodeError: Expecting property name"


def _edit_config_yaml(folder: Path) -> tuple[Path, str]:
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["d_model"] = 32
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return folder / "model.pt", (
        f"tensor proj.weight has shape (16, 152), but the sizes in {folder / 'config.yaml'} give (32, 152)"
    )


def _truncate_weights(folder: Path) -> tuple[Path, str]:
    weights = folder / "model.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    return weights, "unreadable model weights file ("


def _foreign_config_yaml(folder: Path) -> tuple[Path, str]:
    (folder / "config.yaml").write_text("d_modell: 16\n")
    return folder / "config.yaml", "not a trackastra model config (TypeError:"


MODEL_CASES: dict[str, tuple[str, Callable[[Path], tuple[Path, str]]]] = {
    "config.json sizes differ from the checkpoint": ("run", _edit_config_json),
    "config.json is not JSON": ("run", _broken_config_json),
    "config.yaml sizes differ from model.pt": ("folder", _edit_config_yaml),
    "truncated model.pt": ("folder", _truncate_weights),
    "config.yaml of something else": ("folder", _foreign_config_yaml),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_model_folder_problems_are_named_before_any_work(
    case: str, models: dict[str, Path], movie: tuple[Path, Path], tmp_path: Path
) -> None:
    kind, damage = MODEL_CASES[case]
    model = Path(shutil.copytree(models[kind], tmp_path / kind))
    path, problem = damage(model)
    with pytest.raises(CheckpointError) as info:
        track(model, *movie, tmp_path / "RES")
    assert info.value.path == str(path) and problem in info.value.problem, info.value
    assert not (tmp_path / "RES").exists()


def test_track_cli_names_the_model_file_in_one_line(
    models: dict[str, Path], movie: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(models["folder"], tmp_path / "folder"))
    weights, _ = _truncate_weights(model)
    images, masks = movie
    argv = ["tracking", "track", "--model", model, "--images", images, "--masks", masks]
    assert cli.main([str(a) for a in [*argv, "--out", tmp_path / "RES"]]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"denselink: checkpoint error: {weights}: unreadable model weights file ("), last


def test_embedding_checkpoint_is_refused_for_a_model_without_learned_features(
    models: dict[str, Path], movie: tuple[Path, Path], tmp_path: Path
) -> None:
    with pytest.raises(ConfigError) as info:
        track(models["run"], *movie, tmp_path / "RES", embedding_checkpoint=tmp_path / "x.pt")
    assert (info.value.path, info.value.problem) == (
        "--embedding-checkpoint",
        "only a fused model's recomputed features use it",
    )
