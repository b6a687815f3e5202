"""Hard links: GT links whose true successor is not the nearest detection in the successor's frame.

Where the successor is the detection nearest to the cell, position alone links it; a hard link is
one that position gets wrong, so it is where appearance could help. A link ``u -> v`` is hard when
some detection of ``v``'s frame that is not a successor of ``u`` lies strictly nearer to ``u`` than
every successor of ``u`` in that frame (a division counts both daughters as successors). The recall
of a linking on hard links is the fraction of them it contains.

A linking's CTC result (``mask*.tif`` + ``res_track.txt``, the GT masks relabelled) is read back
into links between GT cells ``(frame, GT label)`` by :func:`result_links`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import tifffile

from denselink.errors import CTCFormatError

Cell = tuple[int, int]  # (frame, label)
Link = tuple[Cell, Cell]


def hard_links(times: np.ndarray, positions: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Whether each edge ``(source, target)`` (indices into ``times``/``positions``) is hard."""
    times, positions = np.asarray(times), np.asarray(positions, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    by_frame = {int(t): np.flatnonzero(times == t) for t in np.unique(times)}
    successors: dict[tuple[int, int], set[int]] = {}
    for source, target in edges.tolist():
        successors.setdefault((source, int(times[target])), set()).add(target)
    hard = np.zeros(len(edges), dtype=bool)
    for i, (source, target) in enumerate(edges.tolist()):
        frame = int(times[target])
        mine = successors[(source, frame)]
        others = np.setdiff1d(by_frame[frame], list(mine))
        if others.size == 0:
            continue
        distance = np.linalg.norm(positions[others] - positions[source], axis=1).min()
        nearest_own = min(np.linalg.norm(positions[j] - positions[source]) for j in mine)
        hard[i] = distance < nearest_own
    return hard


def graph_links(gt_graph: nx.DiGraph, location_keys: Iterable[str]) -> tuple[list[Link], np.ndarray]:
    """The links of a traccuracy GT graph (nodes with ``t``, ``segmentation_id`` and a location) and
    whether each is hard."""
    keys = list(location_keys)
    nodes = list(gt_graph.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    data = gt_graph.nodes
    times = np.array([int(data[n]["t"]) for n in nodes], dtype=np.int64)
    positions = np.array([[float(data[n][k]) for k in keys] for n in nodes], dtype=np.float64)
    pairs = np.array([(index[u], index[v]) for u, v in gt_graph.edges], dtype=np.int64).reshape(-1, 2)
    cell = [(int(data[n]["t"]), int(data[n]["segmentation_id"])) for n in nodes]
    links = [(cell[u], cell[v]) for u, v in pairs.tolist()]
    return links, hard_links(times, positions, pairs)


def result_links(res_dir: str | Path, gt_masks: np.ndarray) -> set[Link]:
    """Links between GT cells that a CTC result folder of relabelled GT masks holds.

    A track's consecutive frames are linked, and a parent's last frame to its child's first frame.
    """
    res_dir = Path(res_dir)
    masks = sorted(res_dir.glob("mask*.tif"))
    if len(masks) != len(gt_masks):
        raise CTCFormatError(res_dir, f"{len(masks)} result masks for {len(gt_masks)} GT frames")
    to_gt: dict[Cell, int] = {}
    for t, path in enumerate(masks):
        result = tifffile.imread(path)
        if result.shape != gt_masks[t].shape:
            raise CTCFormatError(path, f"shape {result.shape} differs from the GT's {gt_masks[t].shape}")
        inside = result > 0
        pairs = np.unique(np.stack([result[inside], gt_masks[t][inside]]), axis=1)
        if pairs.shape[1] != len(np.unique(pairs[0])):
            raise CTCFormatError(path, "a result label covers several GT cells (not relabelled GT masks)")
        to_gt.update({(t, int(r)): int(g) for r, g in pairs.T.tolist()})
    table = pd.read_csv(res_dir / "res_track.txt", sep=r"\s+", header=None, names=["label", "t1", "t2", "p"])
    ends = {int(r.label): int(r.t2) for r in table.itertuples()}

    def cell(t: int, label: int) -> Cell:
        if (t, label) not in to_gt:
            raise CTCFormatError(res_dir, f"track {label} is absent from its frame {t}")
        return (t, to_gt[(t, label)])

    links: set[Link] = set()
    for row in table.itertuples():
        label, t1, t2, parent = int(row.label), int(row.t1), int(row.t2), int(row.p)
        links.update((cell(t, label), cell(t + 1, label)) for t in range(t1, t2))
        if parent:
            links.add((cell(ends[parent], parent), cell(t1, label)))
    return links


def recall(hard: Iterable[Link], found: set[Link]) -> float:
    """Fraction of the ``hard`` links that ``found`` holds (NaN when there are none)."""
    hard = list(hard)
    return sum(link in found for link in hard) / len(hard) if hard else math.nan


def linking_graph(links: set[Link], cells: Iterable[Cell]) -> nx.DiGraph:
    """A linking of GT cells as :func:`denselink.tracking.scoring.score_linking` reads it."""
    graph = nx.DiGraph()
    for t, label in cells:
        graph.add_node((t, label), time=t, label=label)
    graph.add_edges_from(links)
    return graph
