"""Benchmark: MAESTER pretraining crops per second per data worker, TIFF decoding vs the frame store.

Old path (as before the frame store): every DataLoader worker decodes whole TIFF frames on demand into a
per-process LRU cache (1024 MiB), and the workers, with their caches, are re-created every epoch. New
path: the frames are decoded once into a memory-mapped store and a crop reads only its own pixels; the
workers persist. Both cut the same crops (paper settings: img 80, one frame per crop, padding 4, random
40x40 crop resized to 80, flips); ``max_abs_diff`` checks that.

Two regimes, on generated LZW-compressed uint16 frames:
- ``mitocheck_like``: far more frames than crops per worker and epoch (Mitocheck 100 %: ~318 x 94 =
  ~30,000 frames of 1024x1344, 20,000 crops per epoch over 4 GPUs x 2 workers = 2,500 per worker, a
  ratio of 1:12), so nearly every old-path crop decodes a frame. Here 4 sequences x 60 frames of
  1024x1024 and 20 crops per worker epoch (the same 1:12). This is the headline ``speedup``.
- ``fluo_like``: Fluo-N2DL-HeLa 01 (92 frames of 700x1100) with 2,500 crops per worker epoch, where the
  old cache warms up within an epoch.

Beside it: the crops per second per GPU that the paper's schedule (batch 32 per GPU, 4 GPUs, 20,000
crops per epoch) needs on an A100, from a stated step-time assumption (no GPU is measured here).

    .venv/bin/python benchmarks/maester_loader.py
"""

from __future__ import annotations

import datetime
import json
import tempfile
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import tifffile
import torch
from scipy import ndimage

from denselink import __version__
from denselink.atomic import write_json
from denselink.data.manifest import SequenceManifest
from denselink.machine import machine_info
from denselink.maester.dataset import EpochSampler, MaesterCropDataset, minmax_scale
from denselink.maester.frame_store import build_frame_store
from denselink.maester.model import MaesterModelSettings

RESULTS = Path(__file__).resolve().parent / "results" / "maester_loader.json"
IMG, PAD, OLD_CACHE_MB = 80, 4, 1024
REGIMES = {
    "mitocheck_like": dict(sequences=4, frames=60, shape=(1024, 1024), crops_per_epoch=20, epochs=6),
    "fluo_like": dict(sequences=1, frames=92, shape=(700, 1100), crops_per_epoch=2500, epochs=1),
}
# The paper's schedule and the A100 assumption behind the crops per second a GPU consumes.
PAPER = {"crops_per_epoch": 20000, "gpus": 4, "batch_per_gpu": 32, "workers_per_gpu_old_default": 2}
A100_TF32_DENSE_FLOPS = 156e12  # NVIDIA A100 datasheet, dense TF32 tensor-core peak
ASSUMED_MFU = 0.25  # fraction of peak a 192-wide, 1-head ViT reaches (small matmuls, many kernels)
ASSUMED_LAUNCH_FLOOR_S = 800 * 8e-6  # ~800 kernels per step (21 blocks fwd+bwd, AdamW) x ~8 us each


class TiffFrameCache:
    """The old path: whole frames decoded from TIFF on demand, min-max scaled, least recently used evicted."""

    def __init__(self, sequences: list[SequenceManifest], cache_mb: float) -> None:
        self.sequences, self.root = sequences, Path(".")
        self.shapes = [(s.n_frames, *s.shape) for s in sequences]
        self.budget, self.bytes, self.misses = int(cache_mb * 2**20), 0, 0
        self.frames: OrderedDict[tuple[int, int], np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self.sequences)

    def region(self, seq: int, t: int, rows: slice, cols: slice) -> np.ndarray:
        key = (seq, t)
        if key in self.frames:
            self.frames.move_to_end(key)
        else:
            self.misses += 1
            self.frames[key] = minmax_scale(self.sequences[seq].read_frame(t))
            self.bytes += self.frames[key].nbytes
            while self.bytes > self.budget and len(self.frames) > 1:
                self.bytes -= self.frames.popitem(last=False)[1].nbytes
        return self.frames[key][rows, cols]


def training_flops_per_crop(s: MaesterModelSettings) -> float:
    """Training FLOPs of one crop: 3 x forward (encoder on the visible tokens, decoder on all)."""

    def blocks(n: int, d: int, depth: int) -> float:
        hidden = int(d * s.mlp_ratio)
        return depth * (2 * n * d * 3 * d + 4 * n * n * d + 2 * n * d * d + 4 * n * d * hidden)

    tokens = s.grid_size**2
    visible = int(tokens * (1 - s.mask_ratio)) + 1
    forward = (
        2 * tokens * s.patch_size**2 * s.embed_dim
        + blocks(visible, s.embed_dim, s.depth)
        + 2 * visible * s.embed_dim * s.decoder_embed_dim
        + blocks(tokens + 1, s.decoder_embed_dim, s.decoder_depth)
        + 2 * tokens * s.decoder_embed_dim * s.patch_size**2
    )
    return 3.0 * forward


def gpu_need() -> dict:
    """Crops per second one A100 consumes under the paper's schedule (an estimate, stated as such)."""
    flops_step = training_flops_per_crop(MaesterModelSettings()) * PAPER["batch_per_gpu"]
    compute_s = flops_step / (A100_TF32_DENSE_FLOPS * ASSUMED_MFU)
    step_s = max(compute_s, ASSUMED_LAUNCH_FLOOR_S)
    steps_per_epoch = PAPER["crops_per_epoch"] / (PAPER["gpus"] * PAPER["batch_per_gpu"])
    return {
        "estimate": True,
        "training_gflop_per_step": flops_step / 1e9,
        "assumed_step_s": step_s,
        "assumptions": (
            f"A100 dense TF32 peak {A100_TF32_DENSE_FLOPS / 1e12:.0f} TFLOP/s (datasheet) at "
            f"{ASSUMED_MFU:.0%} utilisation -> {compute_s * 1e3:.1f} ms per step of "
            f"{PAPER['batch_per_gpu']} crops; kernel-launch floor ~800 kernels x 8 us = "
            f"{ASSUMED_LAUNCH_FLOOR_S * 1e3:.1f} ms; the larger is taken"
        ),
        "steps_per_epoch_per_gpu": steps_per_epoch,
        "gpu_seconds_per_epoch": steps_per_epoch * step_s,
        "needed_crops_per_s_per_gpu": PAPER["batch_per_gpu"] / step_s,
    }


def write_sequences(root: Path, regime: dict) -> list[SequenceManifest]:
    """LZW uint16 frames: smooth blobs plus noise (they compress like microscopy, unlike pure noise)."""
    rng = np.random.default_rng(0)
    shape = regime["shape"]
    bases = [ndimage.gaussian_filter(rng.random(shape), 6) for _ in range(4)]
    bases = [((b - b.min()) / (b.max() - b.min()) * 3000 + 200) for b in bases]
    out = []
    for s in range(regime["sequences"]):
        frames = []
        for t in range(regime["frames"]):
            path = root / f"s{s}" / f"t{t:03d}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            image = bases[(s + t) % 4] + rng.integers(0, 96, shape)
            tifffile.imwrite(path, image.astype(np.uint16), compression="lzw")
            frames.append(path)
        out.append(SequenceManifest("bench", f"{s:02d}", frames, shape, "uint16"))
    return out


def crops_of(dataset: MaesterCropDataset, epoch: int) -> list[torch.Tensor]:
    sampler = EpochSampler(len(dataset), epoch)
    return [dataset[i] for i in sampler]


def run_regime(name: str, regime: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sequences = write_sequences(root, regime)
        n, epochs = regime["crops_per_epoch"], regime["epochs"]
        old_s, old_misses, old_crops = 0.0, 0, []
        for epoch in range(epochs):  # a fresh worker, and cache, every epoch
            began = time.perf_counter()
            cache = TiffFrameCache(sequences, OLD_CACHE_MB)
            old_crops += crops_of(MaesterCropDataset(cache, IMG, n, seed=0, pad=PAD), epoch)
            old_s += time.perf_counter() - began
            old_misses += cache.misses
        began = time.perf_counter()
        store = build_frame_store(sequences, root / "store")
        build_s = time.perf_counter() - began
        new = MaesterCropDataset(store, IMG, n, seed=0, pad=PAD)  # persistent: built once
        repeats = max(1, 200 // (n * epochs))  # enough new-path crops to time
        best = float("inf")
        for _ in range(repeats):
            began = time.perf_counter()
            new_crops = [c for epoch in range(epochs) for c in crops_of(new, epoch)]
            best = min(best, time.perf_counter() - began)
    total = n * epochs
    old_rate, new_rate = total / old_s, total / best
    return {
        "regime": regime,
        "crops_timed": total,
        "old_seconds": old_s,
        "old_frames_decoded": old_misses,
        "old_crops_per_s_per_worker": old_rate,
        "new_seconds": best,
        "new_crops_per_s_per_worker": new_rate,
        "store_build_seconds": build_s,
        "store_build_ms_per_frame": 1e3 * build_s / (regime["sequences"] * regime["frames"]),
        "speedup": new_rate / old_rate,
        "max_abs_diff": float(max((a - b).abs().max() for a, b in zip(old_crops, new_crops, strict=True))),
    }


def main() -> None:
    torch.set_num_threads(1)
    regimes = {name: run_regime(name, regime) for name, regime in REGIMES.items()}
    need = gpu_need()
    for row in regimes.values():
        for path in ("old", "new"):
            rate = row[f"{path}_crops_per_s_per_worker"]
            row[f"workers_per_gpu_needed_{path}"] = need["needed_crops_per_s_per_gpu"] / rate
    headline = regimes["mitocheck_like"]
    result = {
        "speedup": headline["speedup"],
        "speedup_regime": "mitocheck_like",
        "max_abs_diff": max(r["max_abs_diff"] for r in regimes.values()),
        "old_crops_per_s_per_worker": headline["old_crops_per_s_per_worker"],
        "new_crops_per_s_per_worker": headline["new_crops_per_s_per_worker"],
        "needed_crops_per_s_per_gpu_a100": need["needed_crops_per_s_per_gpu"],
        "a100_need": need,
        "regimes": regimes,
        "settings": {
            "img_size": IMG,
            "pad": PAD,
            "sampling": "frame",
            "augment": "40x40 -> 80, flips",
            "old_cache_mb": OLD_CACHE_MB,
            "torch_threads": 1,
            "paper_schedule": PAPER,
        },  # fmt: skip
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
        "machine": machine_info(),
    }
    write_json(RESULTS, result)
    print(json.dumps({k: result[k] for k in list(result)[:7]}, indent=2))


if __name__ == "__main__":
    main()
