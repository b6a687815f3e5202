"""How a feature table was made, recorded at training time and replayed on a new sequence.

A recipe is a JSON-able dict: the aggregation (``agg``), the embedding's ``backbone``
(``maester``, ``sam`` or ``musam``), the settings of the command that computed the embedding,
the weights it used (absolute path and sha256) and, for AnyUp, the commit and weights hash.
:func:`describe_table` reads it from a feature parquet (which records the embedding's attrs; older tables:
from the embedding zarr it names);
:func:`replay` computes the same kind of features for another sequence (own segmentation masks,
no ground truth needed) and refuses weights whose hash differs from the recorded one.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import zarr

from denselink.errors import CheckpointError, EmbeddingError, FeatureTableError

log = logging.getLogger(__name__)

BACKBONES = ("maester", "sam", "musam")
# embedding attrs that identify the weights; replaying must reproduce them exactly
PROVENANCE_KEYS = ("checkpoint_sha256", "anyup_commit", "anyup_weights_sha256")


def _absolute(path: Any) -> Any:
    """An existing relative path made absolute (the table may be replayed from another directory)."""
    if isinstance(path, str) and path and Path(path).exists():
        return str(Path(path).resolve())
    return path


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
    settings = dict(attrs.get("settings") or {})
    if "checkpoint" in settings:
        settings["checkpoint"] = _absolute(settings["checkpoint"])
    recipe = {
        "agg": record["agg"],
        "backbone": attrs["backbone"],
        "settings": settings,
        "checkpoint": _absolute(attrs.get("checkpoint")),
        "embedding": str(embedding.resolve()),
    }
    recipe.update({key: attrs[key] for key in PROVENANCE_KEYS if key in attrs})
    return recipe


def replay(recipe: dict[str, Any], manifest: str | Path, work_dir: str | Path) -> Path:
    """Embed and aggregate the sequence of ``manifest`` as ``recipe`` says; returns the parquet."""
    from denselink.features.aggregate import aggregate_sequence

    work_dir = Path(work_dir)
    embedding = work_dir / f"{recipe['backbone']}.zarr"
    if recipe["backbone"] == "maester":
        from denselink.maester.infer import MaesterInferSettings, infer_sequence

        checkpoint = recipe.get("checkpoint")
        if not checkpoint or not Path(checkpoint).is_file():
            raise CheckpointError(
                str(checkpoint), "the MAESTER checkpoint the model was trained with is missing"
            )
        infer_sequence(checkpoint, manifest, embedding, MaesterInferSettings(**recipe["settings"]))
    else:
        from denselink.foundation.embed import FoundationSettings, embed_sequence

        embed_sequence(manifest, embedding, recipe["backbone"], FoundationSettings(**recipe["settings"]))
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
