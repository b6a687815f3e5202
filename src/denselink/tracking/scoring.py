"""Score a linking of a sequence's GT detections against its GT lineage without touching pixels.

The old path wrote the linked masks as TIFFs, read them back with traccuracy's ``load_ctc_data``
and matched every frame's masks with ``CTCMatcher``. The linked masks are the GT masks relabelled
by ``graph_to_ctc`` (each GT region keeps its pixels and gets its track's id), so all of that is a
function of (frame, GT label) -> track id. Here ``graph_to_ctc`` relabels a one-pixel-per-label
stand-in of the masks, the result graph is built with traccuracy's own ``ctc_to_graph`` from the
same track table and detections (centroids of the unchanged regions), and the CTC majority
matching is each GT region with its relabelled self (it covers all of it). The scores are
identical to the old path's (tests/test_tracking_pipeline.py compares them).
"""

from __future__ import annotations

from collections.abc import Hashable

import networkx as nx
import numpy as np
import pandas as pd
from traccuracy import TrackingGraph
from traccuracy.loaders._ctc import _check_ctc, ctc_to_graph
from traccuracy.matchers import CTCMatcher
from traccuracy.matchers._base import Matched
from trackastra.tracking import graph_to_ctc

from denselink.errors import CTCFormatError
from denselink.evaluate.metrics import score_matched
from denselink.tracking.score_cache import ScoreCache

TRACK_COLUMNS = ["Cell_ID", "Start", "End", "Parent_ID"]


def _nodes_by_label(graph: nx.DiGraph, label_key: str = "segmentation_id") -> dict[tuple[int, int], Hashable]:
    return {
        (int(attrs["t"]), int(attrs[label_key])): node
        for node, attrs in graph.nodes(data=True)
        if label_key in attrs
    }


def result_graph(graph: nx.DiGraph, cache: ScoreCache) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The CTC track table and detections of a linking (None when it links nothing).

    The detections are those traccuracy would compute from the written masks: one row per
    relabelled region, ``segmentation_id`` the track id, ``y, x`` the region's centroid.
    """
    stand_in = cache.label_stack()
    table, relabelled = graph_to_ctc(graph, stand_in)
    if table.empty:
        return None
    tracks = pd.DataFrame(table.to_numpy(dtype=np.int64), columns=TRACK_COLUMNS)
    gt_nodes = _nodes_by_label(cache.gt_graph)
    centroid = {
        key: (cache.gt_graph.nodes[node]["y"], cache.gt_graph.nodes[node]["x"])
        for key, node in gt_nodes.items()
    }
    rows = []
    for t in range(len(stand_in)):
        for gt_label, track in zip(stand_in[t, 0], relabelled[t, 0], strict=True):
            if gt_label and track:
                y, x = centroid[(t, int(gt_label))]
                rows.append((int(track), y, x, t, int(gt_label)))
    rows.sort(key=lambda row: (row[3], row[0]))  # regionprops order: frame, then label
    detections = pd.DataFrame(rows, columns=["segmentation_id", "y", "x", "t", "gt_label"])
    return tracks, detections


def score_linking(graph: nx.DiGraph, cache: ScoreCache) -> dict[str, float] | None:
    """LNK, TRA, DET and traccuracy's error counts of a linking; None when it links nothing."""
    result = result_graph(graph, cache)
    if result is None:
        return None
    tracks, detections = result
    gt_labels = detections.pop("gt_label")
    no_masks = np.zeros((0, 1, 1), dtype=np.int32)  # the per-frame connectivity check only warns
    try:
        _check_ctc(tracks, detections, no_masks)
        pred_graph = ctc_to_graph(tracks, detections.copy())
    except ValueError as err:
        raise CTCFormatError(cache.sequence, f"linking result is not valid CTC: {err}") from err
    keys = cache.gt_location_keys
    gt = TrackingGraph(cache.gt_graph.copy(), name="GT", location_keys=keys)
    pred = TrackingGraph(pred_graph, name="RES", location_keys=keys)
    gt_ids, pred_ids = _nodes_by_label(gt.graph), _nodes_by_label(pred.graph)
    mapping = [
        (gt_ids[(t, gt_label)], pred_ids[(t, track)])
        for t, gt_label, track in zip(detections["t"], gt_labels, detections["segmentation_id"], strict=True)
        if (t, gt_label) in gt_ids and (t, track) in pred_ids
    ]
    return score_matched(Matched(gt, pred, mapping, CTCMatcher().info))
