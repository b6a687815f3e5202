"""``denselink features handcrafted``: a hand-crafted appearance feature per ground-truth cell.

The control of "any appearance" against learned embeddings: for every cell of a frame, the
histogram of its pixels' intensities (``bins`` fractions summing to 1, the frame scaled to its
1st..99.8th percentile and clipped to [0, 1]) followed by its oriented-gradient energies
(``orientations`` bins of the gradient direction modulo 180 degrees, each the root mean of the
squared gradient magnitude of the cell's pixels in that bin; the gradient is taken after a Gaussian
blur of ``sigma`` pixels). No weights, no training: a fixed function of the pixels under the mask.

The table has the columns of ``features aggregate`` (frame, label, y, x, area, f000..) so the
fusion reads it as any embedding's; the workflow names it ``handcrafted-mma`` (the feature of the
whole mask, as the mask mean of an embedding is).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from pydantic import Field
from scipy import ndimage
from tqdm import tqdm

from denselink import __version__
from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser, start
from denselink.data.manifest import load_manifest
from denselink.errors import CTCFormatError
from denselink.features.aggregate import _frame_table, mask_centres, table_schema
from denselink.settings import StageSettings

log = logging.getLogger(__name__)
COMMAND = "features handcrafted"
PERCENTILES = (1.0, 99.8)


class HandcraftedSettings(StageSettings):
    """Widths and smoothing of the hand-crafted appearance feature."""

    bins: int = Field(8, ge=2, description="Intensity histogram bins over the frame's [p1, p99.8] range.")
    orientations: int = Field(8, ge=1, description="Gradient-direction bins over 0..180 degrees.")
    sigma: float = Field(1.0, ge=0, description="Gaussian blur (pixels) before the gradient; 0: none.")

    @property
    def dim(self) -> int:
        """Features per cell."""
        return self.bins + self.orientations


def scaled_frame(image: np.ndarray) -> np.ndarray:
    """``image`` as float64 scaled so its 1st percentile is 0 and its 99.8th is 1 (not clipped)."""
    image = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(image, PERCENTILES)
    return (image - low) / (high - low) if high > low else image - low


def handcrafted_features(
    image: np.ndarray, mask: np.ndarray, settings: HandcraftedSettings | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Labels ``(N,)`` ascending and features ``(N, bins + orientations)`` float32 of a frame's cells.

    ``image`` and ``mask`` are 2D of one shape; 0 in ``mask`` is background.
    """
    settings = settings or HandcraftedSettings()
    if image.shape != mask.shape or image.ndim != 2:
        raise ValueError(f"image {image.shape} and mask {mask.shape} must be 2D of one shape")
    labels, index = np.unique(mask, return_inverse=True)
    index = index.reshape(mask.shape)
    if labels.size and labels[0] == 0:
        labels, index = labels[1:], index - 1  # background -> -1
    n = labels.size
    if n == 0:
        return labels.astype(np.int64), np.zeros((0, settings.dim), np.float32)
    scaled = scaled_frame(image)
    inside = index >= 0
    cell = index[inside]
    area = np.bincount(cell, minlength=n).astype(np.float64)
    level = np.clip((np.clip(scaled[inside], 0, 1) * settings.bins).astype(np.int64), 0, settings.bins - 1)
    histogram = np.bincount(cell * settings.bins + level, minlength=n * settings.bins).reshape(n, -1)
    smooth = ndimage.gaussian_filter(scaled, settings.sigma) if settings.sigma > 0 else scaled
    gy, gx = np.gradient(smooth)
    angle = np.mod(np.arctan2(gy[inside], gx[inside]), np.pi)
    turn = np.minimum((angle / np.pi * settings.orientations).astype(np.int64), settings.orientations - 1)
    power = (gy[inside] ** 2 + gx[inside] ** 2).astype(np.float64)
    energy = np.bincount(
        cell * settings.orientations + turn, weights=power, minlength=n * settings.orientations
    ).reshape(n, -1)
    features = np.hstack([histogram / area[:, None], np.sqrt(energy / area[:, None])])
    return labels.astype(np.int64), features.astype(np.float32)


def handcrafted_sequence(
    manifest: str | Path, out: str | Path, settings: HandcraftedSettings, force: bool = False
) -> int:
    """Write the hand-crafted feature table of a sequence's GT cells to ``out``; returns its rows."""
    check_output(out, COMMAND, force)
    sequence = load_manifest(manifest)
    if not sequence.has_masks:
        raise CTCFormatError(manifest, "the sequence has no ground-truth masks to describe")
    record = {
        "backbone": "handcrafted",
        "settings": settings.model_dump(),
        "manifest": str(manifest),
        "denselink_version": __version__,
    }
    schema = table_schema(settings.dim, {"denselink_handcrafted": json.dumps(record, sort_keys=True)})
    rows = 0
    with atomic_path(out, COMMAND, force) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for t in tqdm(range(sequence.n_frames), desc="handcrafted features", unit="frame"):
            mask = sequence.read_mask(t).astype(np.int64)
            labels, features = handcrafted_features(sequence.read_frame(t), mask, settings)
            _, centres, area = mask_centres(mask)  # the same ascending labels
            table = _frame_table(t, labels, centres, area, features, schema)
            writer.write_table(table)
            rows += table.num_rows
    log.info("wrote %d rows (%d features) to %s", rows, settings.dim, out)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink features handcrafted``."""
    parser = command_parser(
        COMMAND,
        "Hand-crafted appearance feature per GT cell (intensity histogram + oriented-gradient "
        "energies): a table with the columns of `features aggregate`.",
    )
    parser.add_argument("--manifest", required=True, type=Path, help="sequence manifest with TRA masks")
    parser.add_argument("--out", required=True, type=Path, help="output parquet file")
    parser.add_argument("--settings", default=None, help="HandcraftedSettings JSON (file or inline)")
    add_force_flag(parser)
    args, settings = start(parser, argv, COMMAND, HandcraftedSettings, logs=True)
    handcrafted_sequence(args.manifest, args.out, settings, args.force)
    return 0
