"""Start-up protocol checks: clean needs held-out validation data, and every problem is reported at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from denselink.errors import ConfigError
from denselink.pipeline.checks import check_protocols, load_config, protocol_problems

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def clean(*directions: dict, val_fraction: float = 0.0, stopping: bool = False) -> dict:
    """A config running only the ``clean`` protocol with these directions."""
    return {
        "protocols": {"clean": {"val_fraction": val_fraction, "directions": list(directions)}},
        "table1": {"protocols": ["clean"]},
        "tracking": {"early_stopping": {"retrained": stopping, "embeddings": False}},
    }


def test_clean_without_validation_data_fails_without_early_stopping() -> None:
    with pytest.raises(ConfigError) as err:
        check_protocols(clean({"train": "02", "eval": "01"}))
    assert err.value.path == "protocols.clean.val_fraction"
    assert err.value.problem == (
        "clean chooses each checkpoint by its validation loss, but direction 02 -> 01 has no validation "
        "data (give it a val sequence or set protocols.clean.val_fraction > 0)"
    )


def test_clean_validating_on_its_training_sequence_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        check_protocols(clean({"train": "02", "eval": "01", "val": "02"}))
    assert (err.value.path, err.value.problem) == (
        "protocols.clean.directions",
        "val 02 of direction 02 -> 01 is its training sequence, not held out",
    )


def test_clean_validating_on_the_scored_sequence_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        check_protocols(clean({"train": "02", "eval": "01", "val": "01"}))
    assert (err.value.path, err.value.problem) == (
        "protocols.clean.directions",
        "val 01 is the scored sequence: test data",
    )


def test_clean_scoring_its_training_sequence_is_refused() -> None:
    with pytest.raises(ConfigError) as err:
        check_protocols(clean({"train": "02", "eval": "02"}, val_fraction=0.1))
    assert (err.value.path, err.value.problem) == (
        "protocols.clean.directions",
        "direction 02 -> 02 scores the sequence it trains on",
    )


def test_every_protocol_problem_is_reported_at_once() -> None:
    config = clean(
        {"train": "02", "eval": "01", "val": "01"}, {"train": "01", "eval": "02"}, val_fraction=0.1
    )
    config["protocols"]["paper"] = {"epochs": "chosen", "directions": [{"train": "02", "eval": "02"}]}
    config["table1"]["protocols"].append("paper")
    with pytest.raises(ConfigError) as err:
        check_protocols(config)
    assert err.value.path == "protocols"
    assert err.value.problem == (
        "3 protocol problems:\n"
        "  protocols.clean.val_fraction: a direction with a val sequence needs val_fraction 0\n"
        "  protocols.clean.directions: val 01 is the scored sequence: test data\n"
        "  protocols.paper.epochs: the paper protocol chooses by LNK over every epoch: use all"
    )


def test_each_direction_without_validation_is_listed_once_per_key() -> None:
    config = clean({"train": "02", "eval": "01"}, {"train": "01", "eval": "02"}, stopping=True)
    problems = protocol_problems(config)
    assert [key for key, _ in problems] == [
        "protocols.clean.val_fraction",
        "tracking.early_stopping.retrained",
    ] * 2
    assert [problem.split(",")[1][:25] for _, problem in problems[::2]] == [
        " but direction 02 -> 01 h",
        " but direction 01 -> 02 h",
    ]


@pytest.mark.parametrize("name", ["config.yaml", "workflow/configs/mini.yaml"])
def test_shipped_configs_have_no_protocol_problem(name: str) -> None:
    assert protocol_problems(load_config([REPO / name], SCHEMA)) == []
