"""``denselink evaluate table``: Table 1 (LNK per dataset and method), one part per protocol.

Every run is summarised by the protocol recorded in its metrics JSON (the one it was trained and
scored under), so a protocol's part holds only its own runs, and a direction has a section only
where that protocol ran it. One CSV row per (protocol, dataset, direction, variant) with mean,
population and sample variance over seeds of LNK, TRA and DET, the chosen epochs, the runs that
failed (``clean``: linked nothing, counted as LNK 0) or were dropped (``paper``: LNK <= 0, the
authors' rule), a comparison against the re-trained baseline (``evaluate.stats``: paired over
seeds for the project's runs, unpaired for ingested ones) with Holm-adjusted p-values over the
comparisons of one section, and the paper's published value beside the main fusion's rows.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.errors import ConfigError
from denselink.evaluate.metrics import SCORES, MetricsFormatError, load_metrics
from denselink.evaluate.protocols import select, summarize
from denselink.evaluate.published import DATASETS, published_lnk
from denselink.evaluate.settings import TableSettings
from denselink.evaluate.stats import holm, paired_comparison, unpaired_comparison
from denselink.settings import load_settings
from denselink.vocabulary import AGG_LABELS, BASELINES, PROTOCOLS, Variant, parse_variant

COLUMNS = ("Default", "MMA", "Centroid")
OWN_ORIGIN = "denselink"
PROTOCOL_TEXT = {
    "clean": "runs trained with a held-out tail of the training sequence for validation; each seed's "
    "checkpoint has the lowest validation loss and is scored on the evaluation sequence; a checkpoint "
    "that links nothing counts as LNK 0",
    "paper": "runs trained as the authors did (validation loss on another sequence, early stopping of "
    "the re-trained baseline only); every epoch scored, the epoch with the highest mean LNK over seeds "
    "chosen for all seeds, LNK <= 0 dropped as a failed evaluation (the authors' rule)",
}

COMMAND = "evaluate table"


def compare(
    values: pd.DataFrame, baseline: pd.DataFrame, paired: bool, settings: TableSettings
) -> dict[str, float]:
    """A variant's LNK per seed against the baseline's: paired over seeds, or unpaired."""
    args = (settings.bootstrap_samples, settings.bootstrap_seed, settings.confidence)
    if paired:
        mine = values.set_index("seed")["LNK"].to_dict()
        return paired_comparison(mine, baseline.set_index("seed")["LNK"].to_dict(), *args)
    return unpaired_comparison(values["LNK"].tolist(), baseline["LNK"].tolist(), *args)


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
    """(dataset, train_seq, eval_seq) sections of one protocol's runs.

    An untrained pretrained run joins every section of its dataset and evaluation sequence.
    """
    trained = runs[~((runs["variant"] == "pretrained") & (runs["train_seq"] == ""))]
    keys = set(map(tuple, trained[["dataset", "train_seq", "eval_seq"]].to_numpy()))
    for dataset, eval_seq in runs[["dataset", "eval_seq"]].drop_duplicates().to_numpy():
        if not any(k[0] == dataset and k[2] == eval_seq for k in keys):
            keys.add((dataset, "", eval_seq))
    return sorted(keys, key=lambda k: (_dataset_order(k[0]), k[1], k[2]))


def _main_fusion(variants: list[Variant], preferred: str) -> str:
    """``preferred`` if a section has runs of it, else the one fusion its embedding rows share."""
    fusions = {v.fusion for v in variants if v.kind not in BASELINES}
    return next(iter(fusions)) if len(fusions) == 1 and preferred not in fusions else preferred


def _origins(runs: pd.DataFrame) -> pd.Series:
    """Where each run comes from (path -> origin): the project's own runs unless the file says otherwise."""
    origin = runs["origin"] if "origin" in runs else pd.Series(index=runs.index, dtype=object)
    return pd.Series(origin.fillna(OWN_ORIGIN).to_numpy(), index=runs["path"])


def _status(n_seeds: int, n_skipped: int, n_dropped: int, reason: str) -> tuple[str, str]:
    if n_seeds:
        return "ok", reason
    if n_skipped:
        return "skipped", reason
    if n_dropped:
        return "no data", "every seed dropped (LNK <= 0 at the chosen epoch)"
    return "no data", "no run selectable under this protocol"


def _section_rows(
    group: pd.DataFrame,
    chosen: pd.DataFrame,
    parsed: dict[str, Variant],
    origins: pd.Series,
    settings: TableSettings,
) -> list[dict]:
    """Rows of one protocol's section (one dataset and direction), Holm-adjusted within it."""
    variants = {name: parsed[name] for name in group["variant"].unique()}
    main_fusion = _main_fusion(list(variants.values()), settings.main_fusion)
    several = len({v.embedding for v in variants.values() if v.backbone == "maester"}) > 1
    counted = chosen[chosen["outcome"] != "dropped"]
    baseline = counted[counted["variant"] == "retrained"]
    rows = []
    for name, variant in sorted(variants.items(), key=lambda item: _row_order(item[1], main_fusion)):
        mine = chosen[chosen["variant"] == name].sort_values("seed")
        used = mine[mine["outcome"] != "dropped"]
        skipped = group[(group["variant"] == name) & (group["status"] == "skipped")]
        main = variant.kind in BASELINES or variant.fusion == main_fusion
        row = {
            "dataset": group["dataset"].iloc[0],
            "row": _row_label(variant, several, main_fusion),
            "column": _column(variant),
            "variant": name,
            "family": variant.kind if variant.kind in BASELINES else str(variant.backbone),
            "main": main,
            "seeds": " ".join(str(s) for s in used["seed"]),
            "epochs": " ".join("-" if pd.isna(e) else str(int(e)) for e in used["epoch"]),
            "n_seeds": summarize(used["LNK"].astype(float).tolist())["n"],
            "n_failed": int((mine["outcome"] == "failed").sum()),
            "n_dropped": int((mine["outcome"] == "dropped").sum()),
            "n_skipped": len(skipped),
        }
        reason = "; ".join(sorted({str(r) for r in skipped["reason"].fillna("")} - {""}))
        row["status"], row["reason"] = _status(row["n_seeds"], row["n_skipped"], row["n_dropped"], reason)
        for score in SCORES:
            summary = summarize(used[score].astype(float).tolist())
            row[f"{score}_mean"], row[f"{score}_var"] = summary["mean"], summary["var"]
            row[f"{score}_var_ddof1"] = summary["var_ddof1"]
        tested = name != "retrained" and variant.kind != "pretrained"
        paths = [*used["path"], *baseline["path"]]
        paired = bool(paths) and all(origins[path] == OWN_ORIGIN for path in paths)
        row |= compare(used, baseline if tested else baseline.iloc[:0], paired, settings)
        row["comparison"] = row["comparison"] if tested else ""
        published = published_lnk(row["dataset"], row["family"], variant.agg) if main else None
        row["paper_LNK_mean"] = published[0] if published else math.nan
        row["paper_LNK_var"] = published[1] if published and published[1] is not None else math.nan
        rows.append(row)
    for key in ("p_ttest", "p_rank"):
        for row, adjusted in zip(rows, holm([row[key] for row in rows]), strict=True):
            row[f"{key}_holm"] = adjusted
    return rows


def build_table(runs: pd.DataFrame, epochs: pd.DataFrame, settings: TableSettings) -> pd.DataFrame:
    """One row per (protocol, dataset, direction, variant): each protocol's own runs only."""
    runs = runs.assign(train_seq=runs["train_seq"].fillna(""), eval_seq=runs["eval_seq"].fillna(""))
    parsed = _parse_variants(runs)
    selected = select(runs, epochs)
    origins = _origins(runs)
    rows: list[dict] = []
    for protocol in settings.protocols:
        own = runs[runs["protocol"] == protocol]
        for dataset, train_seq, eval_seq in _sections(own):
            group = own[
                (own["dataset"] == dataset)
                & (own["eval_seq"] == eval_seq)
                & (
                    (own["train_seq"] == train_seq)
                    | ((own["variant"] == "pretrained") & (own["train_seq"] == ""))
                )
            ]
            chosen = selected[selected["path"].isin(group["path"])]
            where = {"protocol": protocol, "dataset": dataset, "train_seq": train_seq, "eval_seq": eval_seq}
            rows += [where | row for row in _section_rows(group, chosen, parsed, origins, settings)]
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
    counts = []
    if row["n_failed"]:
        counts.append(f"{row['n_failed']} linked nothing: LNK 0")
    if row["n_dropped"]:
        counts.append(f"{row['n_dropped']} dropped: LNK ≤ 0")
    if row["n_skipped"]:
        counts.append(f"{row['n_skipped']} skipped")
    text = (
        _fmt_mean_var(row["LNK_mean"], row["LNK_var"], int(row["n_seeds"]))
        if row["status"] == "ok"
        else "n/a"
    )
    return text + (f" [{', '.join(counts)}]" if counts else "")


def _paper_cell(dataset: str, family: str, column: str, main: bool) -> str:
    agg = None if column == "Default" else column.lower()
    published = published_lnk(dataset, family, agg) if main else None
    if published is None:
        return "–"
    mean, var = published
    return f"{mean:.4f}" if var is None else f"{mean:.4f} ± {var:.3g}"


def _p(value: float, adjusted: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3g} ({adjusted:.3g})"


def render_markdown(table: pd.DataFrame, settings: TableSettings) -> str:
    """Markdown report of the table: one part per protocol, one section per direction it ran."""
    lines = [
        "# Table 1: cell linking (LNK) with and without dense embeddings",
        "",
        "Cells: mean ± variance of LNK over seeds (population variance, ddof=0, as in the paper; "
        "the CSV also lists the sample variance, ddof=1, and TRA/DET); n = seeds counted. "
        "Each part holds only runs trained and scored under its protocol. *Paper* columns: the "
        "published Table 1, beside the rows of the main fusion; rows marked [fusion] use another one.",
        "",
    ]
    for protocol in settings.protocols:
        part = table[table["protocol"] == protocol] if len(table) else table
        text = PROTOCOL_TEXT[protocol]
        lines += [f"## Protocol `{protocol}`", "", text[0].upper() + text[1:] + ".", ""]
        if part.empty:
            lines += ["No runs trained under this protocol.", ""]
            continue
        for (dataset, train_seq, eval_seq), section in part.groupby(
            ["dataset", "train_seq", "eval_seq"], sort=False, dropna=False
        ):
            trained = f"train on {train_seq}, " if train_seq else ""
            role = " (positive control)" if settings.dataset_roles.get(dataset) == "positive_control" else ""
            lines += [f"### {dataset}{role}: {trained}evaluate on {eval_seq}", ""]
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
        paper = [_paper_cell(first["dataset"], first["family"], c, bool(first["main"])) for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(ours) + " | " + " | ".join(paper) + " |")
    if notes:
        lines += [""] + [f"[{i}] {reason}" for i, reason in enumerate(notes, start=1)]
    return lines


def _comparison_table(section: pd.DataFrame, settings: TableSettings) -> list[str]:
    compared = section[section["p_ttest"].notna()]
    if compared.empty:
        return ["No comparison against the re-trained baseline (fewer than 2 seeds on a side)."]
    lines = [
        "Difference to Trackastra (re-trained): *paired* over matching seeds (paired t-test, Wilcoxon "
        "signed-rank) for runs of this project; *unpaired* (Welch t-test, Mann–Whitney U, CI of the "
        "difference of means) where seed numbers do not pair runs (ingested results). p (Holm-adjusted "
        "over this section's comparisons):",
        "",
        "| Method / Features | Aggregation | test | n (baseline) | ΔLNK (mean) | "
        f"{settings.confidence:.0%} bootstrap CI | t-test p | rank test p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, row in compared.iterrows():
        n = int(row["n_pairs"]) if row["comparison"] == "paired" else int(row["n_seeds"])
        lines.append(
            f"| {row['row']} | {row['column']} | {row['comparison']} | {n} ({int(row['n_baseline'])}) | "
            f"{row['dLNK_mean']:+.2e} | [{row['dLNK_ci_low']:+.2e}, {row['dLNK_ci_high']:+.2e}] | "
            f"{_p(row['p_ttest'], row['p_ttest_holm'])} | {_p(row['p_rank'], row['p_rank_holm'])} |"
        )
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink evaluate table``."""
    parser = argparse.ArgumentParser(
        prog="denselink evaluate table",
        description="Table 1 (LNK mean ± variance over seeds per protocol, each run summarised by the "
        "protocol it was trained under; tests vs the re-trained baseline; the paper's values) from "
        "metrics JSONs, as CSV and Markdown.",
    )
    parser.add_argument("--metrics", nargs="+", required=True, type=Path, help="metrics JSON files")
    parser.add_argument("--out-csv", required=True, type=Path, help="output CSV, one row per variant")
    parser.add_argument("--out-md", required=True, type=Path, help="output Markdown report")
    parser.add_argument(
        "--protocols",
        nargs="+",
        choices=PROTOCOLS,
        default=None,
        help="protocols to report (default: clean paper), each with the runs trained under it; "
        "overrides the settings",
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
