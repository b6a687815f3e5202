"""Checks of a whole workflow config before any job runs: stage settings and paths.

The JSON schema checks keys, types and ranges; rules such as "patch_size must be odd" live in the
stages' pydantic validators. :func:`check_stage_settings` feeds every config section to the very
model its command parses, so such a mistake stops ``snakemake`` (also ``-n``) at start-up instead of
failing a job hours into a run.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

from denselink.paths import check_config_paths
from denselink.settings import load_settings

# config section (dotted; "*" = every key of a mapping) -> (module, settings model)
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("datasets.*.synth", "denselink.data.settings", "SynthSettings"),
    ("mitocheck.synth", "denselink.data.settings", "MitocheckSynthSettings"),
    ("maester", "denselink.maester.settings", "MaesterSettings"),
    ("maester.infer", "denselink.maester.settings", "MaesterInferSettings"),
    ("foundation.sam", "denselink.foundation.settings", "FoundationSettings"),
    ("foundation.musam", "denselink.foundation.settings", "FoundationSettings"),
    ("tracking.settings", "denselink.tracking.settings", "TrackastraSettings"),
    ("table1.settings", "denselink.evaluate.settings", "TableSettings"),
    ("appendix_c.settings", "denselink.figures.settings", "FigureSettings"),
)


def _sections(config: dict[str, Any], dotted: str) -> list[tuple[str, Any]]:
    """(concrete key, value) of every config section matching ``dotted``."""
    found: list[tuple[str, Any]] = [("", config)]
    for part in dotted.split("."):
        step = []
        for key, node in found:
            if not isinstance(node, dict):
                continue
            names = list(node) if part == "*" else [part] if part in node else []
            step += [(f"{key}.{name}".lstrip("."), node[name]) for name in names]
        found = step
    return found


def check_stage_settings(config: dict[str, Any]) -> None:
    """Parse every settings section of ``config`` with its stage model; ConfigError names the key."""
    for dotted, module_name, model_name in SECTIONS:
        sections = _sections(config, dotted)
        if not sections:
            continue
        model = getattr(importlib.import_module(module_name), model_name)
        for key, section in sections:
            if key == "maester":
                section = {name: section[name] for name in ("model", "train") if name in section}
            load_settings(model, json.dumps(section), origin=key)


def preflight(config: dict[str, Any], workdir: Path, missing: list[str] | None = None) -> dict[str, Path]:
    """Stage settings and paths of a schema-validated config; the resolved paths (see check_config_paths).

    ``missing`` collects absent inputs instead of raising (dry runs).
    """
    check_stage_settings(config)
    return check_config_paths(config, workdir, missing=missing)
