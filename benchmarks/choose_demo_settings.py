"""Choose the demo's ``spatial_pos_cutoff`` and ``augment`` on validation data only.

Measures, for every candidate pair (``tracking.settings.spatial_pos_cutoff`` x ``augment``), the
lowest validation loss (``train_log.csv`` ``val_loss``, over all epochs) of each Trackastra run of the
demo config (``workflow/configs/mini.yaml``): its re-trained and MAESTER arms on both Table 1 datasets,
clean protocol (train on 02; its held-out last quarter is the validation data), every seed of
``tracking.seeds``, all other settings the config's. The runs read the demo's own prepared Trackastra
data and feature tables, which Snakemake builds first; ``denselink tracking train`` trains each run.

Criterion, fixed before the runs: the candidate with the lower mean, over all its runs, of each run's
lowest validation loss (ties: the earlier candidate in the order given). The evaluation sequence (the
protocol's ``eval``, 01) plays no part: no run trains or validates on it and the selection refuses a run
that did. Writes ``benchmarks/results/demo_settings.json``: every run's lowest validation loss, the
per-candidate means (also per dataset and arm), the chosen values and the commit.

    nice .venv/bin/python benchmarks/choose_demo_settings.py [--spatial-pos-cutoff 16 32 64] [--augment 0 3]
"""

from __future__ import annotations

import argparse
import csv
import datetime
import itertools
import json
import os
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from types import SimpleNamespace
from typing import Any

import denselink
from denselink.atomic import write_json
from denselink.errors import ConfigError
from denselink.filenames import DONE, RUN_CONFIG, TRAIN_LOG
from denselink.init import SCHEMA
from denselink.machine import machine_info
from denselink.pipeline import grid, jobs
from denselink.pipeline.checks import load_config
from denselink.tracking import train_log
from denselink.vocabulary import parse_variant

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "demo_settings.json"
CONFIG = ROOT / "workflow" / "configs" / "mini.yaml"
PROTOCOL = "clean"
ARMS = ("retrained", "maester")
KEYS = ("spatial_pos_cutoff", "augment")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class Run:
    """One training run of the search: a candidate, a dataset, an arm's variant and a seed."""

    candidate: tuple[int, int]
    dataset: str
    variant: str
    seed: int
    inputs: dict[str, str]
    settings: dict[str, Any]
    out: Path


def arm_of(variant: str) -> str:
    """``retrained``, or the backbone of a fused variant (``maester``, ``sam``, ...)."""
    parsed = parse_variant(variant)
    return "retrained" if parsed.kind == "retrained" else str(parsed.backbone)


def plan_runs(cfg: dict[str, Any], candidates: Sequence[tuple[int, int]], work: Path) -> list[Run]:
    """Every (candidate, dataset, arm, seed) run on the clean protocol's training sequence."""
    directions = grid.directions(cfg, PROTOCOL)
    if len(directions) != 1:
        raise ConfigError(f"protocols.{PROTOCOL}.directions", "the search trains one direction (02 -> 01)")
    train_seq = directions[0][0]
    if grid.validation_seq(cfg, PROTOCOL, train_seq) is not None:
        raise ConfigError(f"protocols.{PROTOCOL}", "validation must be the training sequence's held-out tail")
    runs = []
    for candidate in candidates:
        for dataset in cfg["table1"]["datasets"]:
            for variant in grid.table1_variants(cfg, dataset):
                if arm_of(variant) not in ARMS:
                    continue
                settings = json.loads(jobs.tracking_settings(cfg, PROTOCOL, variant))
                settings.update(zip(KEYS, candidate, strict=True))
                fields = dict(dataset=dataset, protocol=PROTOCOL, train_seq=train_seq, variant=variant)
                inputs = grid.train_inputs(cfg, SimpleNamespace(**fields))
                name = "spc{}-aug{}".format(*candidate)
                for seed in cfg["tracking"]["seeds"]:
                    out = work / name / dataset / variant / f"seed{seed}"
                    runs.append(Run(candidate, dataset, variant, seed, inputs, settings, out))
    return runs


def prepare_inputs(runs: Iterable[Run], configfile: Path, cores: int) -> None:
    """Build the runs' prepared data and feature tables with the demo's own pipeline."""
    targets = sorted({path for run in runs for path in run.inputs.values()})
    command = [
        "snakemake",
        "--profile",
        "profiles/local",
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
    ]
    subprocess.run([*command, *targets], cwd=ROOT, check=True)


def is_done(run: Run) -> bool:
    """A finished run of exactly these inputs, seed and settings (then it is not trained again)."""
    config_path = run.out / RUN_CONFIG
    if not (run.out / DONE).is_file() or not config_path.is_file():
        return False
    done = json.loads(config_path.read_text())
    same_inputs = done["data"] == run.inputs["data"] and done["features"] == run.inputs.get("features")
    stored = done["settings"]
    return same_inputs and done["seed"] == run.seed and all(stored[k] == v for k, v in run.settings.items())


def train(run: Run, threads: int) -> None:
    """``denselink tracking train`` of one run, with the thread count a pipeline job gets; its output goes
    to ``seed{N}.log`` beside the run folder."""
    flags = [f"--{key}={path}" for key, path in run.inputs.items()]
    command = ["denselink", "tracking", "train", *flags, f"--out={run.out}", f"--seed={run.seed}"]
    env = {**os.environ, **dict.fromkeys(THREAD_VARIABLES, str(threads))}
    log = run.out.with_name(f"{run.out.name}.log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        done = subprocess.run(
            [*command, "--settings", json.dumps(run.settings)],
            cwd=ROOT,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    if done.returncode != 0:
        raise SystemExit(f"tracking train failed (exit {done.returncode}): see {log}")


def lowest_val_loss(log_path: Path) -> tuple[float, int]:
    """The lowest finite ``val_loss`` of a training log and its epoch."""
    lowest = train_log.lowest_val_loss(log_path)
    if lowest is None:
        raise ConfigError(log_path, "no finite val_loss: the run had no validation data")
    return lowest


def read_run(run_dir: Path, variant: str) -> dict[str, Any]:
    """One run's record: what its ``config.json`` says it trained on and its lowest validation loss."""
    config = json.loads((run_dir / RUN_CONFIG).read_text())
    settings = config["settings"]
    if settings["fusion"] != (parse_variant(variant).fusion or "none"):
        raise ConfigError(run_dir / RUN_CONFIG, f"fusion {settings['fusion']!r} is not that of {variant}")
    loss, epoch = lowest_val_loss(run_dir / TRAIN_LOG)
    return {
        **{key: settings[key] for key in KEYS},
        "dataset": config["dataset"],
        "variant": variant,
        "seed": config["seed"],
        "train_seq": config["train_seq"],
        "val_seq": config["val_seq"],
        "val_start_frame": config["val_start_frame"],
        "lowest_val_loss": loss,
        "lowest_val_epoch": epoch,
        "epoch_seconds": round(run_seconds(run_dir), 3),
        "path": str(run_dir),
    }


def check_validation_only(rows: Iterable[dict[str, Any]], eval_seqs: Iterable[str]) -> None:
    """Refuse a run that trained or validated on an evaluation sequence, or had no held-out tail."""
    forbidden = set(eval_seqs)
    for row in rows:
        used = {row["train_seq"], row["val_seq"]} & forbidden
        if used:
            raise ConfigError(
                row["path"],
                f"run uses evaluation sequence {sorted(used)[0]}: the choice uses validation data only",
            )
        if row["val_seq"] is not None or row["val_start_frame"] is None:
            raise ConfigError(row["path"], "validation must be the held-out tail of the training sequence")


def choose(rows: Sequence[dict[str, Any]], eval_seqs: Iterable[str]) -> dict[str, Any]:
    """Per-candidate mean of the runs' lowest validation losses and the candidate with the lowest mean.

    Every candidate must have the same runs (dataset, variant, seed); ties go to the earlier candidate.
    """
    check_validation_only(rows, eval_seqs)
    groups: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["spatial_pos_cutoff"], row["augment"]), []).append(row)
    keys = {candidate: sorted(run_key(r) for r in runs) for candidate, runs in groups.items()}
    first = next(iter(keys.values()))
    for candidate, found in keys.items():
        if found != first or len(set(found)) != len(found):
            raise ConfigError(
                "spatial_pos_cutoff={}, augment={}".format(*candidate),
                "candidates must have the same runs (dataset, variant, seed), each once",
            )
    means = {candidate: mean(r["lowest_val_loss"] for r in runs) for candidate, runs in groups.items()}
    chosen = min(means, key=lambda c: (means[c], list(means).index(c)))
    return {
        "candidates": [
            {
                **dict(zip(KEYS, candidate, strict=True)),
                "mean_lowest_val_loss": means[candidate],
                "runs": len(groups[candidate]),
                "by_dataset_arm": by_dataset_arm(groups[candidate]),
            }
            for candidate in means
        ],
        "chosen": dict(zip(KEYS, chosen, strict=True)),
    }


def run_key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["dataset"], row["variant"], row["seed"]


def by_dataset_arm(rows: Iterable[dict[str, Any]]) -> dict[str, float]:
    """Mean lowest validation loss per ``dataset/arm``."""
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(f"{row['dataset']}/{arm_of(row['variant'])}", []).append(row["lowest_val_loss"])
    return {name: mean(values) for name, values in sorted(groups.items())}


def commit() -> str:
    """HEAD's commit, ``-dirty`` when this script, the package or the workflow differ from it."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [str(Path(__file__).resolve()), "src", "workflow"]
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True, check=True
    )
    dirty = bool(status.stdout.strip())
    return head.stdout.strip() + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=CONFIG, help="the demo config")
    parser.add_argument("--spatial-pos-cutoff", type=int, nargs="+", default=[16, 32, 64], help="candidates")
    parser.add_argument("--augment", type=int, nargs="+", default=[0, 3], help="candidates (trackastra: 0-3)")
    parser.add_argument("--work", type=Path, default=None, help="run folders (RESULTS_ROOT/demo_settings)")
    parser.add_argument("--cores", type=int, default=1, help="Snakemake cores for the prepared inputs")
    parser.add_argument("--out", type=Path, default=RESULTS, help="result JSON")
    args = parser.parse_args(argv)

    cfg = load_config([args.config], SCHEMA)
    work = args.work or Path(cfg["results_root"]) / "demo_settings"
    candidates = list(itertools.product(args.spatial_pos_cutoff, args.augment))
    runs = plan_runs(cfg, candidates, work)
    started = time.perf_counter()
    prepare_inputs(runs, args.config, args.cores)
    prepared = time.perf_counter()
    threads = jobs.rule_resources(cfg, "tracking_train")["cpus"]
    to_train = [run for run in runs if not is_done(run)]
    for i, run in enumerate(to_train, 1):
        print(f"[{i}/{len(to_train)}] {run.out}", flush=True)
        train(run, threads)
    rows = [read_run(run.out, run.variant) for run in runs]
    (train_seq, _), *_ = grid.directions(cfg, PROTOCOL)
    eval_seqs = [eval_seq for _, eval_seq in grid.directions(cfg, PROTOCOL)]
    val_fraction = cfg["protocols"][PROTOCOL]["val_fraction"]
    result = {
        **choose(rows, eval_seqs),
        "criterion": "lowest mean, over the candidate's runs, of each run's lowest val_loss (train_log.csv); "
        "ties: the earlier candidate",
        "protocol": f"{PROTOCOL}: train {train_seq}, its held-out last {val_fraction:.0%} validates; "
        f"evaluation sequences unused: {eval_seqs}",
        "config": str(args.config.resolve().relative_to(ROOT)),
        "seeds": cfg["tracking"]["seeds"],
        "runs": rows,
        "seconds": {
            "prepare": round(prepared - started, 1),
            "train": round(time.perf_counter() - prepared, 1),
            "runs_trained": len(to_train),
            "epochs_sum": round(sum(r["epoch_seconds"] for r in rows), 1),
            "note": "prepare and train: this invocation's wall seconds (runs already done are reused, "
            "not trained again); epochs_sum: the runs' epoch times as their train_log.csv records them",
        },
        "commit": commit(),
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": denselink.__version__,
    }
    write_json(args.out, result)
    for candidate in result["candidates"]:
        print({k: candidate[k] for k in (*KEYS, "mean_lowest_val_loss")})
    print("chosen:", result["chosen"])
    return 0


def run_seconds(run_dir: Path) -> float:
    """Seconds of a run's epochs as its training log records them."""
    with (run_dir / TRAIN_LOG).open(newline="") as handle:
        return sum(float(row["seconds"]) for row in csv.DictReader(handle))


if __name__ == "__main__":
    raise SystemExit(main())
