"""The stage registry: every ``denselink`` command, its settings model and the config it reads.

One table serves the CLI dispatcher (:mod:`denselink.cli`), the start-up check that parses each
config section with its command's model (:mod:`denselink.pipeline.checks`), the schema builder
(``workflow/schemas/build_stage_schemas.py``) and the keys the workflow sets per job. Settings
models live in torch-free ``settings`` modules, so reading this table imports no heavy code.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import BaseModel


@dataclass(frozen=True)
class Settings:
    """A settings model, the config sections it parses and the keys the workflow sets per job.

    ``sections`` are dotted config keys (``*`` matches every key of a mapping); ``pick`` keeps only
    these keys of a section (the MAESTER block holds ``model`` and ``train`` beside other keys).
    ``job_keys`` are filled in per job (from a protocol or a variant), so the config schema omits them.
    """

    model: str
    sections: tuple[str, ...]
    pick: tuple[str, ...] = ()
    job_keys: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.model.rsplit(".", 1)[1]

    def load(self) -> type[BaseModel]:
        module, name = self.model.rsplit(".", 1)
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Stage:
    """One ``denselink`` command: its words, its module (with ``main(argv)``) and its settings."""

    words: tuple[str, ...]
    module: str
    summary: str
    settings: Settings | None = None


STAGES: tuple[Stage, ...] = (
    Stage(
        ("data", "synth"),
        "denselink.data.synthetic",
        "generate synthetic CTC sequences",
        Settings("denselink.data.settings.SynthSettings", ("datasets.*.synth",)),
    ),
    Stage(("data", "validate"), "denselink.data.ctc", "validate a CTC sequence, write its manifest"),
    Stage(("data", "download"), "denselink.data.download", "download a CTC dataset (checksummed)"),
    Stage(("data", "downsample"), "denselink.data.downsample", "shrink a CTC dataset by an integer factor"),
    Stage(
        ("data", "mitocheck"),
        "denselink.data.mitocheck",
        "Mitocheck plate manifests and miniatures",
        Settings("denselink.data.settings.MitocheckSynthSettings", ("mitocheck.synth",)),
    ),
    Stage(
        ("maester", "train"),
        "denselink.maester.train",
        "pretrain MAESTER (DDP via torchrun)",
        Settings("denselink.maester.settings.MaesterSettings", ("maester",), pick=("model", "train")),
    ),
    Stage(
        ("maester", "infer"),
        "denselink.maester.infer",
        "cover-and-stride inference into zarr",
        Settings("denselink.maester.settings.MaesterInferSettings", ("maester.infer",)),
    ),
    Stage(
        ("foundation", "embed"),
        "denselink.foundation.embed",
        "SAM / muSAM embeddings, upsampled",
        Settings("denselink.foundation.settings.FoundationSettings", ("foundation.sam", "foundation.musam")),
    ),
    Stage(("features", "aggregate"), "denselink.features.aggregate", "per-cell feature table"),
    Stage(
        ("features", "handcrafted"),
        "denselink.features.handcrafted",
        "hand-crafted appearance feature per cell",
        Settings("denselink.features.handcrafted.HandcraftedSettings", ("features.handcrafted",)),
    ),
    Stage(
        ("tracking", "prepare"),
        "denselink.tracking.prepare",
        "cache trackastra's per-sequence data",
        Settings(
            "denselink.tracking.settings.TrackastraSettings",
            ("tracking.settings",),
            job_keys=("fusion", "val_fraction", "early_stopping"),
        ),
    ),
    Stage(("tracking", "train"), "denselink.tracking.train", "train trackastra (optionally fused)"),
    Stage(
        ("tracking", "score-cache"),
        "denselink.tracking.score_cache",
        "cache what scoring needs of a sequence",
    ),
    Stage(("tracking", "evaluate"), "denselink.tracking.evaluate", "track + score every checkpoint"),
    Stage(("tracking", "track"), "denselink.tracking.track", "link your own movie with a trained model"),
    Stage(
        ("evaluate", "table"),
        "denselink.evaluate.table",
        "Table 1 under a protocol",
        Settings(
            "denselink.evaluate.settings.TableSettings",
            ("table1.settings",),
            job_keys=("protocols", "main_fusion"),
        ),
    ),
    Stage(("evaluate", "ingest"), "denselink.evaluate.ingest", "per-seed CSVs in the authors' format"),
    Stage(("evaluate", "score"), "denselink.evaluate.score", "LNK/TRA/DET of a CTC result folder (JSON)"),
    Stage(
        ("evaluate", "real-gain"),
        "denselink.evaluate.real_gain",
        "the real-data study's arms compared (JSON + forest plot)",
        Settings("denselink.evaluate.real_gain.RealGainSettings", ("real_gain.settings",)),
    ),
    Stage(
        ("figures", "appendix-c"),
        "denselink.figures.appendix_c",
        "Appendix C figures",
        Settings(
            "denselink.figures.settings.FigureSettings",
            ("appendix_c.settings",),
            job_keys=("synthetic_runs",),
        ),
    ),
    Stage(("plan",), "denselink.plan", "jobs, GPU/CPU-hours and disk of the grid"),
    Stage(("init",), "denselink.init", "a starter config for your own CTC dataset folders"),
)
"""Every command once. The tracking commands share TrackastraSettings (one section, given to all three)."""


def settings_of(model_name: str) -> Settings:
    """The registry entry of a settings model, by class name (e.g. ``TrackastraSettings``)."""
    return next(s.settings for s in STAGES if s.settings is not None and s.settings.name == model_name)


def registered_settings() -> tuple[Settings, ...]:
    """Every settings entry once, in registry order."""
    return tuple(s.settings for s in STAGES if s.settings is not None)
