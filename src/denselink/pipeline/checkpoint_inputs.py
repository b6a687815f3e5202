"""Inputs known once a Snakemake checkpoint is done: a dataset folder's files, a MAESTER run's weights.

``checkpoints`` is Snakemake's object of that name: ``checkpoints.RULE.get(**wildcards)`` is the finished
checkpoint job, or raises until it is done (Snakemake then re-evaluates the input once it is).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from denselink.data.frames import is_tiff
from denselink.pipeline import layout as L
from denselink.pipeline import real as real_study
from denselink.pipeline.jobs import Config, Wildcards
from denselink.pipeline.layout import Layout


def sequence_files(folder: str | Path, seq: str) -> list[str]:
    """Raw frames, TRA masks and man_track.txt of one CTC sequence (what validation reads)."""
    folder = Path(folder)
    tra = folder / f"{seq}_GT" / "TRA"
    # .tif and .tiff, as validation lists them
    files = sorted(p for p in (folder / seq).glob("t*") if is_tiff(p))
    files += sorted(p for p in tra.glob("man_track*") if is_tiff(p))
    files += [tra / "man_track.txt"] if (tra / "man_track.txt").is_file() else []
    return [str(f) for f in files]


def _raw_folder(cfg: Config, dataset: str, checkpoints: Any) -> str:
    """A dataset's folder as downloaded (once ``data_download`` is done) or found under the data root."""
    if cfg["datasets"][dataset]["download"]:
        return checkpoints.data_download.get(dataset=dataset).output[0]
    return Layout.of(cfg).dataset_dir(dataset)


def validate_inputs(cfg: Config, wildcards: Wildcards, checkpoints: Any) -> dict[str, Any]:
    """The dataset folder and every file validation reads (checkpoint folders once they exist)."""
    dataset = wildcards.dataset
    spec = cfg["datasets"][dataset]
    # the pipeline's downsampled copy (workflow/rules/real.smk)
    if spec.get("downsample", 1) > 1:
        return {"dataset": real_study.dataset_folder(cfg, dataset), "files": []}
    if spec["source"] == "synthetic":
        folder = checkpoints.data_synth.get(dataset=dataset).output[0]
    else:
        folder = _raw_folder(cfg, dataset, checkpoints)
    return {"dataset": folder, "files": sequence_files(folder, wildcards.seq)}


def raw_dataset(cfg: Config, wildcards: Wildcards, checkpoints: Any) -> dict[str, Any]:
    """The dataset folder as downloaded (or found under data_root) and the files of its sequences."""
    dataset = wildcards.dataset
    folder = _raw_folder(cfg, dataset, checkpoints)
    files = [f for seq in cfg["datasets"][dataset]["sequences"] for f in sequence_files(folder, seq)]
    return {"dataset": folder, "files": files}


def _run_dir(wildcards: Wildcards, checkpoints: Any) -> Path:
    """The folder of a finished MAESTER training run."""
    return Path(checkpoints.maester_train.get(run=wildcards.run).output[0]).parent


def maester_checkpoint(cfg: Config, wildcards: Wildcards, checkpoints: Any) -> str:
    """The checkpoint a MAESTER inference reads, listed once its training run is done."""
    return L.maester_checkpoint(_run_dir(wildcards, checkpoints), wildcards.epoch)


def initial_checkpoint(cfg: Config, wildcards: Wildcards, checkpoints: Any) -> str:
    """The seeded initial weights of a MAESTER run, listed once the run is done."""
    return str(_run_dir(wildcards, checkpoints) / L.MAESTER_INITIAL)
