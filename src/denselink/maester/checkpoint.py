"""MAESTER checkpoints: model settings, weights, optimizer, epoch, RNG states, loss history.

``load_model`` also accepts the authors' checkpoints (a bare state dict saved as ``model_{epoch}.pt``),
taking the paper's Table 2 architecture for them.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from denselink.atomic import atomic_path
from denselink.errors import CheckpointError
from denselink.maester.model import MaesterModel, MaesterModelSettings
from denselink.torch_files import load_torch_file

FORMAT = "denselink-maester-v1"


def rng_states() -> dict[str, Any]:
    """Global torch, numpy and python RNG states."""
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Inverse of :func:`rng_states`."""
    torch.set_rng_state(states["torch"])
    np.random.set_state(states["numpy"])
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint as a dict with at least ``model_settings``, ``state_dict`` and ``epoch``."""
    path = Path(path)
    data = load_torch_file(path)
    if isinstance(data, dict) and data.get("format") == FORMAT:
        return data
    if isinstance(data, dict) and "patch_embed.proj.weight" in data:
        match = re.search(r"(\d+)", path.stem)
        return {
            "model_settings": MaesterModelSettings().model_dump(),
            "state_dict": data,
            "epoch": int(match.group(1)) if match else None,
        }
    raise CheckpointError(path, "neither a denselink MAESTER checkpoint nor a MAESTER state dict")


def load_model(path: str | Path) -> tuple[MaesterModel, dict[str, Any]]:
    """The model of a checkpoint (eval mode, CPU) and the checkpoint dict."""
    data = read_checkpoint(path)
    model = MaesterModel(MaesterModelSettings.model_validate(data["model_settings"]))
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as err:
        raise CheckpointError(path, f"weights do not fit the model settings: {err}") from err
    return model.eval(), data
