"""``tracking track`` on generated data: a fused model links a movie without ground truth.

The movie's features are recomputed from the recipe recorded at training (random-init tiny SAM
encoder, bilinear upsampling, centroid aggregation), so the CTC result must equal the one
``tracking evaluate`` writes for the same checkpoint from the pipeline's own feature table.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from denselink import cli
from denselink.errors import ConfigError, CTCFormatError
from denselink.tracking.track import TABLE_COLUMNS, chosen_checkpoint, track

SETTINGS = {
    "window": 4,
    "d_model": 32,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "pos_embed_per_dim": 8,
    "feat_embed_per_dim": 4,
    "epochs": 3,
    "warmup_epochs": 1,
    "train_samples": 64,
    "lr": 2e-3,
    "crop_size": None,
    "val_fraction": 0.25,
    "fusion": "add_wrfeat",
}
FOUNDATION = {
    "random_init": True,
    "seed": 3,
    "encoder": {"img_size": 64, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "upsampler": "bilinear",
    "device": "cpu",
    "chunk": 32,
}


def _run(*argv: str | Path) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def fused_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Synthetic data -> validate -> embed -> aggregate -> prepare -> train (fused) -> evaluate."""
    root = tmp_path_factory.mktemp("track")
    data = root / "Synth"
    _run("data", "synth", "--out", data, "--settings", json.dumps({"n_frames": 10, "seed": 4}))
    paths = {"data": data, "model": root / "model", "res": root / "res01", "metrics": root / "m.json"}
    for seq in ("01", "02"):
        manifest = root / f"{seq}.json"
        _run("data", "validate", "--dataset-dir", data, "--dataset", "Synth", "--seq", seq, "--out", manifest)
        _run("foundation", "embed", "--model", "sam", "--manifest", manifest, "--out", root / f"{seq}.zarr",
             "--settings", json.dumps(FOUNDATION))  # fmt: skip
        _run("features", "aggregate", "--embedding", root / f"{seq}.zarr", "--manifest", manifest,
             "--agg", "centroid", "--out", root / f"{seq}.parquet")  # fmt: skip
        paths[f"manifest{seq}"], paths[f"features{seq}"] = manifest, root / f"{seq}.parquet"
    settings = json.dumps(SETTINGS)
    _run(
        "tracking",
        "prepare",
        "--manifest",
        paths["manifest02"],
        "--out",
        root / "02.pt",
        "--settings",
        settings,
    )
    _run("tracking", "train", "--data", root / "02.pt", "--features", paths["features02"],
         "--out", paths["model"], "--seed", "1", "--settings", settings)  # fmt: skip
    _run("tracking", "evaluate", "--model-dir", paths["model"], "--manifest", paths["manifest01"],
         "--features", paths["features01"], "--out", paths["metrics"], "--res-dir", paths["res"],
         "--settings", settings)  # fmt: skip
    return paths


def _same_ctc_folder(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir()) and "res_track.txt" in names
    assert (a / "res_track.txt").read_text() == (b / "res_track.txt").read_text() != ""
    for name in names:
        if name.endswith(".tif"):
            np.testing.assert_array_equal(tifffile.imread(a / name), tifffile.imread(b / name))


def test_checkpoint_records_the_feature_recipe(fused_run: dict[str, Path]) -> None:
    config = json.loads((fused_run["model"] / "config.json").read_text())
    recipe = config["features_recipe"]
    assert (recipe["backbone"], recipe["agg"]) == ("sam", "centroid")
    assert recipe["settings"]["random_init"] is True and recipe["settings"]["seed"] == 3
    assert recipe["settings"]["encoder"]["embed_dim"] == 32 and recipe["settings"]["upsampler"] == "bilinear"


def test_track_recomputes_features_and_equals_evaluate(fused_run: dict[str, Path], tmp_path: Path) -> None:
    data = fused_run["data"]
    _run("tracking", "track", "--model", fused_run["model"], "--images", data / "01",
         "--masks", data / "01_GT" / "TRA", "--out", tmp_path / "RES", "--table", tmp_path / "tracks.csv",
         "--work-dir", tmp_path / "work")  # fmt: skip
    replayed = pd.read_parquet(tmp_path / "work" / "sam-centroid.parquet")
    pd.testing.assert_frame_equal(replayed, pd.read_parquet(fused_run["features01"]))
    _same_ctc_folder(tmp_path / "RES", fused_run["res"])
    metrics = json.loads(fused_run["metrics"].read_text())
    assert chosen_checkpoint(fused_run["model"]).name == Path(metrics["checkpoint"]).name


def test_tracks_table_matches_the_ctc_folder(fused_run: dict[str, Path], tmp_path: Path) -> None:
    data = fused_run["data"]
    table = track(fused_run["model"], data / "01", data / "01_GT" / "TRA", tmp_path / "RES",
                  tmp_path / "tracks.parquet")  # fmt: skip
    assert tuple(pd.read_parquet(tmp_path / "tracks.parquet").columns) == TABLE_COLUMNS
    res_track = np.loadtxt(tmp_path / "RES" / "res_track.txt", dtype=int, ndmin=2)
    for row in table.itertuples():
        mask = tifffile.imread(data / "01_GT" / "TRA" / f"man_track{row.frame:03d}.tif")
        result = tifffile.imread(tmp_path / "RES" / f"mask{row.frame:03d}.tif")
        assert set(np.unique(result[mask == row.label])) == {row.track_id}
        ys, xs = np.nonzero(mask == row.label)
        assert (row.y, row.x) == pytest.approx((ys.mean(), xs.mean()))
    parents = {int(label): int(parent) for label, _, _, parent in res_track}
    assert dict(zip(table["track_id"], table["parent_track_id"], strict=True)) == {
        t: parents[t] for t in table["track_id"]
    }
    spans = table.groupby("track_id")["frame"].agg(["min", "max"])
    assert {(int(r[0]), int(r[1]), int(r[2])) for r in res_track} == {
        (t, s["min"], s["max"]) for t, s in spans.iterrows()
    }


def test_fused_model_without_features_or_recipe_is_refused(
    fused_run: dict[str, Path], tmp_path: Path
) -> None:
    model = tmp_path / "model"
    shutil.copytree(fused_run["model"], model)
    config = json.loads((model / "config.json").read_text())
    config["features_recipe"] = None
    (model / "config.json").write_text(json.dumps(config))
    checkpoint = chosen_checkpoint(model)
    record = torch.load(checkpoint, weights_only=False)
    record["features_recipe"] = None
    torch.save(record, checkpoint)
    data = fused_run["data"]
    with pytest.raises(ConfigError, match="--features"):
        track(model, data / "01", data / "01_GT" / "TRA", tmp_path / "RES")
    track(model, data / "01", data / "01_GT" / "TRA", tmp_path / "RES", features=fused_run["features01"])
    _same_ctc_folder(tmp_path / "RES", fused_run["res"])


def test_frames_without_masks_are_refused(fused_run: dict[str, Path], tmp_path: Path) -> None:
    masks = tmp_path / "masks"
    shutil.copytree(fused_run["data"] / "01_GT" / "TRA", masks)
    sorted(masks.glob("*.tif"))[-1].unlink()
    with pytest.raises(CTCFormatError) as info:
        track(fused_run["model"], fused_run["data"] / "01", masks, tmp_path / "RES")
    assert info.value.path == str(fused_run["data"] / "01" / "t009.tif")
    assert info.value.problem == f"frame 9 has no mask in {masks}"
    assert not (tmp_path / "RES").exists()


def test_log_counts_linked_cells_and_single_frame_tracks(
    fused_run: dict[str, Path],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With a strict edge threshold most cells stay alone; the log says so, counted from the CTC result.

    Every step over the frames shows a finished progress bar with its elapsed and remaining time.
    """
    data = fused_run["data"]
    with caplog.at_level("INFO", logger="denselink.tracking.track"):
        track(fused_run["model"], data / "01", data / "01_GT" / "TRA", tmp_path / "RES", edge_threshold=0.999)
    bars = capsys.readouterr().err
    for step in ("embed", "aggregate centroid", "tracks table"):
        assert re.search(rf"{step}: 100%\|[^|]*\| (\d+)/\1 \[\d\d:\d\d<00:00", bars), step
    rows = np.loadtxt(tmp_path / "RES" / "res_track.txt", dtype=int, ndmin=2)
    masks = [tifffile.imread(p) for p in sorted((data / "01_GT" / "TRA").glob("man_track*.tif"))]
    cells = sum(len(np.unique(m[m > 0])) for m in masks)
    parents = set(rows[:, 3]) - {0}
    alone = sum(1 for label, t1, t2, parent in rows if t1 == t2 and parent == 0 and label not in parents)
    single = int((rows[:, 1] == rows[:, 2]).sum())
    assert single > 0 and alone > 0
    expected = (
        f"{cells} cells: {cells - alone} linked to another cell, {alone} to none; "
        f"{len(rows)} tracks, {single} of them a single frame"
    )
    assert any(record.getMessage().startswith(expected + " -> ") for record in caplog.records), caplog.text
