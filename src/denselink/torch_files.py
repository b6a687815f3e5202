"""Read torch-saved files (checkpoints, caches) with errors that name the file and the problem."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from denselink.errors import CheckpointError, DenselinkError


def load_torch_file(
    path: str | Path,
    *,
    what: str = "checkpoint file",
    error: type[DenselinkError] = CheckpointError,
    weights_only: bool = False,
    mmap: bool = False,
) -> Any:
    """``torch.load`` onto the CPU; a missing or corrupt file raises ``error(path, problem)``.

    ``mmap`` maps the tensors instead of reading them (for a look at a file's small entries).
    """
    path = Path(path)
    if not path.is_file():
        raise error(path, f"{what} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)
    except Exception as err:  # torch.load raises many types for truncated or foreign files
        raise error(path, f"unreadable {what} ({type(err).__name__}: {err})") from err
