"""Stage settings: pydantic models fed from the command line as JSON or a YAML/JSON file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TypeVar

import pydantic
import yaml

from denselink.errors import ConfigError

SettingsT = TypeVar("SettingsT", bound=pydantic.BaseModel)


class StageSettings(pydantic.BaseModel):
    """Base for stage settings: unknown keys are errors, values are checked on assignment."""

    model_config = pydantic.ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def load_settings(model: type[SettingsT], source: str | None, origin: str = "--settings") -> SettingsT:
    """Parse ``source`` (inline JSON, or a path to a YAML/JSON file, or None for defaults) into ``model``."""
    if source is None or source == "":
        raw: object = {}
        where = origin
    elif source.lstrip().startswith("{"):
        try:
            raw = json.loads(source)
        except json.JSONDecodeError as err:
            raise ConfigError(origin, f"not valid JSON: {err}") from err
        where = origin
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(path, "settings file does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        where = str(path)
    if not isinstance(raw, dict):
        raise ConfigError(where, f"settings must be a mapping, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except pydantic.ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ConfigError(where, f"invalid {model.__name__}: {problems}") from err
