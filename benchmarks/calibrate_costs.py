"""Measure the CPU per-step costs that ``denselink plan`` uses, and record them in workflow/costs.json.

Rewrites the ``machines.<name>`` entry (default ``cpu``) of workflow/costs.json with:
- ``aggregate_gvoxel_s``: reading a Blosc-zstd embedding frame and the mean-mask aggregation, per 10^9
  pixel-channels (a (192, 512, 512) frame with 60 cells);
- ``prepare_frame_megapixel_s``: trackastra's per-sequence data (detections, wrfeat features, windows)
  of a generated sequence, per frame and megapixel;
- ``evaluate_checkpoint_detection_s``: scoring one checkpoint of the paper's model size (d_model 256,
  5+5 layers, window 6; random weights: the time does not depend on them) from the score cache, per
  detection of the eval sequence (``tracking evaluate``: predictions, greedy linking, CTC scores);
- ``score_cache_frame_megapixel_s``: the per-sequence score cache (``tracking score-cache``: frames and
  masks read, wrfeat features, traccuracy's GT graph), per frame and megapixel.

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
from denselink.tracking.associations import Nodes, greedy_link, predict_associations
from denselink.tracking.fusion import build_model
from denselink.tracking.predict import sequence_windows
from denselink.tracking.prepare import build_ctc_data
from denselink.tracking.score_cache import build_score_cache
from denselink.tracking.scoring import GroundTruth, score_linking
from denselink.tracking.settings import TrackastraSettings

ROOT = Path(__file__).resolve().parents[1]
COSTS = ROOT / "workflow" / "costs.json"


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


def _synth_manifest(root: Path, side: int, frames: int, cells: int):
    settings = SynthSettings(
        shape=(side, side), n_frames=frames, n_cells=cells, max_cells=2 * cells, sequences=["01"]
    )
    write_dataset(root / "Synth", settings)
    return validate_sequence(root / "Synth", "Synth", "01")


def evaluate_cost() -> dict:
    settings = TrackastraSettings()  # the paper's model
    with tempfile.TemporaryDirectory() as tmp:
        cache = build_score_cache(_synth_manifest(Path(tmp), 512, 12, 30))
    torch.manual_seed(0)
    model = build_model(settings.transformer_kwargs(7), None).eval()
    truth, nodes = GroundTruth.from_cache(cache), Nodes.from_features(cache.features)
    windows = sequence_windows(cache.features, settings.window)
    predict_associations([model], windows[:1], nodes)  # warm-up
    began = time.perf_counter()
    (assoc,) = predict_associations([model], windows, nodes)
    score_linking(greedy_link(nodes, assoc), truth)
    seconds = time.perf_counter() - began
    detections = len(nodes)
    return {
        "value": seconds / detections,
        "unit": "s per scored checkpoint and detection (paper model: d_model 256, 5+5 layers, window 6)",
        "source": f"measured: {seconds:.2f} s for {detections} detections ({detections / 12:.0f} per frame) "
        "of 12 generated 512x512 frames; the attention grows with detections per window, so denser "
        "sequences cost more per detection",
    }


def score_cache_cost() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _synth_manifest(Path(tmp), 512, 12, 30)
        build_score_cache(manifest)  # warm-up (imports, caches)
        began = time.perf_counter()
        build_score_cache(manifest)
        seconds = time.perf_counter() - began
    megapixels = 512 * 512 / 1e6
    return {
        "value": seconds / (12 * megapixels),
        "unit": "s per frame and megapixel (frames and GT masks read, wrfeat features, traccuracy GT graph)",
        "source": f"measured: {seconds:.2f} s for 12 generated 512x512 frames with 30-60 cells",
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
            "evaluate_checkpoint_detection_s": evaluate_cost(),
            "score_cache_frame_megapixel_s": score_cache_cost(),
        },
    }
    write_json(COSTS, costs)
    print(json.dumps(costs["machines"][args.machine], indent=2))


if __name__ == "__main__":
    main()
