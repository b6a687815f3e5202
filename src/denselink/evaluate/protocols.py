"""Checkpoint-selection protocols: which epoch's scores count for each seed.

- ``paper``: as the authors' evaluation did it. Every epoch is scored; for each epoch the LNK is
  averaged over the seeds that have a valid value there (the authors drop values <= 0, their
  marker of a failed evaluation); the epoch with the highest mean (first one on ties) is chosen
  for all seeds, and each seed contributes its scores at that epoch.
- ``clean`` (default): each seed's checkpoint is the one with the lowest validation loss (held-out
  tail of the training sequence), scored on the other sequence. A metrics file written under the
  ``clean`` protocol already carries that checkpoint's scores at the top level.

Runs without training (the pretrained model) have no epochs: their top-level scores are used
under both protocols. Summaries give the mean and the variance over seeds, population (ddof=0,
as the paper) and sample (ddof=1).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from denselink.evaluate.metrics import SCORES

PROTOCOLS = ("clean", "paper")
GROUP = ["dataset", "variant", "train_seq", "eval_seq"]
SELECTED_COLUMNS = ["protocol", *GROUP, "seed", "epoch", *SCORES, "path"]


def _valid_lnk(values: pd.Series) -> pd.Series:
    return values.notna() & (values > 0) & (values <= 1)


def _checkpoint_epoch(checkpoint: object) -> float:
    match = re.search(r"epoch(\d+)", str(checkpoint or ""))
    return float(match[1]) if match else math.nan


def paper_epoch_means(epochs: pd.DataFrame) -> pd.Series:
    """Mean LNK per epoch over the seeds with a valid value there (index: epoch, sorted)."""
    valid = epochs[_valid_lnk(epochs["LNK"])]
    return valid.groupby("epoch")["LNK"].mean().sort_index()


def _ok_runs(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[runs["status"].fillna("ok") != "skipped"]


def _top_level(run: pd.Series, protocol: str) -> dict:
    return {
        "protocol": protocol,
        **{key: run[key] for key in GROUP},
        "seed": int(run["seed"]),
        "epoch": _checkpoint_epoch(run.get("checkpoint")),
        **{key: run[key] for key in SCORES},
        "path": run["path"],
    }


def _at_epoch(run: pd.Series, row: pd.Series, protocol: str) -> dict:
    return {
        "protocol": protocol,
        **{key: run[key] for key in GROUP},
        "seed": int(run["seed"]),
        "epoch": float(row["epoch"]),
        **{key: row[key] for key in SCORES},
        "path": run["path"],
    }


def select_paper(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed scores at the epoch with the highest seed-mean LNK, per dataset/variant/direction."""
    rows: list[dict] = []
    for _, group in _ok_runs(runs).groupby(GROUP, dropna=False, sort=True):
        group_epochs = epochs[epochs["path"].isin(group["path"])]
        means = paper_epoch_means(group_epochs)
        for _, run in group.iterrows():
            run_epochs = group_epochs[group_epochs["path"] == run["path"]]
            if run_epochs.empty:
                rows.append(_top_level(run, "paper"))
                continue
            if means.empty:
                continue
            best = means.idxmax()
            at_best = run_epochs[(run_epochs["epoch"] == best) & _valid_lnk(run_epochs["LNK"])]
            if not at_best.empty:
                rows.append(_at_epoch(run, at_best.iloc[0], "paper"))
    return pd.DataFrame(rows, columns=SELECTED_COLUMNS)


def select_clean(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed scores of the checkpoint with the lowest validation loss."""
    rows: list[dict] = []
    for _, run in _ok_runs(runs).iterrows():
        run_epochs = epochs[epochs["path"] == run["path"]]
        if (run.get("protocol") == "clean" and pd.notna(run["LNK"])) or run_epochs.empty:
            if pd.notna(run["LNK"]):
                rows.append(_top_level(run, "clean"))
            continue
        with_loss = run_epochs[run_epochs["val_loss"].notna()].sort_values("epoch", kind="stable")
        if not with_loss.empty:
            best = with_loss.loc[with_loss["val_loss"].idxmin()]
            rows.append(_at_epoch(run, best, "clean"))
    return pd.DataFrame(rows, columns=SELECTED_COLUMNS)


def select(runs: pd.DataFrame, epochs: pd.DataFrame, protocol: str) -> pd.DataFrame:
    """Per-seed selected scores under ``protocol`` (``clean`` or ``paper``)."""
    if protocol == "paper":
        return select_paper(runs, epochs)
    if protocol == "clean":
        return select_clean(runs, epochs)
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")


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
