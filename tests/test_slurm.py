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
MINI = REPO / "workflow" / "configs" / "mini.yaml"
SNAKEMAKE = Path(sys.executable).with_name("snakemake")
GPU_RULES = ("maester_train", "maester_infer", "foundation_embed", "tracking_train")


def _slurm_unavailable() -> str | None:
    """Why no Slurm node can take jobs here, or None when one can."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "Slurm client commands absent (start one with scripts/slurm/start_local_slurm.sh)"
    try:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s"
    states = done.stdout.split()
    if done.returncode != 0 or not {"idle", "mix", "alloc"} & set(states):
        found = done.stderr.strip() or states
        return f"no Slurm node is up (sinfo: {found}); run scripts/slurm/start_local_slurm.sh"
    return None


SLURM_UNAVAILABLE = _slurm_unavailable()
pytestmark = [
    pytest.mark.slurm,
    pytest.mark.skipif(SLURM_UNAVAILABLE is not None, reason=str(SLURM_UNAVAILABLE)),
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


def profile() -> dict:
    return yaml.safe_load((PROFILE / "config.yaml").read_text())


def check_job_resources(job_id: str, rule: str, spec: dict) -> dict[str, str]:
    """Slurm granted the job the cpus, memory, runtime, GPUs and partition that `spec` and the profile ask."""
    job = slurm_job(job_id)
    assert job["JobState"] == "COMPLETED"
    assert job["Comment"].startswith(f"rule_{rule}")
    assert int(job["NumCPUs"]) == spec["cpus"]
    assert job["MinMemoryNode"] == f"{spec['mem_mb']}M"
    assert minutes(job["TimeLimit"]) == spec["runtime"]
    assert job["Partition"] == ("gpu" if rule in GPU_RULES else "debug")
    assert job["NumNodes"] == "1"
    if spec["gpus"]:
        assert job["TresPerJob"] == f"gres:gpu:{spec['gpus']}"
    else:
        assert "TresPerJob" not in job
    return job


def test_profile_asks_squeue_and_sends_gpu_rules_to_gpu_partition() -> None:
    settings = profile()
    assert settings["executor"] == "slurm"
    assert settings["slurm-status-command"] == "squeue"
    assert {rule: res["slurm_partition"] for rule, res in settings["set-resources"].items()} == dict.fromkeys(
        GPU_RULES, "gpu"
    )
    assert settings["set-resources"]["maester_train"]["nodes"] == 1
    config = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True, check=True).stdout
    min_job_age = int(re.search(r"MinJobAge\s*=\s*(\d+)", config).group(1))
    assert min_job_age >= 3 * settings["slurm-init-seconds-before-status-checks"]


def test_smoke_jobs_run_on_slurm_with_requested_resources(tmp_path: Path) -> None:
    workdir = tmp_path / "smoke"
    shutil.copytree(SMOKE, workdir)
    done = run_snakemake(workdir)
    wanted = yaml.safe_load((SMOKE / "config.yaml").read_text())["resources"]

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
        # each job ran inside the Slurm job snakemake submitted for it, with what its rule asked for
        assert env["SLURM_JOB_ID"] in ids
        rule = re.sub(r"_\d+$", "", out.stem)
        check_job_resources(env["SLURM_JOB_ID"], rule, wanted[rule])
        assert int(env["SLURM_CPUS_PER_TASK"]) == wanted[rule]["cpus"]
        assert int(env.get("SLURM_GPUS_ON_NODE", 0)) == wanted[rule]["gpus"]


@pytest.mark.skipif(not MINI.exists(), reason=f"{MINI} not written yet")
def test_mini_workflow_maester_run_on_slurm(tmp_path: Path) -> None:
    """The real workflow on the mini config: generated data, manifests and one MAESTER pretraining run."""
    config = yaml.safe_load(MINI.read_text())
    runs = config["maester"]["runs"]
    run = next(name for name, sources in runs.items() if not any(s.startswith("mitocheck") for s in sources))
    # as from the repository root: config.yaml is read first, mini.yaml overrides it
    (tmp_path / "config.yaml").symlink_to(REPO / "config.yaml")
    target = f"results/maester/{run}/done.json"
    done = run_snakemake(
        tmp_path,
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        str(MINI),
        "--config",
        "results_root=results",
        f"data_root={tmp_path / 'data'}",
        "--",
        target,
    )
    assert (tmp_path / target).is_file()
    ids = submitted_job_ids(tmp_path, done.stdout + done.stderr)
    jobs = {job_id: slurm_job(job_id) for job_id in ids}
    rules = sorted(re.match(r"rule_([a-z_]+?)(_wildcards_|$)", j["Comment"]).group(1) for j in jobs.values())
    datasets = {source.split("/")[0] for source in runs[run]}
    expected = ["data_synth"] * len(datasets) + ["data_validate"] * len(set(runs[run])) + ["maester_train"]
    assert rules == sorted(expected)
    [train_id] = [i for i, j in jobs.items() if j["Comment"] == "rule_maester_train_wildcards_" + run]
    wanted = {**config["resources"]["default"], **config["resources"].get("maester_train", {})}
    check_job_resources(train_id, "maester_train", wanted)
