"""Benchmark: seconds per scored checkpoint, the old per-checkpoint path vs ``tracking evaluate`` now.

Generates a 1024x1024 sequence (``denselink data synth``, GT masks as detections, Fluo-N2DH-GOWT1's
frame size: ``--cells`` nuclei in the first frame, dividing up to twice as many, about 45 detections
per frame on average over the default 60 frames), trains a small trackastra run of ``--epochs``
checkpoints that link the sequence (imperfectly), then, in this one process and on one torch thread
for both paths, in turn ``--repeats`` times:

- ``old``: per checkpoint what scoring did before the score cache, with trackastra's own functions:
  read frames and masks, wrfeat features, windows, ``predict_windows``, ``build_graph`` +
  ``track_greedy``, ``graph_to_ctc`` on the masks, the CTC result written as TIFFs, and scored from
  the GT and result folders by ``score_ctc`` (py-ctcmetrics; traccuracy's ``load_ctc_data``,
  ``CTCMatcher``, ``CTCMetrics`` when ``results/evaluate.json`` was measured);
  timed on ``--old-checkpoints`` checkpoints spread evenly over the run (the first and the last
  included): each costs the same, and timing all of them would take minutes per repeat;
- ``new``: ``evaluate_run`` on the sequence's score cache, every checkpoint of the run in one call
  (paper protocol: every epoch scored, the chosen epoch's CTC result and the metrics JSON written);
  its wall time divided by the number of checkpoints. The paper protocol scores 100-300
  checkpoints per run: with few, the per-run fixed cost (score cache load, windows, the chosen
  epoch's CTC result) weighs more per checkpoint than it does there.

Writes ``benchmarks/results/evaluate.json``: ``speedup`` (median old seconds per checkpoint / median
new seconds per checkpoint over the repeats), ``scores_identical`` (LNK, TRA, DET of every epoch
both paths scored and the chosen epoch's CTC files equal in both paths; the chosen epoch is run
through the old path, untimed, when it is not among the timed ones), the one-off score cache build
(its own job, once per sequence, not in ``new``), a breakdown of the new path's work into its fixed
seconds per run and marginal seconds per checkpoint, the load average before and after and the
machine.

    .venv/bin/python benchmarks/evaluate.py [--frames 60] [--cells 25] [--epochs 30] [--old-checkpoints 5]
        [--repeats 2]
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
    "epochs": 30,
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
    """Score one checkpoint as before the score cache (trackastra's functions, TIFFs, ``score_ctc``)."""
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
    """Seconds of the new path's parts (a separate pass through the functions evaluate_run calls).

    ``fixed_s_per_run``: loading the score cache, the windows and writing one epoch's CTC result
    (once per run); ``marginal_s_per_checkpoint``: loading a checkpoint, its predictions (with its
    share of the windows' weight-independent preparation, once per pass of ``MODELS_PER_PASS``
    checkpoints), linking and scoring. evaluate_run also reads each checkpoint's summary and writes
    the metrics JSON (in ``new_s_per_checkpoint``, not here).
    """
    from denselink.tracking.associations import Nodes, greedy_link, predict_associations
    from denselink.tracking.evaluate import MODELS_PER_PASS, list_checkpoints
    from denselink.tracking.predict import load_checkpoint, sequence_windows, write_ctc
    from denselink.tracking.score_cache import load_score_cache
    from denselink.tracking.scoring import GroundTruth, score_linking

    checkpoints = list_checkpoints(run)
    n = len(checkpoints)
    began = time.perf_counter()
    cache = load_score_cache(cache_path, manifest)
    truth, nodes = GroundTruth.from_cache(cache), Nodes.from_features(cache.features, cache.ndim)
    cached = time.perf_counter()
    models = [load_checkpoint(path)[0] for path in checkpoints]
    loaded = time.perf_counter()
    windows = sequence_windows(cache.features, models[0].config["window"])
    windowed = time.perf_counter()
    found = []
    for first in range(0, n, MODELS_PER_PASS):
        found += predict_associations(models[first : first + MODELS_PER_PASS], windows, nodes)
    predicted = time.perf_counter()
    link_s = score_s = 0.0
    for assoc in found:  # each graph linked, scored and dropped, as evaluate_run does
        start = time.perf_counter()
        graph = greedy_link(nodes, assoc)
        linked = time.perf_counter()
        score_linking(graph, truth)
        scored = time.perf_counter()
        link_s, score_s = link_s + linked - start, score_s + scored - linked
    with tempfile.TemporaryDirectory(prefix="denselink-bench-ctc-") as tmp:
        write_ctc(graph, manifest.read_masks().astype(np.int32), Path(tmp) / "RES")
    written = time.perf_counter()
    parts = {
        "load_cache_s": cached - began,
        "windows_s": windowed - loaded,
        "write_ctc_s": written - scored,
        "load_checkpoints_s": loaded - cached,
        "predict_s": predicted - windowed,
        "link_s": link_s,
        "score_s": score_s,
    }
    fixed = parts["load_cache_s"] + parts["windows_s"] + parts["write_ctc_s"]
    marginal = (parts["load_checkpoints_s"] + parts["predict_s"] + parts["link_s"] + parts["score_s"]) / n
    return {
        "checkpoints": n,
        "fixed_s_per_run": fixed,
        "marginal_s_per_checkpoint": marginal,
        "parts_s": parts,
        "predict_s_per_checkpoint": parts["predict_s"] / n,
    }


def spread(n: int, k: int) -> list[int]:
    """``k`` of ``range(n)`` evenly spread, the last (and, k > 1, the first) included; all if k >= n."""
    if k >= n:
        return list(range(n))
    if k < 2:
        return [n - 1]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def ctc_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60, help="frames of the 1024x1024 sequence (>= 50)")
    parser.add_argument("--cells", type=int, default=25, help="cells in the first frame")
    parser.add_argument("--epochs", type=int, default=30, help="checkpoints of the run (new path: all)")
    parser.add_argument(
        "--old-checkpoints",
        type=int,
        default=5,
        help="checkpoints the old path is timed on (spread, last included)",
    )
    parser.add_argument("--repeats", type=int, default=2, help="rounds of old then new")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.old_checkpoints < 1:
        parser.error("--old-checkpoints must be at least 1")
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
        timed = spread(len(checkpoints), args.old_checkpoints)
        start = time.perf_counter()
        cache = build_score_cache(manifest, 2)
        cache_s = time.perf_counter() - start
        write_score_cache(cache, root / "score.pt", manifest_path)
        rounds, identical = [], True
        for repeat in range(args.repeats):
            old, old_s = {}, []
            for i in timed:
                start = time.perf_counter()
                old[i] = old_path(checkpoints[i], manifest, root / f"old{repeat}" / checkpoints[i].stem)
                old_s.append(time.perf_counter() - start)
            out = root / f"new{repeat}"
            start = time.perf_counter()
            record = evaluate_run(run, manifest_path, out / "metrics.json", out / "RES", "paper",
                                  TrackastraSettings(**settings["trackastra"]),
                                  score_cache=root / "score.pt")  # fmt: skip
            new_s = (time.perf_counter() - start) / len(checkpoints)
            rows = record["per_epoch"]
            if len(rows) != len(checkpoints):
                raise SystemExit(f"evaluate_run scored {len(rows)} of {len(checkpoints)} checkpoints")
            same = [
                {key: rows[i][key] for key in SCORES} == {key: old[i][key] for key in SCORES} for i in timed
            ]
            chosen = [row["epoch"] for row in rows].index(record["epoch"])
            if chosen not in old:  # its CTC files through the old path too, untimed
                old[chosen] = old_path(
                    checkpoints[chosen], manifest, root / f"old{repeat}" / checkpoints[chosen].stem
                )
            same_chosen = {key: rows[chosen][key] for key in SCORES} == {
                key: old[chosen][key] for key in SCORES
            }
            same_ctc = ctc_files(out / "RES") == ctc_files(root / f"old{repeat}" / checkpoints[chosen].stem)
            identical &= all(same) and same_chosen and same_ctc
            rounds.append(
                {
                    "old_checkpoints": timed,
                    "old_s": old_s,
                    "new_checkpoints": len(rows),
                    "new_s_per_checkpoint": new_s,
                    "LNK": [row["LNK"] for row in rows],
                    "scores_identical": same,
                    "chosen_epoch": record["epoch"],
                    "chosen_timed_by_old": chosen in timed,
                    "chosen_scores_identical": same_chosen,
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
        "new_fixed_s_per_run": breakdown["fixed_s_per_run"],
        "new_marginal_s_per_checkpoint": breakdown["marginal_s_per_checkpoint"],
        "new_breakdown": breakdown,
        "checkpoints": {"new": len(checkpoints), "old_timed": len(timed)},
        "note": "one torch thread for both paths; old_s per checkpoint timed on the old_timed checkpoints "
        "spread over the run; new_s is evaluate_run's wall time over all the run's checkpoints (loading "
        "them, predictions, linking, scoring, the chosen epoch's CTC result and the metrics JSON), without "
        "the score cache (built once per sequence by its own job: cache_build_s); new_breakdown splits the "
        "new path into fixed seconds per run and marginal seconds per checkpoint (a separate pass)",
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
