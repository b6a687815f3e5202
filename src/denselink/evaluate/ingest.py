"""``denselink evaluate ingest``: the authors' per-seed ``epoch,TRA,DET,LNK`` CSVs -> metrics JSONs.

The authors publish one CSV per training run (seed) with the CTC scores of every epoch's
checkpoint. Each CSV becomes ``{out_dir}/seed{i}.json`` (protocol ``paper``), whose top-level
scores are those at the paper protocol's epoch (highest seed-mean LNK over all given CSVs), so
``denselink evaluate table`` reproduces the paper-protocol Table 1 from them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from denselink.atomic import add_force_flag, check_output
from denselink.evaluate.metrics import MetricsFormatError, metrics_record, write_metrics
from denselink.evaluate.protocols import paper_epoch_means
from denselink.evaluate.variants import parse_variant

CSV_COLUMNS = ("epoch", "TRA", "DET", "LNK")


COMMAND = "evaluate ingest"


def read_authors_csv(path: Path) -> pd.DataFrame:
    """Read one per-seed CSV; values <= 0 or non-numeric (failed evaluations) become NaN."""
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
        frame[column] = values.where((values > 0) & (values <= 1))
    return frame.sort_values("epoch").reset_index(drop=True)


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
    """Convert per-seed CSVs (seed = ``first_seed`` + position) into metrics JSONs; returns their paths.

    An existing ``seed{i}.json`` is replaced only if this command wrote it (or ``force``).
    """
    for out in output_paths(out_dir, first_seed, len(csvs)):
        check_output(out, COMMAND, force)
    parse_variant(variant)
    frames = [read_authors_csv(Path(path)) for path in csvs]
    if not frames:
        raise MetricsFormatError(out_dir, "no CSV files given")
    per_epoch = pd.concat([frame.assign(path=str(i)) for i, frame in enumerate(frames)])
    means = paper_epoch_means(per_epoch)
    best = int(means.idxmax()) if not means.empty else None
    written = []
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
            source=str(path),
        )
        out = Path(out_dir) / f"seed{first_seed + i}.json"
        write_metrics(out, record, COMMAND, force)
        written.append(out)
    return written


def output_paths(out_dir: Path, first_seed: int, count: int) -> list[Path]:
    """The ``seed{i}.json`` files :func:`ingest` writes for ``count`` CSVs."""
    return [Path(out_dir) / f"seed{first_seed + i}.json" for i in range(count)]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink evaluate ingest``."""
    parser = argparse.ArgumentParser(
        prog="denselink evaluate ingest",
        description="Convert the authors' per-seed 'epoch,TRA,DET,LNK' CSVs into metrics JSONs "
        "(protocol 'paper'), one seed{i}.json per CSV, in the order given.",
    )
    parser.add_argument("--csv", nargs="+", required=True, type=Path, help="per-seed CSV files, one per seed")
    parser.add_argument("--dataset", required=True, help="dataset name, e.g. Fluo-N2DL-HeLa")
    parser.add_argument(
        "--variant",
        required=True,
        help="variant name, e.g. retrained or maester-fluo-epoch18249-centroid-add_token",
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="directory for seed{i}.json")
    parser.add_argument("--train-seq", default="02", help="training sequence of these runs (default 02)")
    parser.add_argument(
        "--eval-seq",
        default="02",
        help="sequence the CSV scores were computed on (default 02: the authors' script scored the "
        "training sequence)",
    )
    parser.add_argument("--first-seed", type=int, default=0, help="seed number of the first CSV (default 0)")
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate ingest``."""
    args = build_parser().parse_args(argv)
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
