"""Model folders checked before any work: size settings against the weights they must describe.

A ``tracking train`` run folder records its model's sizes twice, in ``config.json`` and in each
checkpoint; a trackastra model folder holds them in ``config.yaml`` beside ``model.pt``. A folder
whose settings disagree with its weights (an edited or copied config, weights of another model)
or whose files are unreadable is refused with the file and the first disagreeing size or tensor.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import torch
import yaml
from trackastra.model import TrackingTransformer

from denselink.errors import CheckpointError
from denselink.torch_files import load_torch_file
from denselink.tracking.settings import TrackastraSettings


def _plain(value: Any) -> Any:
    """``value`` as JSON gives it back (tuples become lists), for comparing recorded configs."""
    return json.loads(json.dumps(value))


def read_run_config(path: Path) -> dict[str, Any]:
    """A run's ``config.json`` (an empty dict where there is none); unreadable JSON names the file."""
    if not path.is_file():
        return {}
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(path, f"unreadable run config ({type(err).__name__}: {err})") from err
    if not isinstance(config, dict):
        raise CheckpointError(path, "a run config is a JSON object")
    return config


def run_settings(config: dict[str, Any], path: Path) -> TrackastraSettings:
    """The TrackastraSettings a run's ``config.json`` records (defaults where it records none)."""
    try:
        return TrackastraSettings(**config.get("settings", {}))
    except (pydantic.ValidationError, TypeError) as err:
        raise CheckpointError(path, f"invalid settings in the run config: {err}") from err


def check_run_config(config: dict[str, Any], path: Path, record: dict[str, Any], checkpoint: Path) -> None:
    """Refuse a ``config.json`` whose model sizes or fusion differ from the checkpoint's."""
    if not config:
        return
    model_config = _plain(record.get("model_config") or {})
    recorded = {
        "model_config": _plain(config.get("model_config") or {}),
        "settings": _plain(run_settings(config, path).transformer_kwargs(model_config.get("feat_dim", 0))),
    }
    for source, values in recorded.items():
        for key, value in sorted(model_config.items()):
            if key in values and values[key] != value:
                raise CheckpointError(
                    path,
                    f"{source} gives {key} {values[key]}, but {checkpoint} holds a model with {key} {value}; "
                    "this config.json does not describe that checkpoint",
                )
    fusion, recorded_fusion = _plain(record.get("fusion_config")), _plain(config.get("fusion_config"))
    if "fusion_config" in config and recorded_fusion != fusion:
        raise CheckpointError(path, f"fusion_config {recorded_fusion} differs from {fusion} in {checkpoint}")


def check_state_dict(model: torch.nn.Module, state: dict[str, Any], weights: Path, sizes: Path) -> None:
    """Refuse weights whose tensor names or shapes differ from the model the size settings build."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            weights,
            f"its tensors do not fit the model of {sizes} "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})",
        )
    for name, tensor in expected.items():
        shape = tuple(getattr(state[name], "shape", ()))
        if shape != tuple(tensor.shape):
            raise CheckpointError(
                weights,
                f"tensor {name} has shape {shape}, but the sizes in {sizes} give {tuple(tensor.shape)}",
            )


def read_trackastra_folder(folder: str | Path) -> TrackingTransformer:
    """A model in trackastra's folder format (``config.yaml`` + ``model.pt``), checked, in eval mode."""
    folder = Path(folder)
    config_path, weights = folder / "config.yaml", folder / "model.pt"
    missing = [p.name for p in (config_path, weights) if not p.is_file()]
    if missing:
        raise CheckpointError(folder, f"not a trackastra model folder (missing {missing})")
    try:
        config = yaml.safe_load(config_path.read_text())
        model = TrackingTransformer(**config)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, TypeError, ValueError, AssertionError) as err:
        raise CheckpointError(
            config_path, f"not a trackastra model config ({type(err).__name__}: {err})"
        ) from err
    state = load_torch_file(weights, what="model weights file", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:  # a lightning checkpoint, as trackastra reads it
        state = {k[6:]: v for k, v in state["state_dict"].items() if k.startswith("model.")}
    if not isinstance(state, dict):
        raise CheckpointError(weights, f"holds a {type(state).__name__}, not a state dict")
    check_state_dict(model, state, weights, config_path)
    model.load_state_dict(state)
    return model.eval()
