"""Reading a JSON input file: an absent or unparsable one is an error of the caller's kind naming it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from denselink.errors import DenselinkError


def read_json(path: Path, error: type[DenselinkError], missing: str, invalid: str = "not valid JSON") -> Any:
    """The JSON value in ``path``; ``error(path, missing)`` without a file, ``error(path, "{invalid}: ...")``
    when its text does not parse."""
    if not path.is_file():
        raise error(path, missing)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise error(path, f"{invalid}: {err}") from err
