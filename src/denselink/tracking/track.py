"""``denselink tracking track``: link your own movie (raw frames + segmentation masks) with a trained model.

    denselink tracking track --model results/models/.../seed0 --images movie/ --masks masks/ \\
        --out movie_RES --table movie_tracks.csv

No ground truth is needed. ``--model`` is a run directory of ``tracking train`` (its checkpoint
with the lowest val_loss, else its last one), one ``checkpoints/epoch{N}.pt``, or a trackastra
model folder (``config.yaml`` + ``model.pt``). A fused model gets the movie's per-cell features
computed exactly as its training features were (embedding backbone, weights, settings and
aggregation recorded in the checkpoint at training time, weights hash-checked), or from
``--features``. Linking is trackastra's greedy linking as in ``tracking evaluate``; cells that
no link reaches stay in the result as single-frame tracks. Writes the CTC result folder
``--out`` (``mask%03d.tif`` + ``res_track.txt``) and a tracks table (CSV or parquet by extension):
one row per tracked cell and frame, ``frame, label, track_id, parent_track_id, y, x``, where
``label`` is the cell's label in the input mask and ``track_id`` its label in ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from skimage.measure import regionprops_table

from denselink.atomic import add_force_flag, atomic_path, check_output, write_json
from denselink.data.ctc import tiff_header
from denselink.data.manifest import SequenceManifest
from denselink.errors import CheckpointError, ConfigError, CTCFormatError
from denselink.features.recipe import replay
from denselink.tracking.fusion import FeatureTable, FusedTrackingTransformer
from denselink.tracking.geff_out import write_geff
from denselink.tracking.predict import link, load_checkpoint, load_trackastra_folder, write_ctc
from denselink.tracking.settings import TrackastraSettings

log = logging.getLogger(__name__)
COMMAND = "tracking track"
TABLE_COLUMNS = ("frame", "label", "track_id", "parent_track_id", "y", "x")
TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass
class TrackedModel:
    """A loaded model with the linking settings and the feature recipe it was trained with."""

    model: Any
    source: Path
    link_mode: str = "greedy"
    edge_threshold: float = 0.05
    features_recipe: dict[str, Any] | None = None


def _frame_number(path: Path) -> tuple[int, str]:
    numbers = re.findall(r"\d+", path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


def list_tiffs(directory: str | Path) -> list[Path]:
    """The TIFFs of ``directory`` in frame order (by the last number in the name)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CTCFormatError(directory, "directory is missing")
    files = sorted((p for p in directory.iterdir() if p.suffix.lower() in TIFF_SUFFIXES), key=_frame_number)
    if not files:
        raise CTCFormatError(directory, "no .tif/.tiff files")
    return files


def user_sequence(images: str | Path, masks: str | Path, name: str | None = None) -> SequenceManifest:
    """A checked manifest of a movie without ground truth: one frame and one label image per time point."""
    frames, labels = list_tiffs(images), list_tiffs(masks)
    if len(frames) != len(labels):
        raise CTCFormatError(masks, f"{len(labels)} mask files for {len(frames)} frames in {images}")
    shape, dtype = tiff_header(frames[0])
    for frame, label in zip(frames, labels, strict=True):
        frame_shape, frame_dtype = tiff_header(frame)
        if frame_dtype.kind not in "uif" or frame_shape != shape:
            raise CTCFormatError(frame, f"frame {frame_shape} {frame_dtype} differs from {shape} {dtype}")
        mask_shape, mask_dtype = tiff_header(label)
        if mask_dtype.kind not in "ui":
            raise CTCFormatError(label, f"mask dtype {mask_dtype} is not an integer type")
        if mask_shape != shape:
            raise CTCFormatError(label, f"mask shape {mask_shape} differs from the frames' shape {shape}")
    return SequenceManifest(
        dataset="user",
        sequence=name or Path(images).name,
        frames=frames,
        shape=shape,
        dtype=str(dtype),
        masks=labels,
    )


def chosen_checkpoint(run_dir: Path) -> Path:
    """The run's checkpoint with the lowest finite val_loss (earliest on ties), else its last one."""
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch*.pt"))
    if not checkpoints:
        raise CheckpointError(run_dir, "no checkpoints/epoch*.pt (run `denselink tracking train`)")
    log_path = run_dir / "train_log.csv"
    if log_path.is_file():
        rows = pd.read_csv(log_path)
        rows = rows[np.isfinite(rows["val_loss"])]
        if len(rows):
            epoch = int(rows.sort_values(["val_loss", "epoch"]).iloc[0]["epoch"])
            path = run_dir / "checkpoints" / f"epoch{epoch:03d}.pt"
            if path.is_file():
                return path
    return checkpoints[-1]


def load_tracker(model: str | Path) -> TrackedModel:
    """A run directory, a checkpoint file or a trackastra model folder, ready to link."""
    model = Path(model)
    if (model / "model.pt").is_file() and (model / "config.yaml").is_file():
        return TrackedModel(load_trackastra_folder(model), model)
    path = chosen_checkpoint(model) if model.is_dir() else model
    if not path.is_file():
        raise CheckpointError(model, "neither a run directory, a checkpoint nor a trackastra model folder")
    network, record = load_checkpoint(path)
    config_path = path.parent.parent / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    settings = TrackastraSettings(**config.get("settings", {}))
    recipe = record.get("features_recipe", config.get("features_recipe"))
    log.info("linking with %s", path)
    return TrackedModel(network, path, settings.link_mode, settings.edge_threshold, recipe)


def tracks_table(masks: np.ndarray, result: np.ndarray, res_track: pd.DataFrame) -> pd.DataFrame:
    """One row per tracked cell and frame: input label, track id, parent track, centroid (y, x)."""
    parents = dict(zip(res_track["label"], res_track["parent"], strict=True))
    parts = []
    for t, (mask, tracked) in enumerate(zip(masks, result, strict=True)):
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
    fused = isinstance(tracker.model, FusedTrackingTransformer)
    if fused and features is None and tracker.features_recipe is None:
        raise ConfigError(
            "--features",
            f"{tracker.source} was trained on features without a recorded recipe; give --features",
        )
    if not fused and features is not None:
        raise ConfigError("--features", "this model takes no learned features")
    with tempfile.TemporaryDirectory(prefix="denselink-track-") as scratch:
        work = Path(work_dir) if work_dir is not None else Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        if fused and features is None:
            manifest_path = work / "manifest.json"
            write_json(manifest_path, sequence.to_dict(), COMMAND)
            features = replay(tracker.features_recipe, manifest_path, work)
        feature_table = FeatureTable(features) if fused else None
        frames = sequence.read_frames().astype(np.float32)
        labels = sequence.read_masks().astype(np.int32)
        threshold = tracker.edge_threshold if edge_threshold is None else edge_threshold
        graph = link(tracker.model, frames, labels, feature_table, tracker.link_mode, threshold)
    if graph.number_of_nodes() == 0:
        raise ConfigError(out, "the model linked no cells (try a lower --edge-threshold)")
    with atomic_path(out, COMMAND, force) as tmp:
        write_ctc(graph, labels, tmp)
    result = np.stack([tifffile.imread(path) for path in sorted(out.glob("mask*.tif"))])
    res_track = pd.read_csv(
        out / "res_track.txt", sep=" ", header=None, names=["label", "t1", "t2", "parent"]
    )
    tracks = tracks_table(labels, result, res_track)
    n_cells = sum(len(np.unique(m[m > 0])) for m in labels)
    log.info("%d of %d cells linked into %d tracks -> %s", len(tracks), n_cells, res_track.shape[0], out)
    if table is not None:
        write_table(tracks, table, force)
    if geff is not None:
        write_geff(graph, labels, geff, COMMAND, force)
    return tracks


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="denselink tracking track",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[5:]),
    )
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
        "--edge-threshold", type=float, default=None, help="smallest association kept (default: the model's)"
    )
    parser.add_argument("--geff", type=Path, default=None, help="also write the linking as geff (.zarr)")
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking track``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
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
        args.geff,
    )

    return 0
