"""Thin adapters between Snakemake and denselink.pipeline: paths, shared directives, input functions.

The logic lives in the package (torch-free, tested without Snakemake); a function it exports takes the
config and a job's wildcards, and `bind` hands it to Snakemake as an input or params function.
"""

import inspect
from functools import partial
from pathlib import Path

from snakemake.common import overwrite_function_params

from denselink.data.settings import DATASETS as MITOCHECK_SIZES
from denselink.pipeline import (
    checkpoint_inputs,
    grid,
    jobs,
    real_spec,
    scoring,
    startup,
)
from denselink.pipeline import real as real_study
from denselink.pipeline import layout as L
from denselink.pipeline.checks import required_frames
from denselink.pipeline.directives import RuleDirectives
from denselink.pipeline.layout import Layout
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


# --------------------------------------------------------------------------- paths and directives
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


def Job(rule, job, gpu=False, resources=None):
    """The log, benchmark, conda env, threads and resources of one rule (pipeline.directives)."""
    return RuleDirectives.of(config, rule, job, gpu=gpu, resources=resources)


# --------------------------------------------------------------------------- input and params functions
def told(fn):
    """An input or params function whose parameters Snakemake is told once.

    Snakemake otherwise inspects the signature again for every job and function (tens of microseconds
    each time): for the thousands of training jobs of the full config, about 5 % of a dry run.
    """
    overwrite_function_params(fn, inspect.signature(fn).parameters)
    return fn


def bind(fn, **extra):
    """``fn(config, wildcards, ...)`` of the package as an input or params function of one job."""
    return told(partial(fn, config, **extra))


def flags(*names):
    """A params function: ``--name path`` for each of ``names`` that a job's inputs hold."""
    return told(lambda w, input: jobs.optional_flags(input, names))


validate_inputs = bind(checkpoint_inputs.validate_inputs, checkpoints=checkpoints)
maester_checkpoint = bind(checkpoint_inputs.maester_checkpoint, checkpoints=checkpoints)
train_inputs = bind(grid.train_inputs)
tracking_settings = bind(jobs.job_tracking_settings)
