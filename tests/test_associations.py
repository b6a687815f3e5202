"""The shared-window predictions, greedy linking and CTC relabelling equal trackastra's own, bit for bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from trackastra.model.predict import predict, predict_windows
from trackastra.tracking import build_graph, graph_to_ctc, track_greedy
from trackastra.utils import blockwise_causal_norm
from tracking_toy import write_swap_sequence

from denselink.data.manifest import load_manifest
from denselink.tracking.associations import (
    Associations,
    Nodes,
    PreparedWindow,
    WindowTables,
    _forward,
    greedy_link,
    model_tables,
    pair_associations,
    predict_associations,
    prepare_window,
    prepare_windows,
)
from denselink.tracking.fusion import FeatureTable, build_model
from denselink.tracking.predict import ctc_result, detection_features, sequence_windows
from denselink.tracking.settings import TrackastraSettings

SMALL = {"window": 4, "d_model": 16, "num_encoder_layers": 1, "num_decoder_layers": 2}
FUSION = {"embed_dim": 8, "normalize": "none", "concat_dim": 4, "concat_hidden": 8}
CONFIGS = {
    "rope-v0": {},
    "bias-v1": {"attn_positional_bias": "bias", "attn_dist_mode": "v1"},
    "none-linear": {"attn_positional_bias": "none", "causal_norm": "linear"},
    "sigmoid": {"causal_norm": "none"},
    "cutoff-20": {"spatial_pos_cutoff": 20},
    "softmax": {"causal_norm": "softmax"},
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("assoc")
    manifest_path, features_path = write_swap_sequence(root, "01", n_frames=10, size=96, pairs=9, seed=3)
    manifest = load_manifest(manifest_path)
    images, masks = manifest.read_frames().astype(np.float32), manifest.read_masks().astype(np.int32)
    return {"features": detection_features(images, masks), "masks": masks, "table": features_path}


def _model(seed: int, fusion: str | None = None, **config) -> torch.nn.Module:
    torch.manual_seed(seed)
    kwargs = TrackastraSettings(**SMALL, **config).transformer_kwargs(7)
    return build_model(kwargs, {**FUSION, "fusion": fusion} if fusion else None).eval()


def window_associations(
    model: torch.nn.Module, window: PreparedWindow, tables: WindowTables | None = None
) -> np.ndarray:
    """A window's whole (N, N) normalised associations: our forward, trackastra's normalize_output."""
    with torch.inference_mode():
        logits = _forward(model, window, tables)
        mode = model.config["causal_norm"]
        if mode == "none":
            assoc = torch.sigmoid(logits)
            assoc[window.invalid] = 0
        else:
            assoc = torch.stack(
                [
                    blockwise_causal_norm(a, t, mode=mode, mask_invalid=m)
                    for a, t, m in zip(logits, window.timepoints, window.invalid, strict=True)
                ]
            )
    return assoc[0].numpy()


def _fused_windows(features: list, table: Path, window: int) -> list[dict]:
    return sequence_windows(features, window, FeatureTable(table))


def _assert_predict(model: torch.nn.Module, windows: list[dict], nodes: Nodes) -> None:
    """Full and pair associations, with tables over all windows and over each alone, equal ``predict``."""
    batch = prepare_windows(windows, nodes, model.config)
    assert batch.indices == list(range(len(windows)))
    for k, (prepared, tables) in enumerate(zip(batch.windows, model_tables(model, batch), strict=True)):
        expected = predict([windows[k]], model)[0]
        assert np.array_equal(window_associations(model, prepared, tables), expected)
        assert np.array_equal(
            pair_associations(model, prepared, tables), expected[prepared.rows, prepared.cols]
        )
        alone = prepare_window(windows[k], nodes, model.config)
        assert np.array_equal(window_associations(model, alone), expected)
        assert np.array_equal(pair_associations(model, alone), expected[alone.rows, alone.cols])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_window_associations_equal_trackastras_predict(toy: dict, name: str) -> None:
    model = _model(0, **CONFIGS[name])
    nodes = Nodes.from_features(toy["features"])
    _assert_predict(model, sequence_windows(toy["features"], model.config["window"]), nodes)


@pytest.mark.parametrize("fusion", ["add_wrfeat", "add_token", "concat"])
def test_fused_window_associations_equal_the_fused_models_forward(toy: dict, fusion: str) -> None:
    model = _model(1, fusion)
    nodes = Nodes.from_features(toy["features"])
    _assert_predict(model, _fused_windows(toy["features"], toy["table"], model.config["window"]), nodes)


@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.055])
def test_shared_pass_averages_windows_as_predict_windows(toy: dict, threshold: float) -> None:
    models = [_model(seed) for seed in range(3)]
    windows = sequence_windows(toy["features"], models[0].config["window"])
    nodes = Nodes.from_features(toy["features"])
    found = predict_associations(models, windows, nodes, threshold)
    for model, assoc in zip(models, found, strict=True):
        ref = predict_windows(windows, toy["features"], model, edge_threshold=threshold, spatial_dim=2)
        # at threshold 0 trackastra also keeps the zeroed pairs of other frame distances: build_graph
        # (delta_t 1) reads only pairs of consecutive frames
        expected = {
            (int(i), int(j)): w for (i, j), w in ref["weights"] if nodes.times[j] - nodes.times[i] == 1
        }
        pairs = zip(assoc.sources, assoc.targets, assoc.weights, strict=True)
        got = {(int(i), int(j)): w for i, j, w in pairs}
        assert len(got) > 0 and got.keys() == expected.keys()
        assert all(got[key] == w and type(got[key]) is type(w) for key, w in expected.items())


def _associations(nodes: Nodes, rng: np.random.Generator, levels: int) -> Associations:
    """Random weights on consecutive-frame pairs, on a grid of ``levels`` values (ties) up to 1."""
    pairs = [
        (i, j)
        for i in range(len(nodes))
        for j in np.flatnonzero(nodes.times == nodes.times[i] + 1).tolist()
        if rng.random() < 0.8
    ]
    sources, targets = np.array(pairs).T
    weights = (rng.integers(1, levels + 1, len(pairs)) / levels).astype(np.float32)
    return Associations(sources, targets, weights)


@pytest.mark.parametrize("mode", ["greedy", "greedy_nodiv"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_link_builds_trackastras_graph(toy: dict, mode: str, seed: int) -> None:
    nodes = Nodes.from_features(toy["features"])  # 18 cells per frame: more than 10 candidates
    nodes.coords = np.where((nodes.times % 2 == 1)[:, None], nodes.coords * np.float32(4), nodes.coords)
    assert nodes.coords.dtype == np.float32  # every other frame stretched: some pairs beyond 256 px
    assoc = _associations(nodes, np.random.default_rng(seed), levels=8)
    ref_nodes = [
        {"id": i, "coords": tuple(c), "time": t, "label": label}
        for i, (t, label, c) in enumerate(zip(nodes.times, nodes.labels, nodes.coords, strict=True))
    ]
    weights = tuple(((i, j), w) for i, j, w in zip(assoc.sources, assoc.targets, assoc.weights, strict=True))
    candidates = build_graph(ref_nodes, weights, max_distance=256, max_neighbors=10, delta_t=1)
    expected = track_greedy(candidates, allow_divisions=mode == "greedy")
    expected.add_nodes_from((n, d) for n, d in candidates.nodes(data=True) if n not in expected)
    got = greedy_link(nodes, assoc, allow_divisions=mode == "greedy")
    assert expected.number_of_edges() > 0
    assert list(got.nodes(data=True)) == list(expected.nodes(data=True))
    assert list(got.edges(data=True)) == list(expected.edges(data=True))


def test_ctc_relabelling_equals_graph_to_ctc(toy: dict) -> None:
    nodes = Nodes.from_features(toy["features"])
    graph = greedy_link(nodes, _associations(nodes, np.random.default_rng(5), levels=4))
    table, masks = ctc_result(graph, toy["masks"])
    expected_table, expected_masks = graph_to_ctc(graph, toy["masks"])
    assert table.equals(expected_table)
    assert masks.dtype == expected_masks.dtype and np.array_equal(masks, expected_masks)
    graph.add_node(10_000, time=0, label=99, coords=(0.0, 0.0), weight=1)
    with pytest.raises(ValueError, match="not in the masks of frame 0"):
        ctc_result(graph, toy["masks"])


def test_windows_without_pairs_give_no_associations(toy: dict) -> None:
    model = _model(0)
    nodes = Nodes.from_features(toy["features"])
    windows = sequence_windows(toy["features"], model.config["window"])
    keys = ("coords", "labels", "timepoints", "features")
    single = [{**w, **{k: w[k][w["timepoints"] == w["timepoints"][0]] for k in keys}} for w in windows]
    assert all(prepare_window(w, nodes, model.config) is None for w in single)
    (assoc,) = predict_associations([model], single, nodes)
    assert len(assoc.sources) == len(assoc.targets) == len(assoc.weights) == 0
