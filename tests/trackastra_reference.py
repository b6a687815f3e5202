"""Train and score a tiny trackastra (``wrfeat`` mode) through denselink's commands, for a stored reference.

:func:`reference_numbers` runs ``data synth`` -> ``data validate`` -> ``tracking prepare`` ->
``tracking train`` (seed 3, 6 epochs, augmentation on) -> ``tracking evaluate --protocol paper`` in a
temporary folder and returns every number those commands print: the per-epoch train loss, the
per-epoch and chosen LNK/TRA/DET and the sha256 of the written ``res_track.txt``.
``tests/test_trackastra_versions.py`` compares them with ``tests/data/trackastra_reference.json``,
which this file writes when run as a script (under the trackastra version to be recorded):

    PYTHONPATH=src OMP_NUM_THREADS=1 python tests/trackastra_reference.py tests/data/trackastra_reference.json
"""

from __future__ import annotations

import csv
import hashlib
import json
import platform
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

import torch

from denselink import cli

SYNTH = {"shape": [48, 48], "n_frames": 12, "n_cells": 6, "division_prob": 0.1, "sequences": ["01", "02"]}
SYNTH |= {"seed": 0}
TRACKING = {"window": 4, "d_model": 32, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1}
TRACKING |= {"epochs": 6, "warmup_epochs": 1, "batch_size": 4, "train_samples": 48, "crop_size": None}
TRACKING |= {"max_tokens": 256, "val_fraction": 0.0, "augment": 1, "lr": 3e-3}
SEED = 3
COMMAND = "PYTHONPATH=src OMP_NUM_THREADS=1 python tests/trackastra_reference.py OUT.json"


def _run(*args: str | Path) -> None:
    code = cli.main([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"denselink {' '.join(map(str, args))} exited {code}")


def reference_numbers() -> dict:
    """The numbers of one seeded train + evaluate run (see the module docstring)."""
    torch.set_num_threads(1)
    settings = json.dumps(TRACKING)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _run("data", "synth", "--out", root / "Synth", "--settings", json.dumps(SYNTH))
        for seq in ("01", "02"):
            _run("data", "validate", "--dataset-dir", root / "Synth", "--dataset", "Synth", "--seq", seq,
                 "--out", root / f"{seq}.json")  # fmt: skip
        cache, run, metrics, res = (root / name for name in ("02.pt", "run", "metrics.json", "RES"))
        _run("tracking", "prepare", "--manifest", root / "02.json", "--out", cache, "--settings", settings)
        _run("tracking", "train", "--data", cache, "--out", run, "--seed", SEED, "--settings", settings)
        _run("tracking", "evaluate", "--model-dir", run, "--manifest", root / "01.json",
             "--protocol", "paper", "--out", metrics, "--res-dir", res, "--settings", settings)  # fmt: skip
        with (run / "train_log.csv").open() as handle:
            train_loss = [float(row["train_loss"]) for row in csv.DictReader(handle)]
        record = json.loads(metrics.read_text())
        keys = ("epoch", "LNK", "TRA", "DET")
        per_epoch = [{key: entry[key] for key in keys} for entry in record["per_epoch"]]
        tracks = hashlib.sha256((res / "res_track.txt").read_bytes()).hexdigest()
    chosen = {key: record[key] for key in ("LNK", "TRA", "DET")}
    return {"train_loss": train_loss, "per_epoch": per_epoch, "chosen": chosen, "res_track_sha256": tracks}


def main(out: str) -> None:
    numbers = reference_numbers()
    produced = {
        "trackastra": version("trackastra"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "command": COMMAND,
        "synth": SYNTH,
        "tracking": TRACKING,
        "seed": SEED,
    }
    Path(out).write_text(json.dumps({"produced_with": produced, **numbers}, indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
