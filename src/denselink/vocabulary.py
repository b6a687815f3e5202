"""The experiment's vocabulary: every name a config, a path or a table uses, defined once.

Fusion modes, aggregations, backbones, baselines, protocols and Appendix C studies are declared
here; the config schema's enums (workflow/schemas/build_stage_schemas.py), the settings models'
``Literal`` types, the workflow's wildcard constraints and the table labels derive from them.
Adding a fusion mode means adding it to :data:`FUSIONS` (and its label) plus its implementation in
:mod:`denselink.tracking.fusion`.

A variant is ``retrained``, ``pretrained`` or ``{embedding}-{agg}-{fusion}``. The embedding is
``sam`` or ``musam`` (optionally ``-{upsampler}``, e.g. ``sam-anyup``) or ``maester-{run}-epoch{N}``.
Example: ``maester-fluo-epoch18249-centroid-add_wrfeat``. :func:`parse_variant` and
:func:`variant_name` are the one grammar of these names.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from denselink.errors import ConfigError

BASELINES = ("retrained", "pretrained")
AGGREGATIONS = ("centroid", "mma", "mask_centroid")
FUSIONS = ("add_wrfeat", "add_token", "concat", "etultra")
FOUNDATION_BACKBONES = ("sam", "musam")
BACKBONES = (*FOUNDATION_BACKBONES, "maester")
PROTOCOLS = ("clean", "paper")
STUDIES = ("compute_scaling", "transfer", "data_scaling")
MITOCHECK = "mitocheck"
"""The data-source name of the Mitocheck plates (``mitocheck/plateN``, ``mitocheck/SIZE``)."""

FusionMode = Literal[FUSIONS]  # type: ignore[valid-type]
Aggregation = Literal[AGGREGATIONS]  # type: ignore[valid-type]
Protocol = Literal[PROTOCOLS]  # type: ignore[valid-type]

AGG_LABELS = {"centroid": "Centroid", "mma": "MMA", "mask_centroid": "Centroid (mask)"}
FUSION_LABELS = {
    "add_wrfeat": "Linear(D -> 7) added to the wrfeat features (paper text)",
    "add_token": "Linear(D -> d_model) added to the token (authors' code)",
    "concat": "features concatenated to the token input",
    "etultra": "Trackastra's pretrained-feature model (trackastra-pretrained-feats)",
}
BACKBONE_LABELS = {"sam": "SAM (vit_b)", "musam": "μSAM (vit_b_lm)", "maester": "MAESTER"}
BASELINE_LABELS = {"retrained": "Trackastra (re-trained)", "pretrained": "Trackastra (pretrained)"}

RUN_PATTERN = r"[A-Za-z0-9_.]+(?:-[A-Za-z0-9_.]+)*?"
"""A MAESTER run name: dot, underscore and alphanumeric words joined by single dashes."""


def one_of(names: object) -> str:
    """Regex matching exactly one of ``names`` (nothing when empty): a wildcard constraint."""
    return "|".join(re.escape(str(n)) for n in sorted(names)) or "(?!x)x"  # type: ignore[call-overload]


_NAME = re.compile(rf"^(?P<embedding>.+)-(?P<agg>{one_of(AGGREGATIONS)})-(?P<fusion>{one_of(FUSIONS)})$")
_MAESTER = re.compile(rf"^maester-(?P<run>{RUN_PATTERN})-epoch(?P<epoch>\d+)$")
_FOUNDATION = re.compile(
    rf"^(?P<backbone>{one_of(FOUNDATION_BACKBONES)})(?:-(?P<upsampler>[A-Za-z0-9_.]+))?$"
)
_RUN = re.compile(rf"^{RUN_PATTERN}$")


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
        raise ConfigError("variant", f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
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
        embedding_name(kind_or_embedding, run, epoch) if kind_or_embedding in BACKBONES else kind_or_embedding
    )
    return parse_variant(f"{embedding}-{agg}-{fusion}").name


def parse_variant(name: str) -> Variant:
    """Parse a variant name; raises ``ConfigError`` naming the problem."""
    if name in BASELINES:
        return Variant(kind=name)
    match = _NAME.match(name)
    if not match:
        raise ConfigError(
            name,
            "variant must be retrained, pretrained or {embedding}-{agg}-{fusion} "
            f"with agg in {AGGREGATIONS} and fusion in {FUSIONS}",
        )
    embedding, agg, fusion = match["embedding"], match["agg"], match["fusion"]
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
