"""config_version: an old config (no key) still works, with a note of what changed since."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from denselink.errors import ConfigError
from denselink.pipeline.checks import load_config
from denselink.pipeline.versions import CONFIG_VERSION, version_notes

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
MINI = REPO / "workflow" / "configs" / "mini.yaml"


def test_schema_accepts_up_to_the_current_version() -> None:
    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["properties"]["config_version"]["maximum"] == CONFIG_VERSION == 2


def test_an_old_config_without_the_key_still_loads_with_a_note(tmp_path: Path) -> None:
    config = yaml.safe_load(MINI.read_text())
    assert config.pop("config_version") == CONFIG_VERSION
    path = tmp_path / "old.yaml"
    path.write_text(yaml.safe_dump(config))
    loaded = load_config([path], SCHEMA)
    (note,) = version_notes(loaded)
    assert note.startswith(
        "the config has no config_version (written before version 2); it is read as version 2"
    )
    assert "storage.keep_dense.maester and .foundation default to false (before: true)" in note
    assert version_notes({"config_version": 2}) == []
    assert version_notes({"config_version": 1})[0].startswith("the config is of config_version 1;")


def test_a_future_version_is_refused_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load(MINI.read_text()) | {"config_version": 3}
    path = tmp_path / "future.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as err:
        load_config([path], SCHEMA)
    assert "config_version: 3 is greater than the maximum of 2" in err.value.problem
