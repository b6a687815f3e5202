"""The output layout: every path pattern of the workflow, spelled once.

Patterns are relative to the results root and use Snakemake's ``{wildcard}`` syntax, so a rule
takes ``layout.pattern(METRICS)`` as its output and an input function or a stage fills the same
pattern with :meth:`Layout.path`. The stages write inside the folders the workflow gives them; the
MAESTER checkpoint names are the one exception shared with the stage code (:data:`MAESTER_CHECKPOINT`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

MANIFEST = "data/{source}/manifest.json"
"""A checked data source: ``DATASET/SEQ``, ``mitocheck/plateN`` or ``mitocheck/SIZE``."""
MAESTER_RUN = "maester/{run}"
MAESTER_DONE = f"{MAESTER_RUN}/done.json"
MAESTER_CHECKPOINT = "checkpoints/epoch{epoch}.pt"
"""A MAESTER checkpoint inside its run folder (``maester train`` writes it; N counts from 0)."""
MAESTER_INITIAL = "checkpoints/init.pt"
"""A MAESTER run's seeded initial weights, before any step (``maester.train.save_initial``)."""
EMBEDDING = "embeddings/{dataset}/{seq}/{embedding}.zarr"
FEATURES = "features/{dataset}/{seq}/{embedding}-{agg}.parquet"
TRACKASTRA_DATA = "trackastra_data/{dataset}/{seq}.pt"
SCORE_CACHE = "trackastra_eval/{dataset}/{seq}.pt"
MODEL = "models/{dataset}/{protocol}/train{train_seq}/{variant}/seed{seed}/done.json"
CELL = "{dataset}/{protocol}/{train_seq}-{eval_seq}/{variant}"
"""One Table 1 cell: a variant trained and scored in one direction under one protocol, over the seeds."""
RUN = CELL + "/seed{seed}"
METRICS = f"metrics/{RUN}.json"
TRACKS = f"tracks/{RUN}"
TABLE1 = "tables/table1.{ext}"
FIGURE = "figures/{study}.{ext}"
FUSION_GAIN_REPORT = "report/fusion_gain.png"
LOG = "logs/{rule}/{job}.log"
BENCHMARK = "benchmarks/{rule}/{job}.tsv"

_FIELD = re.compile(r"\{(\w+)\}")


def fill(pattern: str, **fields: Any) -> str:
    """``pattern`` with the given fields filled in; the others stay ``{wildcards}``."""
    return _FIELD.sub(lambda m: str(fields[m[1]]) if m[1] in fields else m[0], pattern)


def maester_checkpoint(run_dir: Any, epoch: int) -> str:
    """The checkpoint of ``epoch`` inside a MAESTER run folder."""
    return f"{run_dir}/{fill(MAESTER_CHECKPOINT, epoch=int(epoch))}"


@dataclass(frozen=True)
class Layout:
    """Where a config's outputs go: patterns under ``results_root``, raw datasets under ``data_root``.

    A dataset's name (any CTC name, ``+`` included) is its folder under both roots, unless
    ``datasets.NAME.folder`` names its raw data folder (``folders``: those mappings).
    """

    results_root: str
    data_root: str
    folders: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, config: dict[str, Any]) -> Layout:
        datasets = config.get("datasets") or {}
        folders = tuple((name, spec["folder"]) for name, spec in datasets.items() if spec.get("folder"))
        return cls(str(config["results_root"]), str(config["data_root"]), folders)

    def path(self, pattern: str, **fields: Any) -> str:
        """A path (or, with fields left out, a wildcard pattern) under the results root."""
        return f"{self.results_root}/{fill(pattern, **fields)}"

    def dataset_dir(self, dataset: str) -> str:
        """A raw CTC dataset folder under the data root (its ``folder``, else its name)."""
        return f"{self.data_root}/{dict(self.folders).get(dataset, dataset)}"

    def manifest(self, source: str) -> str:
        return self.path(MANIFEST, source=source)

    def log(self, rule: str, job: str) -> str:
        return self.path(LOG, rule=rule, job=job)

    def benchmark(self, rule: str, job: str) -> str:
        return self.path(BENCHMARK, rule=rule, job=job)
