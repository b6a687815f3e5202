"""The start every command's ``main`` shares: parse the arguments, set up logging, refuse outputs
the command may not write (before any expensive work) and read the stage settings."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import pydantic

from denselink.atomic import check_output
from denselink.settings import load_settings

SettingsT = TypeVar("SettingsT", bound=pydantic.BaseModel)
Outputs = Callable[[argparse.Namespace], Iterable[Path | None]]
LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


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
    args = parse(parser, argv, command, outputs, logs)
    return args, load_settings(model, args.settings)
