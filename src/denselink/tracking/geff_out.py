"""A linking result as a geff graph (graph exchange file format), beside its CTC result folder.

The zarr group is trackastra's ``write_to_geff`` layout: ``segmentation`` (the input masks ``(T, H, W)``)
and ``tracking_graph.geff`` (nodes with ``time``, ``label`` = the cell's label in the input mask,
``y``, ``x``; edges = the links). Each node also carries ``track_id``, its label in the CTC result
folder written from the same graph (``res_track.txt``, ``mask%03d.tif``), so the geff, the CTC folder
and the tracks table name the same tracks. Read it with ``geff.read(path / "tracking_graph.geff")``.
"""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
from trackastra.tracking import write_to_geff

from denselink.atomic import atomic_path
from denselink.tracking.predict import ctc_result

GRAPH_NAME = "tracking_graph.geff"


def geff_beside(res_dir: str | Path) -> Path:
    """The geff path written beside the CTC folder ``res_dir``: ``{res_dir}.geff.zarr``."""
    res_dir = Path(res_dir)
    return res_dir.with_name(f"{res_dir.name}.geff.zarr")


def track_ids(masks: np.ndarray, relabeled: np.ndarray) -> dict[tuple[int, int], int]:
    """``(frame, input label) -> track id`` read off the masks and their CTC relabelling."""
    ids: dict[tuple[int, int], int] = {}
    for t, (mask, tracked) in enumerate(zip(masks, relabeled, strict=True)):
        inside = mask > 0
        pairs = np.unique(np.stack([mask[inside], tracked[inside]]), axis=1)
        ids.update(((t, int(label)), int(track)) for label, track in pairs.T)
    return ids


def write_geff(
    graph: nx.DiGraph, masks: np.ndarray, out: str | Path, command: str, force: bool = False
) -> Path:
    """Write ``graph`` (linked detections of ``masks``) as a geff zarr group ``out``, atomically."""
    _, relabeled = ctc_result(graph, masks)
    ids = track_ids(masks, relabeled)
    graph = graph.copy()
    for _, attrs in graph.nodes(data=True):
        attrs["track_id"] = ids[(int(attrs["time"]), int(attrs["label"]))]
    with atomic_path(out, command, force) as tmp:
        write_to_geff(graph, np.asarray(masks), tmp, tracking_graph_name=GRAPH_NAME)
    return Path(out)
