"""``denselink tracking track``: link your own movie (raw frames + segmentation masks) with a trained model.

    denselink tracking track --model results/models/.../seed0 --images movie/ --masks masks/ \\
        --out movie_RES --table movie_tracks.csv

No ground truth is needed. ``--model`` is a run directory of ``tracking train`` (its checkpoint
with the lowest val_loss, else its last one), one ``checkpoints/epoch{N:03d}.pt``, or a trackastra
model folder (``config.yaml`` + ``model.pt``). A fused model gets the movie's per-cell features
computed exactly as its training features were (embedding backbone, weights, settings and
aggregation recorded in the checkpoint at training time, weights hash-checked), or from
``--features``. Linking is trackastra's greedy linking as in ``tracking evaluate``; cells that
no link reaches stay in the result as single-frame tracks (the log counts cells, linked cells,
tracks and single-frame tracks). Writes the CTC result folder ``--out`` (``mask%03d.tif``,
LZW-compressed, + ``res_track.txt``) and a tracks table (CSV or parquet by extension): one row per
tracked cell and frame, ``frame, label, track_id, parent_track_id, y, x``, where ``label`` is the
cell's label in the input mask and ``track_id`` its label in ``--out``. Every step over the frames
(embedding, features, linking, the tracks table) shows a progress bar with the remaining time on stderr.
"""

from __future__ import annotations

import argparse
import csv
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from skimage.measure import regionprops_table
from tqdm import tqdm

from denselink import arg_types
from denselink.atomic import add_force_flag, atomic_path, check_output, write_json
from denselink.command import command_parser, no_outputs, parse
from denselink.data.ctc import check_finite, check_headers, check_labels
from denselink.data.frames import list_frames
from denselink.data.manifest import SequenceManifest
from denselink.errors import CheckpointError, ConfigError, CTCFormatError
from denselink.features.recipe import find_weights, replay
from denselink.filenames import MANIFEST, RUN_CONFIG, TRAIN_LOG, list_checkpoints, trackastra_checkpoint
from denselink.tracking.fusion import FeatureTable, FusedTrackingTransformer
from denselink.tracking.geff_out import write_geff
from denselink.tracking.model_files import (
    check_run_config,
    read_run_config,
    read_trackastra_folder,
    run_settings,
)
from denselink.tracking.predict import link, load_checkpoint, write_ctc
from denselink.tracking.train_log import lowest_val_loss

log = logging.getLogger(__name__)
COMMAND = "tracking track"
TABLE_COLUMNS = ("frame", "label", "track_id", "parent_track_id", "y", "x")


@dataclass
class TrackedModel:
    """A loaded model with the linking settings and the feature recipe it was trained with."""

    model: Any
    source: Path
    link_mode: str = "greedy"
    edge_threshold: float = 0.05
    features_recipe: dict[str, Any] | None = None


def user_sequence(images: str | Path, masks: str | Path, name: str | None = None) -> SequenceManifest:
    """A checked manifest of a movie without ground truth: one frame and one label image per frame number.

    Frames and masks are listed and ordered as ``data validate`` lists them (any TIFF name with a frame
    number; duplicates and gaps are errors) and their headers checked by the same function.
    """
    frames = list_frames(images, "raw frame", first=None)
    labels = list_frames(masks, "mask", first=None)
    frame_numbers, mask_numbers = dict(frames), dict(labels)
    for number, path in frames:
        if number not in mask_numbers:
            raise CTCFormatError(path, f"frame {number} has no mask in {masks}")
    for number, path in labels:
        if number not in frame_numbers:
            raise CTCFormatError(path, f"mask of frame {number} has no raw frame in {images}")
    frame_paths, label_paths = [p for _, p in frames], [p for _, p in labels]
    shape, dtype = check_headers(frame_paths, label_paths)
    if frames[0][0] != 0:
        log.info(
            "frames are numbered from %d: the result numbers them from 0 (%s is frame 0)",
            frames[0][0],
            frame_paths[0].name,
        )
    return SequenceManifest(
        dataset="user",
        sequence=name or Path(images).name,
        frames=frame_paths,
        shape=shape,
        dtype=str(dtype),
        masks=label_paths,
    )


def read_movie(sequence: SequenceManifest, masks: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Frames ``(T, H, W)`` float32 and label masks int32, checked as ``data validate`` checks them.

    A non-finite pixel, a negative label or one past 16 bits is an error naming the file, and so is
    a movie whose masks hold no cell at all (nothing to track).
    """
    frames = []
    for t, path in enumerate(sequence.frames):
        frame = sequence.read_frame(t)
        check_finite(frame, path)
        frames.append(frame.astype(np.float32))
    labels = []
    for t, path in enumerate(sequence.masks):
        mask = sequence.read_mask(t)
        check_labels(mask, path)
        labels.append(mask.astype(np.int32))
    if not any(mask.any() for mask in labels):
        raise CTCFormatError(masks, f"no cells in any frame: all {len(labels)} masks are 0 (background)")
    return np.stack(frames), np.stack(labels)


def chosen_checkpoint(run_dir: Path) -> Path:
    """The run's checkpoint with the lowest finite val_loss (earliest on ties), else its last one."""
    checkpoints = list_checkpoints(run_dir)
    log_path = run_dir / TRAIN_LOG
    lowest = lowest_val_loss(log_path) if log_path.is_file() else None
    if lowest is not None and (path := run_dir / trackastra_checkpoint(lowest[1])).is_file():
        return path
    return checkpoints[-1]


def load_tracker(model: str | Path) -> TrackedModel:
    """A run directory, a checkpoint file or a trackastra model folder, ready to link."""
    model = Path(model)
    if (model / "model.pt").is_file() and (model / "config.yaml").is_file():
        return TrackedModel(read_trackastra_folder(model), model)
    path = chosen_checkpoint(model) if model.is_dir() else model
    if not path.is_file():
        raise CheckpointError(model, "neither a run directory, a checkpoint nor a trackastra model folder")
    config_path = path.parent.parent / RUN_CONFIG
    config = read_run_config(config_path)
    network, record = load_checkpoint(path)
    check_run_config(config, config_path, record, path)
    settings = run_settings(config, config_path)
    recipe = record.get("features_recipe", config.get("features_recipe"))
    log.info("linking with %s", path)
    return TrackedModel(network, path, settings.link_mode, settings.edge_threshold, recipe)


@dataclass(frozen=True)
class LinkSummary:
    """What a linking did: cells of the masks, those linked to another cell, tracks, single-frame tracks."""

    cells: int
    linked: int
    tracks: int
    single_frame_tracks: int

    def __str__(self) -> str:
        return (
            f"{self.cells} cells: {self.linked} linked to another cell, {self.cells - self.linked} to none; "
            f"{self.tracks} tracks, {self.single_frame_tracks} of them a single frame"
        )


def link_summary(graph: Any, res_track: pd.DataFrame) -> LinkSummary:
    """Counts of a linking (a graph of every detection) and its CTC track table (``label t1 t2 parent``)."""
    linked = sum(1 for node in graph.nodes if graph.degree(node) > 0)
    single = int((res_track["t1"] == res_track["t2"]).sum())
    return LinkSummary(graph.number_of_nodes(), linked, len(res_track), single)


def tracks_table(masks: np.ndarray, result: np.ndarray, res_track: pd.DataFrame) -> pd.DataFrame:
    """One row per tracked cell and frame: input label, track id, parent track, centroid (y, x)."""
    parents = dict(zip(res_track["label"], res_track["parent"], strict=True))
    parts = []
    pairs = zip(masks, result, strict=True)
    for t, (mask, tracked) in enumerate(tqdm(pairs, "tracks table", len(masks), unit="frame")):
        props = regionprops_table(
            mask, intensity_image=tracked, properties=("label", "centroid", "intensity_max")
        )
        frame = pd.DataFrame(
            {
                "frame": t,
                "label": props["label"],
                "track_id": props["intensity_max"].astype(np.int64),
                "y": props["centroid-0"],
                "x": props["centroid-1"],
            }
        )
        parts.append(frame[frame["track_id"] > 0])
    table = pd.concat(parts, ignore_index=True)
    table["parent_track_id"] = table["track_id"].map(parents).fillna(0).astype(np.int64)
    return table[list(TABLE_COLUMNS)].sort_values(["track_id", "frame"], ignore_index=True)


def write_table(table: pd.DataFrame, path: str | Path, force: bool = False) -> Path:
    """Write the tracks table as CSV or parquet (by the file's extension), atomically."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(path, "the tracks table must end in .csv or .parquet")
    with atomic_path(path, COMMAND, force) as tmp:
        if path.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False, quoting=csv.QUOTE_MINIMAL)
        else:
            table.to_parquet(tmp, index=False)
    return path


def track(
    model: str | Path,
    images: str | Path,
    masks: str | Path,
    out: str | Path,
    table: str | Path | None = None,
    features: str | Path | None = None,
    work_dir: str | Path | None = None,
    edge_threshold: float | None = None,
    force: bool = False,
    embedding_checkpoint: str | Path | None = None,
    geff: str | Path | None = None,
) -> pd.DataFrame:
    """Link the movie ``images`` (raw TIFFs) segmented by ``masks`` (label TIFFs) with ``model``.

    Args:
        model: run directory of ``tracking train``, one of its checkpoints, or a trackastra folder.
        images, masks: folders of 2D TIFFs, one per frame, in frame order by the number in the name.
        out: CTC result folder to write (``mask%03d.tif``, ``res_track.txt``).
        table: tracks table to write (``.csv`` or ``.parquet``); None writes none.
        features: feature parquet of this movie for a fused model (default: computed by the recipe).
        work_dir: keep the movie's manifest, embedding and features here (default: a temporary folder).
        edge_threshold: smallest association kept as an edge (default: the model's training setting).
        force: replace an existing ``out`` or ``table`` that this command did not write.
        embedding_checkpoint: the embedding weights a fused model's recipe records, where they have moved
            (default: found by their recorded sha256 near the model); their sha256 must match.
        geff: also write the linking as a geff zarr group here (:mod:`denselink.tracking.geff_out`).

    Returns:
        The tracks table (``frame, label, track_id, parent_track_id, y, x``).
    """
    out, table = Path(out), None if table is None else Path(table)
    if table is not None and table.suffix.lower() not in (".csv", ".parquet"):
        raise ConfigError(table, "the tracks table must end in .csv or .parquet")
    for path in (out, table, geff):
        if path is not None:
            check_output(path, COMMAND, force)
    sequence = user_sequence(images, masks)
    tracker = load_tracker(model)
    frames, labels = read_movie(sequence, masks)
    fused = isinstance(tracker.model, FusedTrackingTransformer)
    if fused and features is None and tracker.features_recipe is None:
        raise ConfigError(
            "--features",
            f"{tracker.source} was trained on features without a recorded recipe; give --features",
        )
    if not fused and features is not None:
        raise ConfigError("--features", "this model takes no learned features")
    replayed = fused and features is None
    if embedding_checkpoint is not None and not replayed:
        raise ConfigError("--embedding-checkpoint", "only a fused model's recomputed features use it")
    weights = (
        find_weights(tracker.features_recipe, [tracker.source], embedding_checkpoint) if replayed else None
    )
    with tempfile.TemporaryDirectory(prefix="denselink-track-") as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if replayed:
            manifest_path = work / MANIFEST
            write_json(manifest_path, sequence.to_dict(), COMMAND)
            backbone = tracker.features_recipe["backbone"]
            log.info("recomputing the movie's %s features as at training", backbone)
            features = replay(tracker.features_recipe, manifest_path, work, weights)
        feature_table = FeatureTable(features) if fused else None
        threshold = tracker.edge_threshold if edge_threshold is None else edge_threshold
        log.info("linking %d frames (edge threshold %g)", len(frames), threshold)
        graph = link(
            tracker.model, frames, labels, feature_table, tracker.link_mode, threshold, progress=True
        )
    if graph.number_of_nodes() == 0:
        raise ConfigError(out, "the model linked no cells (try a lower --edge-threshold)")
    with atomic_path(out, COMMAND, force) as tmp:
        write_ctc(graph, labels, tmp)
    result = np.stack([tifffile.imread(path) for path in sorted(out.glob("mask*.tif"))])
    res_track = pd.read_csv(
        out / "res_track.txt", sep=" ", header=None, names=["label", "t1", "t2", "parent"]
    )
    tracks = tracks_table(labels, result, res_track)
    log.info("%s -> %s", link_summary(graph, res_track), out)
    if table is not None:
        write_table(tracks, table, force)
    if geff is not None:
        write_geff(graph, labels, geff, COMMAND, force)
    return tracks


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0], "\n".join(__doc__.splitlines()[5:]))
    parser.add_argument(
        "--model", type=Path, required=True,
        help="run directory of `tracking train` (best val_loss checkpoint), a checkpoint file, "
        "or a trackastra model folder",
    )  # fmt: skip
    parser.add_argument("--images", type=Path, required=True, help="folder of raw 2D TIFF frames")
    parser.add_argument("--masks", type=Path, required=True, help="folder of label TIFFs (your segmentation)")
    parser.add_argument("--out", type=Path, required=True, help="CTC result folder to write")
    parser.add_argument("--table", type=Path, default=None, help="tracks table to write (.csv or .parquet)")
    parser.add_argument(
        "--features", type=Path, default=None,
        help="feature parquet of this movie (fused models; default: computed as at training)",
    )  # fmt: skip
    parser.add_argument(
        "--work-dir", type=Path, default=None,
        help="keep the movie's manifest, embedding and features here (default: temporary)",
    )  # fmt: skip
    parser.add_argument(
        "--edge-threshold",
        type=arg_types.edge_threshold,
        default=None,
        help="smallest association kept (default: the model's)",
    )
    parser.add_argument(
        "--embedding-checkpoint", type=Path, default=None,
        help="the MAESTER/SAM weights file a fused model was trained with, where it has moved "
        "(default: found by the sha256 its recipe records); its sha256 must match",
    )  # fmt: skip
    parser.add_argument("--geff", type=Path, default=None, help="also write the linking as geff (.zarr)")
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking track``."""
    args = parse(build_parser(), argv, COMMAND, no_outputs, logs=True)
    track(
        args.model,
        args.images,
        args.masks,
        args.out,
        args.table,
        args.features,
        args.work_dir,
        args.edge_threshold,
        args.force,
        args.embedding_checkpoint,
        args.geff,
    )

    return 0
