"""Measure the CPU per-step costs that ``denselink plan`` uses, and record them in workflow/costs.json.

Rewrites the ``machines.<name>`` entry (default ``cpu``) of workflow/costs.json with:
- ``aggregate_gvoxel_s``: reading a Blosc-zstd embedding frame and the mean-mask aggregation, per 10^9
  pixel-channels (a (192, 512, 512) frame with 60 cells);
- ``prepare_frame_megapixel_s``: trackastra's per-sequence data (detections, wrfeat features, windows)
  of a generated sequence, per frame and megapixel;
- ``evaluate_checkpoint_frame_megapixel_s``: scoring one checkpoint, per frame and megapixel; taken from
  benchmarks/results/evaluate.json when that benchmark has run, else the earlier measurement recorded in
  the design notes (60 s for a 92-frame 1024x1024 sequence).

    .venv/bin/python benchmarks/calibrate_costs.py [--machine cpu]
"""

from __future__ import annotations

import argparse
import datetime
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import zarr

from denselink.atomic import write_json
from denselink.compression import compressors
from denselink.data.ctc import validate_sequence
from denselink.data.synthetic import SynthSettings, write_dataset
from denselink.features.aggregate import aggregate_frame
from denselink.machine import machine_info
from denselink.tracking.prepare import build_ctc_data
from denselink.tracking.settings import TrackastraSettings

ROOT = Path(__file__).resolve().parents[1]
COSTS = ROOT / "workflow" / "costs.json"
EVALUATE = ROOT / "benchmarks" / "results" / "evaluate.json"


def aggregate_cost() -> dict:
    rng = np.random.default_rng(0)
    channels, side = 192, 512
    mask = np.zeros((side, side), np.int32)
    for label in range(1, 61):
        y, x = rng.integers(20, side - 20, 2)
        mask[y - 12 : y + 12, x - 12 : x + 12] = label
    volume = rng.standard_normal((1, channels, side, side)).astype(np.float16)
    with tempfile.TemporaryDirectory() as tmp:
        array = zarr.open_group(Path(tmp) / "e.zarr", mode="w", zarr_format=3).create_array(
            "embedding", shape=volume.shape, chunks=(1, channels, 256, 256), dtype="float16",
            compressors=compressors("blosc-zstd", 5),
        )  # fmt: skip
        array[:] = volume
        began = time.perf_counter()
        for _ in range(3):
            aggregate_frame(np.asarray(array[0], dtype=np.float32), mask, "mma")
        seconds = (time.perf_counter() - began) / 3
    return {
        "value": seconds / (channels * side * side / 1e9),
        "unit": "s per 10^9 pixel-channels (zarr read + mean-mask aggregation)",
        "source": f"measured: {seconds:.3f} s for a ({channels}, {side}, {side}) frame with 60 cells",
    }


def prepare_cost() -> dict:
    settings = SynthSettings(shape=(256, 256), n_frames=8, n_cells=20, max_cells=40, sequences=["01"])
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp) / "Synth", settings)
        manifest = validate_sequence(Path(tmp) / "Synth", "Synth", "01")
        build_ctc_data(manifest, TrackastraSettings())  # warm-up (imports, caches)
        began = time.perf_counter()
        build_ctc_data(manifest, TrackastraSettings())
        seconds = time.perf_counter() - began
    megapixels = 256 * 256 / 1e6
    return {
        "value": seconds / (settings.n_frames * megapixels),
        "unit": "s per frame and megapixel (trackastra detections, wrfeat features, windows)",
        "source": f"measured: {seconds:.2f} s for 8 generated 256x256 frames with 20-40 cells",
    }


def evaluate_cost() -> dict:
    if EVALUATE.is_file():
        result = json.loads(EVALUATE.read_text())
        after = result.get("after") or {}
        seconds, frames = after.get("seconds_per_checkpoint"), result.get("settings", {}).get("frames")
        shape = result.get("settings", {}).get("shape")
        if seconds and frames and shape:
            return {
                "value": seconds / (frames * shape[0] * shape[1] / 1e6),
                "unit": "s per scored checkpoint, frame and megapixel",
                "source": "benchmarks/results/evaluate.json (after)",
            }
    return {
        "value": 60.0 / (92 * 1024 * 1024 / 1e6),
        "unit": "s per scored checkpoint, frame and megapixel",
        "source": "earlier measurement: ~60 s per checkpoint of a 92-frame 1024x1024 CTC sequence (features "
        "recomputed per checkpoint); replace once benchmarks/results/evaluate.json exists",
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machine", default="cpu", help="name of the machine entry to rewrite")
    args = parser.parse_args()
    torch.set_num_threads(1)
    costs = json.loads(COSTS.read_text())
    costs["machines"][args.machine] = {
        "kind": "cpu",
        "description": f"{machine_info()['cpu_model']}, one thread; measured "
        f"{datetime.datetime.now(datetime.timezone.utc).date().isoformat()} by benchmarks/calibrate_costs.py",
        "costs": {
            "aggregate_gvoxel_s": aggregate_cost(),
            "prepare_frame_megapixel_s": prepare_cost(),
            "evaluate_checkpoint_frame_megapixel_s": evaluate_cost(),
        },
    }
    write_json(COSTS, costs)
    print(json.dumps(costs["machines"][args.machine], indent=2))


if __name__ == "__main__":
    main()
