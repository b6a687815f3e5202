"""The directives every rule shares: its log, benchmark, conda environment, threads and resources.

Each is a function of the rule's name (``resources.<rule>`` of the config, the log and benchmark folders)
and of the wildcards that name one of its jobs, so a rule states only those two (workflow/rules/*.smk:
``X = Job("rule", "{wildcards}")``, then ``log: X.log``, ``benchmark: X.benchmark``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from denselink.pipeline.jobs import Config, rule_resources, slurm_resources
from denselink.pipeline.layout import Layout

CPU_ENV = "../../envs/cpu.yaml"
"""The conda environment of a CPU job (relative to workflow/rules/, where every rule is written)."""
GPU_ENV = "../../envs/gpu.yaml"
"""The conda environment of a job that may use a GPU (torch with CUDA)."""


@dataclass(frozen=True)
class RuleDirectives:
    """The shared directives of one rule, its name spelled once."""

    log: str
    benchmark: str
    conda: str
    threads: int
    resources: dict[str, Any]

    @classmethod
    def of(
        cls, cfg: Config, rule: str, job: str, *, gpu: bool = False, resources: str | None = None
    ) -> RuleDirectives:
        """``job``: the wildcards naming one job in its log and benchmark (e.g. ``{dataset}/{seq}``);
        ``gpu``: the job may use a GPU (the GPU environment); ``resources``: the ``resources.<rule>`` key
        when it is not the rule's own name."""
        layout, key = Layout.of(cfg), resources or rule
        return cls(
            log=layout.log(rule, job),
            benchmark=layout.benchmark(rule, job),
            conda=GPU_ENV if gpu else CPU_ENV,
            threads=rule_resources(cfg, key)["cpus"],
            resources=slurm_resources(cfg, key),
        )
