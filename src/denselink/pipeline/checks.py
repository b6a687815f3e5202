"""Checks of a whole workflow config before any job runs: schema, references, stages, protocols, paths.

The JSON schema checks keys, types and ranges (:func:`check_schema`); :func:`check_references` checks
that names used in one section exist in another; rules such as "patch_size must be odd" live in the
stages' pydantic validators, and :func:`check_stage_settings` feeds every config section to the very
model its command parses (:data:`denselink.stages.STAGES`), so such a mistake stops ``snakemake``
(also ``-n``) at start-up instead of failing a job hours into a run.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import referencing
import yaml

from denselink.data.settings import SynthSettings
from denselink.errors import ConfigError
from denselink.maester.settings import PAPER_SAVE_EPOCHS
from denselink.pipeline.grid import appc_studies, study_checkpoints, used_datasets, used_protocols
from denselink.pipeline.jobs import early_stopping
from denselink.pipeline.layout import Layout
from denselink.pipeline.paths import check_config_paths
from denselink.settings import load_settings
from denselink.stages import registered_settings
from denselink.tracking.settings import TrackastraSettings, min_frames
from denselink.vocabulary import MITOCHECK

Config = dict[str, Any]

INSPECTION_FLAGS = {
    "--dry-run", "--dryrun", "--just-print", "--lint", "--dag", "--rulegraph", "--filegraph",
    "--summary", "--detailed-summary", "--list-rules", "--list-target-rules",
}  # fmt: skip


def is_inspection(argv: Sequence[str]) -> bool:
    """True for ``snakemake -n`` and the other DAG inspections (--lint, --rulegraph, ...) in ``argv``.

    Read from the command line: when the Snakefile is parsed no executor (which knows -n) exists yet.
    """
    return any(arg in INSPECTION_FLAGS or re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", arg) for arg in argv)


# --------------------------------------------------------------------------- schema
def _read_schema(path: Path) -> dict[str, Any]:
    """A schema file (YAML or JSON), parsed with libyaml where available (a tenth of a second per read)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(path.read_text(), Loader=loader)  # noqa: S506 (a safe loader)


def _validator(schema_path: Path, fill_defaults: bool = False) -> jsonschema.Validator:
    """A validator of the config schema, resolving its relative ``$ref``s; optionally filling defaults."""

    def retrieve(uri: str) -> referencing.Resource:
        path = schema_path.parent / uri.rsplit("/", 1)[-1]
        return referencing.Resource.from_contents(json.loads(path.read_text()))

    schema = _read_schema(schema_path)
    schema["$id"] = schema_path.resolve().as_uri()
    cls = jsonschema.Draft202012Validator
    if fill_defaults:
        check_properties = cls.VALIDATORS["properties"]

        def properties(validator, props, instance, sub_schema):  # type: ignore[no-untyped-def]
            if isinstance(instance, dict):
                for name, prop in props.items():
                    if "default" in prop and name not in instance:
                        instance[name] = copy.deepcopy(prop["default"])
            yield from check_properties(validator, props, instance, sub_schema)

        cls = jsonschema.validators.extend(cls, {"properties": properties})
    return cls(schema, registry=referencing.Registry(retrieve=retrieve))


def check_schema(config: Config, schema_path: Path) -> Config:
    """Every schema violation at once, each naming its key; then ``config``, its defaults filled in."""
    errors = _validator(schema_path).iter_errors(config)
    problems = [
        f"  {'.'.join(str(p) for p in error.absolute_path) or '<top level>'}: {error.message}"
        for error in sorted(errors, key=lambda e: [str(p) for p in e.absolute_path])
    ]
    if problems:
        raise ConfigError(schema_path, "\n".join(problems))
    _validator(schema_path, fill_defaults=True).validate(config)
    return config


def load_config(paths: Sequence[Path], schema_path: Path) -> Config:
    """Config files merged as Snakemake merges ``--configfile``s, schema-checked, defaults filled in."""
    config: Config = {}
    for path in map(Path, paths):
        if not path.is_file():
            raise ConfigError(path, "config file does not exist")
        _merge(config, yaml.safe_load(path.read_text()) or {})
    check_schema(config, schema_path)
    check_references(config)
    return config


def _merge(base: Config, overlay: Config) -> None:
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


# --------------------------------------------------------------------------- references
def _require(condition: bool, key: str, problem: str) -> None:
    if not condition:
        raise ConfigError(key, problem)


def check_references(cfg: Config) -> None:
    """Names used in one section must exist in another (datasets, runs, checkpoints, sequences)."""
    datasets, runs = cfg["datasets"], cfg["maester"]["runs"]
    saved = set(cfg["maester"]["train"].get("save_epochs", PAPER_SAVE_EPOCHS))  # absent: the model's default
    for name in datasets:
        _require(name != MITOCHECK and "/" not in name, f"datasets.{name}", "reserved or invalid name")
    for run, sources in runs.items():
        for source in sources:
            head, _, tail = source.partition("/")
            _require(
                head == MITOCHECK or (head in datasets and tail in datasets[head]["sequences"]),
                f"maester.runs.{run}",
                f"{source!r} is neither DATASET/SEQ of a configured dataset nor mitocheck/SIZE|plateN",
            )
    table1 = cfg.get("table1", {"datasets": [], "maester": {}, "embeddings": []})  # absent: not run
    for name in table1["datasets"]:
        _require(name in datasets, "table1.datasets", f"{name!r} is not in datasets")
    for name, ref in table1["maester"].items():
        _require(name in datasets, f"table1.maester.{name}", "not in datasets")
        _require(ref["run"] in runs, f"table1.maester.{name}.run", f"{ref['run']!r} is not in maester.runs")
        _require(ref["epoch"] in saved, f"table1.maester.{name}.epoch", "not in maester.train.save_epochs")
    if "maester" in table1["embeddings"]:
        for name in table1["datasets"]:
            _require(name in table1["maester"], "table1.maester", f"no MAESTER checkpoint for {name}")
    if appc_studies(cfg):  # the Appendix C dataset matters only to a study that runs
        dataset = cfg["appendix_c"]["dataset"]
        _require(dataset in datasets, "appendix_c.dataset", f"{dataset!r} is not in datasets")
    for study, run, epoch in study_checkpoints(cfg):
        _require(run in runs, f"appendix_c.{study}", f"run {run!r} is not in maester.runs")
        _require(epoch in saved, f"appendix_c.{study}", f"epoch {epoch} is not in maester.train.save_epochs")
    for protocol, spec in cfg["protocols"].items():
        for direction in spec["directions"]:
            for name in used_datasets(cfg):
                for seq in direction.values():
                    _require(
                        seq in datasets[name]["sequences"],
                        f"protocols.{protocol}.directions",
                        f"sequence {seq!r} is not in datasets.{name}.sequences",
                    )
    check_sequence_lengths(cfg)


# --------------------------------------------------------------------------- sequence lengths
def known_frames(cfg: Config, dataset: str, seq: str) -> int | None:
    """Frames of a sequence where start-up knows them: the synth settings, or a manifest already written."""
    spec = cfg["datasets"][dataset]
    if spec["source"] == "synthetic":
        return (spec.get("synth") or {}).get("n_frames", SynthSettings.model_fields["n_frames"].default)
    path = Path(Layout.of(cfg).manifest(f"{dataset}/{seq}"))
    try:
        return len(json.loads(path.read_text())["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not validated yet: data_validate checks it (--min-frames)


def required_frames(cfg: Config, dataset: str, seq: str) -> tuple[int, str]:
    """(frames, config key): the fewest frames tracking needs of a sequence, and the key that asks it.

    A training sequence holds a window, plus a held-out tail under val_fraction > 0; a direction's
    validation sequence (``val``) holds a window; 0 frames when tracking does not use it.
    """
    if dataset not in used_datasets(cfg):
        return 0, "tracking.settings.window"
    window = cfg["tracking"]["settings"].get("window", TrackastraSettings.model_fields["window"].default)
    needs = [(0, "tracking.settings.window")]
    for protocol in used_protocols(cfg):
        spec = cfg["protocols"][protocol]
        for direction in spec["directions"]:
            if direction["train"] == seq and spec["val_fraction"]:
                needs.append((min_frames(window, spec["val_fraction"]), f"protocols.{protocol}.val_fraction"))
            elif seq in (direction["train"], direction.get("val")):
                needs.append((window, "tracking.settings.window"))
    return max(needs)


def check_sequence_lengths(cfg: Config) -> None:
    """Sequences whose frame count start-up knows must be long enough for tracking (see required_frames)."""
    for name in used_datasets(cfg):
        for seq in cfg["datasets"][name]["sequences"]:
            needed, key = required_frames(cfg, name, seq)
            n_frames = known_frames(cfg, name, seq)
            _require(
                n_frames is None or n_frames >= needed,
                key,
                f"{name}/{seq} has {n_frames} frames; window and validation tail need at least {needed}",
            )


# --------------------------------------------------------------------------- stages, protocols, paths
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
    for entry in registered_settings():
        for dotted in entry.sections:
            for key, section in _sections(config, dotted):
                if entry.pick:
                    section = {name: section[name] for name in entry.pick if name in section}
                load_settings(entry.load(), json.dumps(section), origin=key)


def _used_protocols(config: dict[str, Any]) -> list[str]:
    used = [
        *config.get("table1", {}).get("protocols", []),
        *config.get("appendix_c", {}).get("protocols", []),
    ]
    return [name for name in dict.fromkeys(used) if name in config.get("protocols", {})]


def _clean_problems(key: str, direction: dict[str, str], tail: bool) -> list[tuple[str, str]]:
    """Problems of a ``clean`` direction: validation data held out, not scored; another sequence scored."""
    train, val, scored = direction["train"], direction.get("val"), direction["eval"]
    route = f"direction {train} -> {scored}"
    checks = [
        (val is not None and val == scored, f"val {val} is the scored sequence: test data"),
        (val is not None and val == train, f"val {val} of {route} is its training sequence, not held out"),
        (train == scored, f"{route} scores the sequence it trains on"),
    ]
    problems = [(f"{key}.directions", problem) for failed, problem in checks if failed]
    if val is None and not tail:
        problem = (
            f"clean chooses each checkpoint by its validation loss, but {route} has no validation data "
            f"(give it a val sequence or set {key}.val_fraction > 0)"
        )
        problems.append((f"{key}.val_fraction", problem))
    return problems


def protocol_problems(config: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (config key, problem) that makes a protocol's runs untrainable or mislabelled as configured.

    Early stopping needs validation data (a ``val`` sequence or ``val_fraction`` > 0) in every direction
    of every protocol the config runs; the two kinds of validation data exclude each other; directions
    that share a training sequence (hence a model) share its validation. ``clean`` chooses each
    checkpoint by its validation loss, so every direction needs validation data, and never validates
    on the sequence it trains on or the one it scores, nor scores the sequence it trains on;
    ``paper`` chooses by LNK over every epoch, so it scores all of them.
    """
    problems: list[tuple[str, str]] = []
    for name in _used_protocols(config):
        spec = config["protocols"][name]
        stopping = early_stopping(config, name)
        key = f"protocols.{name}"
        tail = spec.get("val_fraction", 0.0) > 0
        val_of: dict[str, str | None] = {}
        for direction in spec["directions"]:
            train, val = direction["train"], direction.get("val")
            if val is not None and tail:
                problems.append(
                    (f"{key}.val_fraction", "a direction with a val sequence needs val_fraction 0")
                )
            if val_of.setdefault(train, val) != val:
                problems.append((f"{key}.directions", f"directions training on {train} name different val"))
            if name == "clean":
                problems += _clean_problems(key, direction, tail)
            for kind in ("retrained", "embeddings"):
                if stopping.get(kind, {}).get("value") and val is None and not tail:
                    problem = (
                        f"early stopping needs validation data, but {key} trains on {train} without any "
                        f"(give the direction a val sequence or set {key}.val_fraction > 0)"
                    )
                    problems.append((stopping[kind]["key"], problem))
        if name == "paper" and spec.get("epochs", "all") != "all":
            problems.append((f"{key}.epochs", "the paper protocol chooses by LNK over every epoch: use all"))
    return list(dict.fromkeys(problems))


def check_protocols(config: dict[str, Any]) -> None:
    """Raise one ConfigError listing every protocol problem (:func:`protocol_problems`), each with its key.

    A single problem is raised as ``ConfigError(key, problem)``; several as one error on
    ``protocols`` whose lines are ``key: problem``.
    """
    problems = protocol_problems(config)
    if len(problems) == 1:
        raise ConfigError(*problems[0])
    if problems:
        lines = "\n".join(f"  {key}: {problem}" for key, problem in problems)
        raise ConfigError("protocols", f"{len(problems)} protocol problems:\n{lines}")


def preflight(config: dict[str, Any], workdir: Path, missing: list[str] | None = None) -> dict[str, Path]:
    """Stage settings, protocols and paths of a schema-validated config; the resolved paths.

    ``missing`` collects absent inputs instead of raising (dry runs); see check_config_paths.
    """
    check_stage_settings(config)
    check_protocols(config)
    return check_config_paths(config, workdir, missing=missing)
