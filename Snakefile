"""denselink: dense embeddings (MAESTER, SAM, muSAM) fused into Trackastra cell linking.

Every rule runs one `denselink <group> <command>`; the grid, the output layout and the config checks
live in denselink.pipeline, and workflow/rules/common.smk adapts them to Snakemake.
"""

import gc
import sys
from pathlib import Path

from snakemake.settings.types import DeploymentMethod

from denselink.pipeline import lock as results_lock
from denselink.pipeline.paths import resolve_path

# The full config's DAG is millions of small objects: at Python's default threshold (700 allocations)
# the cyclic garbage collector runs thousands of times and takes a sixth of a dry run
# (benchmarks/results/startup.json). The older generations keep their defaults.
gc.set_threshold(10_000, 10, 10)

# Without --use-conda, jobs run the `denselink` installed beside the Python that runs Snakemake
# (e.g. .venv/bin), whether or not that environment is activated.
if DeploymentMethod.CONDA not in workflow.deployment_settings.deployment_method:

    shell.prefix(
        f'set -euo pipefail; export PATH="{Path(sys.executable).parent}:$PATH"; '
    )


# config.yaml is the full paper experiment; `--configfile FILE...` replaces it (e.g. the mini config).
if not workflow.overwrite_configfiles:

    configfile: "config.yaml"


include: "workflow/rules/common.smk"


startup.check_config(config, SCHEMA)
# Stage settings (e.g. an even MAESTER patch size) and configured paths: once, before any job is planned.
if workflow.is_main_process:
    startup.run_preflight(config, Path.cwd(), workflow.dryrun, sys.argv[1:])


# One run at a time per results root: Snakemake's own lock covers one working directory only. A real run
# takes <results_root>/.denselink-run.lock before its first job; a dry run (or nothing to do) takes none.
RESULTS_ROOT = resolve_path(config["results_root"], Path.cwd())


onstart:
    results_lock.acquire(RESULTS_ROOT, Path.cwd(), sys.argv)


onsuccess:
    results_lock.release(RESULTS_ROOT)


onerror:
    results_lock.release(RESULTS_ROOT)


report: "workflow/report/workflow.rst"


wildcard_constraints:
    dataset=one_of(set(config["datasets"]) | {MITOCHECK}),
    protocol=one_of(config["protocols"]),
    seed=r"\d+",
    seq=r"[^/]+",
    train_seq=r"[^/-]+",
    eval_seq=r"[^/-]+",
    run=one_of(config["maester"]["runs"]),
    epoch=EPOCH,
    agg=one_of(AGGREGATIONS),
    study=one_of(STUDIES),
    variant=r"[^/]+",


include: "workflow/rules/data.smk"
include: "workflow/rules/mitocheck.smk"
include: "workflow/rules/maester.smk"
include: "workflow/rules/foundation.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/scoring.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/real.smk"


localrules:
    all,
    table1,
    appc_compute_scaling,
    appc_transfer,
    appc_data_scaling,
    appendix_c,


rule all:
    default_target: True
    input:
        grid.all_targets(config, FUSION_GAIN_PLOT),


rule table1:
    input:
        grid.table1_files(config),


rule appc_compute_scaling:
    input:
        grid.figure_files(config, "compute_scaling"),


rule appc_transfer:
    input:
        grid.figure_files(config, "transfer"),


rule appc_data_scaling:
    input:
        grid.figure_files(config, "data_scaling"),


rule appendix_c:
    input:
        [f for study in STUDIES for f in grid.figure_files(config, study)],
