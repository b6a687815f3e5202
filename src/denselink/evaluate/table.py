"""``denselink evaluate table``: Table 1 (LNK per dataset and method) under one or more protocols.

One CSV row per (protocol, dataset, direction, variant) with mean, population and sample
variance over seeds of LNK, TRA and DET, the chosen epochs, a paired comparison against the
re-trained baseline over matching seeds (paired t-test, Wilcoxon signed-rank, bootstrap CI of
the mean paired difference) and the paper's published value. The Markdown groups the same
numbers as the paper's Table 1, one section per protocol and direction.
"""

from __future__ import annotations

import argparse
import math
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field
from scipy import stats

from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.errors import ConfigError
from denselink.evaluate.metrics import SCORES, MetricsFormatError, load_metrics
from denselink.evaluate.protocols import PROTOCOLS, select, summarize
from denselink.evaluate.published import DATASETS, published_lnk
from denselink.evaluate.variants import AGG_LABELS, BASELINES, Variant, parse_variant
from denselink.settings import StageSettings, load_settings

COLUMNS = ("Default", "MMA", "Centroid")
PROTOCOL_TEXT = {
    "clean": "each seed's checkpoint has the lowest validation loss (held-out tail of the training "
    "sequence); scores are on the evaluation sequence",
    "paper": "as the authors' evaluation: every epoch scored, the epoch with the highest mean LNK "
    "over seeds chosen for all seeds",
}

COMMAND = "evaluate table"


class TableSettings(StageSettings):
    """Settings of ``denselink evaluate table``."""

    protocols: list[Literal["clean", "paper"]] = Field(
        default=["clean", "paper"], description="protocols to report, one section each"
    )
    main_fusion: Literal["add_wrfeat", "add_token", "concat"] = Field(
        default="add_wrfeat", description="fusion mode of the main rows; other fusions get extra rows"
    )
    bootstrap_samples: int = Field(default=10000, ge=100, description="bootstrap resamples for the CI")
    bootstrap_seed: int = Field(default=0, description="seed of the bootstrap's random generator")
    confidence: float = Field(default=0.95, gt=0, lt=1, description="level of the bootstrap interval")


def paired_comparison(
    values: dict[int, float], baseline: dict[int, float], settings: TableSettings
) -> dict[str, float]:
    """Paired statistics of ``values - baseline`` over seeds present in both."""
    seeds = sorted(set(values) & set(baseline))
    diffs = np.asarray([values[s] - baseline[s] for s in seeds], dtype=float)
    out = {"n_pairs": len(seeds), "dLNK_mean": math.nan, "dLNK_ci_low": math.nan, "dLNK_ci_high": math.nan}
    out |= {"p_ttest": math.nan, "p_wilcoxon": math.nan}
    if len(seeds) < 2:
        return out
    rng = np.random.default_rng(settings.bootstrap_seed)
    boot = diffs[rng.integers(0, len(diffs), size=(settings.bootstrap_samples, len(diffs)))].mean(axis=1)
    tail = (1 - settings.confidence) / 2
    out["dLNK_mean"] = float(diffs.mean())
    out["dLNK_ci_low"], out["dLNK_ci_high"] = (float(q) for q in np.quantile(boot, [tail, 1 - tail]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        paired = ([values[s] for s in seeds], [baseline[s] for s in seeds])
        out["p_ttest"] = float(stats.ttest_rel(*paired).pvalue)
        out["p_wilcoxon"] = 1.0 if np.all(diffs == 0) else float(stats.wilcoxon(diffs).pvalue)
    return out


def _column(variant: Variant) -> str:
    return "Default" if variant.kind in BASELINES else AGG_LABELS[str(variant.agg)]


def _row_label(variant: Variant, several_maester: bool, main_fusion: str) -> str:
    label = variant.long_label if several_maester else variant.label
    if variant.kind not in BASELINES and variant.fusion != main_fusion:
        label += f" [{variant.fusion}]"
    return label


def _row_order(variant: Variant, main_fusion: str) -> tuple:
    order = {"retrained": 0, "pretrained": 1, "sam": 2, "musam": 3, "maester": 4}
    key = variant.kind if variant.kind in BASELINES else str(variant.backbone)
    return (variant.kind not in BASELINES and variant.fusion != main_fusion, order[key], variant.epoch or 0)


def _dataset_order(dataset: str) -> tuple:
    return (DATASETS.index(dataset) if dataset in DATASETS else len(DATASETS), dataset)


def _parse_variants(runs: pd.DataFrame) -> dict[str, Variant]:
    parsed = {}
    for name, path in runs.groupby("variant")["path"].first().items():
        try:
            parsed[name] = parse_variant(name)
        except ConfigError as err:
            raise MetricsFormatError(path, f"variant {name!r}: {err.problem}") from err
    return parsed


def _sections(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(dataset, train_seq, eval_seq) sections; an untrained pretrained run joins every section it fits."""
    trained = runs[~((runs["variant"] == "pretrained") & (runs["train_seq"] == ""))]
    keys = set(map(tuple, trained[["dataset", "train_seq", "eval_seq"]].to_numpy()))
    for dataset, eval_seq in runs[["dataset", "eval_seq"]].drop_duplicates().to_numpy():
        if not any(k[0] == dataset and k[2] == eval_seq for k in keys):
            keys.add((dataset, "", eval_seq))
    return sorted(keys, key=lambda k: (_dataset_order(k[0]), k[1], k[2]))


def build_table(runs: pd.DataFrame, epochs: pd.DataFrame, settings: TableSettings) -> pd.DataFrame:
    """One row per (protocol, dataset, direction, variant) with summaries and comparisons."""
    rows: list[dict] = []
    parsed = _parse_variants(runs)
    runs = runs.assign(train_seq=runs["train_seq"].fillna(""), eval_seq=runs["eval_seq"].fillna(""))
    for protocol in settings.protocols:
        selected = select(runs, epochs, protocol)
        for dataset, train_seq, eval_seq in _sections(runs):
            group = runs[
                (runs["dataset"] == dataset)
                & (runs["eval_seq"] == eval_seq)
                & (
                    (runs["train_seq"] == train_seq)
                    | ((runs["variant"] == "pretrained") & (runs["train_seq"] == ""))
                )
            ]
            mine = selected[selected["path"].isin(group["path"])]
            variants = {name: parsed[name] for name in group["variant"].unique()}
            several = len({v.embedding for v in variants.values() if v.backbone == "maester"}) > 1
            baseline = mine[mine["variant"] == "retrained"].set_index("seed")["LNK"].dropna().to_dict()
            ordered = sorted(variants.items(), key=lambda item: _row_order(item[1], settings.main_fusion))
            for name, variant in ordered:
                chosen = mine[mine["variant"] == name].sort_values("seed")
                runs_v = group[group["variant"] == name]
                skipped = runs_v[runs_v["status"] == "skipped"]
                row = {
                    "protocol": protocol,
                    "dataset": dataset,
                    "train_seq": train_seq,
                    "eval_seq": eval_seq,
                    "row": _row_label(variant, several, settings.main_fusion),
                    "column": _column(variant),
                    "variant": name,
                    "family": variant.kind if variant.kind in BASELINES else str(variant.backbone),
                    "seeds": " ".join(str(s) for s in chosen["seed"]),
                    "epochs": " ".join("-" if pd.isna(e) else str(int(e)) for e in chosen["epoch"]),
                    "n_skipped": len(skipped),
                    "reason": "; ".join(sorted({str(r) for r in skipped["reason"].fillna("")} - {""})),
                }
                row["n_seeds"] = summarize(chosen["LNK"].astype(float).tolist())["n"]
                for score in SCORES:
                    summary = summarize(chosen[score].astype(float).tolist())
                    row[f"{score}_mean"], row[f"{score}_var"] = summary["mean"], summary["var"]
                    row[f"{score}_var_ddof1"] = summary["var_ddof1"]
                if row["n_seeds"]:
                    row["status"] = "ok"
                elif len(skipped):
                    row["status"] = "skipped"
                else:
                    row["status"] = "no data"
                    row["reason"] = "no run selectable under this protocol"
                lnk = chosen.set_index("seed")["LNK"].dropna().to_dict()
                compare = name != "retrained" and variant.kind != "pretrained" and baseline
                row |= paired_comparison(lnk, baseline if compare else {}, settings)
                extra = variant.kind not in BASELINES and variant.fusion != settings.main_fusion
                published = None if extra else published_lnk(dataset, row["family"], variant.agg)
                row["paper_LNK_mean"] = published[0] if published else math.nan
                row["paper_LNK_var"] = published[1] if published and published[1] is not None else math.nan
                rows.append(row)
    return pd.DataFrame(rows)


def _fmt_mean_var(mean: float, var: float, n: int) -> str:
    if n == 1 or math.isnan(var):
        return f"{mean:.4f} (n={n})"
    return f"{mean:.4f} ± {var:.2g} (n={n})"


def _cell(row: pd.Series, notes: list[str]) -> str:
    if row["status"] == "skipped":
        reason = row["reason"] or "no reason given"
        if reason not in notes:
            notes.append(reason)
        return f"n/a (skipped [{notes.index(reason) + 1}])"
    if row["status"] != "ok":
        return "n/a"
    text = _fmt_mean_var(row["LNK_mean"], row["LNK_var"], int(row["n_seeds"]))
    return text + (f", {row['n_skipped']} skipped" if row["n_skipped"] else "")


def _paper_cell(dataset: str, family: str, column: str, extra: bool) -> str:
    agg = None if column == "Default" else column.lower()
    published = None if extra else published_lnk(dataset, family, agg)
    if published is None:
        return "–"
    mean, var = published
    return f"{mean:.4f}" if var is None else f"{mean:.4f} ± {var:.3g}"


def _p(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g}"


def render_markdown(table: pd.DataFrame, settings: TableSettings) -> str:
    """Markdown report of the table: one section per protocol and direction."""
    lines = [
        "# Table 1: cell linking (LNK) with and without dense embeddings",
        "",
        "Cells: mean ± variance of LNK over seeds (population variance, ddof=0, as in the paper; "
        "the CSV also lists the sample variance, ddof=1, and TRA/DET); n = seeds. "
        "*Paper* columns: the published Table 1. Rows marked [fusion] use a fusion mode other "
        f"than the main one ({settings.main_fusion}).",
        "",
    ]
    for protocol in settings.protocols:
        part = table[table["protocol"] == protocol] if len(table) else table
        text = PROTOCOL_TEXT[protocol]
        lines += [f"## Protocol `{protocol}`", "", text[0].upper() + text[1:] + ".", ""]
        if part.empty:
            lines += ["No runs.", ""]
            continue
        for (dataset, train_seq, eval_seq), section in part.groupby(
            ["dataset", "train_seq", "eval_seq"], sort=False, dropna=False
        ):
            trained = f"train on {train_seq}, " if train_seq else ""
            lines += [f"### {dataset}: {trained}evaluate on {eval_seq}", ""]
            lines += _main_table(section) + [""] + _comparison_table(section, settings) + [""]
    return "\n".join(lines)


def _main_table(section: pd.DataFrame) -> list[str]:
    labels = list(dict.fromkeys(section["row"]))
    header = "| Method / Features | " + " | ".join(f"LNK ({c})" for c in COLUMNS)
    header += " | " + " | ".join(f"Paper ({c})" for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(COLUMNS))]
    notes: list[str] = []
    for label in labels:
        rows = section[section["row"] == label]
        cells = {row["column"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        ours = [_cell(cells[c], notes) if c in cells else "–" for c in COLUMNS]
        paper = [_paper_cell(first["dataset"], first["family"], c, "[" in label) for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(ours) + " | " + " | ".join(paper) + " |")
    if notes:
        lines += [""] + [f"[{i}] {reason}" for i, reason in enumerate(notes, start=1)]
    return lines


def _comparison_table(section: pd.DataFrame, settings: TableSettings) -> list[str]:
    compared = section[section["n_pairs"] >= 2]
    if compared.empty:
        return ["No paired comparison against the re-trained baseline (fewer than 2 matching seeds)."]
    lines = [
        "Paired difference to Trackastra (re-trained) over matching seeds:",
        "",
        "| Method / Features | Aggregation | pairs | ΔLNK (mean) | "
        f"{settings.confidence:.0%} bootstrap CI | paired t-test p | Wilcoxon p |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, row in compared.iterrows():
        lines.append(
            f"| {row['row']} | {row['column']} | {int(row['n_pairs'])} | {row['dLNK_mean']:+.2e} | "
            f"[{row['dLNK_ci_low']:+.2e}, {row['dLNK_ci_high']:+.2e}] | {_p(row['p_ttest'])} | "
            f"{_p(row['p_wilcoxon'])} |"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink evaluate table``."""
    parser = argparse.ArgumentParser(
        prog="denselink evaluate table",
        description="Table 1 (LNK mean ± variance over seeds, paired tests vs the re-trained baseline, "
        "the paper's values) from metrics JSONs, as CSV and Markdown.",
    )
    parser.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics JSON files")
    parser.add_argument("--out-csv", required=True, type=Path, help="output CSV, one row per variant")
    parser.add_argument("--out-md", required=True, type=Path, help="output Markdown report")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=PROTOCOLS,
        default=None,
        help="protocols to report (default: clean paper); overrides the settings",
    )
    parser.add_argument(
        "--settings",
        default=None,
        help="TableSettings as inline JSON or a YAML/JSON file: protocols, main_fusion, bootstrap_samples, "
        "bootstrap_seed, confidence",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate table``."""
    args = build_parser().parse_args(argv)
    for out in (args.out_csv, args.out_md):
        check_output(out, COMMAND, args.force)
    settings = load_settings(TableSettings, args.settings)
    if args.protocols:
        settings.protocols = list(args.protocols)
    runs, epochs = load_metrics(args.metrics)
    table = build_table(runs, epochs, settings)
    with atomic_path(args.out_csv, COMMAND, args.force) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(args.out_md, COMMAND, args.force) as tmp:
        tmp.write_text(render_markdown(table, settings) + "\n")
    print(f"wrote {args.out_csv} ({len(table)} rows) and {args.out_md}")
    return 0
