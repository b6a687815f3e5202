"""Path safety: resolve every path of the workflow config and check it before any job runs.

Relative paths in the config are relative to the working directory (where Snakemake runs).
The results and data roots may lie anywhere (an absolute path on a scratch filesystem, say), but
neither may be the working directory, a parent of it or the home folder, so a typo such as
``results_root: ..`` or ``/`` cannot spread outputs over the user's folders. Dataset and MAESTER
run names must stay inside their roots. Writers use :func:`assert_inside` to keep an output under
its root, and never replace what they did not write (:mod:`denselink.atomic`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from denselink.errors import ConfigError
from denselink.vocabulary import FOUNDATION_BACKBONES, MITOCHECK


def resolve_path(value: str | Path, workdir: Path) -> Path:
    """``value`` as an absolute, normalised path (``~`` expanded, relative to ``workdir``), links kept."""
    path = Path(os.path.expanduser(str(value)))
    if not path.is_absolute():
        path = Path(workdir) / path
    return Path(os.path.normpath(os.path.abspath(path)))


def _is_inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def assert_inside(path: str | Path, root: str | Path) -> Path:
    """The resolved ``path`` (symlinks followed); a ConfigError when it lies outside ``root``."""
    resolved, resolved_root = Path(path).resolve(), Path(root).resolve()
    if not _is_inside(resolved, resolved_root):
        raise ConfigError(path, f"resolves to {resolved}, outside {resolved_root}; refusing to write there")
    return resolved


def _get(config: dict[str, Any], dotted: str, default: Any = None) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return node


def _missing(key: str, problem: str, missing: list[str] | None) -> None:
    """Raise for an absent input, or only note it (``missing`` given: a dry run inspecting the DAG)."""
    if missing is None:
        raise ConfigError(key, problem)
    missing.append(f"{key}: {problem}")


def _require_dir(key: str, path: Path, problem: str, missing: list[str] | None = None) -> None:
    if not path.exists():
        _missing(key, f"{path} does not exist ({problem})", missing)
        return
    if not path.is_dir():
        raise ConfigError(key, f"{path} is not a directory ({problem})")


def _not_a_file(key: str, path: Path) -> None:
    if path.exists() and not path.is_dir():
        raise ConfigError(key, f"{path} exists and is not a directory")


def _check_own_folder(key: str, folder: Path, others: dict[str, Path]) -> None:
    """A folder the workflow writes as one output (e.g. a generated miniature) must hold no other output."""
    for other_key, other in others.items():
        if other_key != key and _is_inside(other, folder):
            raise ConfigError(
                key,
                f"{folder} contains {other_key} ({other}); the workflow writes this folder as one output, "
                "so it must be a folder of its own",
            )


def _check_root(key: str, value: str | Path, workdir: Path) -> Path:
    """A results or data root: anywhere but the working directory, a parent of it or the home folder."""
    root = resolve_path(value, workdir)
    if _is_inside(workdir, root):
        what = (
            "the working directory itself"
            if root == workdir
            else f"a parent of the working directory {workdir}"
        )
        raise ConfigError(key, f"{root} is {what}; name a folder of its own (it may lie anywhere else)")
    if root == resolve_path("~", workdir):
        raise ConfigError(key, f"{root} is the home folder; name a folder of its own")
    _not_a_file(key, root)
    return root


def _child(key: str, root: Path, name: str) -> Path:
    """``root/name``, refusing a name that is not one folder inside ``root`` (``..``, ``a/b``, ``/x``)."""
    path = resolve_path(root / name, root)
    if path.parent != root:
        raise ConfigError(key, f"the name {name!r} leaves {root} (resolves to {path})")
    return path


def _check_datasets(config: dict[str, Any], data_root: Path) -> dict[str, Path]:
    paths = {}
    for name, spec in (config.get("datasets") or {}).items():
        if spec.get("folder") and (spec.get("source") != "ctc" or spec.get("download", False)):
            raise ConfigError(
                f"datasets.{name}.folder",
                "only a local CTC dataset (source ctc, download false) has a folder of another name; "
                "generated and downloaded data are written to data_root/NAME",
            )
        key = f"datasets.{name}.folder" if spec.get("folder") else f"datasets.{name}"
        folder = _child(key, data_root, spec.get("folder") or name)
        paths[f"datasets.{name}"] = folder
        if spec.get("source") == "ctc" and not spec.get("download", False):
            # strict even in a dry run: without the data there is no DAG to show
            _require_dir(f"datasets.{name}", folder, "a local CTC dataset (download: false) must be present")
        else:
            _not_a_file(f"datasets.{name}", folder)
    return paths


def _uses_mitocheck(config: dict[str, Any]) -> bool:
    runs = _get(config, "maester.runs", {}) or {}
    return any(source.partition("/")[0] == MITOCHECK for sources in runs.values() for source in sources)


def _check_foundation(config: dict[str, Any], workdir: Path, missing: list[str] | None) -> dict[str, Path]:
    paths: dict[str, Path] = {}
    used = _get(config, "table1.embeddings", []) or []  # no table1: no study embeds with SAM/muSAM
    for backbone in FOUNDATION_BACKBONES:
        spec = _get(config, f"foundation.{backbone}", {}) or {}
        prefix = f"foundation.{backbone}"
        if spec.get("cache_dir"):
            paths[f"{prefix}.cache_dir"] = resolve_path(spec["cache_dir"], workdir)
            _not_a_file(f"{prefix}.cache_dir", paths[f"{prefix}.cache_dir"])
        if spec.get("checkpoint"):
            path = resolve_path(spec["checkpoint"], workdir)
            paths[f"{prefix}.checkpoint"] = path
            if backbone in used and not path.is_file():
                _missing(f"{prefix}.checkpoint", f"{path} is not an existing checkpoint file", missing)
        anyup = spec.get("anyup") or {}
        if anyup.get("weights_path"):
            path = resolve_path(anyup["weights_path"], workdir)
            paths[f"{prefix}.anyup.weights_path"] = path
            if backbone in used and not path.is_file():
                _missing(f"{prefix}.anyup.weights_path", f"{path} is not an existing weights file", missing)
        if anyup.get("source") == "local":
            path = resolve_path(anyup.get("repo", ""), workdir)
            paths[f"{prefix}.anyup.repo"] = path
            if backbone in used and spec.get("upsampler", "anyup") == "anyup":
                _require_dir(f"{prefix}.anyup.repo", path, "anyup.source is local: a clone of AnyUp", missing)
                if path.is_dir() and not (path / "hubconf.py").is_file():
                    raise ConfigError(
                        f"{prefix}.anyup.repo", f"{path} holds no hubconf.py (not an AnyUp clone)"
                    )
    return paths


def _check_pretrained(config: dict[str, Any], workdir: Path) -> dict[str, Path]:
    spec = _get(config, "tracking.pretrained_model")
    if not spec:
        return {}
    path = resolve_path(spec, workdir)
    if not path.exists():
        return {}  # a trackastra name, or an absent folder: evaluate writes a "skipped" record
    if not (path / "model.pt").is_file():
        raise ConfigError("tracking.pretrained_model", f"{path} exists but holds no model.pt")
    return {"tracking.pretrained_model": path}


def _check_runs(config: dict[str, Any], results_root: Path) -> None:
    runs_root = results_root / "maester"
    for run in _get(config, "maester.runs", {}) or {}:
        _child(f"maester.runs.{run}", runs_root, run)


def check_config_paths(
    config: dict[str, Any], workdir: Path, missing: list[str] | None = None
) -> dict[str, Path]:
    """Resolve and check every path of a (schema-validated) workflow config.

    Returns ``{dotted config key: absolute path}``. Raises a ConfigError naming the key and the
    path when an input that must exist is missing, when a folder is a file, when a root is
    ``workdir``, a parent of it or the home folder, or when a dataset or run name leaves its root.
    With a ``missing`` list, absent inputs are appended to it instead of raising, so a dry run can
    show the DAG of an experiment whose data is not in place yet.
    """
    workdir = resolve_path(workdir, Path.cwd())
    paths = {"results_root": _check_root("results_root", config.get("results_root", "results"), workdir)}
    paths["data_root"] = _check_root("data_root", config.get("data_root", "data"), workdir)
    paths.update(_check_datasets(config, paths["data_root"]))
    _check_runs(config, paths["results_root"])
    mitocheck = config.get("mitocheck") or {}
    paths["mitocheck.root"] = resolve_path(mitocheck.get("root", "data/mitocheck"), workdir)
    if mitocheck.get("source", "local") == "synthetic":  # a generated root is an output: same rules
        _check_root("mitocheck.root", paths["mitocheck.root"], workdir)
        _check_own_folder("mitocheck.root", paths["mitocheck.root"], paths)
    if mitocheck.get("source", "local") == "local" and _uses_mitocheck(config):
        _require_dir(
            "mitocheck.root", paths["mitocheck.root"], "maester.runs use local Mitocheck plates", missing
        )
    else:
        _not_a_file("mitocheck.root", paths["mitocheck.root"])
    paths.update(_check_foundation(config, workdir, missing))
    paths.update(_check_pretrained(config, workdir))
    return paths
