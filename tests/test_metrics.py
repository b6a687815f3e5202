"""CTC scores against hand-computed values (Maska et al. 2023 weights), and metrics JSON I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from denselink.errors import CTCFormatError
from denselink.evaluate.metrics import (
    MetricsFormatError,
    load_metrics,
    metrics_record,
    read_metrics,
    score_ctc,
    write_metrics,
)

# Four square positions in a 24x24 frame; a cell "at" a position fills that square.
POSITIONS = {"A": (2, 2), "B": (2, 14), "C": (14, 2), "D": (14, 14)}


def write_ctc(
    directory: Path, frames: list[dict[int, str]], tracks: list[tuple[int, int, int, int]], gt: bool
) -> Path:
    """Write masks (label -> position per frame) and a track file in CTC layout."""
    directory.mkdir(parents=True)
    for t, cells in enumerate(frames):
        mask = np.zeros((24, 24), np.uint16)
        for label, position in cells.items():
            y, x = POSITIONS[position]
            mask[y : y + 8, x : x + 8] = label
        name = f"man_track{t:03d}.tif" if gt else f"mask{t:03d}.tif"
        tifffile.imwrite(directory / name, mask)
    track_name = "man_track.txt" if gt else "res_track.txt"
    (directory / track_name).write_text("".join(f"{a} {b} {c} {d}\n" for a, b, c, d in tracks))
    return directory


TWO_CELLS = [{1: "A", 2: "D"}] * 4
TWO_TRACKS = [(1, 0, 3, 0), (2, 0, 3, 0)]


@pytest.fixture
def gt_two(tmp_path: Path) -> Path:
    return write_ctc(tmp_path / "01_GT" / "TRA", TWO_CELLS, TWO_TRACKS, gt=True)


def test_lnk_of_ground_truth_is_one(tmp_path: Path, gt_two: Path) -> None:
    res = write_ctc(tmp_path / "01_RES", TWO_CELLS, TWO_TRACKS, gt=False)
    scores = score_ctc(gt_two, res)
    assert (scores["LNK"], scores["TRA"], scores["DET"]) == (1.0, 1.0, 1.0)


def test_identity_swap_after_frame_one(tmp_path: Path, gt_two: Path) -> None:
    # Labels swap between frames 1 and 2: 2 false-positive + 2 false-negative edges.
    frames = [{1: "A", 2: "D"}, {1: "A", 2: "D"}, {1: "D", 2: "A"}, {1: "D", 2: "A"}]
    res = write_ctc(tmp_path / "01_RES", frames, TWO_TRACKS, gt=False)
    scores = score_ctc(gt_two, res)
    # AOGM-A = 1*2 + 1.5*2 = 5; AOGM-A_0 = 1.5 * 6 GT edges = 9.
    assert scores["LNK"] == pytest.approx(1 - 5 / 9)
    # AOGM_0 = 10 * 8 nodes + 1.5 * 6 edges = 89; no vertex errors.
    assert scores["TRA"] == pytest.approx(1 - 5 / 89)
    assert scores["DET"] == 1.0
    assert (scores["AOGM_ED"], scores["AOGM_EA"]) == (2, 2)


def test_one_missing_link(tmp_path: Path, gt_two: Path) -> None:
    frames = [{1: "A", 2: "D"}, {1: "A", 2: "D"}, {3: "A", 2: "D"}, {3: "A", 2: "D"}]
    res = write_ctc(tmp_path / "01_RES", frames, [(1, 0, 1, 0), (2, 0, 3, 0), (3, 2, 3, 0)], gt=False)
    scores = score_ctc(gt_two, res)
    assert scores["LNK"] == pytest.approx(1 - 1.5 / 9)
    assert scores["TRA"] == pytest.approx(1 - 1.5 / 89)


def test_division_taken_as_continuation_is_wrong_semantics(tmp_path: Path) -> None:
    # GT: 1 divides into 2 and 3 at frame 2. Prediction continues 1 into daughter 2's place.
    gt_frames = [{1: "A"}, {1: "A"}, {2: "B", 3: "C"}, {2: "B", 3: "C"}]
    gt = write_ctc(tmp_path / "GT", gt_frames, [(1, 0, 1, 0), (2, 2, 3, 1), (3, 2, 3, 1)], gt=True)
    res_frames = [{1: "A"}, {1: "A"}, {1: "B", 3: "C"}, {1: "B", 3: "C"}]
    res = write_ctc(tmp_path / "RES", res_frames, [(1, 0, 3, 0), (3, 2, 3, 0)], gt=False)
    scores = score_ctc(gt, res)
    # 5 GT edges; 1 wrong-semantics edge (weight 1) + 1 missing division edge (1.5).
    assert (scores["AOGM_EC"], scores["AOGM_EA"], scores["AOGM_ED"]) == (1, 1, 0)
    assert scores["LNK"] == pytest.approx(1 - 2.5 / 7.5)


def test_missing_track_file_is_named(tmp_path: Path, gt_two: Path) -> None:
    res = write_ctc(tmp_path / "01_RES", TWO_CELLS, TWO_TRACKS, gt=False)
    (res / "res_track.txt").unlink()
    with pytest.raises(CTCFormatError, match="res_track.txt"):
        score_ctc(gt_two, res)


def _record(seed: int, lnk: float | None = 0.9, **extra) -> dict:
    return metrics_record(
        dataset="Fluo-N2DL-HeLa",
        variant="retrained",
        seed=seed,
        protocol="clean",
        train_seq="02",
        eval_seq="01",
        checkpoint="epoch3.pt",
        scores={"LNK": lnk, "TRA": 0.8, "DET": 0.95},
        per_epoch=[
            {"epoch": e, "LNK": 0.5 + e / 10, "TRA": 0.7, "DET": 0.9, "val_loss": 1.0 / (e + 1)}
            for e in range(3)
        ],
        **extra,
    )


def test_metrics_roundtrip_and_frames(tmp_path: Path) -> None:
    paths = []
    for seed in range(2):
        paths.append(tmp_path / f"seed{seed}.json")
        write_metrics(paths[-1], _record(seed, lnk=float("nan") if seed else 0.9))
    assert read_metrics(paths[0])["LNK"] == 0.9
    assert read_metrics(paths[1])["LNK"] is None
    runs, epochs = load_metrics(paths)
    assert list(runs["seed"]) == [0, 1]
    assert list(runs["status"]) == ["ok", "ok"]
    assert runs["LNK"].iloc[0] == 0.9 and np.isnan(runs["LNK"].iloc[1])
    assert len(epochs) == 6
    assert epochs["LNK"].tolist() == pytest.approx([0.5, 0.6, 0.7] * 2)


def test_malformed_metrics_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "seed0.json"
    bad.write_text("{not json")
    with pytest.raises(MetricsFormatError, match="seed0.json"):
        load_metrics([bad])
    bad.write_text(json.dumps({"dataset": "x", "variant": "retrained", "seed": "one"}))
    with pytest.raises(MetricsFormatError, match="seed"):
        load_metrics([bad])
    bad.write_text(json.dumps({"dataset": "x", "variant": "retrained", "seed": 1, "LNK": "high"}))
    with pytest.raises(MetricsFormatError, match="LNK"):
        load_metrics([bad])


def test_skipped_run_may_omit_scores(tmp_path: Path) -> None:
    path = tmp_path / "seed0.json"
    write_metrics(path, _record(0, lnk=None, status="skipped", reason="no GPU") | {"TRA": None, "DET": None})
    runs, epochs = load_metrics([path])
    assert runs["status"].iloc[0] == "skipped" and runs["reason"].iloc[0] == "no GPU"
