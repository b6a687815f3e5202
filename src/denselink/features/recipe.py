"""How a feature table was made, recorded at training time and replayed on a new sequence.

A recipe is a JSON-able dict: the aggregation (``agg``), the embedding's ``backbone``
(``maester``, ``sam`` or ``musam``), the settings of the command that computed the embedding,
the weights it used (absolute path and sha256) and, for AnyUp, the commit and weights hash.
:func:`describe_table` reads it from a feature parquet (which records the embedding's attrs; older tables:
from the embedding zarr it names);
:func:`replay` computes the same kind of features for another sequence (own segmentation masks,
no ground truth needed) and refuses weights whose hash differs from the recorded one.
A weights file that has moved since (a results folder copied elsewhere, a command run from another
folder) is found by its hash (:func:`locate`) or named by the user (``--embedding-checkpoint``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import zarr

from denselink.data.manifest import file_sha256
from denselink.errors import CheckpointError, ConfigError, EmbeddingError, FeatureTableError
from denselink.features.aggregate import PROVENANCE_KEYS, aggregate_sequence

log = logging.getLogger(__name__)

BACKBONES = ("maester", "sam", "musam")


def _search_roots(anchors: Iterable[str | Path]) -> list[Path]:
    """The working directory, then each anchor and its parents, nearest first, without repeats."""
    roots: list[Path] = []
    for anchor in [Path.cwd(), *anchors]:
        anchor = Path(anchor).resolve()
        for root in (anchor, *anchor.parents):
            if root not in roots:
                roots.append(root)
    return roots


def locate(recorded: str | Path, sha256: str | None, anchors: Iterable[str | Path] = ()) -> Path | None:
    """Where the file recorded as ``recorded`` with content hash ``sha256`` is now, or None.

    Tried in order: the recorded path (a relative one from the working directory), then the recorded
    path's tails (``results/…/epoch2.pt``, ``…/epoch2.pt``, …) under the working directory, each anchor
    and their parents. A file counts only if its sha256 is ``sha256``; without a recorded hash only
    the recorded path itself counts.
    """
    recorded = Path(recorded)
    if sha256 is None:
        return recorded.resolve() if recorded.is_file() else None
    parts = recorded.parts[1:] if recorded.is_absolute() else recorded.parts
    candidates = [recorded] + [
        root / Path(*parts[k:]) for k in range(len(parts)) for root in _search_roots(anchors)
    ]
    tried: set[Path] = set()
    for candidate in candidates:
        candidate = candidate.resolve()
        if candidate in tried or not candidate.is_file():
            continue
        tried.add(candidate)
        if file_sha256(candidate) == sha256:
            return candidate
    return None


def _recorded_weights(recipe: dict[str, Any]) -> str | None:
    """The weights file the recipe's embedding was computed with (None: registry or random weights)."""
    if recipe["backbone"] == "maester":
        return recipe.get("checkpoint")
    return (recipe.get("settings") or {}).get("checkpoint")


def _resolved(path: Any, sha256: str | None, anchors: Iterable[Path]) -> Any:
    """A recorded weights path made absolute where the file is found by its hash, else as recorded."""
    if not isinstance(path, str) or not path:
        return path
    found = locate(path, sha256, anchors)
    if found is None:
        log.warning("%s (sha256 %s) is not found from here; the recipe records it as given", path, sha256)
        return path
    return str(found)


def describe_table(features: str | Path) -> dict[str, Any] | None:
    """The recipe of a ``features aggregate`` parquet, or None for a table made otherwise."""
    features = Path(features)
    try:
        metadata = pq.read_schema(features).metadata or {}
    except Exception as err:  # pyarrow raises many types for corrupt files
        raise FeatureTableError(features, f"unreadable parquet ({type(err).__name__}: {err})") from err
    if b"denselink" not in metadata:
        return None
    record = json.loads(metadata[b"denselink"])
    embedding = Path(record["embedding"])
    attrs = record.get("embedding_attrs")  # recorded by the aggregation: the volume may be gone (temp())
    if attrs is None:
        try:
            attrs = dict(zarr.open_group(str(embedding), mode="r").attrs)
        except Exception as err:  # zarr raises many types for missing or broken stores
            raise EmbeddingError(embedding, f"the embedding of {features} is unreadable ({err})") from err
    if attrs.get("backbone") not in BACKBONES:
        return None
    # the weights path is relative to where the embedding was computed: found by its hash from here
    anchors = [features.resolve().parent, embedding.resolve().parent]
    sha256 = attrs.get("checkpoint_sha256")
    settings = dict(attrs.get("settings") or {})
    if "checkpoint" in settings:
        settings["checkpoint"] = _resolved(settings["checkpoint"], sha256, anchors)
    recipe = {
        "agg": record["agg"],
        "backbone": attrs["backbone"],
        "settings": settings,
        "checkpoint": _resolved(attrs.get("checkpoint"), sha256, anchors),
        "embedding": str(embedding.resolve()),
    }
    recipe.update({key: attrs[key] for key in PROVENANCE_KEYS if key in attrs})
    return recipe


def find_weights(
    recipe: dict[str, Any], anchors: Iterable[str | Path] = (), override: str | Path | None = None
) -> Path | None:
    """The weights file of ``recipe``, found by its recorded hash, or ``override`` if its hash matches.

    None where the recipe's embedding used no weights file (registry weights, random initialisation).
    """
    recorded, sha256 = _recorded_weights(recipe), recipe.get("checkpoint_sha256")
    what = f"the {recipe['backbone']} checkpoint the model was trained with"
    if override is not None:
        override = Path(override)
        if recorded is None:
            raise ConfigError(
                "--embedding-checkpoint", f"the model's {recipe['backbone']} features used no weights file"
            )
        if not override.is_file():
            raise CheckpointError(override, "file does not exist")
        found = file_sha256(override)
        if sha256 is not None and found != sha256:
            raise CheckpointError(
                override, f"sha256 {found} differs from {sha256}, the hash of {what} ({recorded})"
            )
        return override.resolve()
    if recorded is None:
        return None
    path = locate(recorded, sha256, anchors)
    if path is None:
        raise CheckpointError(
            recorded,
            f"{what} (sha256 {sha256}) is missing, and no file with its hash lies under the model's folder "
            "or its parents; give its new place with --embedding-checkpoint PATH",
        )
    if path != Path(recorded):
        log.info("%s: found by its sha256 at %s", recorded, path)
    return path


def replay(
    recipe: dict[str, Any],
    manifest: str | Path,
    work_dir: str | Path,
    checkpoint: Path | None = None,
) -> Path:
    """Embed and aggregate the sequence of ``manifest`` as ``recipe`` says; returns the parquet.

    ``checkpoint``: the recipe's weights file as :func:`find_weights` returns it (default: found here
    by its recorded hash, searching from the working directory).
    """
    work_dir = Path(work_dir)
    embedding = work_dir / f"{recipe['backbone']}.zarr"
    if checkpoint is None:
        checkpoint = find_weights(recipe)
    if recipe["backbone"] == "maester":
        from denselink.maester.infer import MaesterInferSettings, infer_sequence

        infer_sequence(checkpoint, manifest, embedding, MaesterInferSettings(**recipe["settings"]))
    else:
        from denselink.foundation.embed import FoundationSettings, embed_sequence

        settings = dict(recipe["settings"])
        if checkpoint is not None:
            settings["checkpoint"] = str(checkpoint)
        embed_sequence(manifest, embedding, recipe["backbone"], FoundationSettings(**settings))
    attrs = dict(zarr.open_group(str(embedding), mode="r").attrs)
    for key in PROVENANCE_KEYS:
        if key in recipe and attrs.get(key) != recipe[key]:
            raise CheckpointError(
                recipe.get("checkpoint") or recipe["backbone"],
                f"{key} is {attrs.get(key)} now but was {recipe[key]} when the model was trained",
            )
    table = work_dir / f"{recipe['backbone']}-{recipe['agg']}.parquet"
    aggregate_sequence(embedding, manifest, recipe["agg"], table)
    log.info("features of %s recomputed as at training: %s", manifest, table)
    return table
