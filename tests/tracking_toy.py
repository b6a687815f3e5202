"""Tiny CTC sequences for the tracking tests.

:func:`write_swap_sequence`: identical cells in pairs that swap places. Positions and shapes cannot
tell the two cells of a pair apart, so a position-only linker is right about half the time; a
per-track identity code (written to the feature parquet) resolves it.
:func:`write_dividing_sequence`: a generated 96x96 sequence of 8 cells that divide, validated.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from denselink import cli
from denselink.data.manifest import SequenceManifest


def write_dividing_sequence(root: Path, n_frames: int, division_prob: float) -> Path:
    """``denselink data synth`` + ``data validate`` of a sequence with divisions; its manifest path."""
    synth = {"shape": [96, 96], "n_frames": n_frames, "n_cells": 8, "division_prob": division_prob,
             "sequences": ["01"]}  # fmt: skip
    assert cli.main(["data", "synth", "--out", str(root / "data"), "--settings", json.dumps(synth)]) == 0
    manifest = root / "manifest.json"
    assert cli.main(["data", "validate", "--dataset-dir", str(root / "data"), "--dataset", "synth",
                     "--seq", "01", "--out", str(manifest)]) == 0  # fmt: skip
    return manifest


def write_swap_sequence(
    root: Path, seq: str, n_frames: int = 12, size: int = 64, pairs: int = 4, dim: int = 8, seed: int = 0
) -> tuple[Path, Path]:
    """Write ``root/{seq}``, ``root/{seq}_GT/TRA``, a manifest and an identity feature table.

    Returns (manifest path, feature parquet path).
    """
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(pairs)))
    step = size / side
    centres = [((i // side + 0.5) * step, (i % side + 0.5) * step) for i in range(pairs)]
    # one code per track id, shared by all sequences (an ideal identity feature)
    codes = np.random.default_rng(12345).normal(size=(2 * pairs + 1, dim)).astype(np.float32)
    images, tra = root / seq, root / f"{seq}_GT" / "TRA"
    images.mkdir(parents=True, exist_ok=True)
    tra.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[:size, :size]
    frames, masks, rows = [], [], []
    order = np.zeros(pairs, dtype=bool)
    for t in range(n_frames):
        order ^= rng.random(pairs) < 0.5
        mask = np.zeros((size, size), np.uint16)
        for p, (cy, cx) in enumerate(centres):
            for k, dx in enumerate((-6.0, 6.0)):
                label = 2 * p + 1 + (k ^ int(order[p]))
                y, x = cy + rng.uniform(-1, 1), cx + dx + rng.uniform(-1, 1)
                disc = (yy - y) ** 2 + (xx - x) ** 2 <= 16
                mask[disc] = label
        image = (1000 * (mask > 0) + rng.normal(100, 5, mask.shape)).clip(0).astype(np.uint16)
        frames.append(images / f"t{t:03d}.tif")
        masks.append(tra / f"man_track{t:03d}.tif")
        tifffile.imwrite(frames[-1], image)
        tifffile.imwrite(masks[-1], mask)
        for label in range(1, 2 * pairs + 1):
            ys, xs = np.nonzero(mask == label)
            rows.append([t, label, ys.mean(), xs.mean(), len(ys), *codes[label]])
    man_track = tra / "man_track.txt"
    man_track.write_text("".join(f"{label} 0 {n_frames - 1} 0\n" for label in range(1, 2 * pairs + 1)))
    manifest = SequenceManifest("Toy", seq, frames, (size, size), "uint16", masks, man_track)
    manifest_path = root / f"{seq}.json"
    manifest_path.write_text(json.dumps(manifest.to_dict()))
    columns = ["frame", "label", "y", "x", "area", *(f"f{i:03d}" for i in range(dim))]
    table = pd.DataFrame(rows, columns=columns).astype({"frame": "int64", "label": "int64"})
    features = root / f"{seq}-identity.parquet"
    table.to_parquet(features)
    return manifest_path, features
