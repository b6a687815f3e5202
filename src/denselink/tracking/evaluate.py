"""``denselink tracking evaluate``: link the eval sequence with every checkpoint and score it.

Each checkpoint of a run (of each run given: ``--model-dir`` takes the seeds of a cell, with one
``--seed``, ``--out`` and ``--res-dir`` each) links the GT detections of the eval sequence (greedy,
as trackastra's ``track(..., mode="greedy")``) and is scored with LNK/TRA/DET against the sequence's
GT. All checkpoints of all runs are scored in this one process from the sequence's score cache
(detection features, frame labels, GT graph: ``tracking score-cache``, built once per sequence, or here when
``--score-cache`` is not given), so a checkpoint costs only its own predictions, linking and
scoring on arrays; up to ``MODELS_PER_PASS`` checkpoints share one pass over the windows and
their weight-independent inputs (:mod:`denselink.tracking.associations`). The metrics JSON's top
level holds the checkpoint chosen by the protocol: ``clean`` picks the lowest val_loss (known
before scoring), ``paper`` the best LNK of this seed (the authors' per-epoch-mean choice over
seeds is made by the table step). The protocol must be true of each run: ``clean`` refuses a run
whose config.json shows no validation data, or training or validation on the scored sequence
(:mod:`denselink.tracking.provenance`); ``--train-seq`` / ``--eval-seq`` must name the data the run
trained on and is scored on; the metrics JSON records the run's ``val_seq`` and ``val_fraction``.
The CTC result of the chosen checkpoint is kept in ``--res-dir``. ``--pretrained`` scores
trackastra's published model instead; when its folder is
absent the metrics JSON says ``"status": "skipped"`` with the reason.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from denselink import arg_types
from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser, start
from denselink.data.manifest import SequenceManifest, load_manifest
from denselink.device import device_record
from denselink.errors import CheckpointError, ConfigError
from denselink.evaluate.metrics import SCORES, metrics_record, write_metrics
from denselink.filenames import RUN_CONFIG, list_checkpoints
from denselink.torch_files import load_torch_file
from denselink.tracking.associations import Nodes, attention_key, greedy_link, predict_associations
from denselink.tracking.fusion import FeatureTable, check_same_columns
from denselink.tracking.geff_out import geff_beside, write_geff
from denselink.tracking.predict import (
    check_fusion,
    load_checkpoint,
    load_trackastra_folder,
    sequence_windows,
    write_ctc,
)
from denselink.tracking.prepare import check_manifest
from denselink.tracking.provenance import RunProvenance, check_protocol, run_provenance
from denselink.tracking.score_cache import ScoreCache, build_score_cache, load_score_cache
from denselink.tracking.scoring import GroundTruth, score_linking
from denselink.tracking.settings import TrackastraSettings
from denselink.vocabulary import FOUNDATION_BACKBONES, PUBLISHED_MODEL, parse_variant, variant_name

log = logging.getLogger(__name__)
COMMAND = "tracking evaluate"
PRETRAINED_NAMES = ("general_2d", "ctc")
MODELS_PER_PASS = 16  # checkpoints predicted together in one pass over the windows


def choose_epoch(rows: list[dict[str, Any]], protocol: str) -> dict[str, Any]:
    """The row chosen by ``protocol``: clean -> lowest val_loss, paper -> highest LNK (earliest on ties)."""
    key = "val_loss" if protocol == "clean" else "LNK"
    scored = [row for row in rows if row.get(key) is not None and math.isfinite(row[key])]
    if not scored:
        hint = " (train with val_fraction > 0 or --val-data)" if protocol == "clean" else ""
        raise ConfigError("--protocol", f"protocol {protocol!r} needs a finite {key} for some epoch{hint}")
    sign = 1 if protocol == "clean" else -1
    return min(scored, key=lambda row: (sign * row[key], row["epoch"]))


def resolve_pretrained(spec: str) -> Path:
    """A model folder path, or one of trackastra's names resolved to trackastra's download cache."""
    if spec in PRETRAINED_NAMES and not Path(spec).exists():
        return Path(str(files("trackastra").joinpath(".models"))) / spec
    return Path(spec)


def _score_linking(graph, truth: GroundTruth, name: str) -> dict[str, float]:
    scores = score_linking(graph, truth)
    if scores is None:
        # no detection: the AOGMs equal the cost of building the GT from nothing
        log.warning("%s: the linking holds no detection; LNK, TRA and DET are 0", name)
        return {"LNK": 0.0, "TRA": 0.0, "DET": 0.0}
    return {key: scores[key] for key in SCORES}


@dataclass(frozen=True)
class RunOutputs:
    """One seed's run and where its scores go."""

    model_dir: Path
    out: Path  # metrics JSON
    res_dir: Path  # CTC result of the chosen checkpoint
    meta: dict[str, Any] = field(default_factory=dict)  # dataset, variant, seed, ... of the record
    geff: bool = False  # also write the chosen result as geff beside res_dir (geff_out.geff_beside)


@dataclass
class EvalSequence:
    """The eval sequence as every run scored on it needs it, read once."""

    manifest: SequenceManifest
    cache: ScoreCache
    truth: GroundTruth
    nodes: Nodes
    table: FeatureTable | None
    windows: dict[int, list[dict]] = field(default_factory=dict)  # by window size

    @cached_property
    def masks(self) -> np.ndarray:
        """The sequence's masks (int32), read on first use."""
        return self.manifest.read_masks().astype(np.int32)

    def windows_of(self, size: int) -> list[dict]:
        """The sequence's windows of ``size`` frames (learned features appended), built on first use."""
        if size not in self.windows:
            self.windows[size] = sequence_windows(self.cache.features, size, self.table)
        return self.windows[size]


def evaluate_run(
    model_dir: Path,
    manifest_path: Path,
    out: Path,
    res_dir: Path,
    protocol: str,
    settings: TrackastraSettings,
    features: Path | None = None,
    epochs: str = "all",
    meta: dict[str, Any] | None = None,
    score_cache: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Score the checkpoints of ``model_dir`` on the sequence of ``manifest_path``; write metrics JSON.

    Existing ``out`` and ``res_dir`` are replaced only if this command wrote them (or ``force``).
    """
    run = RunOutputs(Path(model_dir), Path(out), Path(res_dir), meta or {})
    (record,) = evaluate_runs([run], manifest_path, protocol, settings, features, epochs, score_cache, force)
    return record


def evaluate_runs(
    runs: list[RunOutputs],
    manifest_path: Path,
    protocol: str,
    settings: TrackastraSettings,
    features: Path | None = None,
    epochs: str = "all",
    score_cache: Path | None = None,
    force: bool = False,
) -> list[dict[str, Any]]:
    """:func:`evaluate_run` for several runs (a cell's seeds) on one eval sequence, read once."""
    for run in runs:
        check_output(run.out, COMMAND, force)
        check_output(run.res_dir, COMMAND, force)
    manifest = load_manifest(manifest_path)
    check_manifest(manifest, manifest_path)
    table = FeatureTable(features) if features is not None else None
    if epochs == "chosen" and protocol == "paper":
        log.info("protocol 'paper' chooses by LNK, so every epoch is scored")
        epochs = "all"
    plans = [plan_scoring(run, table, protocol, epochs, manifest) for run in runs]
    if score_cache is not None:
        cache = load_score_cache(score_cache, manifest, settings.ndim)
    else:
        cache = build_score_cache(manifest, settings.ndim)
    sequence = EvalSequence(
        manifest, cache, GroundTruth.from_cache(cache), Nodes.from_features(cache.features, cache.ndim), table
    )
    records = []
    for k, plan in enumerate(plans, 1):
        log.info("run %d of %d: %s", k, len(plans), plan.run.model_dir)
        records.append(score_run(plan, sequence, protocol, settings, force))
    return records


@dataclass
class ScoringPlan:
    """A run's checkpoints, their table rows and which of them to score (checked before any scoring)."""

    run: RunOutputs
    checkpoints: list[Path]
    config: dict[str, Any]
    summaries: list[dict[str, Any]]
    rows: list[dict[str, Any]]
    targets: list[int]
    provenance: RunProvenance | None  # None for a run without config.json (paper only)


def plan_scoring(
    run: RunOutputs, table: FeatureTable | None, protocol: str, epochs: str, manifest: SequenceManifest
) -> ScoringPlan:
    """Read a run's checkpoint summaries and check them against the features and the protocol."""
    checkpoints = list_checkpoints(run.model_dir)
    config_path = run.model_dir / RUN_CONFIG
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    provenance = check_provenance(run, config, protocol, manifest)
    summaries = [_summary(path) for path in checkpoints]
    fused = bool(summaries[0]["fusion_config"])
    if fused != (table is not None):
        raise ConfigError("--features", "a fused run needs --features of the eval sequence; a plain run none")
    if table is not None:
        check_same_columns(table, config.get("features"), summaries[0]["fusion_config"].get("embed_dim"))
    if "variant" not in run.meta:
        variant = default_variant({**summaries[0], **config})
        if variant is None:
            log.warning("%s: its features name no embedding: no variant recorded (--variant)", run.model_dir)
        run = replace(run, meta={**run.meta, "variant": variant})
    rows = [
        {"epoch": info["epoch"], "val_loss": info["val_loss"], "LNK": None, "TRA": None, "DET": None}
        for info in summaries
    ]
    if protocol == "clean":
        choose_epoch(rows, protocol)
    targets = list(range(len(rows)))
    if epochs == "chosen":
        targets = [rows.index(choose_epoch(rows, protocol))]
    return ScoringPlan(run, checkpoints, config, summaries, rows, targets, provenance)


def check_provenance(
    run: RunOutputs, config: dict[str, Any], protocol: str, manifest: SequenceManifest
) -> RunProvenance | None:
    """The run's provenance, checked against ``protocol`` and the sequence labels given for its metrics.

    ``clean`` needs the run's config.json (how it was validated); ``paper`` takes any run.
    """
    if not config:
        if protocol == "clean":
            raise ConfigError(run.model_dir / RUN_CONFIG, "missing: cannot tell how the run was validated")
        return None
    provenance = run_provenance(run.model_dir, config)
    labels = {
        "--train-seq": ("train_seq", provenance.train_seq),
        "--eval-seq": ("eval_seq", manifest.sequence),
    }
    for flag, (key, actual) in labels.items():
        if run.meta.get(key) is not None and str(run.meta[key]) != actual:
            raise ConfigError(flag, f"{run.model_dir}: labelled {run.meta[key]}, but the data is {actual}")
    check_protocol(protocol, provenance, manifest.dataset, manifest.sequence)
    return provenance


def score_run(
    plan: ScoringPlan, sequence: EvalSequence, protocol: str, settings: TrackastraSettings, force: bool
) -> dict[str, Any]:
    """Score the planned checkpoints, keep the chosen one's CTC result, write the metrics JSON."""
    checkpoints, rows, targets = plan.checkpoints, plan.rows, plan.targets
    table, cache, best_graph = sequence.table, sequence.cache, None
    progress = tqdm(total=len(targets), desc=f"scoring {plan.run.model_dir}", unit="checkpoint")
    for group in _passes(plan.summaries, targets):
        models = [load_checkpoint(checkpoints[i])[0] for i in group]
        for i, model in zip(group, models, strict=True):
            check_fusion(model, table)
            if model.config["coord_dim"] != cache.ndim:
                raise CheckpointError(
                    checkpoints[i], f"a {model.config['coord_dim']}D model, a {cache.ndim}D cache"
                )
        windows = sequence.windows_of(models[0].config["window"])
        found = predict_associations(models, windows, sequence.nodes, settings.edge_threshold)
        for i, assoc in zip(group, found, strict=True):
            graph = greedy_link(sequence.nodes, assoc, allow_divisions=settings.link_mode == "greedy")
            rows[i].update(_score_linking(graph, sequence.truth, f"epoch {rows[i]['epoch']}"))
            log.info("epoch %d: %s", rows[i]["epoch"], {k: round(rows[i][k], 4) for k in SCORES})
            if choose_epoch([rows[j] for j in targets if rows[j]["LNK"] is not None], protocol) is rows[i]:
                best_graph = graph
            progress.update()
    progress.close()
    chosen = choose_epoch([rows[i] for i in targets], protocol)
    with atomic_path(plan.run.res_dir, COMMAND, force) as tmp_res:
        write_ctc(best_graph, sequence.masks, tmp_res)
    if plan.run.geff:
        write_geff(best_graph, sequence.masks, geff_beside(plan.run.res_dir), COMMAND, force)
    meta = {**_default_meta(plan.config, sequence.manifest), **plan.run.meta}
    if plan.provenance is not None:  # how the run was validated, beside the protocol it is scored under
        val = plan.provenance.val
        meta |= {"val_seq": None if val is None else val[1], "val_fraction": plan.provenance.val_fraction}
    record = metrics_record(
        **meta,
        protocol=protocol,
        checkpoint=str(checkpoints[rows.index(chosen)]),
        scores=chosen,
        per_epoch=rows,
        epoch=chosen["epoch"],
        **device_record(torch.device("cpu")),  # checkpoints are loaded onto and run on the CPU
    )
    write_metrics(plan.run.out, record, COMMAND, force)
    return record


def _summary(path: Path) -> dict[str, Any]:
    """A checkpoint's epoch, val_loss and configs (its tensors mapped, not read: the model is built later)."""
    record = load_torch_file(path, mmap=True)
    try:
        return {
            "epoch": int(record["epoch"]),
            "val_loss": record.get("val_loss"),
            "fusion_config": record.get("fusion_config"),
            "model_config": dict(record["model_config"]),
        }
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        problem = f"not a `tracking train` checkpoint ({type(err).__name__}: {err})"
        raise CheckpointError(path, problem) from err


def _passes(summaries: list[dict[str, Any]], targets: Iterable[int]) -> list[list[int]]:
    """The targets in order, in groups of at most ``MODELS_PER_PASS`` that share one window pass."""
    keys = {i: attention_key(summaries[i]["model_config"]) for i in targets}
    groups = []
    for _, run in itertools.groupby(targets, key=keys.__getitem__):
        run = list(run)
        groups += [run[k : k + MODELS_PER_PASS] for k in range(0, len(run), MODELS_PER_PASS)]
    return groups


def default_variant(config: dict[str, Any]) -> str | None:
    """The variant name of a run scored without ``--variant`` (one :func:`parse_variant` reads), or None.

    ``retrained`` for a plain run; for a fused run ``{embedding}-{agg}-{fusion}`` from its feature
    table's recipe (the embedding volume's name, else its SAM/μSAM backbone, and the aggregation) and
    its fusion mode. None when the features name no embedding (a table made outside the workflow):
    the metrics then record no variant, and Table 1 refuses them naming the file.
    """
    fusion = (config.get("fusion_config") or {}).get("fusion")
    if not fusion:
        return "retrained"
    recipe = config.get("features_recipe") or {}
    if not recipe.get("embedding") or not recipe.get("agg"):
        return None
    try:
        return variant_name(Path(recipe["embedding"]).stem, recipe["agg"], fusion)
    except ConfigError:
        if recipe.get("backbone") in FOUNDATION_BACKBONES:  # a volume named otherwise: its backbone names it
            return variant_name(recipe["backbone"], recipe["agg"], fusion)
        return None


def _default_meta(config: dict[str, Any], manifest) -> dict[str, Any]:
    return {
        "dataset": config.get("dataset", manifest.dataset),
        "seed": int(config.get("seed", 0)),
        "train_seq": config.get("train_seq", ""),
        "eval_seq": manifest.sequence,
    }


def evaluate_pretrained(
    spec: str,
    manifest_path: Path,
    out: Path,
    res_dir: Path,
    protocol: str,
    settings: TrackastraSettings,
    meta: dict[str, Any] | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Score trackastra's published model; a skipped record when its folder is absent."""
    check_output(out, COMMAND, force)
    check_output(res_dir, COMMAND, force)
    manifest = load_manifest(manifest_path)
    check_manifest(manifest, manifest_path)
    published = parse_variant(PUBLISHED_MODEL)
    defaults = {"dataset": manifest.dataset, "variant": published.name, "seed": published.fixed_seed}
    meta = {**defaults, "train_seq": "", **(meta or {})}  # "": scored without a training sequence
    meta["eval_seq"] = meta.get("eval_seq") or manifest.sequence
    folder = resolve_pretrained(spec)
    if not (folder / "model.pt").is_file():
        reason = (
            f"pretrained trackastra model not found at {folder}; download it (trackastra "
            f"Trackastra.from_pretrained({folder.name!r}) needs internet) or configure its folder"
        )
        log.warning("skipping the pretrained baseline: %s", reason)
        with atomic_path(res_dir, COMMAND, force) as tmp:
            tmp.mkdir()  # the workflow's declared output exists, empty
        record = metrics_record(
            **meta, protocol=protocol, checkpoint=str(folder), scores=None, status="skipped", reason=reason
        )
        write_metrics(out, record, COMMAND, force)
        return record
    model = load_trackastra_folder(folder)
    cache = build_score_cache(manifest, model.config["coord_dim"])
    nodes = Nodes.from_features(cache.features, cache.ndim)
    windows = sequence_windows(cache.features, model.config["window"])
    (assoc,) = predict_associations([model], windows, nodes, settings.edge_threshold)
    graph = greedy_link(nodes, assoc, allow_divisions=settings.link_mode == "greedy")
    scores = _score_linking(graph, GroundTruth.from_cache(cache), str(folder))
    with atomic_path(res_dir, COMMAND, force) as tmp:
        write_ctc(graph, manifest.read_masks().astype(np.int32), tmp)
    record = metrics_record(
        **meta, protocol=protocol, checkpoint=str(folder), scores=scores, **device_record(torch.device("cpu"))
    )
    write_metrics(out, record, COMMAND, force)
    return record


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--model-dir",
        type=Path,
        nargs="+",
        help="run directories of `tracking train` (checkpoints/), e.g. the seeds of a cell, scored in turn",
    )
    source.add_argument(
        "--pretrained", help="trackastra model folder (config.yaml + model.pt) or a name (general_2d, ctc)"
    )
    parser.add_argument("--manifest", type=Path, required=True, help="manifest of the eval sequence (GT)")
    parser.add_argument("--features", type=Path, default=None, help="feature parquet of the eval sequence")
    parser.add_argument(
        "--score-cache",
        type=Path,
        default=None,
        help="score cache of the eval sequence (`tracking score-cache`); built here when omitted",
    )
    parser.add_argument(
        "--protocol",
        choices=("clean", "paper"),
        default="clean",
        help="checkpoint choice; clean only for a run validated on held-out data, scored on another sequence",
    )
    parser.add_argument(
        "--epochs", choices=("all", "chosen"), default="all", help="score all or the chosen one"
    )
    parser.add_argument(
        "--out", type=Path, nargs="+", required=True, help="metrics JSON to write, one per --model-dir"
    )
    parser.add_argument(
        "--res-dir",
        type=Path,
        nargs="+",
        required=True,
        help="CTC result folder of the chosen checkpoint, one per --model-dir",
    )
    parser.add_argument("--dataset", default=None, help="dataset name in the metrics (default: from the run)")
    parser.add_argument(
        "--variant",
        default=None,
        help="variant name (default: retrained, or EMBEDDING-AGG-FUSION of the run's features)",
    )
    parser.add_argument(
        "--seed",
        type=arg_types.seed,
        nargs="+",
        default=None,
        help="seed in each metrics (default: the run's)",
    )
    parser.add_argument("--train-seq", default=None, help="training sequence id (default: the run's)")
    parser.add_argument("--eval-seq", default=None, help="eval sequence id (default: the manifest's)")
    parser.add_argument(
        "--settings", default=None, help="TrackastraSettings (link_mode, edge_threshold used)"
    )
    parser.add_argument(
        "--geff", action="store_true", help="also write each chosen result as geff: {res-dir}.geff.zarr"
    )
    add_force_flag(parser)
    return parser


def _run_outputs(args: argparse.Namespace) -> list[Path]:
    """The scores file and CTC result folder of every run, one of each per ``--model-dir``."""
    runs = len(args.model_dir) if args.model_dir is not None else 1
    for flag, values in (("--out", args.out), ("--res-dir", args.res_dir), ("--seed", args.seed)):
        if values is not None and len(values) != runs:
            raise ConfigError(flag, f"{len(values)} given for {runs} run(s): one per --model-dir")
    return [path for pair in zip(args.out, args.res_dir, strict=True) for path in pair]


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking evaluate``."""
    args, settings = start(build_parser(), argv, COMMAND, TrackastraSettings, _run_outputs, logs=True)
    runs = len(args.out)
    given = {
        "dataset": args.dataset,
        "variant": args.variant,
        "train_seq": args.train_seq,
        "eval_seq": args.eval_seq,
    }
    meta = {key: value for key, value in given.items() if value is not None}
    seeds = args.seed or [None] * runs
    if args.pretrained is not None:
        if args.features is not None or args.score_cache is not None:
            raise ConfigError(
                "--features", "the pretrained model is scored alone (no --features, --score-cache)"
            )
        if args.geff:
            raise ConfigError("--geff", "is written for trained runs (--model-dir), not --pretrained")
        meta |= {"seed": seeds[0]} if seeds[0] is not None else {}
        evaluate_pretrained(args.pretrained, args.manifest, args.out[0], args.res_dir[0], args.protocol,
                            settings, meta, args.force)  # fmt: skip
        return 0
    outputs = [
        RunOutputs(model_dir, out, res_dir, meta | ({"seed": seed} if seed is not None else {}), args.geff)
        for model_dir, out, res_dir, seed in zip(args.model_dir, args.out, args.res_dir, seeds, strict=True)
    ]
    evaluate_runs(outputs, args.manifest, args.protocol, settings, args.features, args.epochs,
                  args.score_cache, args.force)  # fmt: skip
    return 0
