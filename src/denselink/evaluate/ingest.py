"""``denselink evaluate ingest``: the authors' per-seed ``epoch,TRA,DET,LNK`` CSVs -> metrics JSONs.

The authors publish one CSV per training run (seed) with the CTC scores of every epoch's
checkpoint, in folders ``{fluo,dic}/{condition}/*.csv``. ``--authors-root DIR`` converts such a
folder as a whole: each condition folder is named by the variant the authors' code ran (fusion
``add_token``, see ``CONDITIONS``), and each CSV becomes
``{out_dir}/{dataset}/paper/{train}-{eval}/{variant}/seed{i}.json``, with ``i`` its position in
file-name order. ``--csv ... --dataset --variant`` converts one condition into ``{out_dir}/seed{i}.json``.
Either way the command is all or nothing: every CSV is read and checked, and every output path,
before the first file is written. A condition folder with no CSV (the authors' ``dic/mma_general_2d``
holds only a log) is skipped with a note.
Records carry protocol ``paper`` and ``origin: authors`` (their seed numbers pair nothing, so
``denselink evaluate table`` compares them unpaired); top-level scores are those at the paper
protocol's epoch (highest seed-mean LNK over the condition's CSVs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from denselink import arg_types
from denselink.atomic import add_force_flag, check_output
from denselink.command import command_parser
from denselink.evaluate.metrics import MetricsFormatError, metrics_record, write_metrics
from denselink.evaluate.protocols import paper_epoch_means
from denselink.vocabulary import AUTHORS_FUSION, parse_variant, variant_name

ORIGIN = "authors"
DATASET_FOLDERS = {"fluo": "Fluo-N2DL-HeLa", "dic": "DIC-C2DH-HeLa"}
MAESTER_EPOCH = 18249
"""The MAESTER checkpoint of the authors' Table 1 runs (each dataset's run ``fluo`` / ``dic``)."""


def conditions(folder: str) -> dict[str, str]:
    """The authors' condition folder names of one dataset folder (``fluo``/``dic``) -> variant names."""
    dataset = DATASET_FOLDERS[folder]
    maester = {"run": folder, "epoch": MAESTER_EPOCH}
    names = {"without": "retrained"}
    for agg, prefix in (("centroid", ""), ("mma", "mma_")):
        original = "original_maester_embeddings" if agg == "centroid" else "mma_maester_embeddings"
        names[original] = variant_name("maester", agg, AUTHORS_FUSION, **maester)
        names[f"{prefix}additional_vit_b_____{dataset}"] = variant_name("sam", agg, AUTHORS_FUSION)
        names[f"{prefix}additional_vit_b_lm_____{dataset}"] = variant_name("musam", agg, AUTHORS_FUSION)
    return names


CSV_COLUMNS = ("epoch", "TRA", "DET", "LNK")


COMMAND = "evaluate ingest"


def read_authors_csv(path: Path) -> pd.DataFrame:
    """Read one per-seed CSV; values outside [0, 1] or non-numeric (the authors' markers of a failed
    evaluation, e.g. 999) become NaN (null: no score). A 0 stays: LNK 0 is a score (every link wrong)."""
    path = Path(path)
    if not path.is_file():
        raise MetricsFormatError(path, "CSV file does not exist")
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise MetricsFormatError(path, f"not a readable CSV: {err}") from err
    missing = [column for column in CSV_COLUMNS if column not in frame.columns]
    if missing:
        raise MetricsFormatError(path, f"missing columns {missing}; expected {','.join(CSV_COLUMNS)}")
    epochs = pd.to_numeric(frame["epoch"], errors="coerce")
    if epochs.isna().any() or (epochs % 1 != 0).any() or epochs.duplicated().any():
        raise MetricsFormatError(path, "column 'epoch' must hold distinct integers")
    frame = frame[list(CSV_COLUMNS)].copy()
    frame["epoch"] = epochs.astype(int)
    for column in ("TRA", "DET", "LNK"):
        values = pd.to_numeric(frame[column], errors="coerce")
        frame[column] = values.where((values >= 0) & (values <= 1))
    return frame.sort_values("epoch").reset_index(drop=True)


def convert(
    csvs: list[Path],
    dataset: str,
    variant: str,
    out_dir: Path,
    train_seq: str = "02",
    eval_seq: str = "02",
    first_seed: int = 0,
) -> list[tuple[Path, dict]]:
    """One condition's per-seed CSVs (seed = ``first_seed`` + position) as (path, metrics record) pairs.

    Reads and checks every CSV; writes nothing.
    """
    parse_variant(variant)
    if not csvs:
        raise MetricsFormatError(out_dir, "no CSV files given")
    frames = [read_authors_csv(Path(path)) for path in csvs]
    per_epoch = pd.concat([frame.assign(path=str(i)) for i, frame in enumerate(frames)])
    means = paper_epoch_means(per_epoch)
    best = int(means.idxmax()) if not means.empty else None
    records = []
    for i, (path, frame) in enumerate(zip(csvs, frames, strict=True)):
        at_best = frame[frame["epoch"] == best]
        scores = at_best.iloc[0][["LNK", "TRA", "DET"]].to_dict() if len(at_best) else None
        record = metrics_record(
            dataset=dataset,
            variant=variant,
            seed=first_seed + i,
            protocol="paper",
            train_seq=train_seq,
            eval_seq=eval_seq,
            checkpoint=f"epoch{best}" if best is not None else None,
            scores=scores,
            per_epoch=[{**row, "val_loss": None} for row in frame.to_dict("records")],
            origin=ORIGIN,
            source=str(path),
        )
        records.append((Path(out_dir) / f"seed{first_seed + i}.json", record))
    return records


def write_all(records: list[tuple[Path, dict]], force: bool = False) -> list[Path]:
    """Write converted records once every output path is known to be writable (none written otherwise).

    An existing ``seed{i}.json`` is replaced only if this command wrote it (or ``force``).
    """
    for out, _ in records:
        check_output(out, COMMAND, force)
    for out, record in records:
        write_metrics(out, record, COMMAND, force)
    return [out for out, _ in records]


def ingest(
    csvs: list[Path],
    dataset: str,
    variant: str,
    out_dir: Path,
    train_seq: str = "02",
    eval_seq: str = "02",
    first_seed: int = 0,
    force: bool = False,
) -> list[Path]:
    """Convert one condition's per-seed CSVs into metrics JSONs ``{out_dir}/seed{i}.json``."""
    for out in output_paths(out_dir, first_seed, len(csvs)):
        check_output(out, COMMAND, force)
    return write_all(convert(csvs, dataset, variant, out_dir, train_seq, eval_seq, first_seed), force)


def ingest_authors_root(
    root: Path, out_dir: Path, train_seq: str = "02", eval_seq: str = "02", force: bool = False
) -> tuple[list[Path], list[str]]:
    """Convert every ``{fluo,dic}/{condition}/*.csv`` under ``root``: the JSONs written, and notes.

    All or nothing: every condition is read and checked, and every output path, before the first
    file is written. A condition folder without CSVs (e.g. one holding only a log) is skipped with
    a note; one with CSVs but an unknown name is an error.
    """
    root = Path(root)
    folders = [root / name for name in DATASET_FOLDERS if (root / name).is_dir()]
    if not folders:
        raise MetricsFormatError(
            root, f"no dataset folder {' or '.join(DATASET_FOLDERS)} (expected DIR/fluo/...)"
        )
    records: list[tuple[Path, dict]] = []
    notes: list[str] = []
    for folder in folders:
        names = conditions(folder.name)
        for condition in sorted(p for p in folder.iterdir() if p.is_dir()):
            csvs = sorted(condition.glob("*.csv"))
            if not csvs:
                held = ", ".join(sorted(p.name for p in condition.iterdir())) or "nothing"
                notes.append(f"skipped {condition}: no *.csv (holds {held})")
                continue
            if condition.name not in names:
                raise MetricsFormatError(
                    condition, f"unknown condition folder; expected one of {sorted(names)}"
                )
            dataset, variant = DATASET_FOLDERS[folder.name], names[condition.name]
            target = Path(out_dir) / dataset / "paper" / f"{train_seq}-{eval_seq}" / variant
            records += convert(csvs, dataset, variant, target, train_seq, eval_seq)
    return write_all(records, force), notes


def output_paths(out_dir: Path, first_seed: int, count: int) -> list[Path]:
    """The ``seed{i}.json`` files :func:`ingest` writes for ``count`` CSVs."""
    return [Path(out_dir) / f"seed{first_seed + i}.json" for i in range(count)]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink evaluate ingest``."""
    parser = command_parser(
        COMMAND,
        "Convert the authors' per-seed 'epoch,TRA,DET,LNK' CSVs into metrics JSONs "
        "(protocol 'paper', origin 'authors'): a whole results folder (--authors-root) or one condition "
        "(--csv with --dataset and --variant).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--authors-root",
        type=Path,
        help="folder laid out as the authors' results: {fluo,dic}/{condition}/*.csv, condition folders "
        "without, original_maester_embeddings, mma_maester_embeddings, "
        "[mma_]additional_vit_b[_lm]_____DATASET",
    )
    source.add_argument(
        "--csv", nargs="+", type=Path, help="one condition's per-seed CSV files, one per seed"
    )
    parser.add_argument("--dataset", default=None, help="with --csv: dataset name, e.g. Fluo-N2DL-HeLa")
    parser.add_argument(
        "--variant",
        default=None,
        help="with --csv: variant name, e.g. retrained or maester-fluo-epoch18249-centroid-add_token",
    )
    parser.add_argument(
        "--out-dir",
        required=True,
        type=Path,
        help="output folder: seed{i}.json (--csv) or {dataset}/paper/{train}-{eval}/{variant}/seed{i}.json",
    )
    parser.add_argument("--train-seq", default="02", help="training sequence of these runs (default 02)")
    parser.add_argument(
        "--eval-seq",
        default="02",
        help="sequence the CSV scores were computed on (default 02: the authors' script scored the "
        "training sequence)",
    )
    parser.add_argument(
        "--first-seed",
        type=arg_types.seed,
        default=0,
        help="with --csv: seed number of the first CSV (default 0)",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate ingest``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.authors_root is not None:
        if args.dataset or args.variant:
            parser.error("--dataset and --variant go with --csv; --authors-root names them from its folders")
        written, notes = ingest_authors_root(
            args.authors_root, args.out_dir, args.train_seq, args.eval_seq, args.force
        )
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
    else:
        if not (args.dataset and args.variant):
            parser.error("--csv needs --dataset and --variant")
        written = ingest(
            args.csv,
            args.dataset,
            args.variant,
            args.out_dir,
            args.train_seq,
            args.eval_seq,
            args.first_seed,
            args.force,
        )
    print(f"wrote {len(written)} metrics files to {args.out_dir}")
    return 0
