"""Link the GT detections of a sequence with a (fused) trackastra checkpoint and export CTC results.

Mirrors ``trackastra.model.Trackastra.track(imgs, masks, mode="greedy")`` of trackastra 0.4.1:
stack-wise percentile normalisation, wrfeat features, sliding windows, ``predict_windows``,
``build_graph`` + ``track_greedy`` and ``graph_to_ctc``, except that detections the greedy tracker
links to nothing stay in the result as single-frame tracks (trackastra drops them); fused models
additionally get the sequence's learned features appended to each window's ``features``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import pandas as pd
import tifffile
import torch
import yaml
from tqdm import tqdm
from trackastra.data import build_windows, get_features
from trackastra.model import TrackingTransformer
from trackastra.model.predict import predict_windows
from trackastra.tracking import build_graph, graph_to_ctc, track_greedy
from trackastra.utils import normalize

from denselink.atomic import atomic_path
from denselink.errors import CheckpointError
from denselink.torch_files import load_torch_file
from denselink.tracking.fusion import FeatureTable, FusedTrackingTransformer, build_model


def load_checkpoint(path: str | Path) -> tuple[TrackingTransformer, dict[str, Any]]:
    """The model of a ``tracking train`` checkpoint (eval mode, CPU) and the checkpoint record."""
    path = Path(path)
    record = load_torch_file(path)
    try:
        model = build_model(record["model_config"], record.get("fusion_config"))
        model.load_state_dict(record["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError, EOFError) as err:
        raise CheckpointError(
            path, f"not a usable trackastra checkpoint ({type(err).__name__}: {err})"
        ) from err
    return model.eval(), record


def load_trackastra_folder(folder: str | Path) -> TrackingTransformer:
    """A model saved in trackastra's folder format (``config.yaml`` + ``model.pt``)."""
    folder = Path(folder)
    missing = [name for name in ("config.yaml", "model.pt") if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(folder, f"not a trackastra model folder (missing {missing})")
    return TrackingTransformer.from_folder(folder, map_location="cpu").eval()


def export_trackastra_folder(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """Write an unfused checkpoint in trackastra's ``from_folder`` format (config, weights, train args)."""
    model, record = load_checkpoint(checkpoint)
    if isinstance(model, FusedTrackingTransformer):
        raise CheckpointError(checkpoint, "fused models have no trackastra folder format")
    with atomic_path(out_dir) as tmp:
        model.save(tmp)
        train_args = {"epoch": int(record.get("epoch", -1)), "seed": record.get("seed")}
        (tmp / "train_config.yaml").write_text(yaml.safe_dump(train_args))
    return Path(out_dir)


def _append_learned(windows: list[dict], table: FeatureTable) -> None:
    for window in windows:
        extra = table.lookup(window["timepoints"].numpy(), window["labels"].numpy())
        window["features"] = torch.cat([window["features"].float(), torch.from_numpy(extra)], dim=-1)


def detection_features(images: np.ndarray, masks: np.ndarray, ndim: int = 2, progbar=None) -> list:
    """trackastra's wrfeat features of the label masks ``(T, H, W)`` (images percentile-normalised).

    ``progbar``: a tqdm-like class for a progress bar over the frames (default: none).
    """
    bar = progbar or _quiet
    return list(get_features(detections=masks, imgs=normalize(images), ndim=ndim, progbar_class=bar))


def sequence_windows(
    features: list, window: int, table: FeatureTable | None = None, progbar=None
) -> list[dict]:
    """Sliding windows over ``features``; a fused model's learned features appended to each."""
    windows = build_windows(features, window_size=window, progbar_class=progbar or _quiet, as_torch=True)
    if table is not None:
        _append_learned(windows, table)
    return windows


def link_windows(
    model: TrackingTransformer,
    windows: list[dict],
    features: list,
    spatial_dim: int = 2,
    mode: str = "greedy",
    edge_threshold: float = 0.05,
    progbar=None,
) -> nx.DiGraph:
    """Predict the windows' associations and link them greedily (``Trackastra.track``'s last steps)."""
    model.eval()
    predictions = predict_windows(
        windows=windows,
        features=features,
        model=model,
        edge_threshold=edge_threshold,
        spatial_dim=spatial_dim,
        progbar_class=progbar or _quiet,
    )
    candidates = build_graph(
        nodes=predictions["nodes"],
        weights=predictions["weights"],
        use_distance=False,
        max_distance=256,
        max_neighbors=10,
        delta_t=1,
    )
    solution = track_greedy(candidates, allow_divisions=mode == "greedy")
    # trackastra's greedy solution holds only linked nodes; keep every detection (single-frame tracks)
    solution.add_nodes_from(
        (node, data) for node, data in candidates.nodes(data=True) if node not in solution
    )
    return solution


def check_fusion(model: TrackingTransformer, table: FeatureTable | None) -> None:
    """A fused model needs a feature table, a plain one none."""
    if isinstance(model, FusedTrackingTransformer) != (table is not None):
        raise CheckpointError("features", "a fused model needs a feature table, a plain one none")


def link(
    model: TrackingTransformer,
    images: np.ndarray,
    masks: np.ndarray,
    table: FeatureTable | None = None,
    mode: str = "greedy",
    edge_threshold: float = 0.05,
    progress: bool = False,
) -> nx.DiGraph:
    """Greedy linking of the label masks ``(T, H, W)`` as ``Trackastra.track`` does it.

    ``progress``: progress bars (tqdm, stderr) over the frames' features, the windows and their predictions.
    """
    check_fusion(model, table)
    bar = tqdm if progress else _quiet
    features = detection_features(images, masks, model.config["coord_dim"], bar)
    windows = sequence_windows(features, model.config["window"], table, bar)
    return link_windows(model, windows, features, masks.ndim - 1, mode, edge_threshold, bar)


def ctc_result(graph: nx.DiGraph, masks: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """``graph_to_ctc(graph, masks)``: the CTC track table and the masks relabelled by track.

    trackastra relabels region by region; here ``graph_to_ctc`` numbers the tracks on a stand-in with
    one pixel per linked label and each frame is relabelled through a lookup table (the same result,
    tests/test_associations.py compares them).
    """
    by_frame: dict[int, list[int]] = {}
    for _, attrs in graph.nodes(data=True):
        by_frame.setdefault(int(attrs["time"]), []).append(int(attrs["label"]))
    width = max((len(labels) for labels in by_frame.values()), default=0) or 1
    stand_in = np.zeros((len(masks), 1, width), dtype=masks.dtype)
    for t, labels in by_frame.items():
        present = np.bincount(masks[t].ravel())
        missing = [label for label in labels if label >= len(present) or label == 0 or not present[label]]
        if missing:
            raise ValueError(f"labels {missing[:5]} of the linking are not in the masks of frame {t}")
        stand_in[t, 0, : len(labels)] = labels
    table, tracks = graph_to_ctc(graph, stand_in)
    relabeled = np.zeros_like(masks)
    for t, labels in by_frame.items():
        lookup = np.zeros(int(masks[t].max()) + 1, dtype=masks.dtype)
        lookup[stand_in[t, 0, : len(labels)]] = tracks[t, 0, : len(labels)]
        relabeled[t] = lookup[masks[t]]
    return table, relabeled


MASK_COMPRESSION = "lzw"
"""Compression of the CTC result masks: LZW, as the CTC's own TIFFs, read by the CTC's evaluation tools,
py-ctcmetrics and traccuracy (tests/test_ctc_masks.py); 67-190x smaller than raw on CTC label masks."""


def write_ctc(graph: nx.DiGraph, masks: np.ndarray, out_dir: str | Path) -> Path:
    """Write ``mask%03d.tif`` (``%04d`` past 999 frames; LZW-compressed) and ``res_track.txt`` atomically."""
    table, relabeled = ctc_result(graph, masks)
    digits = 3 if len(masks) <= 1000 else 4
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        for t, mask in enumerate(relabeled):
            path = tmp / f"mask{t:0{digits}d}.tif"
            tifffile.imwrite(path, mask.astype(np.uint16), compression=MASK_COMPRESSION)
        lines = [f"{r.label} {r.t1} {r.t2} {r.parent}\n" for r in table.itertuples()]
        (tmp / "res_track.txt").write_text("".join(lines))
    return Path(out_dir)


def _quiet(iterable=None, **kwargs):
    return tqdm(iterable, disable=True, **kwargs)
