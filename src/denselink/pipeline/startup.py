"""What the Snakefile checks and says once, when it reads the config, before any job is planned."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from snakemake.exceptions import WorkflowError

from denselink.errors import DenselinkError
from denselink.pipeline.checks import check_references, check_schema, is_inspection, preflight
from denselink.pipeline.grid import studies_line
from denselink.pipeline.versions import version_notes

Config = dict[str, Any]


def check_config(cfg: Config, schema: Path) -> None:
    """Every schema violation (each naming its key), the schema's defaults filled in, cross-references."""
    try:
        check_schema(cfg, schema)
    except DenselinkError as err:
        raise WorkflowError(
            f"invalid config (see workflow/schemas/config.schema.yaml):\n{err.problem}"
        ) from None
    try:
        check_references(cfg)
    except DenselinkError as err:
        raise WorkflowError(f"invalid config: {err.path}: {err.problem}") from None


def run_preflight(cfg: Config, workdir: Path, dryrun: bool, argv: Sequence[str]) -> None:
    """Stage settings, protocols and paths; a dry run (or ``argv`` inspecting the DAG) only warns about
    inputs not in place yet. Also says which studies the config runs (a study runs when its section is
    present) and what changed since the config's version."""
    print(studies_line(cfg), file=sys.stderr)
    for note in version_notes(cfg):
        print(f"NOTE: {note}", file=sys.stderr)
    missing: list[str] | None = [] if dryrun or is_inspection(argv) else None
    try:
        preflight(cfg, workdir, missing=missing)
    except DenselinkError as err:
        raise WorkflowError(f"invalid config: {err}") from None
    for problem in missing or []:
        print(f"WARNING (dry run): {problem}; a real run stops here", file=sys.stderr)
