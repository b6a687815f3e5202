"""Benchmark: whole-process start-up of the workflow and of a trackastra job, old tree vs this one.

Times complete processes (wall clock, and user + system CPU of the child from ``getrusage``), the old
tree (``git archive BASE``, its own ``src`` on ``PYTHONPATH``) and this one in turn, A B A B ...:

- ``parse``: ``snakemake --list-rules`` of config.yaml: reading the workflow (imports, schema, every
  stage's settings checked), the workflow's own start-up without the DAG;
- ``dry_run``: ``snakemake -n --quiet`` of config.yaml (the full experiment, ~4,600 jobs), no profile;
- ``dry_run_slurm``: the same with ``--profile profiles/slurm`` (the Slurm executor plugin's own
  start-up is included; where slurm-wlm is installed but its daemons are down it adds a probe);
- ``tracking_import``: ``python -c 'import denselink.tracking.train, denselink.tracking.evaluate'``,
  the imports every trackastra job pays before it starts, and whether lightning was among them.

Writes ``benchmarks/results/startup.json`` with medians, the ratios old / new and the machine.

    .venv/bin/python benchmarks/startup.py [--base eadbaf3] [--runs 5]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from denselink import __version__
from denselink.machine import machine_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "startup.json"
IMPORT = (
    "import sys, denselink.tracking.train, denselink.tracking.evaluate; "
    "print('lightning' in sys.modules, 'torch' in sys.modules)"
)


def commands(tree: Path) -> dict[str, list[str]]:
    python = str(ROOT / ".venv" / "bin" / "python")
    snakemake = [
        python,
        "-m",
        "snakemake",
        "-n",
        "--quiet",
        "--directory",
        str(tree),
        "-s",
        str(tree / "Snakefile"),
    ]
    return {
        "parse": [python, "-m", "snakemake", "--list-rules", "-s", str(tree / "Snakefile")],
        "dry_run": snakemake,
        "dry_run_slurm": [*snakemake, "--profile", str(tree / "profiles" / "slurm")],
        "tracking_import": [python, "-c", IMPORT],
    }


def timed(argv: list[str], tree: Path) -> tuple[float, float, str]:
    """Wall and CPU seconds of one run of ``argv`` with ``tree/src`` first on the path; its stdout."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {tree}:\n{done.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="eadbaf3", help="git revision of the old tree")
    parser.add_argument(
        "--runs", type=int, default=5, help="timed runs per command and tree (after 1 warm-up)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="denselink-bench-startup-") as tmp:
        old = Path(tmp) / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.base], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        trees = {"old": old, "new": ROOT}
        results: dict[str, dict] = {}
        for name in ("parse", "dry_run", "dry_run_slurm", "tracking_import"):
            samples: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
            printed: dict[str, str] = {}
            for run in range(args.runs + 1):
                for label, tree in trees.items():
                    wall, cpu, out = timed(commands(tree)[name], tree)
                    printed[label] = out
                    if run > 0:  # the first round warms the file cache
                        samples[label].append((wall, cpu))
            entry: dict = {}
            for label in ("old", "new"):
                entry[f"{label}_wall_s"] = statistics.median(w for w, _ in samples[label])
                entry[f"{label}_cpu_s"] = statistics.median(c for _, c in samples[label])
                entry[f"{label}_runs"] = samples[label]
            entry["wall_ratio"] = entry["old_wall_s"] / entry["new_wall_s"]
            if name == "tracking_import":
                for label in ("old", "new"):
                    lightning, torch = printed[label].split()
                    entry[f"{label}_imports_lightning"] = lightning == "True"
            results[name] = entry
            print(name, {k: round(v, 2) for k, v in entry.items() if isinstance(v, float)}, flush=True)

    record = {
        "parse_s": results["parse"]["new_wall_s"],
        "parse_speedup": results["parse"]["wall_ratio"],
        "dry_run_s": results["dry_run"]["new_wall_s"],
        "dry_run_speedup": results["dry_run"]["wall_ratio"],
        "tracking_import_s": results["tracking_import"]["new_wall_s"],
        "tracking_imports_lightning": results["tracking_import"]["new_imports_lightning"],
        "base": args.base,
        "load_average_at_end": os.getloadavg(),
        "commands": {name: " ".join(argv) for name, argv in commands(Path("TREE")).items()},
        **results,
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
        "python": sys.version.split()[0],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
