"""Benchmark: per-cell aggregation memory/throughput vs sequence length; SAM encoder and AnyUp costs.

Writes ``benchmarks/results/aggregate.json`` with headline keys ``peak_rss_growth`` (peak RSS of the
aggregation at the longest sequence / at the shortest; each length runs in a fresh subprocess) and
``frames_per_s`` (at the longest sequence), plus vit_b seconds per frame (random weights, the real
SAM / muSAM architecture) and AnyUp seconds per query tile, on CPU, and on GPU when CUDA exists.

    .venv/bin/python benchmarks/aggregate.py [--lengths 8 32 128] [--size 128] [--channels 256]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from denselink.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "aggregate.json"
ANYUP_DIR = Path(
    os.environ.get("DENSELINK_ANYUP_DIR", Path(__file__).resolve().parents[2] / "shared/third_party/anyup")
)


def write_sequence(root: Path, n_frames: int, size: int, channels: int, seed: int = 0) -> tuple[Path, Path]:
    """A sequence of ``n_frames`` label masks (about 30 discs) and a random float16 embedding zarr."""
    import tifffile
    import zarr

    from denselink.data.manifest import SequenceManifest, file_sha256

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    group = zarr.open_group(root / "emb.zarr", mode="w", zarr_format=3)
    array = group.create_array(
        "embedding", shape=(n_frames, channels, size, size), chunks=(1, channels, size, size), dtype="float16"
    )
    frames, masks = [], []
    for t in range(n_frames):
        mask = np.zeros((size, size), np.uint16)
        for label, (cy, cx, r) in enumerate(
            rng.uniform([0, 0, 2], [size, size, max(3, size / 12)], (30, 3)), start=1
        ):
            mask[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = label
        masks.append(root / f"man_track{t:03d}.tif")
        tifffile.imwrite(masks[-1], mask)
        frames.append(masks[-1])
        array[t] = rng.normal(size=(channels, size, size)).astype(np.float16)
    array.attrs["source_hashes"] = {path.name: file_sha256(path) for path in frames}
    manifest = SequenceManifest("bench", "01", frames, (size, size), "uint16", masks=masks)
    (root / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    return root / "emb.zarr", root / "manifest.json"


def child(zarr_path: str, manifest: str, agg: str, out: str) -> None:
    """Run one aggregation in this (fresh) process; print seconds and peak RSS as JSON."""
    from denselink.features.aggregate import aggregate_sequence

    start = time.perf_counter()
    rows = aggregate_sequence(zarr_path, manifest, agg, out)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_kib / 1024, "rows": rows}))


def aggregation_scaling(lengths: list[int], size: int, channels: int) -> list[dict]:
    runs = []
    for n_frames in lengths:
        with tempfile.TemporaryDirectory() as tmp:
            zarr_path, manifest = write_sequence(Path(tmp), n_frames, size, channels)
            for agg in ("mma", "centroid"):
                env = {**os.environ, "OMP_NUM_THREADS": "1"}
                cmd = [
                    sys.executable,
                    __file__,
                    "--child",
                    str(zarr_path),
                    str(manifest),
                    agg,
                    f"{tmp}/{agg}.parquet",
                ]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
                result = json.loads(done.stdout.strip().splitlines()[-1])
                result.update(n_frames=n_frames, agg=agg, frames_per_s=n_frames / result["seconds"])
                print(result, flush=True)
                runs.append(result)
    return runs


def encoder_seconds(device: str, n_frames: int, size: int) -> dict:
    """vit_b forward time per frame (random weights; vit_b_lm is the same architecture)."""
    import torch

    from denselink.foundation.sam import EncoderSpec, encode_batch, load_encoder

    spec = EncoderSpec()
    encoder, _ = load_encoder("vit_b", spec, random_init=True)
    frames = list(np.random.default_rng(0).random((n_frames, size, size)).astype(np.float32))
    if device.startswith("cuda"):  # warm-up (CPU timings need none and are expensive)
        encode_batch(encoder, frames[:1], spec, torch.device(device))
        torch.cuda.synchronize()
    start = time.perf_counter()
    for frame in frames:
        encode_batch(encoder, [frame], spec, torch.device(device))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return {
        "image_size": size,
        "frames": n_frames,
        "seconds_per_frame": (time.perf_counter() - start) / n_frames,
    }


def anyup_seconds(device: str, size: int, tile_pixels: int) -> dict | None:
    """AnyUp 64x64x256 -> size x size (random weights), per query tile."""
    import torch

    from denselink.foundation.upsample import AnyUpUpsampler, load_anyup

    if not (ANYUP_DIR / "hubconf.py").is_file():
        return None
    torch.manual_seed(0)
    model = load_anyup(str(ANYUP_DIR), "local", pretrained=False, device=device)
    upsampler = AnyUpUpsampler(model, tile_pixels=tile_pixels)
    features = torch.randn(1, 256, 64, 64, device=device)
    frames = np.random.default_rng(0).random((1, size, size)).astype(np.float32)
    if device.startswith("cuda"):
        upsampler(features, frames, (size, size))  # warm-up
        torch.cuda.synchronize()
    start = time.perf_counter()
    upsampler(features, frames, (size, size))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    n_tiles = -(-size * size // tile_pixels)
    return {
        "output_size": size,
        "tile_pixels": tile_pixels,
        "tiles": n_tiles,
        "seconds": seconds,
        "seconds_per_tile": seconds / n_tiles,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--lengths", type=int, nargs="+", default=[8, 32, 128], help="sequence lengths (frames)"
    )
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels for the aggregation runs")
    parser.add_argument("--channels", type=int, default=256, help="embedding channels")
    parser.add_argument("--encoder-size", type=int, default=512, help="frame side for the vit_b timing")
    parser.add_argument("--anyup-size", type=int, default=128, help="AnyUp output side on CPU")
    parser.add_argument("--tile-pixels", type=int, default=4096, help="AnyUp query pixels per tile")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    import torch

    import denselink

    torch.set_num_threads(args.threads)
    runs = aggregation_scaling(args.lengths, args.size, args.channels)
    mma = {r["n_frames"]: r for r in runs if r["agg"] == "mma"}
    shortest, longest = min(mma), max(mma)
    cpu = {"torch_threads": args.threads, "vit_b": encoder_seconds("cpu", 1, args.encoder_size)}
    cpu["anyup"] = anyup_seconds("cpu", args.anyup_size, args.tile_pixels)
    if torch.cuda.is_available():
        gpu = {
            "vit_b": encoder_seconds("cuda", 8, args.encoder_size),
            "anyup": anyup_seconds("cuda", 512, 65536),
        }
    else:
        gpu = {"result": None, "reason": "no CUDA device on this machine"}
    result = {
        "peak_rss_growth": mma[longest]["peak_rss_mib"] / mma[shortest]["peak_rss_mib"],
        "frames_per_s": mma[longest]["frames_per_s"],
        "frames_per_s_centroid": next(
            r["frames_per_s"] for r in runs if r["agg"] == "centroid" and r["n_frames"] == longest
        ),
        "sam_seconds_per_frame_cpu": cpu["vit_b"]["seconds_per_frame"],
        "musam_seconds_per_frame_cpu": cpu["vit_b"]["seconds_per_frame"],
        "anyup_seconds_per_tile_cpu": None if cpu["anyup"] is None else cpu["anyup"]["seconds_per_tile"],
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": denselink.__version__,
        "settings": vars(args) | {"child": None},
        "notes": "headline frames_per_s and peak RSS are the mma aggregation; vit_b and vit_b_lm share the "
        "architecture, so one random-weight timing serves SAM and muSAM",
        "aggregation_runs": runs,
        "cpu": cpu,
        "gpu": gpu,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    from denselink.atomic import write_json

    write_json(RESULTS, result)
    print(json.dumps({k: result[k] for k in list(result)[:6]}, indent=2))


if __name__ == "__main__":
    main()
