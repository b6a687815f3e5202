"""Benchmark: seconds per scored checkpoint, the old per-checkpoint path vs ``tracking evaluate`` now.

Generates a 1024x1024 sequence (``denselink data synth``, GT masks as detections, as Fluo-N2DH-GOWT1
in size: about 25 nuclei per frame), trains a small trackastra run whose checkpoints link the
sequence (imperfectly), then, in this one process and on one torch thread for both paths, in turn
``--repeats`` times:

- ``old``: per checkpoint what scoring did before the score cache, with trackastra's own functions:
  read frames and masks, wrfeat features, windows, ``predict_windows``, ``build_graph`` +
  ``track_greedy``, ``graph_to_ctc`` on the masks, the CTC result written as TIFFs, and scored by
  traccuracy from the GT and result folders (``load_ctc_data``, ``CTCMatcher``, ``CTCMetrics``);
- ``new``: ``evaluate_run`` on the sequence's score cache, all checkpoints in one call (paper
  protocol: every epoch scored, the chosen epoch's CTC result and the metrics JSON written);
  its wall time divided by the number of checkpoints.

Writes ``benchmarks/results/evaluate.json``: ``speedup`` (median old seconds per checkpoint / median
new seconds per checkpoint over the repeats), ``scores_identical`` (LNK, TRA, DET of every epoch and
the chosen epoch's CTC files equal in both paths), the one-off score cache build (its own job,
once per sequence, not in ``new``), a breakdown of the new path's per-checkpoint work, the load
average before and after and the machine.

    .venv/bin/python benchmarks/evaluate.py [--frames 60] [--cells 25] [--epochs 5] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile
import torch

from denselink import __version__, cli
from denselink.machine import machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "evaluate.json"
SCORES = ("LNK", "TRA", "DET")
MODEL = {
    "window": 6,
    "d_model": 64,
    "num_encoder_layers": 2,
    "num_decoder_layers": 2,
    "epochs": 5,
    "warmup_epochs": 0,
    "train_samples": 256,
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


def old_path(checkpoint: Path, manifest, res: Path) -> dict[str, float]:
    """Score one checkpoint as before the score cache (trackastra's functions, TIFFs, traccuracy)."""
    from trackastra.tracking import graph_to_ctc

    from denselink.evaluate.metrics import score_ctc
    from denselink.tracking.predict import link, load_checkpoint

    model, _ = load_checkpoint(checkpoint)
    images = manifest.read_frames().astype(np.float32)
    masks = manifest.read_masks().astype(np.int32)
    table, relabeled = graph_to_ctc(link(model, images, masks), masks)
    res.mkdir(parents=True)
    for t, mask in enumerate(relabeled):
        tifffile.imwrite(res / f"mask{t:03d}.tif", mask.astype(np.uint16))
    lines = [f"{r.label} {r.t1} {r.t2} {r.parent}\n" for r in table.itertuples()]
    (res / "res_track.txt").write_text("".join(lines))
    return score_ctc(Path(manifest.man_track).parent, res)


def new_breakdown(run: Path, cache_path: Path, manifest) -> dict[str, float]:
    """Seconds per checkpoint of the new path's parts (a separate pass, the functions evaluate_run calls)."""
    from denselink.tracking.associations import Nodes, greedy_link, predict_associations
    from denselink.tracking.evaluate import list_checkpoints
    from denselink.tracking.predict import load_checkpoint, sequence_windows
    from denselink.tracking.score_cache import load_score_cache
    from denselink.tracking.scoring import GroundTruth, score_linking

    checkpoints = list_checkpoints(run)
    began = time.perf_counter()
    cache = load_score_cache(cache_path, manifest)
    truth, nodes = GroundTruth.from_cache(cache), Nodes.from_features(cache.features, cache.ndim)
    models = [load_checkpoint(path)[0] for path in checkpoints]
    windows = sequence_windows(cache.features, models[0].config["window"])
    loaded = time.perf_counter()
    found = predict_associations(models, windows, nodes)
    predicted = time.perf_counter()
    graphs = [greedy_link(nodes, assoc) for assoc in found]
    linked = time.perf_counter()
    for graph in graphs:
        score_linking(graph, truth)
    scored = time.perf_counter()
    n = len(checkpoints)
    return {
        "load_cache_and_checkpoints_s": (loaded - began) / n,
        "predict_s": (predicted - loaded) / n,
        "link_s": (linked - predicted) / n,
        "score_s": (scored - linked) / n,
    }


def ctc_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames of the 1024x1024 sequence (>= 50)")
    parser.add_argument("--cells", type=int, default=25, help="cells in the first frame")
    parser.add_argument("--epochs", type=int, default=5, help="checkpoints to score")
    parser.add_argument("--repeats", type=int, default=2, help="rounds of old then new")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # both paths alike; 2 threads on a shared 2-core machine measure the load
    load_before = os.getloadavg()

    from denselink.data.manifest import load_manifest
    from denselink.tracking.evaluate import evaluate_run, list_checkpoints
    from denselink.tracking.score_cache import build_score_cache, write_score_cache
    from denselink.tracking.settings import TrackastraSettings

    with tempfile.TemporaryDirectory(prefix="denselink-bench-eval-") as tmp:
        root = Path(tmp)
        manifest_path, run, settings = make_run(root, args.frames, args.cells, args.epochs)
        manifest = load_manifest(manifest_path)
        checkpoints = list_checkpoints(run)
        start = time.perf_counter()
        cache = build_score_cache(manifest, 2)
        cache_s = time.perf_counter() - start
        write_score_cache(cache, root / "score.pt", manifest_path)
        rounds, identical = [], True
        for repeat in range(args.repeats):
            old, old_s = [], []
            for checkpoint in checkpoints:
                start = time.perf_counter()
                old.append(old_path(checkpoint, manifest, root / f"old{repeat}" / checkpoint.stem))
                old_s.append(time.perf_counter() - start)
            out = root / f"new{repeat}"
            start = time.perf_counter()
            record = evaluate_run(run, manifest_path, out / "metrics.json", out / "RES", "paper",
                                  TrackastraSettings(**settings["trackastra"]),
                                  score_cache=root / "score.pt")  # fmt: skip
            new_s = (time.perf_counter() - start) / len(checkpoints)
            same = [
                {key: row[key] for key in SCORES} == {key: ref[key] for key in SCORES}
                for row, ref in zip(record["per_epoch"], old, strict=True)
            ]
            chosen = checkpoints[[row["epoch"] for row in record["per_epoch"]].index(record["epoch"])]
            same_ctc = ctc_files(out / "RES") == ctc_files(root / f"old{repeat}" / chosen.stem)
            identical &= all(same) and same_ctc
            rounds.append(
                {
                    "old_s": old_s,
                    "new_s_per_checkpoint": new_s,
                    "LNK": [row["LNK"] for row in record["per_epoch"]],
                    "scores_identical": same,
                    "chosen_epoch": record["epoch"],
                    "chosen_ctc_identical": same_ctc,
                }
            )
            print(json.dumps(rounds[-1]), flush=True)
        breakdown = new_breakdown(run, root / "score.pt", manifest)
        n_cells = cache.gt_graph.number_of_nodes()

    old_s = statistics.median(s for r in rounds for s in r["old_s"])
    new_s = statistics.median(r["new_s_per_checkpoint"] for r in rounds)
    result = {
        "speedup": old_s / new_s,
        "scores_identical": identical,
        "old_s_per_checkpoint": old_s,
        "new_s_per_checkpoint": new_s,
        "cache_build_s": cache_s,
        "new_s_per_checkpoint_with_cache_over_100": new_s + cache_s / 100,
        "new_breakdown_s_per_checkpoint": breakdown,
        "note": "one torch thread for both paths; new_s is evaluate_run's wall time over the run's "
        "checkpoints (loading them, predictions, linking, scoring, the chosen epoch's CTC result and the "
        "metrics JSON), without the score cache (built once per sequence by its own job: cache_build_s)",
        "sequence": {"shape": [1024, 1024], "frames": args.frames, "detections": n_cells},
        "settings": settings,
        "rounds": rounds,
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
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
