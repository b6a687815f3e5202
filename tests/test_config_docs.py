"""docs/config.md is generated from the config schema and lists every key the workflow accepts."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "schemas"))

import build_config_docs  # noqa: E402


def test_config_docs_are_generated_from_the_current_schemas() -> None:
    assert build_config_docs.OUT.read_text() == build_config_docs.render(), (
        "run workflow/schemas/build_config_docs.py"
    )


def test_every_key_of_the_full_config_is_documented_with_its_default() -> None:
    text = build_config_docs.render()
    documented = {line.split("`")[1] for line in text.splitlines() if line.startswith("| `")}

    def keys(node: object, prefix: str) -> list[str]:
        if not isinstance(node, dict):
            return []
        found = []
        for name, value in node.items():
            if prefix in ("datasets", "maester.runs", "table1.maester", "protocols.paper.train_epochs"):
                name = {"datasets": "NAME", "maester.runs": "RUN", "table1.maester": "DATASET"}.get(
                    prefix, "PATTERN"
                )
            key = f"{prefix}.{name}" if prefix else name
            if not key.startswith("resources.") or key.startswith("resources.default"):
                found.append(key)
                found += keys(value, key)
        return found

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    placeholders = (".NAME", ".RUN", ".DATASET", ".PATTERN")  # an entry's own key: its fields are rows
    missing = sorted(k for k in set(keys(config, "")) - documented if not k.endswith(placeholders))
    assert missing == []
    assert "| `storage.keep_dense.maester` | boolean | `false` |" in text
    assert "| `datasets.NAME.folder` | string | — |" in text
    assert "| `table1` | section | — | Table 1 of the paper. Absent: Table 1 is not run" in text
