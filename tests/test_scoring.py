"""Scoring a linking on arrays gives py-ctcmetrics' every count, also for wrong links and divisions."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from tracking_toy import write_dividing_sequence

from denselink.data.manifest import load_manifest
from denselink.evaluate.metrics import score_ctc
from denselink.tracking.predict import write_ctc
from denselink.tracking.score_cache import build_score_cache
from denselink.tracking.scoring import GroundTruth, score_linking


@pytest.fixture(scope="module")
def dividing(tmp_path_factory: pytest.TempPathFactory) -> dict:
    manifest = load_manifest(write_dividing_sequence(tmp_path_factory.mktemp("scoring"), 12, 0.2))
    cache = build_score_cache(manifest)
    return {
        "cache": cache,
        "masks": manifest.read_masks().astype(np.int32),
        "gt_dir": Path(manifest.man_track).parent,
    }


def _gt_linking(cache) -> nx.DiGraph:
    """The GT lineage as a linking of the detections (nodes with ``time`` and ``label``)."""
    number = {node: i for i, node in enumerate(cache.gt_graph.nodes)}  # trackastra's node ids are ints
    graph = nx.DiGraph()
    for node, attrs in cache.gt_graph.nodes(data=True):
        graph.add_node(number[node], time=int(attrs["t"]), label=int(attrs["segmentation_id"]))
    graph.add_edges_from((number[u], number[v]) for u, v in cache.gt_graph.edges)
    return graph


def _perturb(graph: nx.DiGraph, rng: np.random.Generator, n: int) -> nx.DiGraph:
    """Drop, rewire and add links (false divisions included), keeping in-degree <= 1 and out-degree <= 2."""
    graph = graph.copy()
    by_frame: dict[int, list] = {}
    for node, t in graph.nodes(data="time"):
        by_frame.setdefault(t, []).append(node)
    for _ in range(n):
        edges = list(graph.edges)
        kind = rng.integers(3)
        if kind == 0 and edges:  # drop a link (one child of a division: a wrong-semantics link)
            graph.remove_edge(*edges[rng.integers(len(edges))])
        elif kind == 1 and len(edges) > 1:  # swap the targets of two links between the same frames
            u1, v1 = edges[rng.integers(len(edges))]
            same = [(u, v) for u, v in edges if graph.nodes[u]["time"] == graph.nodes[u1]["time"] and u != u1]
            if same:
                u2, v2 = same[rng.integers(len(same))]
                if v1 != v2:
                    graph.remove_edges_from([(u1, v1), (u2, v2)])
                    graph.add_edges_from([(u1, v2), (u2, v1)])
        else:  # link a node to an orphan of the next frame (a false division if it had a child)
            u = list(graph.nodes)[rng.integers(graph.number_of_nodes())]
            orphans = [v for v in by_frame.get(graph.nodes[u]["time"] + 1, []) if graph.in_degree(v) == 0]
            if orphans and graph.out_degree(u) < 2:
                graph.add_edge(u, orphans[rng.integers(len(orphans))])
    return graph


def test_gt_linking_scores_one(dividing: dict) -> None:
    scores = score_linking(_gt_linking(dividing["cache"]), GroundTruth.from_cache(dividing["cache"]))
    assert scores is not None
    assert (scores["LNK"], scores["TRA"], scores["DET"], scores["AOGM"]) == (1.0, 1.0, 1.0, 0.0)


@pytest.mark.parametrize("seed", range(6))
def test_scores_equal_py_ctcmetrics_on_files(dividing: dict, tmp_path: Path, seed: int) -> None:
    cache = dividing["cache"]
    assert any(cache.gt_graph.out_degree(n) == 2 for n in cache.gt_graph.nodes), "no division to score"
    graph = _perturb(_gt_linking(cache), np.random.default_rng(seed), n=4 + 6 * seed)
    expected = score_ctc(dividing["gt_dir"], write_ctc(graph, dividing["masks"], tmp_path / "RES"))
    got = score_linking(graph, GroundTruth.from_cache(cache))
    assert got == expected
    assert expected["LNK"] < 1
    if seed >= 3:
        assert min(expected["AOGM_ED"], expected["AOGM_EA"], expected["AOGM_EC"]) > 0
