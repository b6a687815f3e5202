"""The Snakemake command line of the workflow tests: this Snakefile run on a working directory."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def snakemake_cmd(workdir: Path, *args: str, config: Path, profile: str | None = "ci") -> list[str]:
    """``snakemake`` on ``workdir``: ``args``, the profile ``profiles/{profile}`` (None: none), ``config``."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir)]
    if profile is not None:
        cmd += ["--profile", str(REPO / "profiles" / profile)]
    return [*cmd, *args, "--configfile", str(config)]  # --configfile takes every word after it
