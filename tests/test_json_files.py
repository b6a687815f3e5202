"""A JSON input file that is absent or does not parse stops with the caller's error naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from denselink.errors import CTCFormatError, MitocheckFormatError
from denselink.json_files import read_json


def test_read_json_returns_the_value(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text('{"sequences": [1, 2.5, null]}')
    assert read_json(path, CTCFormatError, "absent") == {"sequences": [1, 2.5, None]}


def test_absent_file_is_the_callers_error_with_its_text(tmp_path: Path) -> None:
    with pytest.raises(MitocheckFormatError) as info:
        read_json(tmp_path / "none.json", MitocheckFormatError, "file does not exist")
    assert (info.value.path, info.value.problem) == (str(tmp_path / "none.json"), "file does not exist")


def test_unparsable_file_names_the_position(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"a": 1,')
    with pytest.raises(CTCFormatError) as info:
        read_json(path, CTCFormatError, "absent", "manifest is not valid JSON")
    assert info.value.path == str(path)
    assert info.value.problem.startswith("manifest is not valid JSON: Expecting property name")
    assert "line 1 column 9 (char 8)" in info.value.problem
