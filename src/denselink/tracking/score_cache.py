"""``denselink tracking score-cache``: what scoring needs of a sequence, computed once for every checkpoint.

Scoring a checkpoint on a sequence links its GT detections and compares the result with the GT
lineage. Everything but the model's predictions is the same for every checkpoint of every run on
that sequence: the detections' wrfeat features (from the images and GT masks), the labels of each
frame and the GT ``TrackingGraph`` that traccuracy builds from ``{seq}_GT/TRA``. This cache holds
them, so a checkpoint costs its predictions, the greedy linking and the graph comparison
(:mod:`denselink.tracking.scoring`), not a re-read of the sequence.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np

from denselink.atomic import add_force_flag, atomic_path
from denselink.command import command_parser, start
from denselink.data.manifest import SequenceManifest, load_manifest
from denselink.errors import DenselinkError
from denselink.tracking.settings import TrackastraSettings

log = logging.getLogger(__name__)
COMMAND = "tracking score-cache"
CACHE_FORMAT = 1


class ScoreCacheError(DenselinkError):
    """A score cache is missing, malformed or of another sequence or settings."""

    kind = "score cache error"


@dataclass
class ScoreCache:
    """The per-sequence part of scoring: detection features, frame labels and the GT graph."""

    dataset: str
    sequence: str
    shape: tuple[int, ...]
    ndim: int
    features: list  # trackastra WRFeatures per frame (GT masks as detections)
    labels: list[np.ndarray]  # sorted nonzero labels of each GT mask frame
    gt_graph: nx.DiGraph  # traccuracy's graph of the GT (load_ctc_data), without the masks
    gt_location_keys: tuple[str, ...]


def frame_labels(masks: np.ndarray) -> list[np.ndarray]:
    """The sorted nonzero labels of each frame of ``masks``."""
    return [np.flatnonzero(np.bincount(frame.ravel())[1:]) + 1 for frame in masks]


def build_score_cache(manifest: SequenceManifest, ndim: int = 2) -> ScoreCache:
    """Features, labels and GT graph of a sequence with GT masks (once, not per checkpoint)."""
    from denselink.evaluate.metrics import load_ctc_graph
    from denselink.tracking.predict import detection_features
    from denselink.tracking.prepare import check_manifest

    check_manifest(manifest, manifest.sequence)
    images = manifest.read_frames().astype(np.float32)
    masks = manifest.read_masks().astype(np.int32)
    features = detection_features(images, masks, ndim)
    gt = load_ctc_graph(Path(manifest.man_track).parent, "man_track.txt", name="GT")
    return ScoreCache(
        dataset=manifest.dataset,
        sequence=manifest.sequence,
        shape=tuple(masks.shape),
        ndim=ndim,
        features=features,
        labels=frame_labels(masks),
        gt_graph=gt.graph,
        gt_location_keys=tuple(gt.location_keys),
    )


def write_score_cache(cache: ScoreCache, out: Path, manifest_path: Path, force: bool = False) -> None:
    """Save ``cache`` atomically (torch pickle, as the training cache).

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    import torch

    payload: dict[str, Any] = {"format": CACHE_FORMAT, "manifest": str(manifest_path), **cache.__dict__}
    with atomic_path(out, COMMAND, force) as tmp:
        torch.save(payload, tmp)


def load_score_cache(path: Path, manifest: SequenceManifest, ndim: int = 2) -> ScoreCache:
    """Load a cache, refusing one of another sequence, frame count or ``ndim``."""
    from denselink.torch_files import load_torch_file

    path = Path(path)
    payload = load_torch_file(
        path, what="score cache (built by `denselink tracking score-cache`)", error=ScoreCacheError
    )
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise ScoreCacheError(path, f"not a denselink score cache of format {CACHE_FORMAT}")
    payload.pop("format")
    payload.pop("manifest")
    cache = ScoreCache(**payload)
    wanted = (manifest.dataset, manifest.sequence, manifest.n_frames, ndim)
    found = (cache.dataset, cache.sequence, cache.shape[0], cache.ndim)
    if found != wanted:
        raise ScoreCacheError(path, f"cache of (dataset, sequence, frames, ndim) {found}, expected {wanted}")
    return cache


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True, help="sequence manifest JSON (with GT masks)")
    parser.add_argument("--out", type=Path, required=True, help="cache file to write, e.g. {seq}.pt")
    parser.add_argument(
        "--settings", default=None, help="TrackastraSettings as inline JSON or a YAML/JSON file (ndim used)"
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking score-cache``."""
    args, settings = start(build_parser(), argv, COMMAND, TrackastraSettings, logs=True)
    manifest = load_manifest(args.manifest)
    cache = build_score_cache(manifest, settings.ndim)
    write_score_cache(cache, args.out, args.manifest, args.force)
    n_nodes = cache.gt_graph.number_of_nodes()
    log.info("cached %d detections of %s/%s in %s", n_nodes, cache.dataset, cache.sequence, args.out)
    return 0
