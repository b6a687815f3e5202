"""argparse types that check a command-line value as the settings models (and so the schema) check it.

``--seed -1`` is then ``argument --seed: '-1': Input should be greater than or equal to 0 (a seed: an
integer >= 0 and < 4294967296)`` at parse time, before any work, instead of a traceback later.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Annotated, Any

import pydantic

from denselink.data.settings import SynthSettings
from denselink.tracking.settings import TrackastraSettings

_SYMBOLS = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
_KINDS = {int: "an integer", float: "a number"}


class _CommandLine(pydantic.BaseModel):
    """Command-line values that no settings model holds."""

    count: int = pydantic.Field(0, ge=0, description="A number of things (frames, items).")


def _describe(field: pydantic.fields.FieldInfo) -> str:
    """``an integer >= 0 and < 4294967296``: the field's type and bounds in words."""
    bounds = [
        f"{symbol} {getattr(constraint, attribute)}"
        for constraint in field.metadata
        for attribute, symbol in _SYMBOLS.items()
        if getattr(constraint, attribute, None) is not None
    ]
    kind = _KINDS.get(field.annotation, str(field.annotation))
    return " ".join([kind, " and ".join(bounds)]) if bounds else kind


def setting(model: type[pydantic.BaseModel], name: str, what: str | None = None) -> Callable[[str], Any]:
    """An argparse ``type`` parsing the text as ``model``'s field ``name``: its type and its bounds.

    ``what`` names the value in the error (default ``model.name``).
    """
    field = model.model_fields[name]
    adapter = pydantic.TypeAdapter(Annotated[field.annotation, field])
    label = f"{what or f'{model.__name__}.{name}'}: {_describe(field)}"

    def parse(text: str) -> Any:
        try:
            return adapter.validate_python(text)
        except pydantic.ValidationError as err:
            raise argparse.ArgumentTypeError(f"{text!r}: {err.errors()[0]['msg']} ({label})") from None

    parse.__name__ = name
    return parse


# Every seed of the settings models (and tracking.seeds in the config schema) has these bounds:
# numpy's legacy seed range, 0 <= seed < 2**32 (tests/test_cli_bounds.py checks that they agree).
seed = setting(SynthSettings, "seed", what="a seed")
edge_threshold = setting(TrackastraSettings, "edge_threshold", what="an association threshold")
count = setting(_CommandLine, "count", what="a count")
