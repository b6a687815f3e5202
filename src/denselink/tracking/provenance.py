"""How a run was trained and validated (its ``config.json``), checked against the protocol it is scored under.

``tracking evaluate --protocol`` labels the metrics JSON; the label must be true of the run. ``clean``
promises that no data the run was trained, validated or scored on was used for another of these
roles: it chooses each checkpoint by validation loss, so the run must have validation data (a
``val_fraction`` tail of its training sequence or a ``--val-data`` sequence), and neither its training
nor its validation sequence may be the scored one. ``paper`` (the authors' protocol) chooses by LNK
on the scored data itself, so it promises nothing of the kind and any run may be scored under it.
Sequences are compared as (dataset, sequence) of the data itself, not of labels given on the
command line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denselink.errors import ConfigError, DenselinkError
from denselink.filenames import RUN_CONFIG


@dataclass(frozen=True)
class RunProvenance:
    """The data a run trained and validated on, from its ``config.json``."""

    config_path: Path
    dataset: str
    train_seq: str
    val: tuple[str, str] | None  # (dataset, sequence) of --val-data
    val_fraction: float

    @property
    def validation(self) -> str:
        """The run's validation data in words."""
        if self.val is not None:
            return f"validated on {self.val[0]}/{self.val[1]}"
        if self.val_fraction > 0:
            return f"validated on the last {self.val_fraction:g} of {self.dataset}/{self.train_seq}"
        return "trained without validation data"


def _val_sequence(config: dict[str, Any], config_path: Path) -> tuple[str, str] | None:
    """(dataset, sequence) of the run's ``--val-data``: recorded in config.json, or read from that cache."""
    if config.get("val_data") is None:
        return None
    if config.get("val_seq") is not None:
        return str(config["val_dataset"]), str(config["val_seq"])
    from denselink.torch_files import load_torch_file

    path = Path(config["val_data"])
    try:
        payload = load_torch_file(path, what="validation cache", error=ConfigError)
        return str(payload["dataset"]), str(payload["sequence"])
    except (DenselinkError, KeyError, TypeError) as err:
        problem = f"records val_data {path} but not its sequence, and that cache cannot tell it ({err})"
        raise ConfigError(config_path, problem) from err


def run_provenance(model_dir: Path, config: dict[str, Any]) -> RunProvenance:
    """The provenance of the run in ``model_dir`` from its parsed ``config.json``."""
    config_path = Path(model_dir) / RUN_CONFIG
    missing = [key for key in ("dataset", "train_seq", "settings") if key not in config]
    if missing:
        raise ConfigError(config_path, f"no {missing} recorded: cannot tell how the run was trained")
    return RunProvenance(
        config_path=config_path,
        dataset=str(config["dataset"]),
        train_seq=str(config["train_seq"]),
        val=_val_sequence(config, config_path),
        val_fraction=float(config["settings"].get("val_fraction", 0.0)),
    )


def protocol_mismatches(protocol: str, run: RunProvenance, dataset: str, eval_seq: str) -> list[str]:
    """Why ``run`` cannot be scored on ``dataset/eval_seq`` under ``protocol``; empty when it can."""
    if protocol != "clean":
        return []
    scored = (dataset, eval_seq)
    problems = []
    if run.val is None and run.val_fraction == 0:
        problems.append("clean chooses the checkpoint by validation loss, but the run has no validation data")
    if run.val == scored:
        problems.append(f"it validated on {dataset}/{eval_seq}, the scored sequence")
    if (run.dataset, run.train_seq) == scored:
        problems.append(f"it trained on {dataset}/{eval_seq}, the scored sequence")
    return problems


def check_protocol(protocol: str, run: RunProvenance, dataset: str, eval_seq: str) -> None:
    """ConfigError naming the run's config.json and every mismatch between ``protocol`` and the run."""
    problems = protocol_mismatches(protocol, run, dataset, eval_seq)
    if problems:
        raise ConfigError(
            run.config_path,
            f"cannot be scored on {dataset}/{eval_seq} under protocol {protocol!r}: " + "; ".join(problems),
        )
