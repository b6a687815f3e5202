"""Checks of a whole workflow config before any job runs: stage settings and paths.

The JSON schema checks keys, types and ranges; rules such as "patch_size must be odd" live in the
stages' pydantic validators. :func:`check_stage_settings` feeds every config section to the very
model its command parses, so such a mistake stops ``snakemake`` (also ``-n``) at start-up instead of
failing a job hours into a run.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
from pathlib import Path
from typing import Any

from denselink.errors import ConfigError
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


def protocol_epochs(protocol: dict[str, Any], variant: str) -> int | None:
    """Training epochs of ``variant`` under a protocol (first matching ``train_epochs`` pattern), or None."""
    patterns = protocol.get("train_epochs", {})
    return next(
        (epochs for pattern, epochs in patterns.items() if fnmatch.fnmatchcase(variant, pattern)), None
    )


def _used_protocols(config: dict[str, Any]) -> list[str]:
    used = [
        *config.get("table1", {}).get("protocols", []),
        *config.get("appendix_c", {}).get("protocols", []),
    ]
    return [name for name in dict.fromkeys(used) if name in config.get("protocols", {})]


def check_protocols(config: dict[str, Any]) -> None:
    """A protocol's runs are trainable as configured; ConfigError names the key.

    Early stopping needs validation data (a ``val`` sequence or ``val_fraction`` > 0) in every direction
    of every protocol the config runs; the two kinds of validation data exclude each other; directions
    that share a training sequence (hence a model) share its validation; ``clean`` never validates on
    the sequence it scores; ``paper`` chooses by LNK over every epoch, so it scores all of them.
    """
    stopping = config.get("tracking", {}).get("early_stopping", {})
    for name in _used_protocols(config):
        spec = config["protocols"][name]
        key = f"protocols.{name}"
        tail = spec.get("val_fraction", 0.0) > 0
        val_of: dict[str, str | None] = {}
        for direction in spec["directions"]:
            train, val = direction["train"], direction.get("val")
            if val is not None and tail:
                raise ConfigError(
                    f"{key}.val_fraction", "a direction with a val sequence needs val_fraction 0"
                )
            if val_of.setdefault(train, val) != val:
                raise ConfigError(f"{key}.directions", f"directions training on {train} name different val")
            if name == "clean" and val is not None and val == direction["eval"]:
                raise ConfigError(f"{key}.directions", f"val {val} is the scored sequence: test data")
            for kind in ("retrained", "embeddings"):
                if stopping.get(kind) and val is None and not tail:
                    raise ConfigError(
                        f"tracking.early_stopping.{kind}",
                        f"early stopping needs validation data, but {key} trains on {train} without any "
                        f"(give the direction a val sequence or set {key}.val_fraction > 0)",
                    )
        if name == "paper" and spec.get("epochs", "all") != "all":
            raise ConfigError(f"{key}.epochs", "the paper protocol chooses by LNK over every epoch: use all")


def preflight(config: dict[str, Any], workdir: Path, missing: list[str] | None = None) -> dict[str, Path]:
    """Stage settings, protocols and paths of a schema-validated config; the resolved paths.

    ``missing`` collects absent inputs instead of raising (dry runs); see check_config_paths.
    """
    check_stage_settings(config)
    check_protocols(config)
    return check_config_paths(config, workdir, missing=missing)
