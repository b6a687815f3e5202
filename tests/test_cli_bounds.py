"""Every numeric option of the command line has the bounds the settings models and the config schema give
the same value, checked when the arguments are parsed (exit 2, the option and the bound named)."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest
import yaml

from denselink import arg_types, cli
from denselink.stages import STAGES
from denselink.tracking.train import build_parser as train_parser

REPO = Path(__file__).resolve().parents[1]
SEED = "a seed: an integer >= 0 and < 4294967296"
THRESHOLD = "an association threshold: a number >= 0 and <= 1"
GE0 = "Input should be greater than or equal to 0"
TRAIN = ["tracking", "train", "--data", "c.pt", "--out", "run"]
EVALUATE = [
    "tracking",
    "evaluate",
    "--model-dir",
    "a",
    "b",
    "--manifest",
    "m.json",
    "--out",
    "x.json",
    "y.json",
    "--res-dir",
    "r1",
    "r2",
]
INGEST = [
    "evaluate",
    "ingest",
    "--csv",
    "a.csv",
    "--dataset",
    "D",
    "--variant",
    "retrained",
    "--out-dir",
    "o",
]
TRACK = ["tracking", "track", "--model", "run", "--images", "i", "--masks", "m", "--out", "o"]
VALIDATE = ["data", "validate", "--dataset-dir", "d", "--dataset", "D", "--seq", "01", "--out", "m.json"]

# argv, then the option, the value and the problem the error line names
CASES = {
    "tracking train --seed -1": (TRAIN + ["--seed", "-1"], "--seed", "-1", GE0, SEED),
    "tracking train --seed 2**32": (
        TRAIN + ["--seed", str(2**32)], "--seed", str(2**32), "Input should be less than 4294967296", SEED,
    ),
    "tracking train --seed 1.5": (
        TRAIN + ["--seed", "1.5"], "--seed", "1.5",
        "Input should be a valid integer, unable to parse string as an integer", SEED,
    ),
    "tracking evaluate --seed 0 -3": (EVALUATE + ["--seed", "0", "-3"], "--seed", "-3", GE0, SEED),
    "evaluate ingest --first-seed 2**32": (
        INGEST + ["--first-seed", str(2**32)], "--first-seed", str(2**32),
        "Input should be less than 4294967296", SEED,
    ),
    "tracking track --edge-threshold 1.5": (
        TRACK + ["--edge-threshold", "1.5"], "--edge-threshold", "1.5",
        "Input should be less than or equal to 1", THRESHOLD,
    ),
    "tracking track --edge-threshold -0.1": (
        TRACK + ["--edge-threshold", "-0.1"], "--edge-threshold", "-0.1", GE0, THRESHOLD,
    ),
    "data validate --min-frames -4": (
        VALIDATE + ["--min-frames", "-4"], "--min-frames", "-4", GE0, "a count: an integer >= 0",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_an_option_out_of_bounds_stops_before_any_work(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, option, value, problem, bound = CASES[case]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == 2
    command = " ".join(argv[:2])
    expected = f"denselink {command}: error: argument {option}: '{value}': {problem} ({bound})"
    assert capsys.readouterr().err.strip().splitlines()[-1] == expected
    assert list(tmp_path.iterdir()) == []


def test_the_bounds_themselves_are_accepted() -> None:
    base = ["--data", "c.pt", "--out", "run", "--seed"]
    assert [train_parser().parse_args([*base, s]).seed for s in ("0", str(2**32 - 1))] == [0, 2**32 - 1]
    assert [arg_types.edge_threshold(t) for t in ("0", "1", "0.05")] == [0.0, 1.0, 0.05]
    assert arg_types.count("0") == 0


def _seed_fields(model: type[pydantic.BaseModel], prefix: str = "") -> dict[str, pydantic.fields.FieldInfo]:
    found = {}
    for name, field in model.model_fields.items():
        if isinstance(field.annotation, type) and issubclass(field.annotation, pydantic.BaseModel):
            found |= _seed_fields(field.annotation, f"{prefix}{name}.")
        elif name.endswith("seed"):
            found[f"{model.__name__}.{prefix}{name}"] = field
    return found


def _bounds(field: pydantic.fields.FieldInfo) -> dict[str, object]:
    return {k: getattr(c, k) for c in field.metadata for k in ("ge", "gt", "le", "lt") if hasattr(c, k)}


def test_every_seed_of_the_settings_and_the_schema_has_the_bounds_of_the_seed_option() -> None:
    seeds = {}
    for stage in STAGES:
        if stage.settings is not None:
            seeds |= _seed_fields(stage.settings.load())
    assert len(seeds) >= 4, sorted(seeds)  # synthetic data, Mitocheck miniature, MAESTER, the bootstrap
    assert {name: _bounds(field) for name, field in seeds.items()} == {
        name: {"ge": 0, "lt": 2**32} for name in seeds
    }
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    items = schema["properties"]["tracking"]["properties"]["seeds"]["items"]
    assert (items["minimum"], items["maximum"] + 1) == (0, 2**32)
    with pytest.raises(Exception, match="less than 4294967296"):
        arg_types.seed(str(2**32))


def test_settings_given_on_the_command_line_keep_their_bounds(capsys: pytest.CaptureFixture[str]) -> None:
    """Epochs, sizes and fractions reach the commands through --settings, checked by the same models."""
    argv = ["tracking", "train", "--data", "c.pt", "--out", "run", "--seed", "0", "--settings"]
    assert cli.main([*argv, json.dumps({"epochs": 0, "val_fraction": 1.0})]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        "denselink: config error: --settings: invalid TrackastraSettings: epochs: Input should be greater "
        "than or equal to 1; val_fraction: Input should be less than 1"
    )
