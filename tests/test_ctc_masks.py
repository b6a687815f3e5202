"""CTC result folders: LZW-compressed masks that py-ctcmetrics and traccuracy read, and honest link counts."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import tifffile

from denselink.data.ctc import read_man_track
from denselink.tracking.predict import write_ctc
from denselink.tracking.track import link_summary

CROP_GT = Path(__file__).parent / "data" / "ctc_sim_crop" / "01_GT"


def _gt_graph(tra: Path) -> tuple[nx.DiGraph, np.ndarray]:
    """The ground-truth linking of a CTC TRA folder as a graph of (time, label) nodes, and its masks."""
    masks = np.stack([tifffile.imread(p) for p in sorted(tra.glob("man_track*.tif"))]).astype(np.int32)
    tracks = read_man_track(tra / "man_track.txt")
    cells = [(t, r.label) for r in tracks.itertuples() for t in range(r.start, r.end + 1)]
    ids = {cell: node for node, cell in enumerate(cells)}
    graph = nx.DiGraph()
    graph.add_nodes_from((node, {"time": t, "label": label}) for (t, label), node in ids.items())
    for r in tracks.itertuples():
        graph.add_edges_from((ids[t, r.label], ids[t + 1, r.label]) for t in range(r.start, r.end))
        if r.parent:
            graph.add_edge(ids[r.start - 1, r.parent], ids[r.start, r.label])
    return graph, masks


def _res_track(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "res_track.txt", sep=" ", header=None, names=["label", "t1", "t2", "parent"])


@pytest.fixture(scope="module")
def gt_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """The crop's ground truth written back as a CTC result folder by the pipeline's writer."""
    graph, masks = _gt_graph(CROP_GT / "TRA")
    return write_ctc(graph, masks, tmp_path_factory.mktemp("res") / "RES"), masks


def test_result_masks_are_lzw_compressed(gt_result: tuple[Path, np.ndarray]) -> None:
    res, masks = gt_result
    files = sorted(res.glob("mask*.tif"))
    assert len(files) == len(masks) == 24
    for path, mask in zip(files, masks, strict=True):
        with tifffile.TiffFile(path) as tif:
            assert tif.pages.first.compression.name == "LZW"
        np.testing.assert_array_equal(tifffile.imread(path) > 0, mask > 0)
    raw = sum(mask.astype(np.uint16).nbytes for mask in masks)
    assert sum(p.stat().st_size for p in files) < raw / 10


def test_py_ctcmetrics_reads_the_compressed_result(gt_result: tuple[Path, np.ndarray]) -> None:
    evaluate_sequence = pytest.importorskip("ctc_metrics.scripts.evaluate").evaluate_sequence
    res, _ = gt_result
    scores = evaluate_sequence(str(res), str(CROP_GT), metrics=["LNK", "TRA", "DET"], threads=1)
    assert (scores["LNK"], scores["TRA"], scores["DET"]) == (1.0, 1.0, 1.0)


def test_traccuracy_reads_the_compressed_result(gt_result: tuple[Path, np.ndarray]) -> None:
    from traccuracy.loaders import load_ctc_data

    res, masks = gt_result
    result = load_ctc_data(str(res), str(res / "res_track.txt"), run_checks=True).graph
    truth = load_ctc_data(str(CROP_GT / "TRA"), str(CROP_GT / "TRA" / "man_track.txt"), run_checks=True).graph
    cells = sum(len(np.unique(m[m > 0])) for m in masks)
    assert result.number_of_nodes() == truth.number_of_nodes() == cells
    assert result.number_of_edges() == truth.number_of_edges() > 0


def test_link_summary_counts_cells_links_tracks_and_single_frames(tmp_path: Path) -> None:
    """Three frames, five cells: one cell linked over all frames, two cells nothing links to."""
    masks = np.zeros((3, 8, 8), dtype=np.int32)
    masks[:, 1:3, 1:3] = 1  # cell 1 in every frame
    masks[0, 5:7, 5:7] = 2  # cell 2 in frame 0 only
    masks[1, 5:7, 1:3] = 3  # cell 3 in frame 1 only
    graph = nx.DiGraph()
    for node, (t, label) in enumerate(((0, 1), (1, 1), (2, 1), (0, 2), (1, 3))):
        graph.add_node(node, time=t, label=label)
    graph.add_edges_from([(0, 1), (1, 2)])
    res = write_ctc(graph, masks, tmp_path / "RES")
    summary = link_summary(graph, _res_track(res))
    assert (summary.cells, summary.linked, summary.tracks, summary.single_frame_tracks) == (5, 3, 3, 2)
    assert str(summary) == "5 cells: 3 linked to another cell, 2 to none; 3 tracks, 2 of them a single frame"
