"""Thin adapters between Snakemake and denselink.pipeline (grid, layout, checks, job settings)."""

import inspect
import json
import sys
from pathlib import Path

from snakemake.common import overwrite_function_params
from snakemake.exceptions import WorkflowError

from denselink.data.frames import is_tiff
from denselink.data.settings import DATASETS as MITOCHECK_SIZES
from denselink.errors import DenselinkError
from denselink.pipeline import grid, jobs
from denselink.pipeline import real as real_study
from denselink.pipeline import layout as L
from denselink.pipeline.checks import (
    check_references,
    check_schema,
    is_inspection,
    preflight,
    required_frames,
)
from denselink.pipeline.layout import Layout
from denselink.pipeline.versions import version_notes
from denselink.vocabulary import (
    AGGREGATIONS,
    EPOCH,
    FOUNDATION_BACKBONES,
    MITOCHECK,
    STUDIES,
    one_of,
)

SCHEMA = Path(workflow.basedir) / "workflow" / "schemas" / "config.schema.yaml"
FUSION_GAIN_PLOT = Path(workflow.basedir) / "benchmarks" / "results" / "fusion_gain.png"
CPU_ENV = "../../envs/cpu.yaml"
GPU_ENV = "../../envs/gpu.yaml"


# --------------------------------------------------------------------------- config checks
def check_config(cfg):
    """Every schema violation (each naming its key), the schema's defaults filled in, cross-references."""
    try:
        check_schema(cfg, SCHEMA)
    except DenselinkError as err:
        raise WorkflowError(
            f"invalid config (see workflow/schemas/config.schema.yaml):\n{err.problem}"
        ) from None
    try:
        check_references(cfg)
    except DenselinkError as err:
        raise WorkflowError(f"invalid config: {err.path}: {err.problem}") from None


def run_preflight(cfg):
    """Stage settings, protocols and paths; a dry run only warns about inputs not in place yet.

    Also says which studies the config runs (a study runs when its section is present).
    """
    print(grid.studies_line(cfg), file=sys.stderr)
    for note in version_notes(cfg):
        print(f"NOTE: {note}", file=sys.stderr)
    missing = [] if workflow.dryrun or is_inspection(sys.argv[1:]) else None
    try:
        preflight(cfg, Path.cwd(), missing=missing)
    except DenselinkError as err:
        raise WorkflowError(f"invalid config: {err}") from None
    for problem in missing or []:
        print(f"WARNING (dry run): {problem}; a real run stops here", file=sys.stderr)


# --------------------------------------------------------------------------- paths and jobs
def results(pattern, **fields):
    """A layout pattern under the results root (wildcards not given stay wildcards)."""
    return Layout.of(config).path(pattern, **fields)


def manifest(source):
    return Layout.of(config).manifest(source)


def dense_output(path, kind):
    """A dense embedding volume, kept or temp() (deleted once its tables exist) per storage.keep_dense."""
    return (
        directory(path)
        if config["storage"]["keep_dense"][kind]
        else temp(directory(path))
    )


class Job:
    """The log, benchmark, threads and resources of one rule, its name spelled once."""

    def __init__(self, rule, wildcards, resources=None):
        """``resources``: the ``resources.<rule>`` key when it is not the rule's own name."""
        layout = Layout.of(config)
        self.log = layout.log(rule, wildcards)
        self.benchmark = layout.benchmark(rule, wildcards)
        self.threads = jobs.rule_resources(config, resources or rule)["cpus"]
        self.resources = jobs.slurm_resources(config, resources or rule)


# --------------------------------------------------------------------------- rule inputs
def job_function(fn):
    """An input or params function whose parameters Snakemake is told once.

    Snakemake otherwise inspects the signature again for every job and function (tens of microseconds
    each time): for the thousands of training jobs of the full config, about 5 % of a dry run.
    """
    overwrite_function_params(fn, inspect.signature(fn).parameters)
    return fn


def sequence_files(folder, seq):
    """Raw frames, TRA masks and man_track.txt of one CTC sequence (what validation reads)."""
    folder = Path(folder)
    tra = folder / f"{seq}_GT" / "TRA"
    # .tif and .tiff, as validation lists them
    files = sorted(p for p in (folder / seq).glob("t*") if is_tiff(p))
    files += sorted(p for p in tra.glob("man_track*") if is_tiff(p))
    files += [tra / "man_track.txt"] if (tra / "man_track.txt").is_file() else []
    return [str(f) for f in files]


def validate_inputs(w):
    """The dataset folder and every file validation reads (checkpoint folders once they exist)."""
    spec = config["datasets"][w.dataset]
    # the pipeline's downsampled copy (workflow/rules/real.smk)
    if spec.get("downsample", 1) > 1:
        return {"dataset": real_study.dataset_folder(config, w.dataset), "files": []}
    if spec["source"] == "synthetic":
        folder = checkpoints.data_synth.get(dataset=w.dataset).output[0]
    elif spec["download"]:
        folder = checkpoints.data_download.get(dataset=w.dataset).output[0]
    else:
        folder = Layout.of(config).dataset_dir(w.dataset)
    return {"dataset": folder, "files": sequence_files(folder, w.seq)}


def maester_checkpoint(w):
    """The checkpoint a MAESTER inference reads, listed once its training run is done."""
    done = checkpoints.maester_train.get(run=w.run).output[0]
    return L.maester_checkpoint(Path(done).parent, w.epoch)


@job_function
def train_inputs(w):
    return grid.train_inputs(config, w.dataset, w.protocol, w.train_seq, w.variant)


@job_function
def evaluate_inputs(w):
    return grid.evaluate_inputs(
        config, w.dataset, w.protocol, w.train_seq, w.eval_seq, w.variant
    )


def flags(*names):
    """A params function: ``--name path`` for each of ``names`` that a job's inputs hold."""
    return job_function(lambda w, input: jobs.optional_flags(input, names))


@job_function
def tracking_settings(w):
    """The settings JSON of a training or scoring job (its protocol and variant)."""
    return jobs.tracking_settings(config, w.protocol, w.variant)


@job_function
def scored_epochs(w):
    """``all`` or ``chosen``: the checkpoints a protocol scores."""
    return config["protocols"][w.protocol]["epochs"]


@job_function
def model_dirs(w, input):
    """The run folders of a cell's trained models."""
    return [str(Path(p).parent) for p in input.models]


# --------------------------------------------------------------------------- the real-data study (real.smk)
def raw_dataset(w):
    """The dataset folder as downloaded (or found under data_root) and the files of its sequences."""
    spec = config["datasets"][w.dataset]
    if spec["download"]:
        folder = checkpoints.data_download.get(dataset=w.dataset).output[0]
    else:
        folder = Layout.of(config).dataset_dir(w.dataset)
    files = [f for seq in spec["sequences"] for f in sequence_files(folder, seq)]
    return {"dataset": folder, "files": files}


def initial_checkpoint(w):
    """The seeded initial weights of a MAESTER run, listed once the run is done."""
    done = checkpoints.maester_train.get(run=w.run).output[0]
    return str(Path(done).parent / L.MAESTER_INITIAL)


def real_gain_spec(w, input):
    """The study's inputs as `denselink evaluate real-gain --spec` reads them."""
    datasets = real_study.study_inputs(config)
    protocol = config["protocols"][real_study.PROTOCOL]
    for name, spec in datasets.items():
        spec["score_cache"] = results(L.SCORE_CACHE, dataset=name, seq=spec["eval_seq"])
        spec["val_fraction"] = protocol["val_fraction"]
        spec["window"] = config["tracking"]["settings"].get("window", 6)
    spec = {"seeds": config["tracking"]["seeds"], "data_root": config["data_root"]}
    return json.dumps(spec | {"datasets": datasets})
