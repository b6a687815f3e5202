"""The jobs a Snakemake run would submit, read from Snakemake's own DAG in this process (nothing runs).

Snakemake's API builds the DAG as ``snakemake --dry-run`` does (``Workflow.printdag`` takes the same
two steps); each job then gives its rule name and wildcards as objects, with no text to parse.
"""

from __future__ import annotations

import contextlib
import gc
import io
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from denselink.errors import ConfigError

SNAKEFILE = Path("Snakefile")


@dataclass(frozen=True)
class Job:
    """One job of the DAG: its rule and wildcards."""

    rule: str
    wildcards: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DryRun:
    """The jobs of a dry run and the names of every rule of the workflow (checkpoints included)."""

    jobs: list[Job]
    rules: frozenset[str]


@contextlib.contextmanager
def _as_dry_run(argv: list[str]) -> Iterator[None]:
    """The process as ``snakemake --dry-run`` sees it while the Snakefile is read, restored after.

    The Snakefile learns that it is a dry run from the command line (no executor exists when it is
    parsed), and it raises the collector's threshold for the DAG's many objects; what Snakemake and
    the Snakefile write to stderr (progress, a dry run's warnings) is not shown.
    """
    saved_argv, saved_gc = sys.argv, gc.get_threshold()
    sys.argv = argv
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        sys.argv = saved_argv
        gc.set_threshold(*saved_gc)


def dry_run(configfiles: list[Path], target: str | None = None, all_jobs: bool = False) -> DryRun:
    """The jobs ``snakemake --dry-run`` would list (``all_jobs``: ``--forceall``), and the workflow's rules.

    Outputs an interrupted run left incomplete count as jobs to run (``--rerun-incomplete``).
    """
    from snakemake.api import SnakemakeApi
    from snakemake.exceptions import ApiError, RuleException, WorkflowError
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    targets = [target] if target else []
    argv = [
        "snakemake",
        "--dry-run",
        *targets,
        *["--forceall"] * all_jobs,
        "--configfile",
        *map(str, configfiles),
    ]
    with _as_dry_run(argv):
        try:
            with SnakemakeApi(OutputSettings(dryrun=True)) as api:
                workflow_api = api.workflow(
                    ResourceSettings(cores=1), ConfigSettings(configfiles=configfiles), snakefile=SNAKEFILE
                )
                dag = DAGSettings(targets=frozenset(targets), forceall=all_jobs, force_incomplete=True)
                workflow = workflow_api.dag(dag).workflow_api._workflow
                workflow._prepare_dag(
                    forceall=all_jobs, ignore_incomplete=False, lock_warn_only=True, nolock=True
                )
                workflow._build_dag()
                jobs = [Job(job.rule.name, dict(job.wildcards_dict)) for job in workflow.dag.needrun_jobs()]
                return DryRun(jobs, frozenset(rule.name for rule in workflow.rules))
        except (WorkflowError, RuleException, ApiError) as err:  # the config, a target, the DAG
            raise ConfigError(" ".join(map(str, configfiles)), f"Snakemake's DAG failed: {err}") from err
