"""The device a job runs on, decided once and said out loud.

A ``device`` setting is ``cpu``, ``cuda`` (or ``cuda:N``) or ``auto``. ``auto`` means CUDA when the
job asked for GPUs and the CPU otherwise; the workflow tells a job how many GPUs its rule asked for
in ``DENSELINK_GPUS`` (the rule's ``gpus`` resource; unset: 0). A job that wants CUDA (``cuda``, or
``auto`` with GPUs requested) and finds no working CUDA device stops with a :class:`DeviceError`
naming the setting, instead of running for days on the CPU. Every job logs the device it chose and
records :func:`device_record` in its outputs' metadata.
"""

from __future__ import annotations

import logging
import os
import platform
from typing import TYPE_CHECKING, Any

from denselink.errors import DenselinkError

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
GPU_ENV = "DENSELINK_GPUS"


class DeviceError(DenselinkError):
    """The configured device cannot be used on this machine."""

    kind = "device error"


def gpus_requested() -> int:
    """GPUs the job asked for (``DENSELINK_GPUS``; 0 when unset)."""
    raw = os.environ.get(GPU_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise DeviceError(GPU_ENV, f"expected a GPU count, got {raw!r}")
    return int(raw)


def _cuda_problem(index: int) -> str | None:
    """Why CUDA device ``index`` cannot run a kernel, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        return "torch finds no CUDA device" + ("" if torch.version.cuda else " (a CPU-only torch build)")
    if index >= torch.cuda.device_count():
        return f"cuda:{index} does not exist ({torch.cuda.device_count()} CUDA devices)"
    try:
        (torch.ones(1, device=f"cuda:{index}") + 1).item()
    except RuntimeError as err:
        return f"cuda:{index} fails a test kernel ({err})"
    return None


def resolve_device(setting: str, key: str, index: int | None = None) -> torch.device:
    """The ``torch.device`` of ``setting`` (``auto`` | ``cpu`` | ``cuda[:N]``) for config key ``key``.

    ``index`` picks the GPU of ``cuda``/``auto`` (e.g. a DDP process's local rank).
    """
    import torch

    requested = gpus_requested()
    wanted = ("cuda" if requested > 0 else "cpu") if setting == "auto" else setting
    if wanted == "cpu":
        device = torch.device("cpu")
    elif wanted == "cuda" or wanted.startswith("cuda:"):
        device = torch.device(wanted if index is None else f"cuda:{index}")
        problem = _cuda_problem(device.index or 0)
        if problem is not None:
            why = f"{setting!r}" + (f" with {requested} GPU(s) requested" if requested else "")
            raise DeviceError(key, f"{why} wants CUDA, but {problem}; set {key}: cpu to run on the CPU")
        if device.index is not None:
            torch.cuda.set_device(device)
    else:
        raise DeviceError(key, f"unknown device {setting!r} (auto, cpu, cuda or cuda:N)")
    log.info("device: %s (%s: %r, %s=%d)", describe(device), key, setting, GPU_ENV, requested)
    return device


def describe(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H100 ...)`` or ``cpu (<cpu model>)``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    from denselink.machine import cpu_model

    return f"cpu ({cpu_model() or platform.machine()})"


def device_record(device: torch.device) -> dict[str, Any]:
    """What an output's metadata records about the device: ``{"device", "device_name"}``."""
    name = describe(device)
    return {"device": str(device), "device_name": name.split(" (", 1)[1].rstrip(")")}
