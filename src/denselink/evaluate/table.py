"""``denselink evaluate table``: Table 1 (LNK per dataset and method), one part per protocol.

Every run is summarised by the protocol recorded in its metrics JSON (the one it was trained and
scored under), so a protocol's part holds only its own runs, and a direction has a section only
where that protocol ran it. Runs of another origin (``origin: authors``, ingested CSVs) get sections
of their own: their epoch is chosen, and they are compared, apart from the project's runs.

One CSV row per (protocol, origin, dataset, direction, variant) with mean, SD (ddof=1) and
population and sample variance over seeds of LNK, TRA and DET, the chosen epochs, seeds at LNK 0
(``clean``: counted) or dropped (``paper``: LNK <= 0 or no score, the authors' rule), and a
comparison against the re-trained baseline of the same section (``evaluate.stats``: paired t for
the project's runs, Welch t for ingested ones, each with its t interval and a rank test beside it).
p-values are Holm-adjusted within a section, over two families apart: the main rows, and the
fusion ablations. The paper's published value stands beside the main fusion's rows.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import pandas as pd

from denselink.atomic import add_force_flag, atomic_path
from denselink.command import command_parser, start
from denselink.errors import ConfigError
from denselink.evaluate.inputs import OWN_ORIGIN, load_checked
from denselink.evaluate.metrics import SCORES, MetricsFormatError
from denselink.evaluate.protocols import select, summarize
from denselink.evaluate.published import DATASETS, published_lnk
from denselink.evaluate.settings import TableSettings
from denselink.evaluate.stats import holm, paired_comparison, unpaired_comparison
from denselink.vocabulary import (
    AGG_LABELS,
    BACKBONES,
    BASELINES,
    HANDCRAFTED,
    PROTOCOLS,
    Variant,
    parse_variant,
)

COLUMNS = ("Default", "MMA", "Centroid")
ROW_ORDER = {family: i for i, family in enumerate((*BASELINES, *BACKBONES, HANDCRAFTED))}
"""The order of Table 1's rows by family: the baselines, SAM, μSAM and MAESTER, then the hand-crafted
control."""
FAMILIES = ("main", "fusion ablations")
PROTOCOL_TEXT = {
    "clean": "runs trained with a held-out tail of the training sequence for validation; each seed's "
    "checkpoint has the lowest validation loss and is scored on the evaluation sequence; a seed at LNK 0 "
    "counts as 0",
    "paper": "runs trained as the authors did (validation loss on another sequence, early stopping of "
    "the re-trained baseline only); every epoch scored; among the epochs every seed reached, the epoch "
    "with the highest mean LNK over seeds is chosen for all seeds; LNK <= 0 or no score at that epoch is "
    "dropped as a failed evaluation (the authors' rule). The Appendix C figures take each seed's best "
    "epoch instead (the authors' Appendix C measure), which gives higher numbers for the same runs",
}
PAPER_CAVEAT = (
    "Caveat: under `paper` the epoch is chosen on the sequence it is scored on (the authors' rule), so "
    "these differences and p-values favour every row by selection and are optimistic."
)
ORIGIN_TEXT = {"authors": "the authors' published runs (ingested CSVs)"}

COMMAND = "evaluate table"


def compare(values: pd.DataFrame, baseline: pd.DataFrame, paired: bool, settings: TableSettings) -> dict:
    """A variant's LNK per seed against the baseline's: paired over seeds, or unpaired."""
    if paired:
        mine = values.set_index("seed")["LNK"].to_dict()
        return paired_comparison(mine, baseline.set_index("seed")["LNK"].to_dict(), settings.confidence)
    return unpaired_comparison(values["LNK"].tolist(), baseline["LNK"].tolist(), settings.confidence)


def _column(variant: Variant) -> str:
    return "Default" if variant.kind in BASELINES else AGG_LABELS[str(variant.agg)]


def _row_label(variant: Variant, several_maester: bool, main_fusion: str) -> str:
    label = variant.long_label if several_maester else variant.label
    if variant.kind not in BASELINES and variant.fusion != main_fusion:
        label += f" [{variant.fusion}]"
    return label


def _row_order(variant: Variant, main_fusion: str) -> tuple:
    return (
        variant.kind not in BASELINES and variant.fusion != main_fusion,
        ROW_ORDER[variant.family],
        variant.epoch or 0,
    )


def _dataset_order(dataset: str) -> tuple:
    return (DATASETS.index(dataset) if dataset in DATASETS else len(DATASETS), dataset)


def _parse_variants(runs: pd.DataFrame) -> dict[str, Variant]:
    parsed = {}
    for name, path in runs.groupby("variant", dropna=False)["path"].first().items():
        try:
            parsed[name] = parse_variant(name)
        except ConfigError as err:
            raise MetricsFormatError(path, f"variant {name!r}: {err.problem}") from err
    return parsed


def _without_train_sequence(runs: pd.DataFrame, parsed: dict[str, Variant]) -> pd.Series:
    """Runs of a variant without a training sequence (the published model) that record none."""
    untrained = [not parsed[name].has_train_sequence for name in runs["variant"]]
    return pd.Series(untrained, index=runs.index, dtype=bool) & (runs["train_seq"] == "")


def _sections(runs: pd.DataFrame, parsed: dict[str, Variant]) -> list[tuple[str, str, str, str]]:
    """(origin, dataset, train_seq, eval_seq) sections of one protocol's runs.

    A run without a training sequence (the published model) joins every section of its dataset and
    evaluation sequence.
    """
    trained = runs[~_without_train_sequence(runs, parsed)]
    keys = set(map(tuple, trained[["origin", "dataset", "train_seq", "eval_seq"]].to_numpy()))
    for origin, dataset, eval_seq in runs[["origin", "dataset", "eval_seq"]].drop_duplicates().to_numpy():
        if not any(k[:2] == (origin, dataset) and k[3] == eval_seq for k in keys):
            keys.add((origin, dataset, "", eval_seq))
    return sorted(keys, key=lambda k: (k[0] != OWN_ORIGIN, k[0], _dataset_order(k[1]), k[2], k[3]))


def _main_fusion(variants: list[Variant], preferred: str) -> str:
    """``preferred`` if a section has runs of it, else the one fusion its embedding rows share."""
    fusions = {v.fusion for v in variants if v.kind not in BASELINES}
    return next(iter(fusions)) if len(fusions) == 1 and preferred not in fusions else preferred


def _drop_reason(run: pd.Series, epochs: pd.DataFrame) -> str:
    """Why a ``paper`` seed is dropped at the chosen epoch: LNK 0, no score, or no epoch to choose."""
    if pd.isna(run["epoch"]) and (epochs["path"] == run["path"]).any():
        return "no common epoch"
    at = epochs[(epochs["path"] == run["path"]) & (epochs["epoch"] == run["epoch"])]["LNK"]
    value = at.iloc[0] if len(at) else run["LNK"]
    return "LNK 0" if value == 0 else "no score"


def _status(n_seeds: int, n_skipped: int, dropped: str) -> tuple[str, str]:
    if n_seeds:
        return "ok", ""
    if n_skipped:
        return "skipped", ""
    if dropped:
        return "no data", f"every seed dropped at the chosen epoch ({dropped})"
    return "no data", "no run selectable under this protocol"


def _counts(mine: pd.DataFrame, epochs: pd.DataFrame) -> dict:
    """Seeds at LNK 0 that count (clean) and seeds dropped, by reason (paper)."""
    dropped = mine[mine["outcome"] == "dropped"]
    reasons = pd.Series([_drop_reason(run, epochs) for _, run in dropped.iterrows()], dtype=object)
    text = "; ".join(f"{n} {reason}" for reason, n in reasons.value_counts().sort_index().items())
    return {
        "n_lnk0": int((mine["outcome"] == "failed").sum()),
        "n_dropped": len(dropped),
        "dropped": text,
    }


def _section_rows(
    group: pd.DataFrame,
    chosen: pd.DataFrame,
    epochs: pd.DataFrame,
    parsed: dict[str, Variant],
    settings: TableSettings,
) -> list[dict]:
    """Rows of one section (protocol, origin, dataset, direction), Holm-adjusted within it by family."""
    variants = {name: parsed[name] for name in group["variant"].unique()}
    main_fusion = _main_fusion(list(variants.values()), settings.main_fusion)
    several = len({v.embedding for v in variants.values() if v.backbone == "maester"}) > 1
    paired = group["origin"].iloc[0] == OWN_ORIGIN
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
            "family": variant.family,
            "main": main,
            "seeds": " ".join(str(s) for s in used["seed"]),
            "epochs": " ".join("-" if pd.isna(e) else str(int(e)) for e in used["epoch"]),
            "n_seeds": summarize(used["LNK"].astype(float).tolist())["n"],
            **_counts(mine, epochs),
            "n_skipped": len(skipped),
        }
        reason = "; ".join(sorted({str(r) for r in skipped["reason"].fillna("")} - {""}))
        row["status"], row["reason"] = _status(row["n_seeds"], row["n_skipped"], row["dropped"])
        row["reason"] = reason or row["reason"]
        for score in SCORES:
            summary = summarize(used[score].astype(float).tolist())
            row[f"{score}_mean"], row[f"{score}_var"] = summary["mean"], summary["var"]
            row[f"{score}_var_ddof1"] = summary["var_ddof1"]
            row[f"{score}_sd"] = math.sqrt(summary["var_ddof1"])
        tested = variant.tested
        row |= compare(used, baseline if tested else baseline.iloc[:0], paired, settings)
        row["comparison"] = row["comparison"] if tested else ""
        row["holm_family"] = (FAMILIES[0] if main else FAMILIES[1]) if tested else ""
        published = published_lnk(row["dataset"], row["family"], variant.agg) if main else None
        row["paper_LNK_mean"] = published[0] if published else math.nan
        row["paper_LNK_var"] = published[1] if published and published[1] is not None else math.nan
        rows.append(row)
    for family in FAMILIES:
        members = [row for row in rows if row["holm_family"] == family]
        for key in ("p_primary", "p_rank"):
            for row, adjusted in zip(members, holm([row[key] for row in members]), strict=True):
                row[f"{key}_holm"] = adjusted
    for row in rows:
        row.setdefault("p_primary_holm", math.nan)
        row.setdefault("p_rank_holm", math.nan)
    return rows


def _select(runs: pd.DataFrame, epochs: pd.DataFrame) -> pd.DataFrame:
    """Per-seed selected scores, each origin's runs chosen apart (an epoch is never chosen across origins)."""
    parts = []
    for _, own in runs.groupby("origin", sort=True):
        parts.append(select(own, epochs[epochs["path"].isin(own["path"])]))
    return pd.concat(parts, ignore_index=True) if parts else select(runs, epochs)


def build_table(runs: pd.DataFrame, epochs: pd.DataFrame, settings: TableSettings) -> pd.DataFrame:
    """One row per (protocol, origin, dataset, direction, variant): each protocol's own runs only."""
    origin = runs["origin"] if "origin" in runs else pd.Series(index=runs.index, dtype=object)
    runs = runs.assign(
        train_seq=runs["train_seq"].fillna(""),
        eval_seq=runs["eval_seq"].fillna(""),
        origin=origin.fillna(OWN_ORIGIN),
    )
    parsed = _parse_variants(runs)
    selected = _select(runs, epochs)
    rows: list[dict] = []
    for protocol in settings.protocols:
        own = runs[runs["protocol"] == protocol]
        for origin_name, dataset, train_seq, eval_seq in _sections(own, parsed):
            group = own[
                (own["origin"] == origin_name)
                & (own["dataset"] == dataset)
                & (own["eval_seq"] == eval_seq)
                & ((own["train_seq"] == train_seq) | _without_train_sequence(own, parsed))
            ]
            chosen = selected[selected["path"].isin(group["path"])]
            where = {
                "protocol": protocol,
                "origin": origin_name,
                "dataset": dataset,
                "train_seq": train_seq,
                "eval_seq": eval_seq,
            }
            rows += [where | row for row in _section_rows(group, chosen, epochs, parsed, settings)]
    return pd.DataFrame(rows)


def places(half_width: float) -> int:
    """Decimals that show an interval's half-width to two significant digits (3 to 6)."""
    if not half_width > 0:
        return 3
    return min(6, max(3, 1 - math.floor(math.log10(half_width))))


def decimal(value: float, digits: int = 3) -> str:
    """A signed plain decimal (``+0.191``, never ``+1.91e-01``)."""
    return f"{value:+.{digits}f}"


def _fmt_summary(row: pd.Series, protocol: str) -> str:
    n, mean = int(row["n_seeds"]), row["LNK_mean"]
    if protocol == "paper":
        spread = row["LNK_var"]
        return f"{mean:.5f} (n=1)" if n == 1 else f"{mean:.5f} ± {spread:.2g} (n={n})"
    return f"{mean:.5f} (n=1)" if n == 1 else f"{mean:.5f} ± {row['LNK_sd']:.5f} (n={n})"


def _cell(row: pd.Series, protocol: str, notes: list[str]) -> str:
    if row["status"] == "skipped":
        reason = row["reason"] or "no reason given"
        if reason not in notes:
            notes.append(reason)
        return f"n/a (skipped [{notes.index(reason) + 1}])"
    counts = []
    if row["n_lnk0"]:
        counts.append(f"{row['n_lnk0']} at LNK 0, counted")
    if row["n_dropped"]:
        counts.append(f"dropped: {row['dropped']}")
    if row["n_skipped"]:
        counts.append(f"{row['n_skipped']} skipped")
    text = _fmt_summary(row, protocol) if row["status"] == "ok" else "n/a"
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


def _section_heading(
    dataset: str, train_seq: str, eval_seq: str, origin: str, settings: TableSettings
) -> str:
    trained = f"train on {train_seq}, " if train_seq else ""
    source = "" if origin == OWN_ORIGIN else f" — {ORIGIN_TEXT.get(origin, f'runs of origin {origin!r}')}"
    role = " (positive control)" if settings.dataset_roles.get(dataset) == "positive_control" else ""
    return f"### {dataset}{role}: {trained}evaluate on {eval_seq}{source}"


def render_markdown(table: pd.DataFrame, settings: TableSettings) -> str:
    """Markdown report of the table: one part per protocol, one section per direction (and origin) it ran."""
    lines = [
        "# Table 1: cell linking (LNK) with and without dense embeddings",
        "",
        "Cells: LNK over seeds, n = seeds counted. Part `paper`: mean ± variance (population, ddof=0), "
        "the statistic of the paper's Table 1, whose published values stand in the *Paper* columns. "
        "Part `clean`: mean ± SD (ddof=1). The CSV lists both variances and the SD of LNK, TRA and DET. "
        "Each part holds only runs trained and scored under its protocol; runs ingested from elsewhere "
        "have sections of their own. *Paper* columns (mean ± variance as published) stand beside the rows "
        "of the main fusion; rows marked [fusion] use another one.",
        "",
    ]
    for protocol in settings.protocols:
        part = table[table["protocol"] == protocol] if len(table) else table
        text = PROTOCOL_TEXT[protocol]
        lines += [f"## Protocol `{protocol}`", "", text[0].upper() + text[1:] + ".", ""]
        if part.empty:
            lines += ["No runs trained under this protocol.", ""]
            continue
        for (origin, dataset, train_seq, eval_seq), section in part.groupby(
            ["origin", "dataset", "train_seq", "eval_seq"], sort=False, dropna=False
        ):
            lines += [_section_heading(dataset, train_seq, eval_seq, origin, settings), ""]
            lines += _main_table(section, protocol) + [""]
            lines += _comparison_table(section, protocol) + [""]
    return "\n".join(lines)


def _main_table(section: pd.DataFrame, protocol: str) -> list[str]:
    labels = list(dict.fromkeys(section["row"]))
    stat = "mean ± var" if protocol == "paper" else "mean ± SD"
    header = "| Method / Features | " + " | ".join(f"LNK {stat} ({c})" for c in COLUMNS)
    header += " | " + " | ".join(f"Paper mean ± var ({c})" for c in COLUMNS) + " |"
    lines = [header, "|" + "---|" * (1 + 2 * len(COLUMNS))]
    notes: list[str] = []
    for label in labels:
        rows = section[section["row"] == label]
        cells = {row["column"]: row for _, row in rows.iterrows()}
        first = rows.iloc[0]
        ours = [_cell(cells[c], protocol, notes) if c in cells else "–" for c in COLUMNS]
        paper = [_paper_cell(first["dataset"], first["family"], c, bool(first["main"])) for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(ours) + " | " + " | ".join(paper) + " |")
    if notes:
        lines += [""] + [f"[{i}] {reason}" for i, reason in enumerate(notes, start=1)]
    return lines


def _n(row: pd.Series) -> str:
    if row["comparison"] == "paired":
        return f"{int(row['n_pairs'])} pairs"
    return f"{int(row['n_seeds'])} vs {int(row['n_baseline'])}"


def _comparison_table(section: pd.DataFrame, protocol: str) -> list[str]:
    tested = section[(section["comparison"] != "") & (section["status"] != "skipped")]
    compared = tested[tested["ci"] != ""]
    left = tested[tested["ci"] == ""]
    if tested.empty:
        return ["No comparison: no row beside the baselines."]
    if not (section["variant"] == "retrained").any():
        return ["No comparison: this section has no re-trained baseline."]
    if compared.empty:
        return ["No comparison against the re-trained baseline (fewer than 2 seeds on a side)."]
    first = compared.iloc[0]
    kind = (
        "paired over matching seeds"
        if first["comparison"] == "paired"
        else "unpaired (seed numbers pair nothing)"
    )
    lines = [
        f"Difference to Trackastra (re-trained), {kind}. Primary test: {first['primary_test']}, with its "
        f"interval; {first['rank_test']} beside it. Differences are printed to two significant digits of "
        "the interval's half-width. p (Holm-adjusted within the family: the main rows, and the fusion "
        "ablations apart):",
        "",
        "| Method / Features | Aggregation | Holm family | n | ΔLNK (mean) | interval | "
        f"{first['primary_test']} p (Holm) | {first['rank_test']} p (Holm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, row in compared.iterrows():
        digits = places((row["dLNK_ci_high"] - row["dLNK_ci_low"]) / 2)
        low, high = decimal(row["dLNK_ci_low"], digits), decimal(row["dLNK_ci_high"], digits)
        lines.append(
            f"| {row['row']} | {row['column']} | {row['holm_family']} | {_n(row)} | "
            f"{decimal(row['dLNK_mean'], digits)} | [{low}, {high}] {row['ci']} | "
            f"{_p(row['p_primary'], row['p_primary_holm'])} | {_p(row['p_rank'], row['p_rank_holm'])} |"
        )
    if len(left):
        names = ", ".join(f"{r['row']} ({r['column']})" for _, r in left.iterrows())
        lines += ["", f"Not compared (fewer than 2 seeds on a side): {names}."]
    if protocol == "paper":
        lines += ["", PAPER_CAVEAT]
    return lines


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink evaluate table``."""
    parser = command_parser(
        COMMAND,
        "Table 1 (LNK over seeds per protocol, each run summarised by the protocol it was "
        "trained under; t-tests and t intervals vs the re-trained baseline; the paper's values) from "
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
        help="TableSettings as inline JSON or a YAML/JSON file: protocols, main_fusion, confidence",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate table``."""
    args, settings = start(build_parser(), argv, COMMAND, TableSettings, lambda a: (a.out_csv, a.out_md))
    if args.protocols:
        settings.protocols = list(args.protocols)
    runs, epochs, notes = load_checked(args.metrics)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    table = build_table(runs, epochs, settings)
    with atomic_path(args.out_csv, COMMAND, args.force) as tmp:
        table.to_csv(tmp, index=False, float_format="%.10g")
    with atomic_path(args.out_md, COMMAND, args.force) as tmp:
        tmp.write_text(render_markdown(table, settings) + "\n")
    print(f"wrote {args.out_csv} ({len(table)} rows) and {args.out_md}")
    return 0
