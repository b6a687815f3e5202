"""Checkpoint choice per protocol: which epoch's scores of a run count, by the run's own protocol.

A metrics JSON records the protocol its model was trained and scored under; a run is only ever
summarised by that protocol's rule (docs/deviations.md, "Protocols"):

- ``paper`` (the authors' code): every epoch is scored; for each epoch the LNK is averaged over
  the seeds with a valid value there (LNK <= 0 or missing is the authors' marker of a failed
  evaluation and is dropped); among the epochs every seed reached, the epoch with the highest mean
  (first on ties) is chosen for all seeds of a dataset/variant/direction, and each seed
  contributes its scores at that epoch. A seed
  whose value there is dropped is kept as a row with outcome ``dropped`` so tables can count it.
- ``clean`` (default): the metrics file's top-level scores are those of the checkpoint with the
  lowest validation loss (chosen by ``tracking evaluate`` before scoring). A checkpoint that links
  nothing is a failure, not missing data: it counts as LNK 0 (outcome ``failed``).

Runs without training (the pretrained model) have no epochs: their top-level scores are used.
Summaries give the mean and the variance over seeds, population (ddof=0, as the paper) and sample
(ddof=1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from denselink.evaluate.metrics import SCORES, MetricsFormatError
from denselink.filenames import checkpoint_epoch
from denselink.vocabulary import PROTOCOLS

GROUP = ["dataset", "variant", "train_seq", "eval_seq"]
SELECTED_COLUMNS = ["protocol", *GROUP, "seed", "epoch", *SCORES, "outcome", "path"]


def valid_lnk(values: pd.Series) -> pd.Series:
    """The authors' validity rule: a number in (0, 1]."""
    return values.notna() & (values > 0) & (values <= 1)


def _checkpoint_epoch(checkpoint: object) -> float:
    """The epoch of a checkpoint file ``.../epoch{N}.pt`` (not a MAESTER ``epoch`` in a variant name)."""
    epoch = checkpoint_epoch(str(checkpoint or ""))
    return math.nan if epoch is None else float(epoch)


def paper_epoch_means(epochs: pd.DataFrame) -> pd.Series:
    """Mean LNK per epoch over the seeds with a valid value there (index: epoch, sorted).

    Only epochs that every run reached count: when early stopping ends seeds at different epochs, a
    mean over the few seeds that trained on would be noisier and so win more often.
    """
    reached = epochs.groupby("epoch")["path"].nunique() == epochs["path"].nunique()
    valid = epochs[valid_lnk(epochs["LNK"]) & epochs["epoch"].isin(reached[reached].index)]
    return valid.groupby("epoch")["LNK"].mean().sort_index()


def ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Runs that were not skipped."""
    return runs[runs["status"].fillna("ok") != "skipped"]


def check_recorded_protocols(runs: pd.DataFrame) -> None:
    """Every metrics file must say which protocol trained it; MetricsFormatError names the file."""
    for _, run in runs.iterrows():
        if run.get("protocol") not in PROTOCOLS:
            raise MetricsFormatError(
                run["path"], f"protocol {run.get('protocol')!r} is not one of {PROTOCOLS}"
            )


def _row(run: pd.Series, epoch: float, scores: dict, outcome: str) -> dict:
    return {
        "protocol": run["protocol"],
        **{key: run[key] for key in GROUP},
        "seed": int(run["seed"]),
        "epoch": epoch,
        **{key: scores[key] for key in SCORES},
        "outcome": outcome,
        "path": run["path"],
    }


def select_paper(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed scores of ``paper`` runs at the epoch with the highest seed-mean LNK (dropped rows kept)."""
    rows: list[dict] = []
    paper = ok_runs(runs[runs["protocol"] == "paper"])
    for _, group in paper.groupby(GROUP, dropna=False, sort=True):
        group_epochs = epochs[epochs["path"].isin(group["path"])]
        means = paper_epoch_means(group_epochs)
        best = means.idxmax() if not means.empty else math.nan
        for _, run in group.iterrows():
            run_epochs = group_epochs[group_epochs["path"] == run["path"]]
            if run_epochs.empty:
                valid = bool(valid_lnk(pd.Series([run["LNK"]])).iloc[0])
                rows.append(
                    _row(run, _checkpoint_epoch(run.get("checkpoint")), run, "ok" if valid else "dropped")
                )
                continue
            at_best = run_epochs[(run_epochs["epoch"] == best) & valid_lnk(run_epochs["LNK"])]
            if at_best.empty:
                rows.append(_row(run, float(best), dict.fromkeys(SCORES, math.nan), "dropped"))
            else:
                rows.append(_row(run, float(best), at_best.iloc[0], "ok"))
    return pd.DataFrame(rows, columns=SELECTED_COLUMNS)


def select_clean(runs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed top-level scores of ``clean`` runs; a checkpoint that links nothing scores LNK 0."""
    rows: list[dict] = []
    for _, run in ok_runs(runs[runs["protocol"] == "clean"]).iterrows():
        failed = pd.isna(run["LNK"]) or run["LNK"] <= 0
        scores = {key: 0.0 if failed and pd.isna(run[key]) else run[key] for key in SCORES}
        if failed:
            scores["LNK"] = 0.0
        rows.append(_row(run, _checkpoint_epoch(run.get("checkpoint")), scores, "failed" if failed else "ok"))
    return pd.DataFrame(rows, columns=SELECTED_COLUMNS)


def select(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed selected scores of every run, each by its own recorded protocol."""
    check_recorded_protocols(runs)
    parts = [select_clean(runs), select_paper(runs, epochs)]
    parts = [part for part in parts if not part.empty]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=SELECTED_COLUMNS)


def summarize(values: np.ndarray | list[float]) -> dict[str, float]:
    """n, mean, population variance (ddof=0, as the paper) and sample variance (ddof=1)."""
    array = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = int(array.size)
    return {
        "n": n,
        "mean": float(array.mean()) if n else math.nan,
        "var": float(np.var(array)) if n else math.nan,
        "var_ddof1": float(np.var(array, ddof=1)) if n > 1 else math.nan,
    }
