"""Trackastra's window associations and greedy linking for many checkpoints at once, bit for bit.

``Trackastra.track(..., mode="greedy")`` runs, per checkpoint, ``predict_windows`` (one forward per
sliding window, each attention layer rebuilding the window's distance masks), sums the windows'
associations into scipy sparse matrices one assignment at a time, builds a networkx candidate graph
node by node and links it greedily. Here the checkpoints of a run share one pass over the windows:

- per window, everything that does not depend on the weights is computed once: the padded inputs,
  the time-shifted coordinates, the attention mask (spatial cutoff plus distance term; trackastra
  computes it in every layer of every forward), the mask of invalid pairs of the output
  normalisation and the node ids of the consecutive-frame pairs that linking reads;
- each checkpoint's forward then runs trackastra's layers on these (:func:`window_associations`
  mirrors ``TrackingTransformer.forward`` and ``normalize_output`` operation for operation, so the
  associations are the same floats), under ``torch.inference_mode``;
- the windows' associations are averaged with numpy in trackastra's order and float32 arithmetic,
  and the candidate graph and greedy matching (:func:`greedy_link`) are computed on arrays.

``tests/test_associations.py`` checks every step against trackastra's own functions for plain, fused,
``bias``/``rope`` and ``v0``/``v1`` models: equal floats, equal graphs (nodes, edges, attributes and
their order).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import networkx as nx
import numpy as np
import scipy.spatial
import torch
import torch.nn.functional as F
from trackastra.data import collate_sequence_padding
from trackastra.model import TrackingTransformer
from trackastra.utils import blockwise_causal_norm

from denselink.tracking.fusion import FusedTrackingTransformer

ATTN_IGNORE = -1e3  # trackastra's RelativePositionalAttention value for masked pairs
MAX_DISTANCE = 256  # trackastra's Trackastra.track -> build_graph arguments
MAX_NEIGHBORS = 10
GREEDY_THRESHOLD = 0.5  # track_greedy's default


@dataclass
class Nodes:
    """The detections of a sequence as ``predict_windows`` numbers them (frame by frame)."""

    times: np.ndarray  # (n,) frame of each node
    labels: np.ndarray  # (n,) mask label of each node
    coords: np.ndarray  # (n, spatial_dim)
    index: dict[tuple[int, int], int]  # (frame, label) -> node id

    @classmethod
    def from_features(cls, features: Sequence, spatial_dim: int = 2) -> Nodes:
        """The nodes of trackastra's per-frame ``WRFeatures``."""
        times = np.concatenate([f.timepoints for f in features])
        labels = np.concatenate([f.labels for f in features])
        coords = np.concatenate([f.coords for f in features])[:, -spatial_dim:]
        index = {(int(t), int(label)): i for i, (t, label) in enumerate(zip(times, labels, strict=True))}
        return cls(times, labels, coords, index)

    def __len__(self) -> int:
        return len(self.times)


@dataclass
class PreparedWindow:
    """What a window's forward and linking need that no weight changes."""

    coords: torch.Tensor  # (1, N, 1 + D) time-shifted coordinates, as the layers see them
    features: torch.Tensor  # (1, N, F)
    timepoints: torch.Tensor  # (1, N) long
    base_mask: torch.Tensor  # (1, H, N, N) zeros with the spatial cutoff filled in
    dist_term: torch.Tensor  # (1, 1, N, N) the distance term added to every attention mask
    ignore: torch.Tensor  # (1, 1, N, N) padded pairs
    attn_mask: torch.Tensor | None  # the full mask of "rope"/"none" layers (None for "bias")
    invalid: torch.Tensor  # (1, N, N) pairs the output normalisation ignores
    rows: np.ndarray  # token pairs (i, j) one frame apart, row-major as np.where finds them
    cols: np.ndarray
    sources: np.ndarray  # their node ids
    targets: np.ndarray


def prepare_window(window: dict, nodes: Nodes, config: dict, delta_t: int = 1) -> PreparedWindow | None:
    """The weight-independent part of ``predict`` for one window; None when it has no pair to link."""
    timepoints_np = window["timepoints"].numpy()
    dt = timepoints_np[None, :] - timepoints_np[:, None]
    rows, cols = np.nonzero((dt <= delta_t) & (dt > 0))
    if len(rows) == 0:
        return None
    labels = window["labels"].numpy()
    tokens = zip(timepoints_np.tolist(), labels.tolist(), strict=True)
    ids = np.array([nodes.index[token] for token in tokens], dtype=np.int64)
    batch = collate_sequence_padding([window])  # as trackastra's predict, for the same tensors
    timepoints = batch["timepoints"].long()
    padding_mask = batch["padding_mask"]
    raw = torch.cat((timepoints.unsqueeze(2).float(), batch["coords"]), dim=2)
    cutoff = config["spatial_pos_cutoff"]
    with torch.inference_mode():
        # TrackingTransformer.forward: padded coordinates to the maximum, time shifted to start at 0
        coords = raw.clone()
        coords[padding_mask] = coords.max()
        coords = coords - coords[:, :, :1].min(dim=1, keepdims=True).values
        # RelativePositionalAttention.forward, the same in every layer
        batch_size, n = coords.shape[:2]
        spatial_dist = torch.cdist(coords[..., 1:], coords[..., 1:])
        base = torch.zeros((batch_size, config["nhead"], n, n), dtype=torch.float32)
        base.masked_fill_((spatial_dist > cutoff).unsqueeze(1), ATTN_IGNORE)
        if config["attn_dist_mode"] == "v0":
            dist_term = torch.exp(-0.1 * torch.cdist(coords, coords, p=2).unsqueeze(1))
        elif config["attn_dist_mode"] == "v1":
            dist_term = torch.exp(-5 * spatial_dist.unsqueeze(1) / cutoff)
        else:
            raise ValueError(f"Unknown attn_dist_mode {config['attn_dist_mode']}")
        ignore = torch.logical_or(padding_mask.unsqueeze(1), padding_mask.unsqueeze(2)).unsqueeze(1)
        attn_mask = None
        if config["attn_positional_bias"] != "bias":
            attn_mask = base.clone()
            attn_mask += dist_term
            attn_mask.masked_fill_(ignore, ATTN_IGNORE)
        # TrackingTransformer.normalize_output (on the unshifted coordinates, as predict passes them)
        invalid = torch.cdist(raw[:, :, 1:], raw[:, :, 1:]) > cutoff
        invalid = invalid | (timepoints.unsqueeze(1) == -1) | (timepoints.unsqueeze(2) == -1)
    return PreparedWindow(
        coords=coords,
        features=batch["features"],
        timepoints=timepoints,
        base_mask=base,
        dist_term=dist_term,
        ignore=ignore,
        attn_mask=attn_mask,
        invalid=invalid,
        rows=rows,
        cols=cols,
        sources=ids[rows],
        targets=ids[cols],
    )


def _attention(attn, query, key, value, window: PreparedWindow) -> torch.Tensor:
    """``RelativePositionalAttention.forward`` with the window's precomputed mask."""
    batch_size, n, d = query.size()
    q = attn.q_pro(query)
    k = attn.k_pro(key)
    v = attn.v_pro(value)
    k = k.view(batch_size, n, attn.n_head, d // attn.n_head).transpose(1, 2)
    q = q.view(batch_size, n, attn.n_head, d // attn.n_head).transpose(1, 2)
    v = v.view(batch_size, n, attn.n_head, d // attn.n_head).transpose(1, 2)
    mask = window.attn_mask
    if attn._mode == "bias":
        mask = window.base_mask + attn.pos_bias(window.coords)
        mask += window.dist_term
        mask.masked_fill_(window.ignore, ATTN_IGNORE)
    elif attn._mode == "rope":
        q, k = attn.rot_pos_enc(q, k, window.coords)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0)
    y = y.transpose(1, 2).contiguous().view(batch_size, n, d)
    return attn.proj(y)


def _forward(model: TrackingTransformer, window: PreparedWindow) -> torch.Tensor:
    """``TrackingTransformer.forward`` (and a fused model's input fusion) on a prepared window."""
    features, fused = window.features, None
    if isinstance(model, FusedTrackingTransformer):
        features, fused = model.fusion_inputs(features)
    with model.fusing(fused) if fused is not None else nullcontext():
        pos = model.pos_embed(window.coords)
        if features is None or features.numel() == 0:
            tokens = pos
        else:
            tokens = torch.cat((pos, model.feat_embed(features)), axis=-1)
        tokens = model.norm(model.proj(tokens))
    x = tokens
    for enc in model.encoder:
        x = enc.norm1(x)
        x = x + _attention(enc.attn, x, x, x, window)
        x = x + enc.mlp(enc.norm2(x))
    y = tokens
    for dec in model.decoder:
        y = dec.norm1(y)
        memory = dec.norm2(x)
        y = y + _attention(dec.attn, y, memory, memory, window)
        y = y + dec.mlp(dec.norm3(y))
    return torch.einsum("bnd,bmd->bnm", model.head_x(x), model.head_y(y))


def window_associations(model: TrackingTransformer, window: PreparedWindow) -> np.ndarray:
    """The normalised associations ``(N, N)`` of trackastra's ``predict`` for one window."""
    with torch.inference_mode():
        logits = _forward(model, window)
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


@dataclass
class Associations:
    """Averaged window associations of one model: node pairs and weights (float32)."""

    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


def predict_associations(
    models: Sequence[TrackingTransformer],
    windows: Sequence[dict],
    nodes: Nodes,
    edge_threshold: float = 0.05,
) -> list[Associations]:
    """``predict_windows`` of each model (one pass over the windows for all of them).

    Each model's associations of a pair are the mean over the windows where they reach
    ``edge_threshold``, summed in window order in float32 as trackastra's sparse matrices do.
    """
    configs = {attention_key(model.config) for model in models}
    if len(configs) > 1:
        raise ValueError(f"models of different window/attention configurations: {sorted(configs)}")
    found: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[] for _ in models]
    for window in windows:
        prepared = prepare_window(window, nodes, models[0].config)
        if prepared is None:
            continue
        for model, kept in zip(models, found, strict=True):
            values = window_associations(model, prepared)[prepared.rows, prepared.cols]
            keep = values >= edge_threshold
            kept.append((prepared.sources[keep], prepared.targets[keep], values[keep]))
    return [_average(kept, len(nodes)) for kept in found]


def attention_key(config: dict) -> tuple:
    """The model settings a prepared window depends on: models with equal keys share windows."""
    keys = ("window", "nhead", "spatial_pos_cutoff", "attn_dist_mode", "attn_positional_bias")
    return tuple(config[key] for key in keys)


def _average(kept: list[tuple[np.ndarray, np.ndarray, np.ndarray]], n_nodes: int) -> Associations:
    if not kept:
        empty = np.zeros(0, dtype=np.int64)
        return Associations(empty, empty, np.zeros(0, dtype=np.float32))
    sources = np.concatenate([k[0] for k in kept]).astype(np.int64)
    targets = np.concatenate([k[1] for k in kept]).astype(np.int64)
    values = np.concatenate([k[2] for k in kept]).astype(np.float32)
    keys, inverse = np.unique(sources * n_nodes + targets, return_inverse=True)
    sums = np.zeros(len(keys), dtype=np.float32)
    np.add.at(sums, inverse, values)  # in window order, float32: the sparse matrix's += sequence
    counts = np.bincount(inverse, minlength=len(keys)).astype(np.float32)
    return Associations(keys // n_nodes, keys % n_nodes, sums / counts)


def candidate_edges(nodes: Nodes, assoc: Associations) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``build_graph``'s edges (weights given, max_distance 256, 10 neighbours, delta_t 1) in its order.

    For each pair of consecutive frames and each node of the first, its associated nodes of the
    second by increasing distance (``np.argsort`` of the same distances), at most 10, within 256 px.
    """
    sources, targets, index = [], [], []
    pair_frames = nodes.times[assoc.sources]
    frames = np.unique(nodes.times)
    for t in frames[:-1].tolist():
        in_pair = np.flatnonzero(pair_frames == t)
        first, second = np.flatnonzero(nodes.times == t), np.flatnonzero(nodes.times == t + 1)
        if len(in_pair) == 0 or len(second) == 0:
            continue
        which = np.full((len(first), len(second)), -1, dtype=np.int64)  # pair -> its association
        rows = np.searchsorted(first, assoc.sources[in_pair])
        which[rows, np.searchsorted(second, assoc.targets[in_pair])] = in_pair
        dists = scipy.spatial.distance.cdist(nodes.coords[first], nodes.coords[second])
        order = np.argsort(dists, axis=1)
        ranked = np.take_along_axis(which, order, axis=1)
        usable = (ranked >= 0) & (np.take_along_axis(dists, order, axis=1) <= MAX_DISTANCE)
        usable &= np.cumsum(usable, axis=1) <= MAX_NEIGHBORS
        r, c = np.nonzero(usable)
        sources.append(first[r])
        targets.append(second[order[r, c]])
        index.append(ranked[r, c])
    if not sources:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.float32)
    return np.concatenate(sources), np.concatenate(targets), assoc.weights[np.concatenate(index)]


def greedy_link(nodes: Nodes, assoc: Associations, allow_divisions: bool = True) -> nx.DiGraph:
    """``build_graph`` + ``track_greedy`` + every unlinked detection as a single-frame track.

    The same graph as :func:`denselink.tracking.predict.link_windows`: nodes, edges and attributes,
    in the same insertion order.
    """
    sources, targets, weights = candidate_edges(nodes, assoc)
    order = np.argsort(-weights, kind="stable")  # sorted(..., reverse=True) keeps ties in order
    order = order[weights[order] >= GREEDY_THRESHOLD]
    if len(order) and weights[order[0]] > 1.0:
        raise ValueError("Edge weights are assumed to be normalized to [0,1]")
    max_children = 2 if allow_divisions else 1
    children = np.zeros(len(nodes), dtype=np.int64)
    has_parent = np.zeros(len(nodes), dtype=bool)
    attrs = [
        {"time": t, "label": label, "coords": tuple(c), "weight": 1}
        for t, label, c in zip(nodes.times, nodes.labels, nodes.coords, strict=True)
    ]
    solution = nx.DiGraph()
    for k in order.tolist():
        u, v = int(sources[k]), int(targets[k])
        if has_parent[v] or children[u] >= max_children:
            continue
        has_parent[v] = True
        children[u] += 1
        for node in (u, v):
            if node not in solution:
                solution.add_node(node, **attrs[node])
        solution.add_edge(u, v, weight=weights[k])
    solution.add_nodes_from((i, attrs[i]) for i in range(len(nodes)) if i not in solution)
    return solution
