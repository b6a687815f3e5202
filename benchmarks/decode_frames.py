"""Benchmark: decoding a sequence of LZW TIFF frames one by one, with dask, and with a thread pool.

Decides whether dask serves denselink's frame reading. The frames are tiles of the real
Fluo-N2DH-SIM+ crop (tests/data/ctc_sim_crop, uint16 LZW) assembled to ``--size`` squares, written
LZW-compressed like CTC data. Each reader returns the same ``(T, H, W)`` stack (checked). Writes
``benchmarks/results/decode_frames.json`` with ``speedup_dask`` and ``speedup_threads`` (sequential
seconds / parallel seconds, same files, same run) and ``dask_over_threads``.

    .venv/bin/python benchmarks/decode_frames.py [--frames 64] [--size 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dask  # installed with trackastra, not a denselink dependency
import dask.array as da
import numpy as np
import tifffile

from denselink import __version__
from denselink.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "decode_frames.json"
CROP = Path(__file__).resolve().parents[1] / "tests" / "data" / "ctc_sim_crop"


def write_frames(root: Path, n_frames: int, size: int) -> list[Path]:
    """``n_frames`` uint16 LZW TIFFs of ``size`` x ``size`` tiled from the real crop's frames."""
    sources = sorted((CROP / "01").glob("t*.tif")) + sorted((CROP / "02").glob("t*.tif"))
    paths = []
    for t in range(n_frames):
        tile = tifffile.imread(sources[t % len(sources)])[:240, :240]
        frame = np.tile(tile, (size // 240 + 1, size // 240 + 1))[:size, :size]
        paths.append(root / f"t{t:03d}.tif")
        tifffile.imwrite(paths[-1], frame, compression="lzw")
    return paths


def sequential(paths: list[Path]) -> np.ndarray:
    return np.stack([tifffile.imread(p) for p in paths])


def with_dask(paths: list[Path]) -> np.ndarray:
    first = tifffile.imread(paths[0])
    lazy = [da.from_delayed(dask.delayed(tifffile.imread)(p), first.shape, first.dtype) for p in paths]
    return da.stack(lazy).compute(scheduler="threads")


def with_threads(paths: list[Path]) -> np.ndarray:
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        return np.stack(list(pool.map(tifffile.imread, paths)))


def best_seconds(reader, paths: list[Path], repeats: int, reference: np.ndarray | None) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        stack = reader(paths)
        times.append(time.perf_counter() - start)
        if reference is not None:
            assert np.array_equal(stack, reference), reader.__name__
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_frames(Path(tmp), args.frames, args.size)
        reference = sequential(paths)
        seconds = {
            "sequential": best_seconds(sequential, paths, args.repeats, None),
            "dask_threads": best_seconds(with_dask, paths, args.repeats, reference),
            "thread_pool": best_seconds(with_threads, paths, args.repeats, reference),
        }
    result = {
        "speedup_dask": seconds["sequential"] / seconds["dask_threads"],
        "speedup_threads": seconds["sequential"] / seconds["thread_pool"],
        "dask_over_threads": seconds["thread_pool"] / seconds["dask_threads"],
        "frames_per_s_sequential": args.frames / seconds["sequential"],
        "seconds": seconds,
        "settings": vars(args),
        "machine": machine_info(),
        "load_average_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
        "dask_version": dask.__version__,
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("speedup_dask", "speedup_threads", "dask_over_threads")}))


if __name__ == "__main__":
    main()
