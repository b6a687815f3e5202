"""Score a linking of a sequence's GT detections against its GT lineage on arrays, without pixels.

The old path wrote the linked masks as TIFFs, read them back with traccuracy's ``load_ctc_data``,
matched every frame's masks with ``CTCMatcher`` and let ``CTCMetrics`` annotate both graphs. With
the GT masks as detections all of that is fixed but the links:

- the result masks are the GT masks relabelled by ``graph_to_ctc``, so the CTC majority matching
  pairs each linked detection with the GT node of the same (frame, label), and nothing else;
- ``graph_to_ctc`` + ``ctc_to_graph`` turn the linking into a graph with the same edges (one per
  link of consecutive frames; parent-daughter links are the edges out of a node with two children);
- ``CTCMetrics``' error annotation (``traccuracy.track_errors._ctc``) is then set arithmetic over
  the edges: an induced result edge is a false positive when the GT lacks it and of the wrong
  semantics when exactly one of the two is an inter-track edge (out of a division or into a
  merge); a GT edge is a false negative when no result edge covers it.

The counts go through traccuracy's own weighted sums and TRA/DET/LNK formulas. The scores are
identical to the old path's (tests/test_tracking_pipeline.py and tests/test_scoring.py compare every
count on generated sequences and on deliberately wrong linkings).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import networkx as nx
import numpy as np
from traccuracy.metrics import CTCMetrics
from traccuracy.metrics._ctc import get_weighted_error_sum

from denselink.tracking.score_cache import ScoreCache


@dataclass
class GroundTruth:
    """The GT lineage of a score cache as arrays over its (frame, label) nodes."""

    index: dict[tuple[int, int], int]  # (frame, label) -> GT node number
    edge_keys: np.ndarray  # sorted source * n_nodes + target of each GT edge
    intertrack: np.ndarray  # per entry of edge_keys: out of a division or into a merge

    @property
    def n_nodes(self) -> int:
        return len(self.index)

    @property
    def n_edges(self) -> int:
        return len(self.edge_keys)

    @classmethod
    def from_cache(cls, cache: ScoreCache) -> GroundTruth:
        """Number the GT graph's nodes and encode its edges."""
        graph = cache.gt_graph
        number = {node: i for i, node in enumerate(graph.nodes)}
        index = {(int(a["t"]), int(a["segmentation_id"])): number[n] for n, a in graph.nodes(data=True)}
        if len(index) != len(number):
            raise ValueError(f"{cache.sequence}: GT nodes without a unique (t, segmentation_id)")
        edges = np.array([(number[u], number[v]) for u, v in graph.edges], dtype=np.int64).reshape(-1, 2)
        out_deg = np.bincount(edges[:, 0], minlength=len(number))
        in_deg = np.bincount(edges[:, 1], minlength=len(number))
        keys = edges[:, 0] * len(number) + edges[:, 1]
        intertrack = (out_deg[edges[:, 0]] >= 2) | (in_deg[edges[:, 1]] >= 2)
        order = np.argsort(keys)
        return cls(index, keys[order], intertrack[order])


def score_linking(graph: nx.DiGraph, truth: GroundTruth) -> dict[str, float] | None:
    """LNK, TRA, DET and traccuracy's error counts of a linking; None when it has no detection.

    ``graph`` is a linking of the GT detections (nodes with ``time`` and ``label``, as
    :func:`denselink.tracking.associations.greedy_link` and trackastra's ``track_greedy`` build it).
    """
    if graph.number_of_nodes() == 0:
        return None
    position = {node: i for i, node in enumerate(graph.nodes)}
    gt_node = np.array(
        [truth.index.get((int(a["time"]), int(a["label"])), -1) for _, a in graph.nodes(data=True)],
        dtype=np.int64,
    )
    edges = np.array([(position[u], position[v]) for u, v in graph.edges], dtype=np.int64).reshape(-1, 2)
    out_deg = np.bincount(edges[:, 0], minlength=len(position))
    in_deg = np.bincount(edges[:, 1], minlength=len(position))
    intertrack = (out_deg[edges[:, 0]] >= 2) | (in_deg[edges[:, 1]] >= 2)
    matched = gt_node >= 0
    induced = matched[edges[:, 0]] & matched[edges[:, 1]]
    keys = gt_node[edges[induced, 0]] * truth.n_nodes + gt_node[edges[induced, 1]]
    found = np.searchsorted(truth.edge_keys, keys)
    in_gt = found < truth.n_edges
    in_gt[in_gt] = truth.edge_keys[found[in_gt]] == keys[in_gt]
    wrong_semantic = in_gt.copy()
    wrong_semantic[in_gt] = truth.intertrack[found[in_gt]] != intertrack[induced][in_gt]
    n_matched = int(matched.sum())
    errors = {"ns": 0, "fp": len(gt_node) - n_matched, "fn": truth.n_nodes - n_matched}
    edge_errors = {
        "ws": int(wrong_semantic.sum()),
        "fp": int((~in_gt).sum()),
        "fn": truth.n_edges - int(in_gt.sum()),
    }
    return _ctc_scores(errors, edge_errors, truth)


def _ctc_scores(errors: dict[str, int], edge_errors: dict[str, int], truth: GroundTruth) -> dict[str, float]:
    """``CTCMetrics._compute`` from the error counts."""
    metric = CTCMetrics()
    v, e = metric.v_weights, metric.e_weights
    aogm = get_weighted_error_sum(errors, edge_errors, v["ns"], v["fp"], v["fn"], e["fp"], e["fn"], e["ws"])
    result: dict[str, float] = {
        "AOGM": aogm,
        "fp_nodes": errors["fp"],
        "fn_nodes": errors["fn"],
        "ns_nodes": errors["ns"],
        "fp_edges": edge_errors["fp"],
        "fn_edges": edge_errors["fn"],
        "ws_edges": edge_errors["ws"],
    }
    with warnings.catch_warnings():  # as score_matched: an empty GT gives nan, not a warning
        warnings.simplefilter("ignore", UserWarning)
        result["TRA"] = metric._get_tra(result, truth.n_nodes, truth.n_edges)
        result["DET"] = metric._get_det(result, truth.n_nodes)
        result["LNK"] = metric._get_lnk(result, truth.n_edges)
    return {key: float(value) for key, value in result.items()}
