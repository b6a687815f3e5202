"""The ``denselink`` command: one subcommand per pipeline stage.

Each stage module owns its argument parser and exposes ``main(argv) -> int``; this
dispatcher imports a stage only when it is called, so ``denselink --help`` stays fast.
Bad input raises a :class:`~denselink.errors.DenselinkError`, printed here as one line.
"""

from __future__ import annotations

import importlib
import sys

from denselink.errors import DenselinkError

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    ("data", "synth"): ("denselink.data.synthetic", "generate synthetic CTC sequences"),
    ("data", "validate"): ("denselink.data.ctc", "validate a CTC sequence, write its manifest"),
    ("data", "download"): ("denselink.data.download", "download a CTC dataset (checksummed)"),
    ("data", "mitocheck"): ("denselink.data.mitocheck", "Mitocheck plate manifests and miniatures"),
    ("maester", "train"): ("denselink.maester.train", "pretrain MAESTER (DDP via torchrun)"),
    ("maester", "infer"): ("denselink.maester.infer", "cover-and-stride inference into zarr"),
    ("foundation", "embed"): ("denselink.foundation.embed", "SAM / muSAM embeddings, upsampled"),
    ("features", "aggregate"): ("denselink.features.aggregate", "per-cell feature table"),
    ("tracking", "prepare"): ("denselink.tracking.prepare", "cache trackastra's per-sequence data"),
    ("tracking", "train"): ("denselink.tracking.train", "train trackastra (optionally fused)"),
    ("tracking", "score-cache"): ("denselink.tracking.score_cache", "cache what scoring needs of a sequence"),
    ("tracking", "evaluate"): ("denselink.tracking.evaluate", "track + score every checkpoint"),
    ("tracking", "track"): ("denselink.tracking.track", "link your own movie with a trained model"),
    ("evaluate", "table"): ("denselink.evaluate.table", "Table 1 under a protocol"),
    ("evaluate", "ingest"): ("denselink.evaluate.ingest", "per-seed CSVs in the authors' format"),
    ("figures", "appendix-c"): ("denselink.figures.appendix_c", "Appendix C figures"),
    ("plan",): ("denselink.plan", "jobs, GPU/CPU-hours and disk of the grid"),
}


def _usage() -> str:
    lines = ["usage: denselink <group> <command> [options]  |  denselink plan [options]", "", "commands:"]
    for words, (_, summary) in COMMANDS.items():
        lines.append(f"  {' '.join(words):<22} {summary}")
    lines.append("")
    lines.append("Run 'denselink <group> <command> --help' for the options of one command.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``denselink <group> <command> ...`` to the stage module's ``main``."""
    args = list(sys.argv[1:] if argv is None else argv)
    words = next((tuple(args[:n]) for n in (1, 2) if tuple(args[:n]) in COMMANDS), None)
    if words is None or args[0] in {"-h", "--help"}:
        print(_usage(), file=sys.stderr if args[:1] not in (["-h"], ["--help"]) else sys.stdout)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    module_name, _ = COMMANDS[words]
    module = importlib.import_module(module_name)
    try:
        return int(module.main(args[len(words) :]) or 0)
    except DenselinkError as err:
        print(f"denselink: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
