"""Benchmark: seconds per scored checkpoint, old per-checkpoint path vs the cached one.

Generates a 1024x1024 sequence (``denselink data synth``, GT masks as detections, as Fluo-N2DH-GOWT1
in size: about 25 nuclei per frame), trains a small trackastra run for a few epochs, then scores
each checkpoint twice in turn, in this one process:

- ``old``: what ``tracking evaluate`` did per checkpoint before the score cache: read frames and
  masks, wrfeat features, windows, predictions, greedy linking, write the CTC result as TIFFs,
  and score it with traccuracy from the GT and result folders (``track_sequence`` + ``score_ctc``).
- ``new``: predictions and linking on the sequence's score cache, scored without pixels
  (``link_windows`` + ``score_linking``); windows are built once per run.

Writes ``benchmarks/results/evaluate.json``: ``speedup`` (old / new median seconds per checkpoint),
``scores_identical`` (every error count of both paths equal for every checkpoint), the one-off
cache build time, the per-checkpoint prediction time (the part no cache removes) and the machine.

    .venv/bin/python benchmarks/evaluate.py [--frames 60] [--cells 25] [--epochs 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import tempfile
import time
from pathlib import Path

from denselink import __version__, cli
from denselink.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.json"
MODEL = {
    "window": 6,
    "d_model": 64,
    "num_encoder_layers": 2,
    "num_decoder_layers": 2,
    "epochs": 3,
    "warmup_epochs": 0,
    "train_samples": 32,
    "batch_size": 4,
    "crop_size": None,
    "mixed_precision": False,
}


def make_run(root: Path, frames: int, cells: int, epochs: int) -> tuple[Path, Path, dict]:
    """Generate, validate, prepare and train; return (manifest, run dir, settings)."""
    synth = {
        "shape": [1024, 1024],
        "n_frames": frames,
        "n_cells": cells,
        "max_cells": 2 * cells,
        "radius": [12.0, 20.0],
        "speed": 3.0,
        "sequences": ["01"],
    }
    settings = {**MODEL, "epochs": epochs}
    manifest, cache, run = root / "manifest.json", root / "01.pt", root / "run"
    steps = [
        ["data", "synth", "--out", str(root / "data"), "--settings", json.dumps(synth)],
        ["data", "validate", "--dataset-dir", str(root / "data"), "--dataset", "bench", "--seq", "01",
         "--out", str(manifest)],
        ["tracking", "prepare", "--manifest", str(manifest), "--out", str(cache),
         "--settings", json.dumps(settings)],
        ["tracking", "train", "--data", str(cache), "--out", str(run), "--seed", "0",
         "--settings", json.dumps(settings)],
    ]  # fmt: skip
    for argv in steps:
        if cli.main(argv) != 0:
            raise SystemExit(f"benchmark set-up failed: denselink {' '.join(argv[:2])}")
    return manifest, run, {"synth": synth, "trackastra": settings}


def old_path(checkpoint: Path, manifest, res: Path) -> dict[str, float] | None:
    from denselink.evaluate.metrics import score_ctc
    from denselink.tracking.predict import load_checkpoint, track_sequence

    model, _ = load_checkpoint(checkpoint)
    track_sequence(model, manifest, res)
    if not (res / "res_track.txt").read_text().strip():
        return None
    return score_ctc(Path(manifest.man_track).parent, res)


def new_path(checkpoint: Path, cache, windows: dict) -> tuple[dict[str, float] | None, float]:
    from denselink.tracking.predict import link_windows, load_checkpoint, sequence_windows
    from denselink.tracking.scoring import score_linking

    model, _ = load_checkpoint(checkpoint)
    size = model.config["window"]
    if size not in windows:
        windows[size] = sequence_windows(cache.features, size)
    start = time.perf_counter()
    graph = link_windows(model, windows[size], cache.features, cache.ndim)
    predict_s = time.perf_counter() - start
    return score_linking(graph, cache), predict_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames of the 1024x1024 sequence (>= 50)")
    parser.add_argument("--cells", type=int, default=25, help="cells in the first frame")
    parser.add_argument("--epochs", type=int, default=3, help="checkpoints to score")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    from denselink.data.manifest import load_manifest
    from denselink.tracking.evaluate import list_checkpoints
    from denselink.tracking.score_cache import build_score_cache

    with tempfile.TemporaryDirectory(prefix="denselink-bench-eval-") as tmp:
        root = Path(tmp)
        manifest_path, run, settings = make_run(root, args.frames, args.cells, args.epochs)
        manifest = load_manifest(manifest_path)
        start = time.perf_counter()
        cache = build_score_cache(manifest, 2)
        cache_s = time.perf_counter() - start
        windows: dict = {}
        rows = []
        for checkpoint in list_checkpoints(run):
            start = time.perf_counter()
            old = old_path(checkpoint, manifest, root / f"{checkpoint.stem}_RES")
            old_s = time.perf_counter() - start
            start = time.perf_counter()
            new, predict_s = new_path(checkpoint, cache, windows)
            new_s = time.perf_counter() - start
            rows.append(
                {
                    "checkpoint": checkpoint.name,
                    "old_s": old_s,
                    "new_s": new_s,
                    "new_predict_and_link_s": predict_s,
                    "LNK": None if new is None else new["LNK"],
                    "identical": old == new,
                }
            )
            print(json.dumps(rows[-1]))
        n_cells = cache.gt_graph.number_of_nodes()

    old_s = statistics.median(row["old_s"] for row in rows)
    new_s = statistics.median(row["new_s"] for row in rows)
    result = {
        "speedup": old_s / new_s,
        "scores_identical": all(row["identical"] for row in rows),
        "old_s_per_checkpoint": old_s,
        "new_s_per_checkpoint": new_s,
        "cache_build_s": cache_s,
        "new_s_per_checkpoint_with_cache_over_100": new_s + cache_s / 100,
        "note": "new_s excludes the score cache (built once per sequence by its own job); the prediction "
        "part (new_predict_and_link_s) grows with cells per frame and model size and is paid per checkpoint "
        "on both paths",
        "sequence": {"shape": [1024, 1024], "frames": args.frames, "detections": n_cells},
        "settings": settings,
        "checkpoints": rows,
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"speedup {result['speedup']:.1f}x ({old_s:.1f} s -> {new_s:.2f} s per checkpoint) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
