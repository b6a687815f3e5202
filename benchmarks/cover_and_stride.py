"""Benchmark: cover-and-stride inference, literal reference vs batched implementation, and MAESTER costs.

Writes ``benchmarks/results/cover_and_stride.json`` with headline keys ``speedup`` (reference seconds /
fast seconds on the same 64x64 frame at mini dims, same run) and ``max_abs_diff`` (between the two),
plus: paper-dims (80/5/192/14, central_patch 4) seconds per FOV measured on a few stride positions and
extrapolated to a 700x1100 Fluo-N2DL-HeLa frame and its 92-frame sequence; the mini pretraining and
12-frame inference wall times; and a GPU section (``"gpu": null`` with the reason when CUDA is absent).

    .venv/bin/python benchmarks/cover_and_stride.py [--threads 1] [--paper-fovs 16]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from denselink import __version__
from denselink.atomic import write_json
from denselink.data.manifest import SequenceManifest
from denselink.machine import machine_info
from denselink.maester.cover import CoverGeometry, cover_and_stride, cover_and_stride_reference, plan_cover
from denselink.maester.infer import MaesterInferSettings, infer_sequence
from denselink.maester.model import MaesterModelSettings, build_model
from denselink.maester.train import MaesterSettings, train

RESULTS = Path(__file__).resolve().parent / "results" / "cover_and_stride.json"
MINI_MODEL = {
    "img_size": 20, "patch_size": 5, "embed_dim": 16, "depth": 2, "num_heads": 1,
    "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1,
}  # fmt: skip
MINI_TRAIN = {
    "epochs": 5, "save_epochs": [1, 4], "samples_per_epoch": 256, "batch_size": 32,
    "num_workers": 0, "lr": 1e-3, "device": "cpu",
}  # fmt: skip
HELA_SHAPE, HELA_FRAMES = (700, 1100), 92
GPU_PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense tensor-core FLOP/s


def encoder_flops(s: MaesterModelSettings) -> float:
    """Multiply-add FLOPs (x2) of one FOV through the encoder (patch embedding, blocks, no decoder)."""
    n, d = s.grid_size**2 + 1, s.embed_dim
    hidden = int(d * s.mlp_ratio)
    block = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * hidden
    return 2.0 * (n - 1) * s.patch_size**2 * d + s.depth * block


def timed(fn, repeats: int = 1) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - began)
    return best, out


def mini_comparison() -> dict:
    model = build_model(MaesterModelSettings(**MINI_MODEL), seed=0).eval()
    frame = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    rows = {}
    for legacy in (False, True):
        geometry = CoverGeometry(20, 5, 2, legacy)
        ref_s, ref = timed(lambda g=geometry: cover_and_stride_reference(model.encode, frame, g), 2)
        fast_s, fast = timed(lambda g=geometry: cover_and_stride(model.encode, frame, g, batch_size=256), 5)
        rows["legacy" if legacy else "default"] = {
            "reference_s": ref_s,
            "fast_s": fast_s,
            "speedup": ref_s / fast_s,
            "max_abs_diff": float(np.abs(ref - fast).max()),
            "fovs_fast": plan_cover(frame.shape, geometry).n_windows,
        }
    return rows


def write_toy_sequence(root: Path, n_frames: int = 12, size: int = 64) -> Path:
    rng = np.random.default_rng(0)
    frames = []
    for t in range(n_frames):
        path = root / f"t{t:03d}.tif"
        tifffile.imwrite(path, (rng.random((size, size)) * 4000).astype(np.uint16))
        frames.append(path)
    manifest = root / "manifest.json"
    manifest.write_text(json.dumps(SequenceManifest("toy", "01", frames, (size, size), "uint16").to_dict()))
    return manifest


def mini_pipeline() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = write_toy_sequence(root)
        settings = MaesterSettings.model_validate({"model": MINI_MODEL, "train": MINI_TRAIN})
        train_s, done = timed(lambda: train([manifest], root / "run", settings))
        infer = MaesterInferSettings(central_patch=2, device="cpu")
        checkpoint = root / "run" / "checkpoints" / "epoch4.pt"
        infer_s, _ = timed(lambda: infer_sequence(checkpoint, manifest, root / "emb.zarr", infer))
    return {
        "train_s": train_s,
        "train_final_loss": done["final_loss"],
        "infer_12x64x64_s": infer_s,
        "model": MINI_MODEL,
        "train": MINI_TRAIN,
        "central_patch": 2,
    }


def paper_dims(n_fovs: int) -> dict:
    settings = MaesterModelSettings()
    model = build_model(settings, seed=0).eval()
    fovs = torch.rand(
        n_fovs, 1, settings.img_size, settings.img_size, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        model.encode(fovs[:2])  # warm-up
        batched_s, _ = timed(lambda: model.encode(fovs), 2)
        single_s, _ = timed(lambda: [model.encode(f[None]) for f in fovs[: max(2, n_fovs // 4)]])
    per_fov = batched_s / n_fovs
    per_fov_single = single_s / max(2, n_fovs // 4)
    plan = plan_cover(HELA_SHAPE, CoverGeometry())
    frame_s = per_fov * plan.n_windows
    return {
        "fovs_measured": n_fovs,
        "seconds_per_fov_batched": per_fov,
        "seconds_per_fov_one_by_one": per_fov_single,
        "fovs_per_frame_700x1100": plan.n_windows,
        "frame_seconds_extrapolated": frame_s,
        "sequence_seconds_extrapolated_92_frames": frame_s * HELA_FRAMES,
        "encoder_gflop_per_fov": encoder_flops(settings) / 1e9,
        "achieved_gflop_per_s": encoder_flops(settings) / per_fov / 1e9,
    }


def gpu_section(n_fovs: int = 2048) -> tuple[dict | None, str | None]:
    if not torch.cuda.is_available():
        return None, "no CUDA device on this machine"
    settings = MaesterModelSettings()
    model = build_model(settings, seed=0).eval().cuda()
    fovs = torch.rand(n_fovs, 1, 80, 80, device="cuda")
    name = torch.cuda.get_device_name(0)
    peak = next((v for k, v in GPU_PEAK_BF16.items() if k in name), None)
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        model.encode(fovs[:256])
        torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(3):
            model.encode(fovs)
        torch.cuda.synchronize()
    per_fov = (time.perf_counter() - began) / (3 * n_fovs)
    achieved = encoder_flops(settings) / per_fov
    frame_s = per_fov * plan_cover(HELA_SHAPE, CoverGeometry()).n_windows
    return {
        "device": name,
        "dtype": "bf16",
        "seconds_per_fov": per_fov,
        "frame_seconds_extrapolated": frame_s,
        "sequence_seconds_extrapolated_92_frames": frame_s * HELA_FRAMES,
        "achieved_tflop_per_s": achieved / 1e12,
        "peak_bf16_tflop_per_s": None if peak is None else peak / 1e12,
        "fraction_of_peak": None if peak is None else achieved / peak,
    }, None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--paper-fovs", type=int, default=16, help="FOVs timed at paper dims on CPU")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    mini = mini_comparison()
    gpu, reason = gpu_section()
    result = {
        "speedup": mini["default"]["speedup"],
        "max_abs_diff": max(row["max_abs_diff"] for row in mini.values()),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
        "machine": machine_info(),
        "settings": {
            "mini_frame": [64, 64],
            "mini_model": MINI_MODEL,
            "mini_central_patch": 2,
            "paper_model": MaesterModelSettings().model_dump(),
            "paper_central_patch": 4,
            "paper_frame": list(HELA_SHAPE),
            "threads": args.threads,
        },  # fmt: skip
        "mini_cover_and_stride": mini,
        "mini_pipeline": mini_pipeline(),
        "paper_dims_cpu": paper_dims(args.paper_fovs),
        "gpu": gpu,
    }
    if reason:
        result["gpu_reason"] = reason
    write_json(RESULTS, result)
    print(json.dumps({k: result[k] for k in ("speedup", "max_abs_diff")}, indent=2))


if __name__ == "__main__":
    main()
