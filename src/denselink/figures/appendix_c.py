"""``denselink figures appendix-c``: the paper's Appendix C figures from metrics JSONs.

Every panel belongs to one protocol and shows only runs trained under it (the protocol recorded in
each metrics JSON); a protocol without runs has no panel. Studies (paper figure in brackets):
- ``compute_scaling`` [Fig. 2]: mean LNK against MAESTER pretraining epoch, one panel per protocol
  (``paper``: best LNK over Trackastra epochs per run, the authors' measure; ``clean``: the
  checkpoint with the lowest validation loss);
- ``transfer`` [Fig. 3]: LNK over Trackastra training epochs, one panel per protocol and MAESTER
  embedding (e.g. pretrained on data that includes the tracked sequence vs a Mitocheck plate that
  does not);
- ``data_scaling`` [Fig. 4]: like compute_scaling, one line per pretraining dataset (MAESTER run).
Each writes ``{study}.png``, ``{study}.svg`` and ``{study}.json`` (the plotted points) to --out-dir.
Runs named by --expect but absent (or skipped) are drawn and listed as missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from denselink import __version__
from denselink.atomic import add_force_flag, check_output, write_json
from denselink.command import command_parser, start
from denselink.errors import ConfigError
from denselink.evaluate.inputs import OWN_ORIGIN, load_checked
from denselink.evaluate.metrics import MetricsFormatError
from denselink.figures import plot
from denselink.figures.points import (
    baseline_point,
    epoch_curves,
    maester_variants,
    protocols_of,
    scaling_points,
)
from denselink.figures.settings import FigureSettings
from denselink.vocabulary import STUDIES, parse_variant

TITLES = {
    "compute_scaling": "Pretraining compute: MAESTER embeddings fused into Trackastra",
    "transfer": "Transfer: LNK during Trackastra training with MAESTER embeddings",
    "data_scaling": "Pretraining data: LNK by pretraining dataset size",
}

COMMAND = "figures appendix-c"


def _frames(metrics: list[Path], baseline: list[Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Checked metrics of one dataset and origin and, per protocol, one direction (train, eval sequence)."""
    runs, epochs, notes = load_checked([*metrics, *baseline])
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    datasets = sorted(set(runs["dataset"]))
    if len(datasets) > 1:
        raise ConfigError(metrics[0], f"metrics span several datasets {datasets}; pass one dataset's files")
    origins = runs["origin"].fillna(OWN_ORIGIN) if "origin" in runs else pd.Series([OWN_ORIGIN])
    if origins.nunique() > 1:
        raise ConfigError(
            metrics[0], f"metrics of several origins {sorted(set(origins))}; a figure shows one origin's runs"
        )
    for protocol, own in runs.groupby("protocol"):
        directions = own.groupby(["train_seq", "eval_seq"], sort=True)["path"].first()
        if len(directions) > 1:
            listed = ", ".join(f"{train}->{test} ({path})" for (train, test), path in directions.items())
            raise MetricsFormatError(
                directions.iloc[-1],
                f"runs of protocol {protocol!r} span directions {listed}; a figure shows one direction "
                "per protocol: pass one direction's files",
            )
    return runs, epochs


def _label(run: str, settings: FigureSettings) -> str:
    label = settings.run_labels.get(run, run)
    return f"{label} (synthetic)" if run in settings.synthetic_runs else label


def scaling_study(
    study: str, runs: pd.DataFrame, epochs: pd.DataFrame, expected: list[str], settings: FigureSettings
) -> dict:
    """Points, baseline and missing runs of compute_scaling / data_scaling, per protocol of the runs."""
    protocols = {}
    for protocol in protocols_of(runs):
        points, missing = scaling_points(runs, epochs, expected, protocol)
        protocols[protocol] = {
            "points": points,
            "missing": missing,
            "baseline": baseline_point(runs, epochs, protocol),
        }
    series = sorted({p["series"] for m in protocols.values() for p in m["points"] + m["missing"]})
    return {"study": study, "series": {s: _label(s, settings) for s in series}, "protocols": protocols}


def transfer_study(
    runs: pd.DataFrame, epochs: pd.DataFrame, expected: list[str], settings: FigureSettings
) -> dict:
    """Per-epoch curves of each MAESTER embedding and of the re-trained baseline, per protocol."""
    variants = maester_variants([*runs["variant"], *expected])
    names = sorted(variants, key=lambda n: (variants[n].run, variants[n].epoch))
    panels = []
    for protocol in protocols_of(runs):
        baseline = epoch_curves(runs, epochs, ["retrained"], protocol)[0]
        for panel in epoch_curves(runs, epochs, names, protocol):
            variant = variants[panel["variant"]]
            run = _label(str(variant.run), settings)
            panel["title"] = f"{protocol}: MAESTER pretrained on {run} (epoch {variant.epoch})"
            panel["baseline"] = None if baseline["missing"] else baseline
            panels.append(panel)
    return {
        "study": "transfer",
        "panels": panels,
        "missing": sorted({p["variant"] for p in panels if p["missing"]}),
    }


def make_figure(
    study: str,
    metrics: list[Path],
    out_dir: Path,
    baseline: list[Path] = (),
    expect: list[str] = (),
    settings: FigureSettings | None = None,
    force: bool = False,
) -> dict:
    """Compute, draw and write one study; returns the JSON-able points written to ``{study}.json``.

    Existing ``{study}.png/.svg/.json`` are replaced only if this command wrote them (or ``force``).
    """
    settings = settings or FigureSettings()
    if study not in STUDIES:
        raise ConfigError("--study", f"unknown study {study!r}; expected one of {STUDIES}")
    for path in output_paths(out_dir, study):
        check_output(path, COMMAND, force)
    for name in expect:
        parse_variant(name)
    runs, epochs = _frames(list(metrics), list(baseline))
    title = f"{TITLES[study]} ({runs['dataset'].iloc[0]})"
    if study == "transfer":
        data = transfer_study(runs, epochs, list(expect), settings)
        fig = plot.transfer_figure(title, data["panels"])
    else:
        data = scaling_study(study, runs, epochs, list(expect), settings)
        data["missing"] = sorted({m["variant"] for v in data["protocols"].values() for m in v["missing"]})
        fig = plot.scaling_figure(
            title, data["series"], data["protocols"], "MAESTER pretraining epoch (log scale)"
        )
    data |= {
        "dataset": runs["dataset"].iloc[0],
        "denselink_version": __version__,
        "settings": settings.model_dump(),
    }
    plot.save(fig, out_dir, study, COMMAND, force)
    write_json(Path(out_dir) / f"{study}.json", data, COMMAND, force)
    return data


def output_paths(out_dir: Path, study: str) -> list[Path]:
    """The files :func:`make_figure` writes for ``study``."""
    return [Path(out_dir) / f"{study}.{suffix}" for suffix in ("png", "svg", "json")]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``denselink figures appendix-c``."""
    parser = command_parser(
        COMMAND, "Appendix C figures (PNG + SVG + JSON of the plotted points) from metrics JSONs."
    )
    parser.add_argument("--study", required=True, choices=STUDIES, help="which figure to draw")
    parser.add_argument(
        "--metrics", nargs="+", required=True, type=Path, help="metrics JSONs of the MAESTER runs"
    )
    parser.add_argument("--out-dir", required=True, type=Path, help="directory for {study}.png/.svg/.json")
    parser.add_argument(
        "--baseline",
        nargs="*",
        default=[],
        type=Path,
        help="metrics JSONs of the re-trained baseline (reference)",
    )
    parser.add_argument(
        "--expect",
        nargs="*",
        default=[],
        help="variant names that should have runs; absent ones are drawn as missing",
    )
    parser.add_argument(
        "--settings",
        default=None,
        help="FigureSettings as inline JSON or a YAML/JSON file: run_labels",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink figures appendix-c``."""
    args, settings = start(
        build_parser(), argv, COMMAND, FigureSettings, lambda a: output_paths(a.out_dir, a.study)
    )
    data = make_figure(
        args.study, args.metrics, args.out_dir, args.baseline, args.expect, settings, args.force
    )
    print(f"wrote {args.study}.png/.svg/.json to {args.out_dir} ({len(data['missing'])} missing runs)")
    return 0
