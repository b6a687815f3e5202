"""Variant names: one linking experiment per name, parsed and labelled in one place.

A variant is ``retrained``, ``pretrained`` or ``{embedding}-{agg}-{fusion}`` with ``agg`` in
``centroid|mma`` and ``fusion`` in ``add_wrfeat|add_token|concat``. The embedding is ``sam`` or
``musam`` (optionally ``-{upsampler}``, e.g. ``sam-anyup``) or ``maester-{run}-epoch{N}``.
Example: ``maester-fluo-epoch18249-centroid-add_wrfeat``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from denselink.errors import ConfigError

BASELINES = ("retrained", "pretrained")
AGGREGATIONS = ("centroid", "mma")
FUSIONS = ("add_wrfeat", "add_token", "concat")
FOUNDATION_BACKBONES = ("sam", "musam")

AGG_LABELS = {"centroid": "Centroid", "mma": "MMA"}
BACKBONE_LABELS = {"sam": "SAM (vit_b)", "musam": "μSAM (vit_b_lm)", "maester": "MAESTER"}
BASELINE_LABELS = {"retrained": "Trackastra (re-trained)", "pretrained": "Trackastra (pretrained)"}

_NAME = re.compile(r"^(?P<embedding>.+)-(?P<agg>[a-z]+)-(?P<fusion>[a-z_]+)$")
_MAESTER = re.compile(r"^maester-(?P<run>[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?)-epoch(?P<epoch>\d+)$")
_FOUNDATION = re.compile(r"^(?P<backbone>sam|musam)(?:-(?P<upsampler>[A-Za-z0-9_.]+))?$")
_RUN = re.compile(r"^[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*$")


@dataclass(frozen=True)
class Variant:
    """One linking experiment: a baseline, or an embedding fused into Trackastra."""

    kind: str
    embedding: str | None = None
    backbone: str | None = None
    run: str | None = None
    epoch: int | None = None
    agg: str | None = None
    fusion: str | None = None
    upsampler: str | None = None

    @property
    def name(self) -> str:
        """The variant's name, as used in paths and targets."""
        if self.kind in BASELINES:
            return self.kind
        return f"{self.embedding}-{self.agg}-{self.fusion}"

    @property
    def label(self) -> str:
        """Row label as in the paper's Table 1 (e.g. ``SAM (vit_b)``, ``Trackastra (re-trained)``)."""
        if self.kind in BASELINES:
            return BASELINE_LABELS[self.kind]
        return BACKBONE_LABELS[str(self.backbone)]

    @property
    def long_label(self) -> str:
        """Label that also names the MAESTER run and epoch (e.g. ``MAESTER (fluo, epoch 18249)``)."""
        if self.backbone == "maester":
            return f"MAESTER ({self.run}, epoch {self.epoch})"
        return self.label


def embedding_name(backbone: str, run: str | None = None, epoch: int | None = None) -> str:
    """Embedding name: ``sam``, ``musam`` or ``maester-{run}-epoch{epoch}``."""
    if backbone in FOUNDATION_BACKBONES:
        return backbone
    if backbone != "maester":
        raise ConfigError("variant", f"unknown backbone {backbone!r}; expected sam, musam or maester")
    if run is None or epoch is None or not _RUN.match(run) or "-epoch" in run:
        raise ConfigError("variant", f"MAESTER needs a run name and an epoch, got {run!r}, {epoch!r}")
    return f"maester-{run}-epoch{int(epoch)}"


def variant_name(
    kind_or_embedding: str,
    agg: str | None = None,
    fusion: str | None = None,
    *,
    run: str | None = None,
    epoch: int | None = None,
) -> str:
    """Compose a variant name.

    ``variant_name("retrained")``, ``variant_name("sam", "mma", "add_wrfeat")``,
    ``variant_name("maester", "centroid", "add_wrfeat", run="fluo", epoch=18249)`` or with a
    ready embedding name ``variant_name("maester-fluo-epoch18249", "centroid", "add_wrfeat")``.
    """
    if kind_or_embedding in BASELINES:
        return kind_or_embedding
    embedding = (
        embedding_name(kind_or_embedding, run, epoch)
        if kind_or_embedding in (*FOUNDATION_BACKBONES, "maester")
        else kind_or_embedding
    )
    return parse_variant(f"{embedding}-{agg}-{fusion}").name


def parse_variant(name: str) -> Variant:
    """Parse a variant name; raises ``ConfigError`` naming the problem."""
    if name in BASELINES:
        return Variant(kind=name)
    match = _NAME.match(name)
    if not match:
        raise ConfigError(name, "variant must be retrained, pretrained or {embedding}-{agg}-{fusion}")
    embedding, agg, fusion = match["embedding"], match["agg"], match["fusion"]
    if agg not in AGGREGATIONS:
        raise ConfigError(name, f"aggregation {agg!r} is not one of {AGGREGATIONS}")
    if fusion not in FUSIONS:
        raise ConfigError(name, f"fusion {fusion!r} is not one of {FUSIONS}")
    maester = _MAESTER.match(embedding)
    if maester:
        return Variant(
            kind="embedding",
            embedding=embedding,
            backbone="maester",
            run=maester["run"],
            epoch=int(maester["epoch"]),
            agg=agg,
            fusion=fusion,
        )
    foundation = _FOUNDATION.match(embedding)
    if foundation:
        return Variant(
            kind="embedding",
            embedding=embedding,
            backbone=foundation["backbone"],
            agg=agg,
            fusion=fusion,
            upsampler=foundation["upsampler"],
        )
    raise ConfigError(name, f"embedding {embedding!r} is not sam[-UPS], musam[-UPS] or maester-RUN-epochN")
