"""Trackastra's window associations and greedy linking for many checkpoints at once, bit for bit.

``Trackastra.track(..., mode="greedy")`` runs, per checkpoint, ``predict_windows`` (one forward per
sliding window, each attention layer rebuilding the window's distance masks), sums the windows'
associations into scipy sparse matrices one assignment at a time, builds a networkx candidate graph
node by node and links it greedily. Here the checkpoints of a run share one pass over the windows:

- per window, everything that does not depend on the weights is computed once: the padded inputs,
  the time-shifted coordinates, the attention mask (spatial cutoff plus distance term; trackastra
  computes it in every layer of every forward), the mask of invalid pairs of the output
  normalisation, the node ids of the pairs that linking reads and their normalisation groups;
- windows are prepared a batch at a time; per checkpoint, what acts on each token alone (the
  positional and feature embeddings, each rope layer's cos/sin) is computed once over the batch's
  tokens with trackastra's modules (:func:`model_tables`) and cut per window;
- each checkpoint's forward then runs trackastra's layers on these (:func:`_forward` mirrors
  ``TrackingTransformer.forward`` operation for operation, so the logits are the same floats),
  under ``torch.inference_mode``; :func:`pair_associations` normalises only the pairs linking reads
  with ``normalize_output``'s operations on vectors (the same floats as the whole matrix's);
- the windows' associations are averaged with numpy in trackastra's order and float32 arithmetic,
  and the candidate graph and greedy matching (:func:`greedy_link`) are computed on arrays.

``tests/test_associations.py`` checks every step against trackastra's own functions for plain, fused,
``bias``/``rope``/``none``, ``v0``/``v1`` and ``quiet_softmax``/``softmax``/``linear``/``none``
models: equal floats (whole matrices and pairs, tables over all windows and over one), equal graphs
(nodes, edges, attributes and their order).
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
from trackastra.model.model_parts import FeedForward

from denselink.tracking.fusion import FusedTrackingTransformer

ATTN_IGNORE = -1e3  # trackastra's RelativePositionalAttention value for masked pairs
MAX_DISTANCE = 256  # trackastra's Trackastra.track -> build_graph arguments
MAX_NEIGHBORS = 10
GREEDY_THRESHOLD = 0.5  # track_greedy's default
EPS = 1e-6  # blockwise_causal_norm's default eps


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
    attn_mask: torch.Tensor | None  # (1, 1, N, N) the mask of "rope"/"none" layers (None for "bias")
    base_mask: torch.Tensor | None  # (1, 1, N, N) zeros with the spatial cutoff filled in ("bias" only)
    dist_term: torch.Tensor | None  # (1, 1, N, N) the distance term of every attention mask ("bias" only)
    ignore: torch.Tensor | None  # (1, 1, N, N) padded pairs ("bias" only)
    invalid: torch.Tensor  # (1, N, N) pairs the output normalisation ignores
    rows: np.ndarray  # token pairs (i, j) at most delta_t frames apart, row-major as np.where finds them
    cols: np.ndarray
    sources: np.ndarray  # their node ids
    targets: np.ndarray
    pairs: torch.Tensor  # (P,) the pairs' flat indices i * N + j into the (N, N) associations
    pair_invalid: torch.Tensor  # (P,) bool: ``invalid`` at the pairs
    by_target: torch.Tensor  # (P,) the pair's normalisation group over sources: (j, frame of i)
    by_source: torch.Tensor  # (P,) ... and over targets: (i, frame of j)
    groups: int  # size of the group index space


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
        # RelativePositionalAttention.forward, the same in every layer and head: trackastra fills a
        # (1, H, N, N) mask of equal heads, scaled_dot_product_attention reads this one broadcast
        n = coords.shape[1]
        spatial_dist = torch.cdist(coords[..., 1:], coords[..., 1:])
        base = torch.zeros((1, 1, n, n), dtype=torch.float32)
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
            attn_mask = base
            attn_mask += dist_term
            attn_mask.masked_fill_(ignore, ATTN_IGNORE)
            base = dist_term = ignore = None
        # TrackingTransformer.normalize_output (on the unshifted coordinates, as predict passes them)
        invalid = torch.cdist(raw[:, :, 1:], raw[:, :, 1:]) > cutoff
        invalid = invalid | (timepoints.unsqueeze(1) == -1) | (timepoints.unsqueeze(2) == -1)
    rows_t, cols_t = torch.from_numpy(rows), torch.from_numpy(cols)
    steps = torch.from_numpy(dt[rows, cols] - 1)
    return PreparedWindow(
        coords=coords,
        features=batch["features"],
        timepoints=timepoints,
        attn_mask=attn_mask,
        base_mask=base,
        dist_term=dist_term,
        ignore=ignore,
        invalid=invalid,
        rows=rows,
        cols=cols,
        sources=ids[rows],
        targets=ids[cols],
        pairs=rows_t * n + cols_t,
        pair_invalid=invalid[0].flatten()[rows_t * n + cols_t],
        by_target=cols_t * delta_t + steps,
        by_source=rows_t * delta_t + steps,
        groups=n * delta_t,
    )


@dataclass
class WindowBatch:
    """Prepared windows and their tokens one after another (what the per-model tables are computed on)."""

    windows: list[PreparedWindow]
    indices: list[int]  # each prepared window's position in the windows given
    coords: torch.Tensor  # (1, T, 1 + D) the windows' ``coords`` concatenated
    features: torch.Tensor  # (1, T, F)

    @classmethod
    def of(cls, prepared: Sequence[PreparedWindow | None]) -> WindowBatch:
        """The windows that have pairs to link (``prepare_window`` not None)."""
        indices = [i for i, window in enumerate(prepared) if window is not None]
        windows = [prepared[i] for i in indices]
        if not windows:
            return cls([], [], torch.zeros((1, 0, 0)), torch.zeros((1, 0, 0)))
        coords = torch.cat([w.coords for w in windows], dim=1)
        return cls(windows, indices, coords, torch.cat([w.features for w in windows], dim=1))


def prepare_windows(windows: Sequence[dict], nodes: Nodes, config: dict, delta_t: int = 1) -> WindowBatch:
    """:func:`prepare_window` of each window, those without pairs left out."""
    return WindowBatch.of([prepare_window(window, nodes, config, delta_t) for window in windows])


@dataclass
class WindowTables:
    """A model's elementwise functions of a window's tokens, cut from tables over a batch of windows.

    trackastra's positional and feature embeddings (sin/cos of each coordinate or feature times
    learned frequencies) and each rope layer's cos/sin act on every token alone, elementwise: computed
    once per model over all tokens of a :class:`WindowBatch` by trackastra's own modules, they are the
    same floats as in each window's forward (``torch.sin``/``cos``/``exp`` of a value do not depend on
    where it lies in the tensor; ``tests/test_associations.py`` compares the results with ``predict``).
    """

    pos: torch.Tensor  # (1, N, E) pos_embed of the window's coords
    feat: torch.Tensor | None  # (1, N, E') feat_embed of its features; None for fused models
    rope: list[tuple[torch.Tensor, torch.Tensor] | None]  # per attention layer: (cos, signed sin)


def _attention_layers(model: TrackingTransformer) -> list:
    return [layer.attn for layer in (*model.encoder, *model.decoder)]


def _rope_tables(attn, coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``RotaryPositionalEncoding.forward``'s cos and sin ``(1, T, 1, C)``, the sin negated at even channels.

    trackastra computes ``q * co + _rotate_half(q) * si`` with ``_rotate_half(q)[2c] = -q[2c + 1]`` and
    ``_rotate_half(q)[2c + 1] = q[2c]``; ``(-a) * b == a * (-b)`` exactly, so ``q`` with its channel
    pairs swapped times this signed ``si`` is the same product. The tables broadcast over the heads of
    ``q`` as the projection lays it out, ``(1, N, H, C)``, before the transpose to ``(1, H, N, C)``.
    """
    co, si = attn.rot_pos_enc.get_co_si(coords)
    co = co.unsqueeze(2).repeat_interleave(2, dim=-1)
    si = si.unsqueeze(2).repeat_interleave(2, dim=-1)
    si[..., 0::2] = -si[..., 0::2]
    return co, si


def model_tables(model: TrackingTransformer, batch: WindowBatch) -> list[WindowTables]:
    """Each window's :class:`WindowTables` for ``model`` (one pass of each module over the batch)."""
    if not batch.windows:
        return []
    with torch.inference_mode():
        pos = model.pos_embed(batch.coords)
        feat = None
        if not isinstance(model, FusedTrackingTransformer) and batch.features.numel() > 0:
            feat = model.feat_embed(batch.features)  # fused models add learned features first
        rope = [
            _rope_tables(attn, batch.coords) if attn._mode == "rope" else None
            for attn in _attention_layers(model)
        ]
    tables, start = [], 0
    for window in batch.windows:
        cut = slice(start, start + window.coords.shape[1])
        tables.append(
            WindowTables(
                pos=pos[:, cut],
                feat=None if feat is None else feat[:, cut],
                rope=[None if r is None else (r[0][:, cut], r[1][:, cut]) for r in rope],
            )
        )
        start = cut.stop
    return tables


def _linear(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` for an ``nn.Linear`` without the module call's overhead (the same op)."""
    if type(layer) is torch.nn.Linear and not (layer._forward_hooks or layer._forward_pre_hooks):
        return F.linear(x, layer.weight, layer.bias)
    return layer(x)


def _layer_norm(layer: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    if type(layer) is torch.nn.LayerNorm and not (layer._forward_hooks or layer._forward_pre_hooks):
        return F.layer_norm(x, layer.normalized_shape, layer.weight, layer.bias, layer.eps)
    return layer(x)


def _mlp(mlp: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """trackastra's ``FeedForward``: ``fc2(act(fc1(x)))``."""
    if (
        type(mlp) is FeedForward
        and type(mlp.act) is torch.nn.GELU
        and not (mlp._forward_hooks or mlp._forward_pre_hooks)
    ):
        x = F.gelu(_linear(mlp.fc1, x), approximate=mlp.act.approximate)
        return _linear(mlp.fc2, x)
    return mlp(x)


def _attention(attn, query, key, value, window: PreparedWindow, rope) -> torch.Tensor:
    """``RelativePositionalAttention.forward`` with the window's precomputed mask."""
    batch_size, n, d = query.size()
    shape = (batch_size, n, attn.n_head, d // attn.n_head)
    q = _linear(attn.q_pro, query).view(shape)
    k = _linear(attn.k_pro, key).view(shape)
    v = _linear(attn.v_pro, value).view(shape).transpose(1, 2)
    mask = window.attn_mask
    if attn._mode == "bias":
        mask = window.base_mask + attn.pos_bias(window.coords)
        mask += window.dist_term
        mask.masked_fill_(window.ignore, ATTN_IGNORE)
    elif attn._mode == "rope":
        co, si = rope
        pairs = (*shape[:-1], shape[-1] // 2, 2)
        q = q * co + q.view(pairs).flip(-1).view(shape) * si
        k = k * co + k.view(pairs).flip(-1).view(shape) * si
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0)
    y = y.transpose(1, 2).contiguous().view(batch_size, n, d)
    return _linear(attn.proj, y)


def _forward(
    model: TrackingTransformer, window: PreparedWindow, tables: WindowTables | None = None
) -> torch.Tensor:
    """``TrackingTransformer.forward`` (and a fused model's input fusion) on a prepared window."""
    if tables is None:
        (tables,) = model_tables(model, WindowBatch.of([window]))
    features, fused = window.features, None
    if isinstance(model, FusedTrackingTransformer):
        features, fused = model.fusion_inputs(features)
    with model.fusing(fused) if fused is not None else nullcontext():
        pos = tables.pos
        if features is None or features.numel() == 0:
            tokens = pos.clone()  # a fresh tensor, as trackastra's
        else:
            embedded = tables.feat if tables.feat is not None else model.feat_embed(features)
            tokens = torch.cat((pos, embedded), axis=-1)
        tokens = model.norm(model.proj(tokens))
    layers = iter(tables.rope)
    x = tokens
    for enc in model.encoder:
        x = _layer_norm(enc.norm1, x)
        x = x + _attention(enc.attn, x, x, x, window, next(layers))
        x = x + _mlp(enc.mlp, _layer_norm(enc.norm2, x))
    y = tokens
    for dec in model.decoder:
        y = _layer_norm(dec.norm1, y)
        memory = _layer_norm(dec.norm2, x)
        y = y + _attention(dec.attn, y, memory, memory, window, next(layers))
        y = y + _mlp(dec.mlp, _layer_norm(dec.norm3, y))
    return torch.einsum("bnd,bmd->bnm", _mlp(model.head_x, x), _mlp(model.head_y, y))


def pair_associations(
    model: TrackingTransformer, window: PreparedWindow, tables: WindowTables | None = None
) -> np.ndarray:
    """trackastra's normalised associations of a window at ``window.rows, window.cols``, only these pairs.

    ``blockwise_causal_norm`` normalises the pair (i, j), t_j > t_i, over the block of sources of
    j's column in i's frame (``dim=0``) and reads the other direction (``dim=1``, the block of
    targets of i's row in j's frame) only to multiply it by zero: both blocks are pairs of the same
    frame distance, so the pairs alone give the same floats with the same operations, on vectors:
    its block maxima (``scatter_reduce`` ``amax`` into zeros, including them), ``exp`` (elementwise)
    and the block sums (``scatter_reduce`` ``sum`` into zeros, each group accumulated in row order,
    as trackastra's ``blockwise_sum`` accumulates it). ``sigmoid`` is computed on the whole matrix as
    trackastra does (its vectorised and scalar remainder loops can differ in the last bit).
    """
    with torch.inference_mode():
        logits = _forward(model, window, tables)[0]
        mode = model.config["causal_norm"]
        by_target, by_source = window.by_target, window.by_source
        if mode in ("none", "linear"):
            a = _at(torch.sigmoid(logits).flatten(), window.pairs).masked_fill_(window.pair_invalid, 0)
            if mode == "none":
                return a.numpy()
            u0 = u1 = a
        elif mode in ("softmax", "quiet_softmax"):
            a = _at(logits.flatten(), window.pairs).masked_fill_(window.pair_invalid, -torch.inf)
            ma0 = _block_reduce(a, by_target, window.groups, "amax")
            ma1 = _block_reduce(a, by_source, window.groups, "amax")
            u0 = torch.exp(a - _at(ma0, by_target))
            u1 = torch.exp(a - _at(ma1, by_source))
        else:
            raise NotImplementedError(f"Mode {mode} not implemented")
        u0_sum = _at(_block_reduce(u0, by_target, window.groups, "sum"), by_target) + EPS
        u1_sum = _at(_block_reduce(u1, by_source, window.groups, "sum"), by_source) + EPS
        if mode == "quiet_softmax":
            u0_sum += _at(torch.exp(-ma0), by_target)
            u1_sum += _at(torch.exp(-ma1), by_source)
        # mask0 * u0 / u0_sum + mask1 * u1 / u1_sum with mask0 True and mask1 False at the pairs
        res = u0 / u0_sum + (u1 * False) / u1_sum
        return torch.clamp(res, 0, 1).numpy()


def _at(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values[index]`` of a vector, by ``index_select`` (the same copy, less overhead)."""
    return torch.index_select(values, 0, index)


def _block_reduce(values: torch.Tensor, groups: torch.Tensor, size: int, reduce: str) -> torch.Tensor:
    """``blockwise_sum``'s ``scatter_reduce`` into zeros (which take part), one entry per group."""
    out = torch.zeros(size, dtype=values.dtype)
    return torch.scatter_reduce(out, 0, groups, values, reduce=reduce)


@dataclass
class Associations:
    """Averaged window associations of one model: node pairs and weights (float32)."""

    sources: np.ndarray
    targets: np.ndarray
    weights: np.ndarray


BATCH_WINDOWS = 32  # windows prepared at a time (their masks held for all models)


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
    for first in range(0, len(windows), BATCH_WINDOWS):
        batch = prepare_windows(windows[first : first + BATCH_WINDOWS], nodes, models[0].config)
        for model, kept in zip(models, found, strict=True):
            for prepared, tables in zip(batch.windows, model_tables(model, batch), strict=True):
                values = pair_associations(model, prepared, tables)
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
    children, has_parent = [0] * len(nodes), [False] * len(nodes)
    sources_list, targets_list = sources.tolist(), targets.tolist()
    accepted = []  # the edges track_greedy adds, in its order
    for k in order.tolist():
        u, v = sources_list[k], targets_list[k]
        if has_parent[v] or children[u] >= max_children:
            continue
        has_parent[v] = True
        children[u] += 1
        accepted.append(k)
    attrs = [
        {"time": t, "label": label, "coords": tuple(c), "weight": 1}
        for t, label, c in zip(nodes.times, nodes.labels, nodes.coords, strict=True)
    ]
    # track_greedy adds each edge's source, then its target, where new, then the edge; the graph
    # built at once in that order has the same nodes, edges and attributes in the same order
    linked = dict.fromkeys(node for k in accepted for node in (sources_list[k], targets_list[k]))
    solution = nx.DiGraph()
    solution.add_nodes_from((node, attrs[node]) for node in linked)
    solution.add_edges_from((sources_list[k], targets_list[k], {"weight": weights[k]}) for k in accepted)
    solution.add_nodes_from((i, attrs[i]) for i in range(len(nodes)) if i not in linked)
    return solution
