"""A crop of real CTC training data (Fluo-N2DH-SIM+, tests/data/ctc_sim_crop) end to end.

validate -> prepare -> train (a few epochs) -> evaluate through the ``denselink`` commands, then
the chosen checkpoint's CTC result folder is scored again by py-ctcmetrics, an independent
implementation of the Cell Tracking Challenge measures; both must agree.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from denselink import cli
from denselink.data.ctc import read_man_track
from denselink.data.manifest import load_manifest
from denselink.tracking.track import TABLE_COLUMNS, track

CROP = Path(__file__).parent / "data" / "ctc_sim_crop"
DATASET = "Fluo-N2DH-SIM+"
SETTINGS = {
    "window": 4,
    "d_model": 32,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "pos_embed_per_dim": 8,
    "feat_embed_per_dim": 4,
    "epochs": 4,
    "warmup_epochs": 1,
    "train_samples": 128,
    "lr": 4e-3,
    "crop_size": None,
    "val_fraction": 0.25,
}


def _run(*argv: str | Path) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The crop through validate, prepare, train (02, held-out tail) and evaluate (01)."""
    root = tmp_path_factory.mktemp("real_ctc")
    settings = json.dumps(SETTINGS)
    paths = {"root": root, "res": root / "res01", "metrics": root / "metrics.json", "model": root / "model"}
    for seq in ("01", "02"):
        paths[f"manifest{seq}"] = root / f"{seq}.json"
        _run("data", "validate", "--dataset-dir", CROP, "--dataset", DATASET, "--seq", seq,
             "--out", paths[f"manifest{seq}"])  # fmt: skip
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
    _run("tracking", "train", "--data", root / "02.pt", "--out", paths["model"], "--seed", "0",
         "--settings", settings)  # fmt: skip
    _run("tracking", "evaluate", "--model-dir", paths["model"], "--manifest", paths["manifest01"],
         "--out", paths["metrics"], "--res-dir", paths["res"], "--settings", settings)  # fmt: skip
    return paths


def test_crop_keeps_real_data_properties() -> None:
    for seq, shape in (("01", (256, 240)), ("02", (240, 256))):
        for path in (CROP / seq / "t000.tif", CROP / f"{seq}_GT" / "TRA" / "man_track000.tif"):
            with tifffile.TiffFile(path) as tif:
                page = tif.pages.first
                assert (page.shape, page.dtype, page.compression.name) == (shape, np.uint16, "LZW")
        tracks = read_man_track(CROP / f"{seq}_GT" / "TRA" / "man_track.txt")
        assert (tracks.groupby("parent").size().drop(0, errors="ignore") == 2).sum() >= 5  # divisions


def test_manifests_record_the_real_sequences(pipeline: dict[str, Path]) -> None:
    one, two = load_manifest(pipeline["manifest01"]), load_manifest(pipeline["manifest02"])
    assert (one.n_frames, one.shape, one.dtype) == (24, (256, 240), "uint16")
    assert (two.n_frames, two.shape, two.dtype) == (24, (240, 256), "uint16")


def test_scores_equal_py_ctcmetrics(pipeline: dict[str, Path]) -> None:
    evaluate_sequence = pytest.importorskip("ctc_metrics.scripts.evaluate").evaluate_sequence
    record = json.loads(pipeline["metrics"].read_text())
    independent = evaluate_sequence(
        str(pipeline["res"]), str(CROP / "01_GT"), metrics=["LNK", "TRA", "DET"], threads=1
    )
    assert record["LNK"] > 0.5  # a few epochs on the other sequence already link most cells
    for key in ("LNK", "TRA", "DET"):
        assert record[key] == independent[key], key  # the same counts through the same formulas


def test_ground_truth_scores_one_in_py_ctcmetrics(tmp_path: Path) -> None:
    evaluate_sequence = pytest.importorskip("ctc_metrics.scripts.evaluate").evaluate_sequence
    tra = CROP / "01_GT" / "TRA"
    for t, mask in enumerate(sorted(tra.glob("man_track*.tif"))):
        (tmp_path / f"mask{t:03d}.tif").write_bytes(mask.read_bytes())
    (tmp_path / "res_track.txt").write_bytes((tra / "man_track.txt").read_bytes())
    scores = evaluate_sequence(str(tmp_path), str(CROP / "01_GT"), metrics=["LNK", "TRA", "DET"], threads=1)
    assert (scores["LNK"], scores["TRA"], scores["DET"]) == (1.0, 1.0, 1.0)


def test_track_own_masks_equals_evaluate(pipeline: dict[str, Path], tmp_path: Path) -> None:
    """Linking sequence 01 as a user's movie (no man_track.txt) gives evaluate's CTC result."""
    masks = tmp_path / "masks"
    masks.mkdir()
    for path in sorted((CROP / "01_GT" / "TRA").glob("man_track*.tif")):
        (masks / path.name.replace("man_track", "seg")).write_bytes(path.read_bytes())
    table = track(pipeline["model"], CROP / "01", masks, tmp_path / "RES", tmp_path / "tracks.csv")
    assert (tmp_path / "RES" / "res_track.txt").read_text() == (pipeline["res"] / "res_track.txt").read_text()
    for path in sorted(pipeline["res"].glob("mask*.tif")):
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "RES" / path.name), tifffile.imread(path))
    written = pd.read_csv(tmp_path / "tracks.csv")
    assert list(written.columns) == list(TABLE_COLUMNS) and len(written) == len(table) > 0
