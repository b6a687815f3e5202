"""The ``denselink`` command: one subcommand per pipeline stage (:data:`denselink.stages.STAGES`).

Each stage module owns its argument parser and exposes ``main(argv) -> int``; this
dispatcher imports a stage only when it is called, so ``denselink --help`` stays fast.
Bad input raises a :class:`~denselink.errors.DenselinkError`, printed as one line by
:func:`denselink.command.run`; so is an OSError no writer turned into one (a full disk, a permission).
"""

from __future__ import annotations

import importlib
import sys

from denselink.command import run
from denselink.stages import STAGES

COMMANDS: dict[tuple[str, ...], tuple[str, str]] = {
    stage.words: (stage.module, stage.summary) for stage in STAGES
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
    return run(module.main, args[len(words) :])


if __name__ == "__main__":
    sys.exit(main())
