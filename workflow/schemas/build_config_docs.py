"""Write docs/config.md, every config key with its type, default and meaning, from the config schema.

The keys come from workflow/schemas/config.schema.yaml and, for the stage settings blocks it refers to,
from workflow/schemas/stages.schema.json (the stages' pydantic models), so the page cannot drift from
what the workflow checks. Run after changing either schema:
``.venv/bin/python workflow/schemas/build_config_docs.py`` (tests/test_config_docs.py fails while the page
is stale).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
CONFIG_SCHEMA = HERE / "config.schema.yaml"
STAGES_SCHEMA = HERE / "stages.schema.json"
OUT = HERE.parents[1] / "docs" / "config.md"
STAGES_PREFIX = "stages.schema.json"
PLACEHOLDERS = {"datasets": "NAME", "runs": "RUN", "maester": "DATASET", "train_epochs": "PATTERN"}
"""The key shown for an entry of a mapping with free keys (e.g. ``datasets.NAME``), by the mapping's key."""

HEADER = """# Config keys

Every key of the workflow config, with its type, its default (the value used when the key is absent)
and its meaning. Generated from `workflow/schemas/config.schema.yaml` and the stage settings models
(`workflow/schemas/stages.schema.json`) by `workflow/schemas/build_config_docs.py`; do not edit by hand.
A key without a default must be given when its section is. `NAME`, `RUN`, `DATASET`, `PATTERN` and
`RULE` stand for keys you choose. Sections without a default (`table1`, `appendix_c` and each Appendix C
study) are studies: absent, they are not run. What changed between versions: CHANGELOG.md.
"""


class Schemas:
    """The config schema and the stages schema, with ``$ref`` resolution across both."""

    def __init__(self) -> None:
        self.config = yaml.safe_load(CONFIG_SCHEMA.read_text())
        self.stages = json.loads(STAGES_SCHEMA.read_text())

    def resolve(self, node: dict[str, Any], in_stages: bool) -> tuple[dict[str, Any], bool]:
        """``node`` with its ``$ref`` (or a nullable ``anyOf`` of one) followed; whether it is in stages."""
        refs = [n for n in node.get("anyOf", []) if "$ref" in n]
        ref = node.get("$ref") or (refs[0]["$ref"] if len(refs) == 1 else None)
        if ref is None:
            return node, in_stages
        file, _, pointer = ref.partition("#")
        if file == STAGES_PREFIX:
            in_stages = True
        defs = (self.stages if in_stages else self.config)["$defs"]
        target = defs[pointer.removeprefix("/$defs/")]
        merged = {**target, **{k: v for k, v in node.items() if k not in ("$ref", "anyOf")}}
        return self.resolve(merged, in_stages) if "$ref" in target else (merged, in_stages)


def _type(node: dict[str, Any], schemas: Schemas, in_stages: bool) -> str:
    """A short type: ``integer``, ``one of: a, b``, ``list of string``, ``mapping``, ``null or ...``."""
    if "anyOf" in node:
        parts = [_type(schemas.resolve(n, in_stages)[0], schemas, in_stages) for n in node["anyOf"]]
        return " or ".join(dict.fromkeys(parts))
    node, in_stages = schemas.resolve(node, in_stages)
    if "enum" in node:
        return "one of: " + ", ".join(str(v) for v in node["enum"])
    kind = node.get("type", "object" if "properties" in node else "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array" and isinstance(node.get("items"), dict):
        return f"list of {_type(node['items'], schemas, in_stages)}"
    if kind == "object" and "properties" not in node:
        return "mapping"
    return "section" if kind == "object" else kind


def _default(node: dict[str, Any], sections: bool) -> str:
    """The default as JSON; a section defaulting to ``{}`` takes its keys' defaults."""
    if "default" not in node:
        return "—"
    value = node["default"]
    if value == {} and sections:
        return "(its keys' defaults)"
    return "`" + json.dumps(value, ensure_ascii=False) + "`"


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def rows(node: dict[str, Any], key: str, schemas: Schemas, in_stages: bool = False) -> list[tuple[str, ...]]:
    """(key, type, default, meaning) of ``node`` and every key inside it."""
    resolved, inner = schemas.resolve(node, in_stages)
    meaning = node.get("description") or resolved.get("description", "")
    default = _default(node, "properties" in resolved)
    found = [(key, _type(node, schemas, in_stages), default, _cell(meaning))]
    for name, sub in resolved.get("properties", {}).items():
        found += rows(sub, f"{key}.{name}", schemas, inner)
    extra = resolved.get("additionalProperties")
    if isinstance(extra, dict):
        child, child_inner = schemas.resolve(extra, inner)
        if "properties" in child:
            placeholder = PLACEHOLDERS.get(key.rsplit(".", 1)[-1], "NAME")
            for name, sub in child["properties"].items():
                found += rows(sub, f"{key}.{placeholder}.{name}", schemas, child_inner)
    return found


def render() -> str:
    schemas = Schemas()
    lines = [HEADER]
    for name, node in schemas.config["properties"].items():
        table = rows(node, name, schemas)
        if name == "resources":  # one row per rule would repeat the same four keys
            table = [r for r in table if r[0].count(".") < 2 or r[0].startswith("resources.default.")]
        lines += [f"## `{name}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        lines += [f"| `{k}` | {_cell(t)} | {d} | {m} |" for k, t, d, m in table]
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    OUT.write_text(render())
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
