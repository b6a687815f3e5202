"""The start every command's ``main`` shares, and the one line its bad input ends with."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

from denselink.atomic import add_force_flag
from denselink.command import no_outputs, parse, run, start
from denselink.errors import ConfigError, OutputError
from denselink.settings import StageSettings

NOT_OURS = (
    "exists and was not written by denselink (no .denselink-output marker); choose another output path, "
    "or move it away (denselink never removes what it did not write)"
)


class Knobs(StageSettings):
    steps: int = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="denselink test command")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--table", type=Path, default=None)
    parser.add_argument("--settings", default=None)
    add_force_flag(parser)
    return parser


def test_every_output_is_checked_before_the_settings_are_read(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("mine\n")
    argv = ["--out", str(tmp_path / "new"), "--table", str(precious), "--settings", '{"steps": "x"}']
    with pytest.raises(OutputError) as err:
        start(_parser(), argv, "test command", Knobs, lambda a: [a.out, a.table])
    assert str(err.value) == f"output error: {precious}: {NOT_OURS}"
    assert precious.read_text() == "mine\n"


def test_absent_outputs_pass_and_settings_are_read(tmp_path: Path) -> None:
    argv = ["--out", str(tmp_path / "new"), "--settings", '{"steps": 7}']
    args, settings = start(_parser(), argv, "test command", Knobs, lambda a: [a.out, a.table])
    assert (args.out, args.table, settings.steps) == (tmp_path / "new", None, 7)
    with pytest.raises(ConfigError) as err:
        start(
            _parser(), ["--out", str(tmp_path / "new"), "--settings", '{"steps": "x"}'], "test command", Knobs
        )
    assert err.value.path == "--settings" and err.value.problem.startswith("invalid Knobs: steps:")


def test_no_outputs_leaves_the_check_to_the_command(tmp_path: Path) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("mine\n")
    assert parse(_parser(), ["--out", str(precious)], "test command", no_outputs).out == precious


def test_logs_sets_info_logging_on_the_root_logger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    parse(_parser(), ["--out", str(tmp_path / "new")], "test command", logs=True)
    assert root.level == logging.INFO and len(root.handlers) == 1


def test_run_prints_bad_input_as_one_line_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    def bad(argv: list[str] | None) -> int:
        raise ConfigError("config.yaml", f"argv {argv}")

    def unwritable(argv: list[str] | None) -> int:
        raise PermissionError(13, "Permission denied", "/proc/denselink-test")

    assert run(lambda argv: 0, []) == 0
    assert run(bad, ["x"]) == 2
    assert capsys.readouterr().err == "denselink: config error: config.yaml: argv ['x']\n"
    assert run(unwritable) == 2
    line = capsys.readouterr().err
    assert line.startswith("denselink: storage error: /proc/denselink-test: ") and line.count("\n") == 1
