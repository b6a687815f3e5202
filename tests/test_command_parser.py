"""Every command's ``--help`` is headed by its name as the registry spells it (one spelling per command)."""

from __future__ import annotations

import importlib

import pytest

from denselink.command import command_parser
from denselink.stages import STAGES


@pytest.mark.parametrize("stage", STAGES, ids=lambda stage: " ".join(stage.words))
def test_help_names_the_command_as_the_registry_does(stage, capsys: pytest.CaptureFixture[str]) -> None:
    main = importlib.import_module(stage.module).main
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: denselink {' '.join(stage.words)} [-h]")


def test_an_epilog_keeps_its_line_breaks() -> None:
    parser = command_parser("tracking track", "Link a movie.", "first line\n  indented second line")
    assert parser.prog == "denselink tracking track"
    assert parser.format_help().endswith("first line\n  indented second line\n")
    assert command_parser("plan", "Jobs of the grid.").epilog is None
