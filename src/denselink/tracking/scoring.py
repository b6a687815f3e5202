"""Score a linking of a sequence's GT detections against its GT lineage on arrays, without pixels.

The Cell Tracking Challenge's measures (Matula et al. 2015; py-ctcmetrics, the CTC's own Python
implementation, is the reference) compare two acyclic graphs whose edges are either *track links*
(the same track label in consecutive frames) or *parent links* (from a track's last frame to the
first frame of a track naming it as parent in the track file). With the GT masks as detections,
writing the linking as a CTC result (``graph_to_ctc``) and matching its masks are fixed, so all
that is left is set arithmetic over the edges, done here on arrays:

- every detection is matched to the GT node of the same (frame, label) (the CTC matching of a mask
  with itself), so there are no node errors but detections absent from the GT (false positives);
- a link is a parent link of the written result exactly when ``graph_to_ctc`` starts a new track at
  its target: its source has two children (a division) or it skips frames (a gap);
- a GT edge is a parent link exactly when its two nodes carry different track labels, whether the
  parent has two children or one (Fluo-N2DH-SIM+ 01 has parents with a single child);
- a result edge between matched nodes is redundant (ED) when the GT lacks it, of the wrong
  semantics (EC) when the GT has it with the other kind; a GT edge is missing (EA) when no result
  edge covers it.

LNK, TRA and DET then come from py-ctcmetrics' own formulas. tests/test_scoring.py and
tests/test_ctc_parity.py compare every count with py-ctcmetrics on the written result folders.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx
import numpy as np

from denselink.evaluate.metrics import ctc_scores
from denselink.tracking.score_cache import ScoreCache


@dataclass
class GroundTruth:
    """The GT lineage of a score cache as arrays over its (frame, label) nodes."""

    index: dict[tuple[int, int], int]  # (frame, label) -> GT node number
    edge_keys: np.ndarray  # sorted source * n_nodes + target of each GT edge
    parent_link: np.ndarray  # per entry of edge_keys: a parent link (the labels differ), not a track link

    @property
    def n_nodes(self) -> int:
        return len(self.index)

    @property
    def n_edges(self) -> int:
        return len(self.edge_keys)

    @classmethod
    def from_cache(cls, cache: ScoreCache) -> GroundTruth:
        """Number the GT graph's nodes and encode its edges."""
        return cls.from_graph(cache.gt_graph, cache.sequence)

    @classmethod
    def from_graph(cls, graph: nx.DiGraph, name: str) -> GroundTruth:
        """The arrays of traccuracy's graph of a CTC GT (nodes with ``t`` and ``segmentation_id``)."""
        number = {node: i for i, node in enumerate(graph.nodes)}
        index = {(int(a["t"]), int(a["segmentation_id"])): number[n] for n, a in graph.nodes(data=True)}
        if len(index) != len(number):
            raise ValueError(f"{name}: GT nodes without a unique (t, segmentation_id)")
        label = np.array([int(a["segmentation_id"]) for _, a in graph.nodes(data=True)], dtype=np.int64)
        edges = np.array([(number[u], number[v]) for u, v in graph.edges], dtype=np.int64).reshape(-1, 2)
        keys = edges[:, 0] * len(number) + edges[:, 1]
        order = np.argsort(keys)
        return cls(index, keys[order], (label[edges[:, 0]] != label[edges[:, 1]])[order])


def score_linking(graph: nx.DiGraph, truth: GroundTruth) -> dict[str, float] | None:
    """LNK, TRA, DET and the CTC's error counts of a linking; None when it has no detection.

    ``graph`` is a linking of the GT detections (nodes with ``time`` and ``label``, as
    :func:`denselink.tracking.associations.greedy_link` and trackastra's ``track_greedy`` build it);
    the counts are those py-ctcmetrics gives the CTC result ``graph_to_ctc`` writes of it.
    """
    if graph.number_of_nodes() == 0:
        return None
    position = {node: i for i, node in enumerate(graph.nodes)}
    attrs = [a for _, a in graph.nodes(data=True)]
    gt_node = np.array([truth.index.get((int(a["time"]), int(a["label"])), -1) for a in attrs], np.int64)
    time = np.array([int(a["time"]) for a in attrs], dtype=np.int64)
    edges = np.array([(position[u], position[v]) for u, v in graph.edges], dtype=np.int64).reshape(-1, 2)
    out_deg = np.bincount(edges[:, 0], minlength=len(position))
    parent_link = (out_deg[edges[:, 0]] >= 2) | (time[edges[:, 1]] - time[edges[:, 0]] > 1)
    matched = gt_node >= 0
    induced = matched[edges[:, 0]] & matched[edges[:, 1]]
    keys = gt_node[edges[induced, 0]] * truth.n_nodes + gt_node[edges[induced, 1]]
    found = np.searchsorted(truth.edge_keys, keys)
    in_gt = found < truth.n_edges
    in_gt[in_gt] = truth.edge_keys[found[in_gt]] == keys[in_gt]
    wrong_semantics = truth.parent_link[found[in_gt]] != parent_link[induced][in_gt]
    n_matched = int(matched.sum())
    counts = {
        "NS": 0,
        "FN": truth.n_nodes - n_matched,
        "FP": len(gt_node) - n_matched,
        "ED": int((~in_gt).sum()),
        "EA": truth.n_edges - int(in_gt.sum()),
        "EC": int(wrong_semantics.sum()),
    }
    return ctc_scores(counts, truth.n_nodes, truth.n_edges)
