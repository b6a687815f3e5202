"""``denselink features aggregate``: one feature vector per ground-truth cell per frame.

Aggregations (paper section 2, "we derive a feature vector for each ground-truth cell mask"):

- ``centroid``: the embedding at the centre of the cell's bounding box (the paper text), rounded to
  the pixel (halves up). The pixel is taken even where it lies outside a non-convex mask.
- ``mma``: the mean embedding over the cell's mask (mean mask aggregation).
- ``mask_centroid``: the embedding at the rounded mask centroid (what the authors' code looks up).

The embedding zarr is read frame by frame and the parquet written one row group per frame, so
memory does not grow with the number of frames. Before any frame is read, the embedding must prove
it belongs to the manifest (:func:`check_provenance`: the sha256 of every source frame it records
equals the manifest's) and every chunk must be stored (:func:`check_chunks`): zarr reads a missing
chunk as fill values, which would turn a lost file into features of zeros.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from tqdm import tqdm

from denselink import __version__
from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser, parse
from denselink.data.manifest import SequenceManifest, file_sha256, load_manifest
from denselink.errors import CTCFormatError, EmbeddingError
from denselink.vocabulary import AGGREGATIONS

PROVENANCE_KEYS = ("checkpoint_sha256", "anyup_commit", "anyup_weights_sha256")
"""Embedding attrs that identify the weights: copied into the feature table; a replay must reproduce them."""

log = logging.getLogger(__name__)


def feature_columns(n_channels: int) -> list[str]:
    """``f000 .. f{D-1}`` (zero-padded to at least three digits)."""
    width = max(3, len(str(n_channels - 1)))
    return [f"f{i:0{width}d}" for i in range(n_channels)]


def _cell_pixels(mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """A label image's cells: labels (N,) ascending, areas (N,), and their pixels ``sy, sx`` grouped by
    label, cell ``i`` starting at ``starts[i]``."""
    ys, xs = np.nonzero(mask)
    labels, inverse, area = np.unique(mask[ys, xs].astype(np.int64), return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return labels, area.astype(np.int64), np.concatenate([[0], np.cumsum(area)[:-1]]), ys[order], xs[order]


def _mean_position(area: np.ndarray, starts: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    return np.stack([np.add.reduceat(sy, starts), np.add.reduceat(sx, starts)], axis=1) / area[:, None]


def mask_centres(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels (N,) ascending, mask centroids (N, 2) (y, x) and areas (N,) of a label image's cells."""
    labels, area, starts, sy, sx = _cell_pixels(mask)
    if labels.size == 0:
        return labels, np.zeros((0, 2)), area
    return labels, _mean_position(area, starts, sy, sx), area


def aggregate_frame(
    embedding: np.ndarray, mask: np.ndarray, agg: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-cell features of one frame.

    Args:
        embedding: ``(C, H, W)`` dense embedding.
        mask: ``(H, W)`` label image, 0 is background.
        agg: ``centroid`` | ``mma`` | ``mask_centroid``.

    Returns:
        ``labels`` (N,) int64 ascending, ``coords`` (N, 2) float64 (y, x) of the looked-up pixel
        (``centroid``/``mask_centroid``) or of the mask centroid (``mma``), ``area`` (N,) int64,
        ``features`` (N, C) float32.
    """
    if agg not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {agg!r}; expected one of {AGGREGATIONS}")
    channels = embedding.shape[0]
    labels, area, starts, sy, sx = _cell_pixels(mask)
    if labels.size == 0:
        return labels, np.zeros((0, 2)), area, np.zeros((0, channels), np.float32)
    if agg == "mma":
        sums = np.add.reduceat(embedding[:, sy, sx], starts, axis=1, dtype=np.float64)
        return labels, _mean_position(area, starts, sy, sx), area, (sums / area).T.astype(np.float32)
    if agg == "centroid":
        cy = np.floor((np.minimum.reduceat(sy, starts) + np.maximum.reduceat(sy, starts)) / 2 + 0.5)
        cx = np.floor((np.minimum.reduceat(sx, starts) + np.maximum.reduceat(sx, starts)) / 2 + 0.5)
        cy, cx = cy.astype(np.int64), cx.astype(np.int64)
    else:
        cy = np.round(np.add.reduceat(sy, starts) / area).astype(np.int64)
        cx = np.round(np.add.reduceat(sx, starts) / area).astype(np.int64)
    features = np.asarray(embedding[:, cy, cx], dtype=np.float32).T
    return labels, np.stack([cy, cx], axis=1).astype(np.float64), area, features


def open_embedding(path: str | Path) -> zarr.Array:
    """The ``(T, C, H, W)`` array of an embedding zarr (a group with ``embedding``, or a bare array)."""
    path = Path(path)
    if not path.exists():
        raise EmbeddingError(path, "embedding zarr does not exist")
    try:
        node = zarr.open(str(path), mode="r")
    except Exception as err:  # zarr raises many types for broken stores
        raise EmbeddingError(path, f"not a readable zarr ({type(err).__name__}: {err})") from err
    if isinstance(node, zarr.Group):
        if "embedding" not in node:
            raise EmbeddingError(path, "zarr group has no 'embedding' array")
        node = node["embedding"]
    if node.ndim != 4:
        raise EmbeddingError(path, f"expected (T, C, H, W), got shape {node.shape}")
    return node


def check_provenance(
    attrs: dict[str, Any], sequence: SequenceManifest, embedding_zarr: str | Path, manifest: str | Path
) -> None:
    """Raise EmbeddingError unless the embedding was computed from the frames of ``manifest``.

    The zarr attrs' ``source_hashes`` (frame file name or path -> sha256) must name the manifest's
    frames with the manifest's hashes (hashed now when the manifest records none); a recorded
    ``dataset``/``sequence`` must be the manifest's.
    """
    for key in ("dataset", "sequence"):
        recorded, expected = attrs.get(key), getattr(sequence, key)
        if recorded is not None and recorded != expected:
            raise EmbeddingError(
                embedding_zarr, f"computed from {key} {recorded!r}, but {manifest} is {key} {expected!r}"
            )
    recorded = attrs.get("source_hashes")
    if not isinstance(recorded, dict) or not recorded:
        raise EmbeddingError(
            embedding_zarr,
            f"records no source_hashes, so it cannot be checked against {manifest}; recompute it",
        )
    by_name = {Path(str(key)).name: str(value) for key, value in recorded.items()}
    hashes = sequence.frame_hashes or [file_sha256(path) for path in sequence.frames]
    names = [path.name for path in sequence.frames]
    if sorted(by_name) != sorted(names):
        extra, absent = sorted(set(by_name) - set(names)), sorted(set(names) - set(by_name))
        raise EmbeddingError(
            embedding_zarr,
            f"computed from other frames than {manifest} lists (frames only in the embedding: {extra[:3]}, "
            f"only in the manifest: {absent[:3]})",
        )
    for t, (name, digest) in enumerate(zip(names, hashes, strict=True)):
        if by_name[name] != digest:
            raise EmbeddingError(
                embedding_zarr,
                f"frame {t} ({name}) is not the one it was computed from (sha256 {by_name[name][:12]}... "
                f"recorded, {digest[:12]}... in {manifest}): another sequence, or a changed frame; "
                "recompute it",
            )


def check_chunks(array: zarr.Array, embedding_zarr: str | Path) -> None:
    """Raise EmbeddingError naming the first chunk (or shard) file of ``array`` that is not stored."""
    folder = Path(embedding_zarr) / array.path
    blocks = array.shards or array.chunks
    grid = [range(math.ceil(n / b)) for n, b in zip(array.shape, blocks, strict=True)]
    for coords in itertools.product(*grid):
        key = array.metadata.encode_chunk_key(coords)
        if not (folder / key).is_file():
            raise EmbeddingError(
                embedding_zarr,
                f"chunk {key} (frame {coords[0]}) is missing: the store is incomplete; recompute it",
            )


def _read_frame(array: zarr.Array, t: int, embedding_zarr: str | Path) -> np.ndarray:
    """Frame ``t``; an unreadable chunk is an EmbeddingError naming its key."""
    try:
        return np.asarray(array[t])
    except Exception as err:  # codecs raise many types for corrupt chunks
        problem = f"{type(err).__name__}: {err}"
    grid = [range(t // array.chunks[0], t // array.chunks[0] + 1)]
    grid += [range(math.ceil(n / c)) for n, c in zip(array.shape[1:], array.chunks[1:], strict=True)]
    for coords in itertools.product(*grid):
        try:
            array.get_block_selection(coords)
        except Exception as err:  # the first chunk that fails to decode
            problem = f"{type(err).__name__}: {err}"
            key = array.metadata.encode_chunk_key(coords) if array.shards is None else f"at {coords}"
            raise EmbeddingError(
                embedding_zarr, f"chunk {key} (frame {t}) is unreadable ({problem})"
            ) from err
    raise EmbeddingError(embedding_zarr, f"frame {t} is unreadable ({problem})")


def table_schema(n_channels: int, metadata: dict[str, str] | None = None) -> pa.Schema:
    """Arrow schema of a feature table with ``n_channels`` features."""
    fields = [
        pa.field("frame", pa.int64()),
        pa.field("label", pa.int64()),
        pa.field("y", pa.float64()),
        pa.field("x", pa.float64()),
        pa.field("area", pa.int64()),
    ]
    fields += [pa.field(name, pa.float32()) for name in feature_columns(n_channels)]
    return pa.schema(fields, metadata=metadata)


def _frame_table(frame: int, labels, coords, area, features, schema: pa.Schema) -> pa.Table:
    columns = [np.full(labels.size, frame), labels, coords[:, 0], coords[:, 1], area]
    columns += list(features.T)
    return pa.Table.from_arrays(
        [pa.array(c, type=f.type) for c, f in zip(columns, schema, strict=True)], schema=schema
    )


COMMAND = "features aggregate"


def aggregate_sequence(
    embedding_zarr: str | Path, manifest: str | Path, agg: str, out: str | Path, force: bool = False
) -> int:
    """Write the per-cell feature table of a sequence to ``out`` (parquet); returns the number of rows.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    check_output(out, COMMAND, force)
    if agg not in AGGREGATIONS:
        raise EmbeddingError(embedding_zarr, f"unknown aggregation {agg!r}; expected one of {AGGREGATIONS}")
    sequence = load_manifest(manifest)
    if not sequence.has_masks:
        raise CTCFormatError(manifest, "the sequence has no ground-truth masks to aggregate over")
    array = open_embedding(embedding_zarr)
    n_frames, channels, height, width = array.shape
    if n_frames != sequence.n_frames or (height, width) != tuple(sequence.shape):
        raise EmbeddingError(
            embedding_zarr,
            f"embedding (T, H, W) = {(n_frames, height, width)} does not match the manifest's "
            f"{(sequence.n_frames, *sequence.shape)} ({manifest})",
        )
    check_provenance(dict(array.attrs), sequence, embedding_zarr, manifest)
    check_chunks(array, embedding_zarr)
    # what the training recipe needs of the embedding, kept here since the volume may be a temp() output
    recipe_attrs = {
        k: v for k, v in array.attrs.items() if k in ("backbone", "settings", "checkpoint", *PROVENANCE_KEYS)
    }
    record = {
        "embedding": str(embedding_zarr),
        "embedding_attrs": recipe_attrs,
        "agg": agg,
        "denselink_version": __version__,
    }
    metadata = {"denselink": json.dumps(record, sort_keys=True)}
    schema = table_schema(channels, metadata)
    rows = 0
    with atomic_path(out, COMMAND, force) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for t in tqdm(range(n_frames), desc=f"aggregate {agg}", unit="frame"):
            mask = sequence.read_mask(t)
            if mask.shape != (height, width):
                raise CTCFormatError(sequence.masks[t], f"mask shape {mask.shape} != {(height, width)}")
            embedding = _read_frame(array, t, embedding_zarr)
            table = _frame_table(t, *aggregate_frame(embedding, mask, agg), schema)
            writer.write_table(table)
            rows += table.num_rows
    log.info("wrote %d rows (%d frames, %d features) to %s", rows, n_frames, channels, out)
    return rows


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        COMMAND,
        "Per-cell feature table: one row per ground-truth cell per frame, "
        "columns frame, label, y, x, area, f000..f{D-1}.",
    )
    parser.add_argument("--embedding", required=True, type=Path, help="embedding zarr (T, C, H, W)")
    parser.add_argument("--manifest", required=True, type=Path, help="sequence manifest with TRA masks")
    parser.add_argument(
        "--agg",
        required=True,
        choices=AGGREGATIONS,
        help="centroid: pixel at the bounding-box centre (paper); mma: mean over the mask; "
        "mask_centroid: pixel at the rounded mask centroid (authors' code)",
    )
    parser.add_argument("--out", required=True, type=Path, help="output parquet file")
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink features aggregate``."""
    args = parse(build_parser(), argv, COMMAND, logs=True)
    aggregate_sequence(args.embedding, args.manifest, args.agg, args.out, args.force)
    return 0
