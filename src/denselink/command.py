"""What every command shares: its argument parser's name, the start of its ``main`` (parse the
arguments, set up logging, refuse outputs the command may not write, before any expensive work, and
read the stage settings) and the way its bad input ends it (one line, exit 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from denselink.atomic import check_output, describe_os_error, free_space
from denselink.errors import DenselinkError, StorageError

if TYPE_CHECKING:
    import pydantic

SettingsT = TypeVar("SettingsT", bound="pydantic.BaseModel")
Outputs = Callable[[argparse.Namespace], Iterable[Path | None]]
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


def command_parser(command: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``denselink {command}``; an ``epilog`` keeps its line breaks (and so does
    the description then)."""
    if epilog is None:
        return argparse.ArgumentParser(prog=f"denselink {command}", description=description)
    return argparse.ArgumentParser(
        prog=f"denselink {command}",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=epilog,
    )


def out_flag(args: argparse.Namespace) -> list[Path]:
    """The output of a command with one ``--out``."""
    return [args.out]


def no_outputs(args: argparse.Namespace) -> list[Path]:
    """None: a command that checks its outputs itself, once it knows them."""
    return []


def parse(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    command: str,
    outputs: Outputs = out_flag,
    logs: bool = False,
) -> argparse.Namespace:
    """``argv`` parsed; with ``logs``, INFO logging to stderr; every output (None: not asked for)
    checked with :func:`denselink.atomic.check_output` for ``command``."""
    args = parser.parse_args(argv)
    if logs:
        logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    for path in outputs(args):
        if path is not None:
            check_output(path, command, args.force)
    return args


def start(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    command: str,
    model: type[SettingsT],
    outputs: Outputs = out_flag,
    logs: bool = False,
) -> tuple[argparse.Namespace, SettingsT]:
    """:func:`parse`, then the ``--settings`` of the command read into ``model``."""
    from denselink.settings import load_settings  # pydantic: not for `denselink --help`

    args = parse(parser, argv, command, outputs, logs)
    return args, load_settings(model, args.settings)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)``'s exit status; a DenselinkError, or an OSError no writer turned into one (a full
    disk, a permission, with its file and the free space there), printed as one line and exit 2."""
    try:
        return int(main(argv) or 0)
    except DenselinkError as err:
        print(f"denselink: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        path = err.filename if err.filename is not None else "(no file named)"
        print(
            f"denselink: {StorageError(path, f'{describe_os_error(err)}; {free_space(path)}')}",
            file=sys.stderr,
        )
        return 2
