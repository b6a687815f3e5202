"""Hard links (the true successor is not the nearest detection) and their recall, on hand-made graphs."""

from __future__ import annotations

import math
from pathlib import Path

import networkx as nx
import numpy as np
import tifffile

from denselink.evaluate.hard_links import graph_links, hard_links, linking_graph, recall, result_links
from denselink.evaluate.real_gain import hard_link_counts


def test_a_swap_is_hard_a_straight_move_is_not() -> None:
    # frame 0: A (0, 0), B (0, 10), C (50, 50); frame 1: A' (0, 9), B' (0, 1) (A and B swap), C' (50, 51)
    times = np.array([0, 0, 0, 1, 1, 1])
    positions = np.array([[0, 0], [0, 10], [50, 50], [0, 9], [0, 1], [50, 51]])
    edges = np.array([[0, 3], [1, 4], [2, 5]])
    assert hard_links(times, positions, edges).tolist() == [True, True, False]


def test_division_counts_both_daughters_as_successors() -> None:
    # mother (0, 0) -> daughters (0, 2) and (0, -2); a bystander at (0, 3) is farther than both
    times = np.array([0, 1, 1, 1])
    positions = np.array([[0, 0], [0, 2], [0, -2], [0, 3]])
    edges = np.array([[0, 1], [0, 2]])
    assert hard_links(times, positions, edges).tolist() == [False, False]
    positions[3] = [0, 1]  # the bystander moves nearer than either daughter: both links are hard
    assert hard_links(times, positions, edges).tolist() == [True, True]


def test_a_tie_is_not_hard() -> None:
    times = np.array([0, 1, 1])
    positions = np.array([[0, 0], [0, 4], [0, -4]])
    assert hard_links(times, positions, np.array([[0, 1]])).tolist() == [False]


def test_graph_links_reads_a_traccuracy_graph() -> None:
    graph = nx.DiGraph()
    for node, (t, label, y, x) in enumerate([(0, 1, 0, 0), (0, 2, 0, 10), (1, 1, 0, 9), (1, 2, 0, 1)]):
        graph.add_node(node, t=t, segmentation_id=label, y=y, x=x)
    graph.add_edges_from([(0, 2), (1, 3)])
    links, hard = graph_links(graph, ("y", "x"))
    assert links == [((0, 1), (1, 1)), ((0, 2), (1, 2))]
    assert hard.tolist() == [True, True]


def test_recall_counts_found_hard_links() -> None:
    hard = [((0, 1), (1, 1)), ((0, 2), (1, 2)), ((3, 4), (4, 4))]
    assert recall(hard, {((0, 1), (1, 1)), ((0, 2), (1, 1))}) == 1 / 3
    assert math.isnan(recall([], set()))


def test_result_links_maps_result_labels_to_gt_cells(tmp_path: Path) -> None:
    gt = np.zeros((3, 8, 8), np.uint16)
    gt[0, 0:2, 0:2], gt[0, 5:7, 5:7] = 4, 9
    gt[1, 0:2, 0:2], gt[1, 5:7, 5:7] = 4, 9
    gt[2, 0:2, 0:2], gt[2, 5:7, 0:2] = 4, 6  # a new cell 6 in frame 2
    result = np.where(gt == 4, 1, np.where(gt == 9, 2, np.where(gt == 6, 3, 0))).astype(np.uint16)
    for t, mask in enumerate(result):
        tifffile.imwrite(tmp_path / f"mask{t:03d}.tif", mask)
    # track 1 over frames 0-2, track 2 over 0-1, track 3 in frame 2 as track 2's child
    (tmp_path / "res_track.txt").write_text("1 0 2 0\n2 0 1 0\n3 2 2 2\n")
    links = result_links(tmp_path, gt)
    assert links == {
        ((0, 4), (1, 4)),
        ((1, 4), (2, 4)),
        ((0, 9), (1, 9)),
        ((1, 9), (2, 6)),
    }
    graph = linking_graph(links, [(0, 4), (0, 9), (1, 4), (1, 9), (2, 4), (2, 6)])
    assert graph.nodes[(2, 6)] == {"time": 2, "label": 6} and graph.number_of_edges() == 4


def test_validation_tail_counts() -> None:
    links = [((t, 1), (t + 1, 1)) for t in range(9)]  # 10 frames, one track
    hard = np.array([False] * 7 + [True, True])
    counts = hard_link_counts(links, hard, n_frames=10, window=2, val_fraction=0.25)
    # tail: the last max(2, ceil(2.5)) = 3 frames (7, 8, 9): links 7->8 and 8->9
    assert counts == {
        "frames": 10,
        "links": 9,
        "hard": 2,
        "validation_first_frame": 7,
        "validation_links": 2,
        "validation_hard": 2,
    }
