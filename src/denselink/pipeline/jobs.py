"""What one job is given: its settings JSON (config section plus per-job keys) and its resources."""

from __future__ import annotations

import fnmatch
import json
import shlex
from collections.abc import Mapping
from functools import cache
from typing import Any, Protocol

from denselink.vocabulary import Variant, parse_variant

Config = dict[str, Any]


class Wildcards(Protocol):
    """The wildcards of one Snakemake job: each wildcard's value as an attribute (``wildcards.dataset``)."""

    def __getattr__(self, name: str) -> str: ...


@cache
def job_variant(name: str) -> Variant:
    """The parsed ``variant`` wildcard, once per name: a job's input and params functions share the parse."""
    return parse_variant(name)


def settings_json(section: Mapping[str, Any]) -> str:
    """A config section as the JSON string a command's ``--settings`` takes."""
    return json.dumps(section, sort_keys=True)


def protocol_epochs(protocol: Mapping[str, Any], variant: str) -> int | None:
    """Training epochs of ``variant`` under a protocol (first matching ``train_epochs`` pattern), or None."""
    patterns = protocol.get("train_epochs", {})
    return next(
        (epochs for pattern, epochs in patterns.items() if fnmatch.fnmatchcase(variant, pattern)), None
    )


def early_stopping(cfg: Config, protocol: str) -> dict[str, dict[str, Any]]:
    """Early stopping of a protocol's runs per variant kind (``retrained``, ``embeddings``): its value and
    the config key it comes from (``protocols.<name>.early_stopping`` overrides ``tracking.early_stopping``).
    """
    default = cfg.get("tracking", {}).get("early_stopping", {})
    override = cfg.get("protocols", {}).get(protocol, {}).get("early_stopping") or {}
    found = {kind: (value, f"tracking.early_stopping.{kind}") for kind, value in default.items()}
    found |= {
        kind: (value, f"protocols.{protocol}.early_stopping.{kind}") for kind, value in override.items()
    }
    return {kind: {"value": value, "key": key} for kind, (value, key) in found.items()}


def tracking_settings(cfg: Config, protocol: str, variant: str) -> str:
    """Trackastra settings of one job: ``tracking.settings`` plus the keys the protocol and variant set
    (the registry's ``job_keys``, which the config schema leaves out)."""
    parsed, spec = job_variant(variant), cfg["protocols"][protocol]
    stopping = early_stopping(cfg, protocol)["retrained" if parsed.kind == "retrained" else "embeddings"]
    job = {
        "val_fraction": spec["val_fraction"],
        "fusion": parsed.fusion or "none",
        "early_stopping": stopping["value"],
    }
    settings = {**cfg["tracking"]["settings"], **job}
    epochs = protocol_epochs(spec, variant)
    if epochs is not None:
        settings["epochs"] = epochs
    return settings_json(settings)


def job_tracking_settings(cfg: Config, wildcards: Wildcards) -> str:
    """:func:`tracking_settings` of a training or scoring job, by its ``protocol`` and ``variant``."""
    return tracking_settings(cfg, wildcards.protocol, wildcards.variant)


def table_settings(cfg: Config) -> str:
    """Settings of ``evaluate table``: ``table1.settings``, the protocols, main fusion, datasets' roles."""
    job = {"protocols": cfg["table1"]["protocols"], "main_fusion": cfg["tracking"]["fusion"]}
    job["dataset_roles"] = {name: spec.get("role", "study") for name, spec in cfg["datasets"].items()}
    return settings_json({**cfg["table1"]["settings"], **job})


def synthetic_runs(cfg: Config) -> list[str]:
    """MAESTER runs with a generated source: a synthetic dataset's sequence or synthetic Mitocheck plates."""
    datasets = cfg.get("datasets", {})

    def generated(source: str) -> bool:
        name = source.split("/", 1)[0]
        if name == "mitocheck":
            return cfg.get("mitocheck", {}).get("source") == "synthetic"
        return datasets.get(name, {}).get("source") == "synthetic"

    return sorted(run for run, sources in cfg["maester"]["runs"].items() if any(map(generated, sources)))


def figure_settings(cfg: Config) -> str:
    """Settings of ``figures appendix-c``: ``appendix_c.settings`` plus the runs with generated data."""
    return settings_json({**cfg["appendix_c"]["settings"], "synthetic_runs": synthetic_runs(cfg)})


def rule_resources(cfg: Config, rule: str) -> dict[str, Any]:
    """Resources of a rule: ``resources.default`` overridden by ``resources.<rule>``."""
    return {**cfg["resources"]["default"], **cfg["resources"].get(rule, {})}


def slurm_resources(cfg: Config, rule: str) -> dict[str, Any]:
    """A rule's ``resources:`` under the names the Slurm executor plugin reads."""
    spec = rule_resources(cfg, rule)
    return {
        "mem_mb": spec["mem_mb"],
        "runtime": spec["runtime"],
        "cpus_per_task": spec["cpus"],
        "gpu": spec["gpus"],
    }


def maester_launcher(cfg: Config) -> str:
    """``denselink maester train``, or torchrun with one process per GPU when ``maester.procs`` > 1."""
    procs = cfg["maester"]["procs"]
    if procs > 1:
        return f"torchrun --standalone --nproc_per_node {procs} -m denselink.cli maester train"
    return "denselink maester train"


def optional_flags(inputs: Mapping[str, Any], names: tuple[str, ...]) -> str:
    """``--name path`` for each of ``names`` a job's inputs hold (paths shell-quoted)."""
    return " ".join(
        f"--{n.replace('_', '-')} {shlex.quote(str(inputs[n]))}"
        for n in names
        if n in inputs.keys()  # noqa: SIM118 (a Namedlist: `in` tests values)
    )
