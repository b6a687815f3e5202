"""A fused model's recipe finds its MAESTER checkpoint from any folder, and after the results have moved.

The model is built at tiny size through the commands, each in the folder a user would run it from:
``maester infer`` in the project folder with the checkpoint given as a relative path, ``tracking
train`` one folder up; ``tracking track`` then runs from a third folder. The recipe must hold the
checkpoint's absolute path and sha256, and ``tracking track`` must recompute exactly the features
the model was trained on, find the checkpoint by its hash when the project folder has moved, and
take ``--embedding-checkpoint`` only for a file whose hash matches.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from denselink import cli
from denselink.data.manifest import file_sha256
from denselink.errors import CheckpointError
from denselink.maester.checkpoint import save_checkpoint
from denselink.maester.model import MaesterModelSettings, build_model
from denselink.tracking.track import track

MINI = MaesterModelSettings(
    img_size=20, patch_size=5, embed_dim=16, depth=2, num_heads=1,
    decoder_embed_dim=16, decoder_depth=1, decoder_num_heads=1,
)  # fmt: skip
INFER = {"central_patch": 2, "batch_size": 64, "tile": 32, "device": "cpu"}
TRACKING = {
    "window": 4, "d_model": 16, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1,
    "epochs": 1, "batch_size": 2, "train_samples": 8, "crop_size": None, "val_fraction": 0.25,
    "fusion": "add_wrfeat", "mixed_precision": False,
}  # fmt: skip
CHECKPOINT = Path("maester") / "checkpoints" / "epoch001.pt"


def _run(*argv: str | Path) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


def _save_maester(path: Path, seed: int) -> Path:
    model = build_model(MINI, seed=seed)
    payload = {"model_settings": MINI.model_dump(), "state_dict": model.state_dict(), "epoch": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, payload)
    return path


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``<root>/work``: data, MAESTER checkpoint, embeddings and features; ``<root>/work/model``: the run."""
    root = tmp_path_factory.mktemp("recipe")
    work = root / "work"
    work.mkdir()
    _save_maester(work / CHECKPOINT, seed=0)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        _run("data", "synth", "--out", "Synth", "--settings", json.dumps({"n_frames": 8, "seed": 4}))
        for seq in ("01", "02"):
            _run("data", "validate", "--dataset-dir", "Synth", "--dataset", "Synth", "--seq", seq,
                 "--out", f"{seq}.json")  # fmt: skip
            _run("maester", "infer", "--checkpoint", CHECKPOINT, "--manifest", f"{seq}.json",
                 "--out", f"{seq}.zarr", "--settings", json.dumps(INFER))  # fmt: skip
            _run("features", "aggregate", "--embedding", f"{seq}.zarr", "--manifest", f"{seq}.json",
                 "--agg", "centroid", "--out", f"{seq}.parquet")  # fmt: skip
        mp.chdir(root)
        _run("tracking", "prepare", "--manifest", "work/02.json", "--out", "work/02.pt",
             "--settings", json.dumps(TRACKING))  # fmt: skip
        _run("tracking", "train", "--data", "work/02.pt", "--features", "work/02.parquet",
             "--out", "work/model", "--seed", "1", "--settings", json.dumps(TRACKING))  # fmt: skip
    return work


@pytest.fixture
def hidden_checkpoint(project: Path) -> Iterator[Path]:
    """The project's MAESTER checkpoint moved out of reach for one test (put back afterwards)."""
    original = project / CHECKPOINT
    hidden = original.with_name(".hidden")
    original.rename(hidden)
    try:
        yield hidden
    finally:
        hidden.rename(original)


def _track_from(cwd: Path, model: Path, data: Path, out: Path, **kwargs: Path) -> pd.DataFrame:
    """``tracking track`` run from ``cwd`` on sequence 01 of ``data``; returns the recomputed features."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        track(model, data / "01", data / "01_GT" / "TRA", out / "RES", work_dir=out / "work", **kwargs)
    return pd.read_parquet(out / "work" / "maester-centroid.parquet")


def test_recipe_records_the_absolute_checkpoint_and_its_hash(project: Path) -> None:
    recipe = json.loads((project / "model" / "config.json").read_text())["features_recipe"]
    assert recipe["backbone"] == "maester" and recipe["agg"] == "centroid"
    assert recipe["checkpoint"] == str((project / CHECKPOINT).resolve())
    assert recipe["checkpoint_sha256"] == file_sha256(project / CHECKPOINT)


def test_track_from_another_folder_recomputes_the_training_features(project: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    features = _track_from(elsewhere, project / "model", project / "Synth", tmp_path)
    pd.testing.assert_frame_equal(features, pd.read_parquet(project / "01.parquet"))
    assert (tmp_path / "RES" / "res_track.txt").read_text() != ""


def test_moved_project_folder_is_found_by_hash(
    project: Path, hidden_checkpoint: Path, tmp_path: Path
) -> None:
    moved = Path(shutil.copytree(project, tmp_path / "moved"))
    (moved / CHECKPOINT.parent / hidden_checkpoint.name).rename(moved / CHECKPOINT)
    features = _track_from(tmp_path, moved / "model", moved / "Synth", tmp_path / "out")
    pd.testing.assert_frame_equal(features, pd.read_parquet(project / "01.parquet"))


def test_checkpoint_out_of_reach_is_given_by_flag_and_hash_checked(
    project: Path, hidden_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = Path(shutil.copytree(project / "model", tmp_path / "model"))
    recorded = str((project / CHECKPOINT).resolve())
    with pytest.raises(CheckpointError) as info:
        _track_from(tmp_path, model, project / "Synth", tmp_path / "missing")
    assert info.value.path == recorded
    assert info.value.problem.endswith("give its new place with --embedding-checkpoint PATH")
    assert not (tmp_path / "missing" / "RES").exists()

    other = _save_maester(tmp_path / "other.pt", seed=1)
    with pytest.raises(CheckpointError) as info:
        _track_from(tmp_path, model, project / "Synth", tmp_path / "other", embedding_checkpoint=other)
    assert (info.value.path, info.value.problem) == (
        str(other),
        f"sha256 {file_sha256(other)} differs from {file_sha256(hidden_checkpoint)}, "
        f"the hash of the maester checkpoint the model was trained with ({recorded})",
    )

    weights = Path(shutil.copy(hidden_checkpoint, tmp_path / "weights.pt"))
    data = project / "Synth"
    _run("tracking", "track", "--model", model, "--images", data / "01", "--masks", data / "01_GT" / "TRA",
         "--out", tmp_path / "RES", "--work-dir", tmp_path / "work",
         "--embedding-checkpoint", weights)  # fmt: skip
    features = pd.read_parquet(tmp_path / "work" / "maester-centroid.parquet")
    pd.testing.assert_frame_equal(features, pd.read_parquet(project / "01.parquet"))
