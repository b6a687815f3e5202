"""``denselink plan``: jobs, GPU-hours, CPU-hours and disk of a configured grid, before a cluster run.

    denselink plan [--configfile config.yaml ...] [--target table1] [--all-jobs]

The jobs come from Snakemake's own DAG, built in this process as ``snakemake -n`` builds it (rule
and wildcards of every job that would run; ``--all-jobs`` adds ``--forceall``;
:mod:`denselink.dry_run`), so the plan counts exactly what a run would submit.
Each job's cost follows from its wildcards, the config, the sequence sizes (manifests when present,
else workflow/costs.json) and per-step costs recorded per machine kind in workflow/costs.json: CPU
costs are measured (benchmarks/calibrate_costs.py), GPU costs are estimates whose derivation the file
and this command's output state. GPU-hours count GPUs x hours of the GPU rules, CPU-hours cores x hours
of the CPU rules (one thread each, as measured); disk counts what stays after the run (checkpoints,
kept embeddings, feature tables, CTC result masks), and separately what exists only while it runs
(temp() embeddings, MAESTER frame stores). The plan also names the studies the config runs.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from denselink.atomic import add_force_flag, write_json
from denselink.command import command_parser, parse
from denselink.data.scan import SequenceScan, frame_files, scan_sequence
from denselink.data.settings import DATASETS, PLATES
from denselink.dry_run import Job, dry_run
from denselink.errors import ConfigError
from denselink.maester.settings import PAPER_SAVE_EPOCHS
from denselink.pipeline.layout import Layout

COMMAND = "plan"
COSTS = Path("workflow/costs.json")
SCHEMA = Path("workflow/schemas/config.schema.yaml")
DENSE_CHANNELS = {"maester": 192, "foundation": 256}
MASK_RATIO = 67.0
"""Raw uint16 over LZW-compressed size of CTC label masks, the lowest of three datasets' TRA masks
(10 frames each: Fluo-N2DH-SIM+ 67x, Fluo-N2DH-GOWT1 162x, Fluo-C2DL-MSC 190x); result masks are
these masks relabelled by track (denselink.tracking.predict.MASK_COMPRESSION)."""


@dataclass
class Cost:
    """Estimated cost of one job (seconds of GPUs x time or cores x time; bytes)."""

    gpu_s: float = 0.0
    cpu_s: float = 0.0
    disk_kept: float = 0.0
    disk_transient: float = 0.0
    dense_raw: float = 0.0
    """The dense volume a job writes, as raw float16 (before compression and temp())."""

    def __iadd__(self, other: Cost) -> Cost:
        self.gpu_s += other.gpu_s
        self.cpu_s += other.cpu_s
        self.disk_kept += other.disk_kept
        self.disk_transient += other.disk_transient
        self.dense_raw += other.dense_raw
        return self


@dataclass(frozen=True)
class Sequence:
    frames: int
    height: int
    width: int
    cells_per_frame: float

    @property
    def megapixels(self) -> float:
        return self.height * self.width / 1e6


def load_config(configfiles: list[Path]) -> dict[str, Any]:
    """The merged config files with the schema's defaults filled in (as the Snakefile sees them)."""
    from denselink.pipeline.checks import load_config as load_workflow_config

    return load_workflow_config(configfiles, SCHEMA)


def load_costs(path: Path, cpu: str, gpu: str) -> dict[str, Any]:
    """Per-step costs of the chosen CPU and GPU machine kinds, plus sizes and known sequences."""
    if not path.is_file():
        raise ConfigError(path, "cost file does not exist")
    data = json.loads(path.read_text())
    machines = data["machines"]
    for name in (cpu, gpu):
        if name not in machines or not machines[name]["costs"]:
            raise ConfigError(path, f"no costs for machine kind {name!r} (run benchmarks/calibrate_costs.py)")
    return {
        "cpu": machines[cpu],
        "gpu": machines[gpu],
        "sizes": data["sizes"],
        "sequences": data["sequences"],
    }


def _value(section: dict[str, Any], key: str) -> float:
    return float(section["costs"][key]["value"]) if "costs" in section else float(section[key]["value"])


def sequence_info(config: dict[str, Any], costs: dict[str, Any], dataset: str, seq: str) -> Sequence:
    """Frames, shape and cells of a sequence: its manifest, its data folder, the generator settings,
    or costs.json."""
    manifest = Path(Layout.of(config).manifest(f"{dataset}/{seq}"))
    known = costs["sequences"].get(f"{dataset}/{seq}", {})
    cells = float(known.get("cells_per_frame", 50))
    folder = Path(Layout.of(config).dataset_dir(dataset))
    found = None if known else _scanned(folder, seq)
    if found is not None:
        cells = cells if found.cells_per_frame is None else found.cells_per_frame
        if not manifest.is_file():
            return Sequence(found.frames, *found.shape, cells)
    if manifest.is_file():
        data = json.loads(manifest.read_text())
        return Sequence(len(data["frames"]), *data["shape"], cells)
    spec = config["datasets"].get(dataset, {})
    if spec.get("source") == "synthetic":
        synth = spec.get("synth", {})
        return Sequence(
            int(synth.get("n_frames", 12)), *synth.get("shape", (64, 64)), synth.get("n_cells", 6)
        )
    if not known:
        raise ConfigError(
            f"datasets.{dataset}", f"sequence {seq}: no manifest, no data folder and no size in {COSTS}"
        )
    return Sequence(int(known["frames"]), *known["shape"], cells)


@functools.cache
def _scanned(folder: Path, seq: str) -> SequenceScan | None:
    """A sequence's frames, shape and cells read from its data folder (once per plan), if it is there."""
    return scan_sequence(folder, seq) if frame_files(folder / seq) else None


def cover_windows(shape: tuple[int, int], config: dict[str, Any]) -> int:
    """Encoder calls (80x80 fields of view) of cover-and-stride for one frame."""
    from denselink.maester.cover import CoverGeometry, plan_cover

    model, infer = config["maester"]["model"], config["maester"]["infer"]
    geometry = CoverGeometry(
        model["img_size"], model["patch_size"], infer["central_patch"], infer["legacy_offset"]
    )
    return plan_cover(shape, geometry).n_windows


def _masks_bytes(seq: Sequence) -> float:
    """A CTC result folder of a sequence: its uint16 masks, LZW-compressed."""
    return 2.0 * seq.frames * seq.height * seq.width / MASK_RATIO


def _dense_bytes(seq: Sequence, channels: int) -> float:
    return 2.0 * seq.frames * channels * seq.height * seq.width


def _ratio(kind: str) -> float:
    """Measured compression ratio of the default codec (benchmarks/results/embedding_storage.json)."""
    path = Path("benchmarks/results/embedding_storage.json")
    return float(json.loads(path.read_text())["ratio"][kind]) if path.is_file() else 1.0


def _tracking_epochs(config: dict[str, Any], job: Job) -> int:
    """Training epochs of a run: the protocol's ``train_epochs`` for its variant, else the settings'."""
    from denselink.pipeline.jobs import protocol_epochs

    epochs = protocol_epochs(config["protocols"][job.wildcards["protocol"]], job.wildcards["variant"])
    return int(config["tracking"]["settings"]["epochs"] if epochs is None else epochs)


def _mitocheck_frames(config: dict[str, Any], costs: dict[str, Any], sources: list[str]) -> tuple[int, float]:
    """Frames and megapixels per frame of the Mitocheck plates a run reads (generated: their settings)."""
    plates: set[int] = set()
    for source in sources:
        name = source.split("/", 1)[1]
        plates |= set(DATASETS[int(name)]) if name.isdigit() else {int(name[5:])}
    if config["mitocheck"]["source"] == "synthetic":
        synth = config["mitocheck"]["synth"]
        frames = len(plates) * synth["sequences_per_plate"] * synth["n_frames"]
        return frames, synth["shape"][0] * synth["shape"][1] / 1e6
    plate = costs["sequences"]["mitocheck/plate"]
    frames = sum(PLATES[p].n_sequences for p in plates) * int(plate["frames_per_sequence"])
    return frames, plate["shape"][0] * plate["shape"][1] / 1e6


def _maester_checkpoint_bytes(config: dict[str, Any]) -> float:
    """Weights and AdamW moments (12 bytes per parameter) of the configured MAESTER model."""
    from denselink.maester.model import MaesterModelSettings, build_model

    model = build_model(MaesterModelSettings(**config["maester"]["model"]), seed=0)
    return 12.0 * sum(p.numel() for p in model.parameters())


def _trackastra_checkpoint_bytes(config: dict[str, Any], sizes: dict[str, Any]) -> float:
    """The measured paper-size checkpoint, scaled by d_model^2 x layers of the configured model."""
    settings = config["tracking"]["settings"]
    layers = settings["num_encoder_layers"] + settings["num_decoder_layers"]
    return _value(sizes, "trackastra_checkpoint_bytes") * (settings["d_model"] / 256) ** 2 * layers / 10


Config = dict[str, Any]


def _maester_train(job: Job, config: Config, costs: Config) -> Cost:
    train, procs = config["maester"]["train"], config["maester"]["procs"]
    steps = math.ceil(math.ceil(train["samples_per_epoch"] / procs) / train["batch_size"])
    gpu_s = procs * train["epochs"] * steps * _value(costs["gpu"], "maester_train_step_s")
    frames, store = 0, 0.0
    sources = config["maester"]["runs"][job.wildcards["run"]]
    if any(s.startswith("mitocheck/") for s in sources):
        frames, megapixels = _mitocheck_frames(config, costs, sources)
        store = 2 * frames * megapixels * 1e6
    for source in (s for s in sources if not s.startswith("mitocheck/")):
        seq = sequence_info(config, costs, *source.split("/", 1))
        store += 2 * seq.frames * seq.megapixels * 1e6
    saved = train.get("save_epochs", PAPER_SAVE_EPOCHS)  # absent: the settings model's default
    checkpoints = (len(saved) + 1) * _maester_checkpoint_bytes(config)
    return Cost(gpu_s=gpu_s, disk_kept=checkpoints, disk_transient=store)


def _dense(kind: str, seq: Sequence, gpu_s: float, config: Config) -> Cost:
    """A dense volume of ``kind`` (kept only if configured) and the GPU time that computed it."""
    raw = _dense_bytes(seq, DENSE_CHANNELS[kind])
    volume = raw / _ratio(kind)
    kept = volume if config["storage"]["keep_dense"][kind] else 0.0
    return Cost(gpu_s=gpu_s, disk_kept=kept, disk_transient=volume, dense_raw=raw)


def _maester_infer(job: Job, config: Config, costs: Config) -> Cost:
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["seq"])
    windows = cover_windows((seq.height, seq.width), config)
    return _dense("maester", seq, seq.frames * windows * _value(costs["gpu"], "maester_fov_s"), config)


def _foundation_embed(job: Job, config: Config, costs: Config) -> Cost:
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["seq"])
    gpu = costs["gpu"]
    per_frame = _value(gpu, "sam_frame_s") + seq.megapixels * _value(gpu, "anyup_megapixel_s")
    return _dense("foundation", seq, seq.frames * per_frame, config)


def _features_aggregate(job: Job, config: Config, costs: Config) -> Cost:
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["seq"])
    channels = DENSE_CHANNELS["maester" if job.wildcards["embedding"].startswith("maester") else "foundation"]
    voxels = seq.frames * seq.height * seq.width * channels / 1e9
    row_bytes = _value(costs["sizes"], "feature_row_bytes_per_channel")
    table = seq.frames * seq.cells_per_frame * (channels + 5) * row_bytes
    return Cost(cpu_s=voxels * _value(costs["cpu"], "aggregate_gvoxel_s"), disk_kept=table)


def _tracking_prepare(job: Job, config: Config, costs: Config) -> Cost:
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["seq"])
    return Cost(cpu_s=seq.frames * seq.megapixels * _value(costs["cpu"], "prepare_frame_megapixel_s"))


def _tracking_train(job: Job, config: Config, costs: Config) -> Cost:
    settings = config["tracking"]["settings"]
    epochs = _tracking_epochs(config, job)
    steps = math.ceil(settings["train_samples"] / settings["batch_size"])
    checkpoints = epochs * _trackastra_checkpoint_bytes(config, costs["sizes"])
    return Cost(gpu_s=epochs * steps * _value(costs["gpu"], "tracking_train_step_s"), disk_kept=checkpoints)


def _scoring(runs: int, scored: int, job: Job, config: Config, costs: Config) -> Cost:
    """``scored`` checkpoints scored on the evaluation sequence; ``runs`` CTC result folders kept."""
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["eval_seq"])
    per_detection = _value(costs["cpu"], "evaluate_checkpoint_detection_s")
    per_checkpoint = seq.frames * seq.cells_per_frame * per_detection
    return Cost(cpu_s=scored * per_checkpoint, disk_kept=runs * _masks_bytes(seq))


def _tracking_evaluate(job: Job, config: Config, costs: Config) -> Cost:
    """Every seed of the cell, each at every epoch or at the chosen one."""
    seeds = len(config["tracking"]["seeds"])
    every = config["protocols"][job.wildcards["protocol"]].get("epochs", "all") == "all"
    return _scoring(seeds, seeds * (_tracking_epochs(config, job) if every else 1), job, config, costs)


def _tracking_evaluate_pretrained(job: Job, config: Config, costs: Config) -> Cost:
    """The published model: one checkpoint, one result folder."""
    return _scoring(1, 1, job, config, costs)


def _tracking_score_cache(job: Job, config: Config, costs: Config) -> Cost:
    seq = sequence_info(config, costs, job.wildcards["dataset"], job.wildcards["seq"])
    return Cost(cpu_s=seq.frames * seq.megapixels * _value(costs["cpu"], "score_cache_frame_megapixel_s"))


RULE_COSTS: dict[str, Callable[[Job, Config, Config], Cost]] = {
    "maester_train": _maester_train,
    "maester_infer": _maester_infer,
    "foundation_embed": _foundation_embed,
    "features_aggregate": _features_aggregate,
    "tracking_prepare": _tracking_prepare,
    "tracking_train": _tracking_train,
    "tracking_evaluate": _tracking_evaluate,
    "tracking_evaluate_pretrained": _tracking_evaluate_pretrained,
    "tracking_score_cache": _tracking_score_cache,
}
"""The cost of a job per rule of the workflow (each checked to be one); data, table and figure jobs
take seconds and megabytes, below the plan's resolution, and cost nothing here."""


def job_cost(job: Job, config: Config, costs: Config) -> Cost:
    """Estimated GPU/CPU seconds and bytes of one job."""
    price = RULE_COSTS.get(job.rule)
    return Cost() if price is None else price(job, config, costs)


def plan(jobs: list[Job], config: dict[str, Any], costs: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per rule: job count, GPU-hours, CPU-hours, disk kept and transient (bytes); plus a ``total`` row."""
    rows: dict[str, dict[str, float]] = {}
    totals: dict[str, Cost] = defaultdict(Cost)
    counts: dict[str, int] = defaultdict(int)
    for job in jobs:
        totals[job.rule] += job_cost(job, config, costs)
        counts[job.rule] += 1
    for rule in sorted(totals):
        cost = totals[rule]
        rows[rule] = {"jobs": counts[rule], "gpu_hours": cost.gpu_s / 3600, "cpu_hours": cost.cpu_s / 3600,
                      "disk_kept": cost.disk_kept, "disk_transient": cost.disk_transient}  # fmt: skip
    rows["total"] = {key: sum(row[key] for row in rows.values()) for key in next(iter(rows.values()), {})}
    return rows


def dense_disk(jobs: list[Job], config: Config, costs: Config) -> dict[str, float]:
    """Disk of the dense volumes: kept raw float16 (before compression and temp()) vs as configured now."""
    dense = [cost for cost in (job_cost(job, config, costs) for job in jobs) if cost.dense_raw]
    before, now = sum(cost.dense_raw for cost in dense), sum(cost.disk_kept for cost in dense)
    return {"before_bytes": before, "now_bytes": now, "fraction": now / before if before else 0.0}


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def disk_line(rows: dict[str, dict[str, float]], config: dict[str, Any]) -> str:
    """The disk a run needs under results_root: what stays, and at most how much more while it runs."""
    total = rows.get("total", {"disk_kept": 0.0, "disk_transient": 0.0})
    return (
        f"disk this run needs under {config['results_root']}: {_size(total['disk_kept'])} kept, "
        f"at most {_size(total['disk_transient'])} more while it runs"
    )


def summary(rows: dict[str, dict[str, float]], config: dict[str, Any]) -> str:
    """Studies, jobs, GPU-hours, CPU-hours and disk of a plan in four lines."""
    from denselink.pipeline.grid import studies_line

    total = rows.get("total", {"jobs": 0, "gpu_hours": 0.0, "cpu_hours": 0.0})
    return "\n".join([
        studies_line(config),
        f"jobs: {total['jobs']:.0f}",
        f"time: {total['gpu_hours']:.2f} GPU-hours (A100) and {total['cpu_hours']:.2f} CPU-hours (one core)",
        disk_line(rows, config),
    ])  # fmt: skip


def render(rows: dict[str, dict[str, float]], dense: dict[str, float], costs: dict[str, Any]) -> str:
    """The plan as a table, the dense-volume disk comparison and every assumption with its source."""
    lines = [f"{'rule':<30} {'jobs':>6} {'GPU-h':>10} {'CPU-h':>10} {'disk kept':>11} {'transient':>11}"]
    for rule, row in rows.items():
        if rule == "total":
            lines.append("-" * len(lines[0]))
        lines.append(
            f"{rule:<30} {row['jobs']:>6.0f} {row['gpu_hours']:>10.1f} {row['cpu_hours']:>10.1f} "
            f"{_size(row['disk_kept']):>11} {_size(row['disk_transient']):>11}"
        )
    lines += [
        "",
        f"dense embedding volumes: {_size(dense['now_bytes'])} kept, {dense['fraction']:.1%} of "
        f"{_size(dense['before_bytes'])} (all kept as raw float16)",
        "transient: temp() embeddings and MAESTER frame stores, deleted during the run (peak is lower)",
        f"disk kept counts CTC result masks LZW-compressed ({MASK_RATIO:.0f}x smaller than raw)",
        "per-step costs are those of the paper's model sizes; checkpoints sized for the configured models",
        f"GPU: {costs['gpu']['description']}",
        f"CPU: {costs['cpu']['description']}",
    ]
    for section in ("gpu", "cpu"):
        for key, entry in costs[section]["costs"].items():
            lines.append(f"  {key} = {entry['value']:.4g} {entry['unit']}; {entry['source']}")
    for key, entry in costs["sizes"].items():
        lines.append(f"  {key} = {entry['value']:.4g} {entry['unit']}; {entry['source']}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        COMMAND,
        "Jobs per rule, estimated GPU-hours and CPU-hours and disk of the configured grid "
        "(from Snakemake's dry run and the per-step costs in workflow/costs.json). Run from the "
        "repository root.",
    )
    parser.add_argument(
        "--configfile", nargs="+", type=Path, default=[Path("config.yaml")],
        help="config files, merged in order as snakemake --configfile does (default: config.yaml)",
    )  # fmt: skip
    parser.add_argument("--target", default=None, help="a target rule or file (default: all)")
    parser.add_argument(
        "--all-jobs", action="store_true",
        help="plan every job of the grid (snakemake --forceall), not only those whose outputs are missing",
    )  # fmt: skip
    parser.add_argument("--costs", type=Path, default=COSTS, help="cost file (default: workflow/costs.json)")
    parser.add_argument("--cpu", default="cpu", help="machine kind of the CPU costs in the cost file")
    parser.add_argument("--gpu", default="a100", help="machine kind of the GPU costs in the cost file")
    parser.add_argument("--json", type=Path, default=None, help="also write the plan as JSON to this file")
    add_force_flag(parser)
    return parser


def plan_configs(
    configfiles: list[Path],
    costs_path: Path = COSTS,
    cpu: str = "cpu",
    gpu: str = "a100",
    target: str | None = None,
    all_jobs: bool = False,
) -> tuple[dict[str, dict[str, float]], dict[str, float], dict[str, Any], dict[str, Any]]:
    """The plan of config files: per-rule rows, dense-volume disk, the config and the costs used."""
    config = load_config(configfiles)
    costs = load_costs(costs_path, cpu, gpu)
    found = dry_run(configfiles, target, all_jobs)
    check_priced_rules(found.rules)
    return plan(found.jobs, config, costs), dense_disk(found.jobs, config, costs), config, costs


def check_priced_rules(rules: frozenset[str]) -> None:
    """Every rule the plan prices is a rule of the workflow (else a renamed rule would cost nothing)."""
    missing = sorted(set(RULE_COSTS) - rules)
    if missing:
        raise ConfigError(
            "Snakefile", f"no rule {', '.join(missing)} in the workflow; denselink plan prices it"
        )


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = parse(build_parser(), argv, COMMAND, lambda a: [a.json])
    rows, dense, config, costs = plan_configs(
        args.configfile, args.costs, args.cpu, args.gpu, args.target, args.all_jobs
    )
    print(render(rows, dense, costs))
    print()
    print(summary(rows, config))
    if args.json is not None:
        from denselink.pipeline.grid import studies

        record = {"rules": rows, "dense": dense, "studies": studies(config)}
        write_json(args.json, record, COMMAND, args.force)
    return 0
