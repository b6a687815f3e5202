"""The experiment's vocabulary: every name a config, a path or a table uses, defined once.

Fusion modes, aggregations, backbones, baselines, protocols and Appendix C studies are declared
here; the config schema's enums (workflow/schemas/build_stage_schemas.py), the settings models'
``Literal`` types, the workflow's wildcard constraints and the table labels derive from them.
Adding a fusion mode means adding it to :data:`FUSIONS` plus its implementation in
:data:`denselink.tracking.fusion.FUSION_IMPLEMENTATIONS` (importing that module fails while one is missing).

A variant is ``retrained``, ``pretrained`` or ``{embedding}-{agg}-{fusion}``. The embedding is
``sam`` or ``musam`` (optionally ``-{upsampler}``, e.g. ``sam-anyup``) or ``maester-{run}-epoch{N}``.
Example: ``maester-fluo-epoch18249-centroid-add_wrfeat``. Controls: ``maester-{run}-init`` (the
run's seeded initial weights, before any step) and ``handcrafted`` (no weights; agg ``mma``).
A run name (:data:`RUN_NAME`) has no dash,
so every dash of a variant name separates its parts. :func:`parse_variant` and :func:`variant_name`
are the one grammar of these names. Name templates (:data:`MAESTER_EMBEDDING`, the file names of
:mod:`denselink.filenames`, the output paths of :mod:`denselink.pipeline.layout`) are filled by
:func:`fill`; :func:`template_regex` parses the embedding and checkpoint names back. The config
schema's name patterns are :data:`NAME_PATTERNS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from denselink.errors import ConfigError

BASELINES = ("retrained", "pretrained")
AGGREGATIONS = ("centroid", "mma", "mask_centroid")
FUSIONS = ("add_wrfeat", "add_token", "concat", "etultra")
FOUNDATION_BACKBONES = ("sam", "musam")
BACKBONES = (*FOUNDATION_BACKBONES, "maester")
PROTOCOLS = ("clean", "paper")
STUDIES = ("compute_scaling", "transfer", "data_scaling")
HANDCRAFTED = "handcrafted"
"""The hand-crafted appearance feature (no weights): variants ``handcrafted-mma-{fusion}``."""
MAESTER_INIT = "init"
"""The epoch field of a MAESTER run's seeded initial weights, before any step: ``maester-{run}-init``."""
MITOCHECK = "mitocheck"
"""The data-source name of the Mitocheck plates (``mitocheck/plateN``, ``mitocheck/SIZE``)."""
PUBLISHED_MODEL = "pretrained"
"""The baseline of trackastra's published model: not trained here, scored once (seed 0), no train sequence."""

FusionMode = Literal[FUSIONS]  # type: ignore[valid-type]
Aggregation = Literal[AGGREGATIONS]  # type: ignore[valid-type]
Protocol = Literal[PROTOCOLS]  # type: ignore[valid-type]

AUTHORS_FUSION: FusionMode = "add_token"
"""The fusion mode of the authors' code (their published Table 1 runs)."""

AGG_LABELS = {"centroid": "Centroid", "mma": "MMA", "mask_centroid": "Centroid (mask)"}
BACKBONE_LABELS = {"sam": "SAM (vit_b)", "musam": "μSAM (vit_b_lm)", "maester": "MAESTER"}
BACKBONE_LABELS[HANDCRAFTED] = "Hand-crafted (histogram + gradient energies)"
BASELINE_LABELS = {"retrained": "Trackastra (re-trained)", "pretrained": "Trackastra (pretrained)"}

RUN_NAME = r"[A-Za-z0-9_.]+"
"""A MAESTER run name (a key of ``maester.runs``): letters, digits, dot and underscore, no dash."""
EPOCH = r"0|[1-9][0-9]*"
"""An epoch number as names spell it: decimal, no leading zero (so each epoch has one spelling)."""
DATASET_NAME = r"[A-Za-z0-9][A-Za-z0-9_.+-]*"
"""A dataset name (a key of ``datasets``, a folder of the data root), e.g. ``Fluo-N2DH-SIM+``."""
SEQUENCE_NAME = r"[A-Za-z0-9_.]+"
"""A sequence id of a dataset, e.g. ``01`` (no dash: ``{train}-{eval}`` joins two in a path)."""
MAESTER_EMBEDDING = "maester-{run}-epoch{epoch}"
"""The embedding name of a MAESTER checkpoint (and the wildcards of ``maester_infer``'s output)."""

NAME_PATTERNS = {
    "RunName": (RUN_NAME, "a MAESTER run name: letters, digits, dot and underscore (no dash)"),
    "DatasetName": (DATASET_NAME, "a dataset name: letters, digits and _ . + - (e.g. Fluo-N2DH-SIM+)"),
    "SequenceName": (SEQUENCE_NAME, "a sequence id: letters, digits, dot and underscore (no dash)"),
}
"""The config schema's name patterns (workflow/schemas/build_stage_schemas.py anchors them)."""

_FIELD = re.compile(r"\{(\w+)(?::([^{}]*))?\}")
"""A template field: ``{name}`` or, with a format spec, ``{name:03d}``."""


def fill(template: str, **fields: Any) -> str:
    """``template`` with the given fields filled in (format specs applied); the others stay ``{field}``."""
    return _FIELD.sub(lambda m: format(fields[m[1]], m[2] or "") if m[1] in fields else m[0], template)


def template_regex(template: str, **patterns: str) -> re.Pattern[str]:
    """A regex matching exactly what ``template`` spells, each field a named group of its pattern."""
    parts, end = [], 0
    for match in _FIELD.finditer(template):
        parts += [re.escape(template[end : match.start()]), f"(?P<{match[1]}>{patterns[match[1]]})"]
        end = match.end()
    return re.compile("^" + "".join(parts) + re.escape(template[end:]) + "$")


def one_of(names: object) -> str:
    """Regex matching exactly one of ``names`` (nothing when empty): a wildcard constraint."""
    return "|".join(re.escape(str(n)) for n in sorted(names)) or "(?!x)x"  # type: ignore[call-overload]


_NAME = re.compile(rf"^(?P<embedding>.+)-(?P<agg>{one_of(AGGREGATIONS)})-(?P<fusion>{one_of(FUSIONS)})$")
_MAESTER = template_regex(MAESTER_EMBEDDING, run=RUN_NAME, epoch=EPOCH)
_MAESTER_INIT = re.compile(rf"^maester-(?P<run>{RUN_NAME})-{MAESTER_INIT}$")
_FOUNDATION = re.compile(
    rf"^(?P<backbone>{one_of(FOUNDATION_BACKBONES)})(?:-(?P<upsampler>[A-Za-z0-9_.]+))?$"
)
_RUN = re.compile(rf"^(?:{RUN_NAME})$")


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
        if self.backbone == "maester" and self.epoch is None:
            return f"MAESTER ({self.run}, random initial weights)"
        if self.backbone == "maester":
            return f"MAESTER ({self.run}, epoch {self.epoch})"
        return self.label

    @property
    def trained(self) -> bool:
        """Whether the project trains this variant's linker (not so trackastra's published model)."""
        return self.kind != PUBLISHED_MODEL

    @property
    def fixed_seed(self) -> int | None:
        """The one seed of an untrained variant (0: it is scored once); None when every seed is trained."""
        return None if self.trained else 0

    @property
    def has_train_sequence(self) -> bool:
        """Whether the variant's runs have a training sequence (the published model is scored without one)."""
        return self.trained

    @property
    def tested(self) -> bool:
        """Whether Table 1 tests this variant against the re-trained baseline (an embedding fused in)."""
        return self.kind not in BASELINES

    @property
    def family(self) -> str:
        """Table 1's family of the variant: the baseline's name, else the embedding's backbone."""
        return self.kind if self.kind in BASELINES else str(self.backbone)


def embedding_name(backbone: str, run: str | None = None, epoch: int | None = None) -> str:
    """Embedding name: ``sam``, ``musam`` or :data:`MAESTER_EMBEDDING` (``maester-{run}-epoch{epoch}``)."""
    if backbone in FOUNDATION_BACKBONES:
        return backbone
    if backbone != "maester":
        raise ConfigError("variant", f"unknown backbone {backbone!r}; expected one of {BACKBONES}")
    if run is None or epoch is None or not _RUN.match(run):
        raise ConfigError("variant", f"MAESTER needs a run name and an epoch, got {run!r}, {epoch!r}")
    return fill(MAESTER_EMBEDDING, run=run, epoch=int(epoch))


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
    """Parse a variant name; raises ``ConfigError`` naming the problem (also for no name at all)."""
    if name in BASELINES:
        return Variant(kind=name)
    match = _NAME.match(name) if isinstance(name, str) else None
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
    initial = _MAESTER_INIT.match(embedding)
    if initial:
        fields = dict(kind="embedding", embedding=embedding, agg=agg, fusion=fusion)
        return Variant(**fields, backbone="maester", run=initial["run"])
    if embedding == HANDCRAFTED:
        return Variant(kind="embedding", embedding=embedding, backbone=HANDCRAFTED, agg=agg, fusion=fusion)
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
    raise ConfigError(
        name,
        f"embedding {embedding!r} is not sam[-UPS], musam[-UPS], maester-RUN-epochN, maester-RUN-init "
        "or handcrafted",
    )
