"""Config checks, paths, per-rule resources and the experiment grid, in one place."""

import json
import sys
import re
import shlex
from pathlib import Path

import jsonschema
import referencing
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from denselink.data.settings import DATASETS as MITOCHECK_SIZES, SynthSettings
from denselink.tracking.settings import TrackastraSettings, min_frames
from denselink.errors import DenselinkError
from denselink.preflight import preflight, protocol_epochs
from denselink.evaluate.variants import (
    FOUNDATION_BACKBONES,
    parse_variant,
    variant_name,
)

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
STUDIES = ("compute_scaling", "transfer", "data_scaling")
MITOCHECK = "mitocheck"


# --------------------------------------------------------------------------- config checks
def _registry():
    """Resolve the schema's relative $refs (stages.schema.json) from its own folder."""

    def retrieve(uri):
        path = SCHEMA.parent / uri.rsplit("/", 1)[-1]
        return referencing.Resource.from_contents(json.loads(path.read_text()))

    return referencing.Registry(retrieve=retrieve)


def check_config(cfg):
    """Fail before any job with every schema violation, each naming its config key."""
    schema = yaml.safe_load(SCHEMA.read_text())
    schema["$id"] = SCHEMA.resolve().as_uri()
    validator = jsonschema.Draft202012Validator(schema, registry=_registry())
    problems = []
    for error in sorted(
        validator.iter_errors(cfg), key=lambda e: [str(p) for p in e.absolute_path]
    ):
        key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
        problems.append(f"  {key}: {error.message}")
    if problems:
        raise WorkflowError(
            "invalid config (see workflow/schemas/config.schema.yaml):\n"
            + "\n".join(problems)
        )
    validate(cfg, str(SCHEMA))  # applies the schema's defaults
    check_references(cfg)


INSPECTION_FLAGS = {
    "--dry-run", "--dryrun", "--just-print", "--lint", "--dag", "--rulegraph", "--filegraph",
    "--summary", "--detailed-summary", "--list-rules", "--list-target-rules",
}  # fmt: skip


def invoked_as_dry_run():
    """True for `snakemake -n` and the other DAG inspections (--lint, --rulegraph, ...).

    Read from the command line: at parse time no executor (which knows about -n) exists yet.
    """
    for arg in sys.argv[1:]:
        if arg in INSPECTION_FLAGS:
            return True
        if re.fullmatch(r"-[a-zA-Z]*n[a-zA-Z]*", arg):
            return True
    return False


def run_preflight(cfg, dry_run):
    """Stage settings parsed by their own models and every configured path checked, as one clear line.

    A dry run only warns about inputs that are not in place yet, so the DAG can be inspected first.
    """
    missing = [] if dry_run else None
    try:
        preflight(cfg, Path.cwd(), missing=missing)
    except DenselinkError as err:
        raise WorkflowError(f"invalid config: {err}") from None
    for problem in missing or []:
        print(f"WARNING (dry run): {problem}; a real run stops here", file=sys.stderr)


def _require(condition, key, problem):
    if not condition:
        raise WorkflowError(f"invalid config: {key}: {problem}")


def check_references(cfg):
    """Names used in one section must exist in another (datasets, runs, checkpoints)."""
    datasets, runs = cfg["datasets"], cfg["maester"]["runs"]
    saved = set(cfg["maester"]["train"]["save_epochs"])
    for name in datasets:
        _require(
            name != MITOCHECK and "/" not in name,
            f"datasets.{name}",
            "reserved or invalid name",
        )
    for run, sources in runs.items():
        _require(
            "-epoch" not in run,
            f"maester.runs.{run}",
            "a run name must not contain '-epoch'",
        )
        for source in sources:
            head, _, tail = source.partition("/")
            _require(
                head == MITOCHECK
                or (head in datasets and tail in datasets[head]["sequences"]),
                f"maester.runs.{run}",
                f"{source!r} is neither DATASET/SEQ of a configured dataset nor mitocheck/SIZE|plateN",
            )
    for name in cfg["table1"]["datasets"]:
        _require(name in datasets, "table1.datasets", f"{name!r} is not in datasets")
    for name, ref in cfg["table1"]["maester"].items():
        _require(name in datasets, f"table1.maester.{name}", "not in datasets")
        _require(
            ref["run"] in runs,
            f"table1.maester.{name}.run",
            f"{ref['run']!r} is not in maester.runs",
        )
        _require(
            ref["epoch"] in saved,
            f"table1.maester.{name}.epoch",
            "not in maester.train.save_epochs",
        )
    if "maester" in cfg["table1"]["embeddings"]:
        for name in cfg["table1"]["datasets"]:
            _require(
                name in cfg["table1"]["maester"],
                "table1.maester",
                f"no MAESTER checkpoint for {name}",
            )
    appc = cfg["appendix_c"]
    _require(
        appc["dataset"] in datasets,
        "appendix_c.dataset",
        f"{appc['dataset']!r} is not in datasets",
    )
    for study, run, epoch in study_checkpoints(cfg):
        _require(
            run in runs, f"appendix_c.{study}", f"run {run!r} is not in maester.runs"
        )
        _require(
            epoch in saved,
            f"appendix_c.{study}",
            f"epoch {epoch} is not in maester.train.save_epochs",
        )
    for protocol, spec in cfg["protocols"].items():
        for direction in spec["directions"]:
            for name in used_datasets(cfg):
                for seq in direction.values():
                    _require(
                        seq in datasets[name]["sequences"],
                        f"protocols.{protocol}.directions",
                        f"sequence {seq!r} is not in datasets.{name}.sequences",
                    )
    check_sequence_lengths(cfg)


def used_protocols(cfg):
    return sorted(set(cfg["table1"]["protocols"]) | set(cfg["appendix_c"]["protocols"]))


def known_frames(cfg, dataset, seq):
    """Frames of a sequence where start-up knows them: the synth settings, or a manifest already written."""
    spec = cfg["datasets"][dataset]
    if spec["source"] == "synthetic":
        default = SynthSettings.model_fields["n_frames"].default
        return (spec.get("synth") or {}).get("n_frames", default)
    path = Path(cfg["results_root"]) / "data" / dataset / seq / "manifest.json"
    try:
        return len(json.loads(path.read_text())["frames"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # not validated yet: data_validate checks it (--min-frames)


def required_frames(cfg, dataset, seq):
    """(frames, config key): the fewest frames tracking needs of a sequence, and the key that asks it.

    A training sequence holds a window, plus a held-out tail under val_fraction > 0; a direction's
    validation sequence (`val`) holds a window; 0 frames when tracking does not use it.
    """
    if dataset not in used_datasets(cfg):
        return 0, "tracking.settings.window"
    default = TrackastraSettings.model_fields["window"].default
    window = cfg["tracking"]["settings"].get("window", default)
    needs = [(0, "tracking.settings.window")]
    for protocol in used_protocols(cfg):
        spec = cfg["protocols"][protocol]
        for direction in spec["directions"]:
            if direction["train"] == seq and spec["val_fraction"]:
                key = f"protocols.{protocol}.val_fraction"
                needs.append((min_frames(window, spec["val_fraction"]), key))
            elif seq in (direction["train"], direction.get("val")):
                needs.append((window, "tracking.settings.window"))
    return max(needs)


def check_sequence_lengths(cfg):
    """Sequences whose frame count start-up knows must be long enough for tracking (see required_frames)."""
    for name in used_datasets(cfg):
        for seq in cfg["datasets"][name]["sequences"]:
            needed, key = required_frames(cfg, name, seq)
            n_frames = known_frames(cfg, name, seq)
            _require(
                n_frames is None or n_frames >= needed,
                key,
                f"{name}/{seq} has {n_frames} frames; window and validation tail need at least {needed}",
            )


def directions_of(cfg, protocol):
    return [(d["train"], d["eval"]) for d in cfg["protocols"][protocol]["directions"]]


def used_datasets(cfg):
    return sorted(set(cfg["table1"]["datasets"]) | {cfg["appendix_c"]["dataset"]})


# --------------------------------------------------------------------------- paths
def results(path):
    """A path under the configured results root."""
    return f"{config['results_root']}/{path}"


def data_dir(dataset):
    """Raw CTC dataset folder under the configured data root."""
    return f"{config['data_root']}/{dataset}"


def manifest(source):
    """Manifest of a data source: DATASET/SEQ, mitocheck/plateN or mitocheck/SIZE."""
    return results(f"data/{source}/manifest.json")


def embedding_stem(backbone_or_embedding):
    """Zarr stem of an embedding: sam -> sam-{upsampler}; maester-RUN-epochN unchanged."""
    if backbone_or_embedding in FOUNDATION_BACKBONES:
        return f"{backbone_or_embedding}-{config['foundation'][backbone_or_embedding]['upsampler']}"
    return backbone_or_embedding


def features_path(dataset, seq, variant):
    parsed = parse_variant(variant)
    return results(
        f"features/{dataset}/{seq}/{embedding_stem(parsed.embedding)}-{parsed.agg}.parquet"
    )


def metrics_path(dataset, protocol, train_seq, eval_seq, variant, seed):
    return results(
        f"metrics/{dataset}/{protocol}/{train_seq}-{eval_seq}/{variant}/seed{seed}.json"
    )


def model_path(dataset, protocol, train_seq, variant, seed):
    return results(
        f"models/{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}/done.json"
    )


def validation_seq(protocol, train_seq):
    """The sequence val_loss is computed on while training on ``train_seq`` (None: none or the tail)."""
    directions = config["protocols"][protocol]["directions"]
    return next((d.get("val") for d in directions if d["train"] == train_seq), None)


def dense_output(path, kind):
    """A dense embedding volume, kept or temp() (deleted once its tables exist) per storage.keep_dense."""
    if config["storage"]["keep_dense"][kind]:
        return directory(path)
    return temp(directory(path))


def one_of(names):
    """Wildcard constraint matching exactly one of ``names`` (nothing when empty)."""
    return "|".join(re.escape(n) for n in sorted(names)) or "(?!x)x"


def datasets_with(source, download=None):
    """Names of the configured datasets with this source (and download flag)."""
    return [
        name
        for name, spec in config["datasets"].items()
        if spec["source"] == source
        and (download is None or spec["download"] == download)
    ]


# --------------------------------------------------------------------------- rule inputs
def sequence_files(folder, seq):
    """Raw frames, TRA masks and man_track.txt of one CTC sequence (what validation reads)."""
    folder = Path(folder)
    tra = folder / f"{seq}_GT" / "TRA"
    files = sorted((folder / seq).glob("t*.tif")) + sorted(tra.glob("man_track*.tif"))
    files += [tra / "man_track.txt"] if (tra / "man_track.txt").is_file() else []
    return [str(f) for f in files]


def validate_inputs(w):
    """The dataset folder and every file validation reads, so a changed frame reruns validation.

    Generated or downloaded folders are checkpoints: their files are listed once they exist.
    """
    spec = config["datasets"][w.dataset]
    if spec["source"] == "synthetic":
        folder = checkpoints.data_synth.get(dataset=w.dataset).output[0]
    elif spec["download"]:
        folder = checkpoints.data_download.get(dataset=w.dataset).output[0]
    else:
        folder = data_dir(w.dataset)
    return {"dataset": folder, "files": sequence_files(folder, w.seq)}


def train_inputs(w):
    """Cached data (+ features, + validation data) of one training job."""
    fused = parse_variant(w.variant).kind == "embedding"
    inputs = {"data": results(f"trackastra_data/{w.dataset}/{w.train_seq}.pt")}
    if fused:
        inputs["features"] = features_path(w.dataset, w.train_seq, w.variant)
    val_seq = validation_seq(w.protocol, w.train_seq)
    if val_seq is not None:
        inputs["val_data"] = results(f"trackastra_data/{w.dataset}/{val_seq}.pt")
        if fused:
            inputs["val_features"] = features_path(w.dataset, val_seq, w.variant)
    return inputs


def evaluate_inputs(w):
    """Model, eval manifest, eval score cache (+ features) of one evaluation job."""
    inputs = {
        "model": model_path(w.dataset, w.protocol, w.train_seq, w.variant, w.seed),
        "manifest": manifest(f"{w.dataset}/{w.eval_seq}"),
        "score_cache": results(f"trackastra_eval/{w.dataset}/{w.eval_seq}.pt"),
    }
    if parse_variant(w.variant).kind == "embedding":
        inputs["features"] = features_path(w.dataset, w.eval_seq, w.variant)
    return inputs


def optional_flags(input):
    """--features / --val-data / --val-features for the inputs a job has (paths shell-quoted)."""
    names = ("features", "val_data", "val_features")
    return " ".join(
        f"--{n.replace('_', '-')} {shlex.quote(str(input[n]))}"
        for n in names
        if n in input.keys()
    )


# --------------------------------------------------------------------------- settings and resources
def settings_json(section):
    """A config section as the JSON string a command's --settings takes."""
    return json.dumps(section, sort_keys=True)


def tracking_settings(protocol, variant):
    """Trackastra settings of one job: the config section plus protocol and variant keys."""
    parsed = parse_variant(variant)
    settings = dict(config["tracking"]["settings"])
    settings["val_fraction"] = config["protocols"][protocol]["val_fraction"]
    settings["fusion"] = parsed.fusion or "none"
    stopping = config["tracking"]["early_stopping"]
    settings["early_stopping"] = (
        stopping["retrained"] if parsed.kind == "retrained" else stopping["embeddings"]
    )
    epochs = protocol_epochs(config["protocols"][protocol], variant)
    if epochs is not None:
        settings["epochs"] = epochs
    return settings_json(settings)


def res(rule_name):
    """Resources of a rule: config resources.default overridden by resources.<rule>."""
    merged = dict(config["resources"]["default"])
    merged.update(config["resources"].get(rule_name, {}))
    return merged


def maester_launcher():
    """``denselink maester train``, or torchrun with one process per GPU when procs > 1."""
    procs = config["maester"]["procs"]
    if procs > 1:
        return (
            f"torchrun --standalone --nproc_per_node {procs} -m denselink.maester.train"
        )
    return "denselink maester train"


# --------------------------------------------------------------------------- the grid
def seeds():
    return config["tracking"]["seeds"]


def fusions():
    return [config["tracking"]["fusion"], *config["tracking"]["fusion_ablations"]]


def directions(protocol):
    return directions_of(config, protocol)


def table1_variants(cfg, dataset):
    """Variant names of one dataset's Table 1 rows (baselines, every embedding x agg x fusion)."""
    names = ["retrained"] + (["pretrained"] if cfg["table1"]["pretrained"] else [])
    for backbone in cfg["table1"]["embeddings"]:
        ref = cfg["table1"]["maester"].get(dataset, {}) if backbone == "maester" else {}
        for agg in cfg["features"]["aggregations"]:
            for fusion in [
                cfg["tracking"]["fusion"],
                *cfg["tracking"]["fusion_ablations"],
            ]:
                names.append(
                    variant_name(
                        backbone,
                        agg,
                        fusion,
                        run=ref.get("run"),
                        epoch=ref.get("epoch"),
                    )
                )
    return names


def grid_metrics(cfg, dataset, variants, protocols, all_directions=True):
    """Metrics files of variants x protocols x directions x seeds (pretrained: seed 0 only)."""
    paths = []
    for protocol in protocols:
        pairs = directions(protocol) if all_directions else directions(protocol)[:1]
        for train_seq, eval_seq in pairs:
            for variant in variants:
                for seed in (
                    [0] if variant == "pretrained" else cfg["tracking"]["seeds"]
                ):
                    paths.append(
                        metrics_path(
                            dataset, protocol, train_seq, eval_seq, variant, seed
                        )
                    )
    return paths


def table1_targets(cfg):
    """Every metrics JSON that Table 1 summarises."""
    paths = []
    for dataset in cfg["table1"]["datasets"]:
        paths += grid_metrics(
            cfg, dataset, table1_variants(cfg, dataset), cfg["table1"]["protocols"]
        )
    return paths


def study_checkpoints(cfg, only=None):
    """(study, run, epoch) of every MAESTER checkpoint an Appendix C study uses."""
    appc = cfg["appendix_c"]
    rows = []
    if only in (None, "compute_scaling"):
        rows += [
            ("compute_scaling", appc["compute_scaling"]["run"], e)
            for e in appc["compute_scaling"]["epochs"]
        ]
    if only in (None, "transfer"):
        rows += [("transfer", r["run"], r["epoch"]) for r in appc["transfer"]["runs"]]
    if only in (None, "data_scaling"):
        ds = appc["data_scaling"]
        rows += [("data_scaling", run, e) for run in ds["runs"] for e in ds["epochs"]]
    return rows


def study_variants(cfg, study):
    appc = cfg["appendix_c"]
    return [
        variant_name(
            "maester", appc["agg"], cfg["tracking"]["fusion"], run=run, epoch=epoch
        )
        for _, run, epoch in study_checkpoints(cfg, study)
    ]


def appc_targets(cfg, study):
    """Metrics JSONs of one Appendix C study (the first direction of each configured protocol)."""
    appc = cfg["appendix_c"]
    return grid_metrics(
        cfg,
        appc["dataset"],
        study_variants(cfg, study),
        appc["protocols"],
        all_directions=False,
    )


def appc_baseline(cfg):
    appc = cfg["appendix_c"]
    return grid_metrics(
        cfg, appc["dataset"], ["retrained"], appc["protocols"], all_directions=False
    )


def figure_files(study):
    return [results(f"figures/{study}.{ext}") for ext in ("png", "svg", "json")]


def table1_files():
    return [results("tables/table1.csv"), results("tables/table1.md")]


FUSION_GAIN_PLOT = Path(workflow.basedir) / "benchmarks" / "results" / "fusion_gain.png"


def all_targets():
    files = table1_files()
    for study in STUDIES:
        files += figure_files(study)
    # the benchmark has been run: its plot goes into the report
    if FUSION_GAIN_PLOT.is_file():
        files.append(results("report/fusion_gain.png"))
    return files


def slurm_resources(rule_name):
    """The ``resources:`` of a rule (names the Slurm executor plugin reads)."""
    spec = res(rule_name)
    return dict(
        mem_mb=spec["mem_mb"],
        runtime=spec["runtime"],
        cpus_per_task=spec["cpus"],
        gpu=spec["gpus"],
    )
