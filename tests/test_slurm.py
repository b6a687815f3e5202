"""Cluster execution through a real Slurm: profiles/slurm submits every job with sbatch, and Slurm grants the
cpus, memory, runtime, partition and GPUs that the config's `resources:` section and the profile ask for.

Needs the single-node cluster of scripts/slurm/start_local_slurm.sh (skipped otherwise).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"
SMOKE = Path(__file__).parent / "data" / "slurm_smoke"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
GPU_RULES = ("maester_train", "maester_infer", "foundation_embed", "tracking_train")


def _slurm_unavailable() -> str | None:
    """Why no Slurm node can take jobs here, or None when one can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm client commands absent (start one with scripts/slurm/start_local_slurm.sh)"
    done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    states = done.stdout.split()
    if done.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        return f"no Slurm node is up (sinfo: {done.stderr.strip() or states}); run scripts/slurm/start_local_slurm.sh"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(_slurm_unavailable() is not None, reason=str(_slurm_unavailable())),
]


def run_snakemake(workdir: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake with the Slurm profile in `workdir`; fail the test with its output when it fails."""
    cmd = [
        str(SNAKEMAKE),
        "--profile",
        str(PROFILE),
        # status checks every 2 s instead of 20 s: the test jobs take seconds
        "--slurm-init-seconds-before-status-checks",
        "2",
        *args,
    ]
    done = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-8000:]}"
    return done


def submitted_job_ids(workdir: Path, log_text: str) -> set[str]:
    """Slurm job ids of a run: the per-job logs under .snakemake/slurm_logs agree with the snakemake log."""
    from_logs = {p.stem for p in (workdir / ".snakemake" / "slurm_logs").rglob("*.log") if p.stem.isdigit()}
    from_snakemake = set(re.findall(r"submitted with SLURM jobid (\d+)", log_text))
    assert from_logs == from_snakemake, (from_logs, from_snakemake)
    return from_logs


def slurm_job(job_id: str) -> dict[str, str]:
    """Slurm's record of one job (`scontrol show job -o`), as key -> value."""
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, check=True
    ).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def minutes(limit: str) -> int:
    """Slurm's [days-]hh:mm:ss time limit in minutes."""
    days, _, clock = limit.rpartition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    return (int(days or 0) * 24 + h) * 60 + m + (s > 0)


def profile_set_resources() -> dict[str, dict]:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"]


def test_profile_sets_gpus_and_squeue_status() -> None:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert profile["slurm-status-command"] == "squeue"
    assert {rule: res["gpu"] for rule, res in profile["set-resources"].items()} == {
        "maester_train": 4,
        "maester_infer": 1,
        "foundation_embed": 1,
        "tracking_train": 1,
    }
    min_job_age = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True)
    age = int(re.search(r"MinJobAge\s*=\s*(\d+)", min_job_age.stdout).group(1))
    assert age >= 3 * profile["slurm-init-seconds-before-status-checks"]


def test_smoke_jobs_run_on_slurm_with_requested_resources(tmp_path: Path) -> None:
    workdir = tmp_path / "smoke"
    shutil.copytree(SMOKE, workdir)
    done = run_snakemake(workdir)
    wanted = yaml.safe_load((SMOKE / "config.yaml").read_text())["resources"]
    gpus = profile_set_resources()

    ids = submitted_job_ids(workdir, done.stdout + done.stderr)
    outputs = sorted((workdir / "out").glob("*.env"))
    assert [p.name for p in outputs] == [
        "data_synth.env",
        "foundation_embed_01.env",
        "foundation_embed_02.env",
        "maester_train.env",
    ]
    assert len(ids) == len(outputs)
    for out in outputs:
        env = dict(line.split("=", 1) for line in out.read_text().splitlines())
        # the job ran inside the Slurm job snakemake submitted for it
        assert env["SLURM_JOB_ID"] in ids
        rule = re.sub(r"_\d+$", "", out.stem)
        job = slurm_job(env["SLURM_JOB_ID"])
        assert job["JobState"] == "COMPLETED"
        assert job["Comment"].startswith(f"rule_{rule}")
        assert int(job["NumCPUs"]) == wanted[rule]["cpus"] == int(env["SLURM_CPUS_PER_TASK"])
        assert job["MinMemoryNode"] == f"{wanted[rule]['mem_mb']}M"
        assert minutes(job["TimeLimit"]) == wanted[rule]["runtime"]
        if rule in GPU_RULES:
            assert job["Partition"] == "gpu"
            assert job["TresPerJob"] == f"gres:gpu:{gpus[rule]['gpu']}"
            assert int(env["SLURM_GPUS_ON_NODE"]) == gpus[rule]["gpu"]
        else:
            assert job["Partition"] == "debug"
            assert "TresPerJob" not in job
