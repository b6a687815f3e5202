"""The names of the files a command writes inside its output folder, spelled once.

Stages write these names and :mod:`denselink.pipeline.layout` builds its output patterns from them, so
a stage never imports the pipeline layer. Templates are filled with :func:`denselink.vocabulary.fill`;
:func:`checkpoint_epoch` parses a checkpoint name back into its epoch.
"""

from __future__ import annotations

from pathlib import Path

from denselink.errors import CheckpointError
from denselink.vocabulary import fill, template_regex

DONE = "done.json"
"""Written last by a training run (``maester train``, ``tracking train``): the run is complete."""
RUN_CONFIG = "config.json"
"""What a Trackastra run trained on and with which settings (``tracking train``)."""
TRAIN_LOG = "train_log.csv"
"""A Trackastra run's loss per epoch (``tracking train``, :mod:`denselink.tracking.train_log`)."""
MANIFEST = "manifest.json"
"""A checked sequence or plate (``data validate``, ``data mitocheck-manifest``)."""
CHECKPOINT_DIR = "checkpoints"
MAESTER_CHECKPOINT = f"{CHECKPOINT_DIR}/epoch{{epoch}}.pt"
"""A MAESTER checkpoint inside its run folder (``maester train``; N counts from 0, unpadded)."""
MAESTER_LAST = f"{CHECKPOINT_DIR}/last.pt"
"""The rolling checkpoint a MAESTER run resumes from."""
MAESTER_INITIAL = f"{CHECKPOINT_DIR}/init.pt"
"""A MAESTER run's seeded initial weights, before any step (``maester.train.save_initial``)."""
TRACKASTRA_CHECKPOINT = f"{CHECKPOINT_DIR}/epoch{{epoch:03d}}.pt"
"""A Trackastra checkpoint inside its run folder (``tracking train``; N counts from 0, three digits)."""
CHECKPOINT_GLOB = "epoch*.pt"
"""Every checkpoint of either kind inside :data:`CHECKPOINT_DIR`."""

_CHECKPOINT = template_regex("epoch{epoch}.pt", epoch=r"[0-9]+")


def maester_checkpoint(epoch: int | str) -> str:
    """The MAESTER checkpoint of ``epoch`` relative to its run folder (``epoch`` as names spell it)."""
    return fill(MAESTER_CHECKPOINT, epoch=epoch)


def trackastra_checkpoint(epoch: int) -> str:
    """The Trackastra checkpoint of ``epoch`` relative to its run folder, e.g. ``checkpoints/epoch007.pt``."""
    return fill(TRACKASTRA_CHECKPOINT, epoch=int(epoch))


def checkpoint_epoch(path: str | Path) -> int | None:
    """The epoch of a checkpoint file ``.../epoch{N}.pt`` of either kind; None for another file name."""
    match = _CHECKPOINT.match(Path(str(path)).name)
    return int(match["epoch"]) if match else None


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """A training run's checkpoints in epoch order; a CheckpointError naming the folder when it has none."""
    found = {path: checkpoint_epoch(path) for path in (Path(run_dir) / CHECKPOINT_DIR).glob(CHECKPOINT_GLOB)}
    checkpoints = sorted((path for path, epoch in found.items() if epoch is not None), key=found.__getitem__)
    if not checkpoints:
        problem = f"no {CHECKPOINT_DIR}/{CHECKPOINT_GLOB} (run `denselink tracking train`)"
        raise CheckpointError(run_dir, problem)
    return checkpoints
