"""GPU readiness: every CUDA path of denselink at tiny size, results in benchmarks/results/gpu_check.json.

Run through ``scripts/gpu_check.sh`` (it checks for CUDA first). Each check runs the real command or
function on generated data, on CUDA, and records its numbers; a check that raises is recorded with
its error and makes the run fail (exit 1) after the others have run:

- ``maester_ddp``: ``maester train`` under ``torchrun --nproc_per_node <GPUs present>`` (NCCL), 2 epochs;
- ``cover_and_stride``: the MAESTER encoder's dense embedding of one frame on CUDA (float32 and bf16
  autocast) against the CPU result (max abs diff), and its FLOP/s against a measured CUDA matmul;
- ``foundation_embed``: ``foundation embed`` for SAM (vit_b) and muSAM (vit_b_lm) with random encoder
  weights and AnyUp (the shipped code, random weights) on CUDA; the tiny-encoder embedding on CUDA
  against the same on the CPU;
- ``tracking_train_amp``: ``tracking train`` on CUDA with fp16 mixed precision (GradScaler), 2 epochs;
- ``scoring``: ``tracking evaluate`` (LNK/TRA/DET) of that run, and the run's CTC result as geff.

    scripts/gpu_check.sh            # or: python scripts/gpu_check.py [--out PATH]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import zarr

from denselink import __version__, cli
from denselink.atomic import write_json
from denselink.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
SYNTH = {"shape": [64, 64], "n_frames": 8, "n_cells": 6, "division_prob": 0.1, "sequences": ["01", "02"]}
MAESTER_MODEL = {"img_size": 20, "patch_size": 5, "embed_dim": 32, "depth": 2, "num_heads": 2}
MAESTER_MODEL |= {"decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 1}
MAESTER_TRAIN = {"epochs": 2, "save_epochs": [1], "samples_per_epoch": 256, "batch_size": 32}
MAESTER_TRAIN |= {"num_workers": 0, "device": "cuda", "seed": 0}
TINY_ENCODER = {"img_size": 64, "embed_dim": 32, "depth": 1, "num_heads": 2}
TRACKING = {"window": 4, "d_model": 64, "nhead": 2, "num_encoder_layers": 2, "num_decoder_layers": 2}
TRACKING |= {"epochs": 2, "warmup_epochs": 1, "batch_size": 4, "train_samples": 64, "crop_size": None}
TRACKING |= {"val_fraction": 0.25, "lr": 1e-3, "device": "cuda", "mixed_precision": True}


def run_cli(*argv: str | Path) -> None:
    """A denselink command in this process; a non-zero exit is an error."""
    code = cli.main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"denselink {' '.join(map(str, argv[:2]))} exited {code}")


def cuda_seconds(fn: Callable[[], object], repeats: int = 3) -> float:
    """Best wall time of ``fn`` on CUDA (synchronised), after one warm-up call."""
    fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return best


def matmul_tflop_per_s(dtype: torch.dtype, n: int = 8192) -> float:
    """Measured CUDA matmul throughput of ``n x n`` matrices in ``dtype``."""
    a = torch.rand(n, n, device="cuda", dtype=dtype)
    return 2 * n**3 / cuda_seconds(lambda: torch.mm(a, a)) / 1e12


def make_data(root: Path) -> dict[str, Path]:
    """Generated sequences 01/02 and their manifests."""
    run_cli("data", "synth", "--out", root / "Synth", "--settings", json.dumps(SYNTH))
    manifests = {}
    for seq in ("01", "02"):
        manifests[seq] = root / f"{seq}.json"
        run_cli("data", "validate", "--dataset-dir", root / "Synth", "--dataset", "Synth", "--seq", seq,
                "--out", manifests[seq])  # fmt: skip
    return manifests


def check_maester_ddp(root: Path, manifests: dict[str, Path]) -> dict:
    gpus = torch.cuda.device_count()
    out = root / "maester"
    settings = json.dumps({"model": MAESTER_MODEL, "train": MAESTER_TRAIN})
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}",
               "-m", "denselink.maester.train", "--manifest", str(manifests["01"]), "--out", str(out),
               "--settings", settings]  # fmt: skip
    began = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"torchrun exited {proc.returncode}: {proc.stderr[-2000:]}")
    done = json.loads((out / "done.json").read_text())
    with (out / "loss.csv").open() as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    if done["world_size"] != gpus or not np.all(np.isfinite(losses)):
        raise RuntimeError(f"world_size {done['world_size']} for {gpus} GPUs, losses {losses}")
    return {"gpus": gpus, "backend": "nccl", "world_size": done["world_size"], "epoch_losses": losses,
            "seconds": time.perf_counter() - began}  # fmt: skip


def check_cover_and_stride(root: Path, manifests: dict[str, Path]) -> dict:
    from denselink.data.manifest import load_manifest
    from denselink.maester.cover import CoverGeometry, cover_and_stride, plan_cover
    from denselink.maester.model import MaesterModelSettings, build_model

    settings = MaesterModelSettings(**MAESTER_MODEL)
    geometry = CoverGeometry(img_size=settings.img_size, patch_size=settings.patch_size)
    frame = load_manifest(manifests["01"]).read_frame(0).astype(np.float32)
    frame = (frame - frame.mean()) / (frame.std() + 1e-6)
    cpu_model = build_model(settings, seed=0).eval()
    reference = cover_and_stride(cpu_model.encode, frame, geometry, 256, "cpu")
    gpu_model = build_model(settings, seed=0).eval().cuda()
    fp32 = cover_and_stride(gpu_model.encode, frame, geometry, 256, "cuda")
    bf16 = cover_and_stride(gpu_model.encode, frame, geometry, 256, "cuda", torch.bfloat16)
    # throughput at the paper's encoder dimensions (random weights), bf16 as the inference stage runs it
    paper = MaesterModelSettings()
    model = build_model(paper, seed=0).eval().cuda()
    fovs = torch.rand(1024, 1, paper.img_size, paper.img_size, device="cuda")

    def encode() -> None:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            model.encode(fovs)

    per_fov = cuda_seconds(encode) / len(fovs)
    achieved = encoder_flops(paper) / per_fov / 1e12
    matmul = matmul_tflop_per_s(torch.bfloat16)
    return {
        "frame_shape": list(frame.shape),
        "fovs_per_frame": plan_cover(frame.shape, geometry).n_windows,
        "max_abs_diff_fp32_vs_cpu": float(np.abs(fp32 - reference).max()),
        "max_abs_diff_bf16_vs_cpu": float(np.abs(bf16 - reference).max()),
        "embedding_abs_max": float(np.abs(reference).max()),
        "paper_dims_seconds_per_fov_bf16": per_fov,
        "paper_dims_achieved_tflop_per_s": achieved,
        "matmul_bf16_tflop_per_s": matmul,
        "fraction_of_matmul": achieved / matmul,
    }


def encoder_flops(s) -> float:
    """Multiply-add FLOPs (x2) of one FOV through the MAESTER encoder (benchmarks/cover_and_stride.py)."""
    n, d = s.grid_size**2 + 1, s.embed_dim
    hidden = int(d * s.mlp_ratio)
    block = 2 * n * d * 3 * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * n * d * hidden
    return 2.0 * (n - 1) * s.patch_size**2 * d + s.depth * block


def embed(manifest: Path, out: Path, backbone: str, settings: dict) -> np.ndarray:
    run_cli("foundation", "embed", "--model", backbone, "--manifest", manifest, "--out", out,
            "--settings", json.dumps(settings))  # fmt: skip
    return np.asarray(zarr.open_group(out, mode="r")["embedding"][...], dtype=np.float32)


def check_foundation_embed(root: Path, manifests: dict[str, Path]) -> dict:
    anyup = {"pretrained": False}
    result: dict = {"weights": "random (encoder and AnyUp)", "upsampler": "anyup (shipped code)"}
    for backbone in ("sam", "musam"):
        settings = {"random_init": True, "seed": 0, "upsampler": "anyup", "anyup": anyup, "device": "cuda"}
        began = time.perf_counter()
        volume = embed(manifests["01"], root / f"{backbone}.zarr", backbone, settings)
        result[backbone] = {"shape": list(volume.shape), "finite": bool(np.isfinite(volume).all()),
                            "seconds": time.perf_counter() - began}  # fmt: skip
        if not result[backbone]["finite"]:
            raise RuntimeError(f"{backbone}: non-finite embedding on CUDA")
    tiny = {"random_init": True, "seed": 0, "encoder": TINY_ENCODER, "upsampler": "anyup", "anyup": anyup}
    on_gpu = embed(manifests["02"], root / "tiny-cuda.zarr", "sam", tiny | {"device": "cuda"})
    on_cpu = embed(manifests["02"], root / "tiny-cpu.zarr", "sam", tiny | {"device": "cpu"})
    result["tiny_encoder_max_abs_diff_cuda_vs_cpu"] = float(np.abs(on_gpu - on_cpu).max())
    result["tiny_encoder_abs_max"] = float(np.abs(on_cpu).max())
    return result


def check_tracking_train_amp(root: Path, manifests: dict[str, Path]) -> dict:
    settings = json.dumps(TRACKING)
    run_cli(
        "tracking", "prepare", "--manifest", manifests["02"], "--out", root / "02.pt", "--settings", settings
    )
    began = time.perf_counter()
    run_cli("tracking", "train", "--data", root / "02.pt", "--out", root / "run", "--seed", "0",
            "--settings", settings)  # fmt: skip
    with (root / "run" / "train_log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(row["train_loss"]) for row in rows]
    if not np.all(np.isfinite(losses)):
        raise RuntimeError(f"non-finite training loss under mixed precision: {losses}")
    config = json.loads((root / "run" / "config.json").read_text())
    return {"device": "cuda", "mixed_precision": "fp16 autocast + GradScaler", "train_loss": losses,
            "val_loss": [float(row["val_loss"]) for row in rows], "recorded_device": config.get("device"),
            "seconds": time.perf_counter() - began}  # fmt: skip


def check_scoring(root: Path, manifests: dict[str, Path]) -> dict:
    metrics, res = root / "metrics.json", root / "res01"
    run_cli("tracking", "evaluate", "--model-dir", root / "run", "--manifest", manifests["01"],
            "--protocol", "clean", "--out", metrics, "--res-dir", res, "--settings", json.dumps(TRACKING),
            "--geff")  # fmt: skip
    record = json.loads(metrics.read_text())
    return {key: record[key] for key in ("LNK", "TRA", "DET", "epoch")} | {
        "geff_written": (root / "res01.geff.zarr" / "tracking_graph.geff").is_dir()
    }


CHECKS = {
    "maester_ddp": check_maester_ddp,
    "cover_and_stride": check_cover_and_stride,
    "foundation_embed": check_foundation_embed,
    "tracking_train_amp": check_tracking_train_amp,
    "scoring": check_scoring,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: FAILED: CUDA is not available (torch {torch.__version__}); nothing was run",
              file=sys.stderr)  # fmt: skip
        return 1
    began = time.perf_counter()
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="denselink-gpu-check-") as folder:
        root = Path(folder)
        manifests = make_data(root)
        for name, check in CHECKS.items():
            started = time.perf_counter()
            try:
                results[name] = {"ok": True, **check(root, manifests)}
            except Exception as err:  # every check runs; a failure is recorded with its traceback
                results[name] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                 "traceback": traceback.format_exc()[-4000:]}  # fmt: skip
            results[name]["wall_seconds"] = time.perf_counter() - started
            print(f"gpu_check: {name}: {'ok' if results[name]['ok'] else 'FAILED'}", file=sys.stderr)
    failed = [name for name, result in results.items() if not result["ok"]]
    record = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink": __version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "machine": machine_info(),
        "passed": not failed,
        "failed": failed,
        "total_seconds": time.perf_counter() - began,
        "checks": results,
    }
    write_json(args.out, record)
    print(f"gpu_check: {'passed' if not failed else 'FAILED: ' + ', '.join(failed)} -> {args.out}",
          file=sys.stderr)  # fmt: skip
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
