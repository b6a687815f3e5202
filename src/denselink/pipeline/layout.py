"""The output layout: every path pattern of the workflow, spelled once.

Patterns are relative to the results root and use Snakemake's ``{wildcard}`` syntax, so a rule
takes ``layout.pattern(METRICS)`` as its output and an input function or a stage fills the same
pattern with :meth:`Layout.path`. The stages write inside the folders the workflow gives them; the
names of the files they write there (``done.json``, checkpoints, manifests) and the embedding names
come from the bottom layer (:mod:`denselink.filenames`, :mod:`denselink.vocabulary`), which these
patterns are built from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from denselink import filenames
from denselink.vocabulary import MAESTER_EMBEDDING, fill

MANIFEST = f"data/{{source}}/{filenames.MANIFEST}"
"""A checked data source: ``DATASET/SEQ``, ``mitocheck/plateN`` or ``mitocheck/SIZE``."""
MAESTER_RUN = "maester/{run}"
MAESTER_DONE = f"{MAESTER_RUN}/{filenames.DONE}"
MAESTER_CHECKPOINT = filenames.MAESTER_CHECKPOINT
"""A MAESTER checkpoint inside its run folder (``maester train`` writes it; N counts from 0)."""
MAESTER_INITIAL = filenames.MAESTER_INITIAL
EMBEDDING = "embeddings/{dataset}/{seq}/{embedding}.zarr"
MAESTER_EMBEDDING_VOLUME = fill(EMBEDDING, embedding=MAESTER_EMBEDDING)
"""The volume ``maester infer`` writes: wildcards ``dataset``, ``seq``, ``run``, ``epoch``."""
FEATURES = "features/{dataset}/{seq}/{embedding}-{agg}.parquet"
TRACKASTRA_DATA = "trackastra_data/{dataset}/{seq}.pt"
SCORE_CACHE = "trackastra_eval/{dataset}/{seq}.pt"
MODEL = f"models/{{dataset}}/{{protocol}}/train{{train_seq}}/{{variant}}/seed{{seed}}/{filenames.DONE}"
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


def maester_checkpoint(run_dir: Any, epoch: int | str) -> str:
    """The checkpoint of ``epoch`` (a number, or the ``{epoch}`` wildcard's value) in a MAESTER run folder."""
    return f"{run_dir}/{filenames.maester_checkpoint(epoch)}"


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
