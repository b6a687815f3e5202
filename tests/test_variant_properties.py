"""What a variant is, read from its parsed name: trained or not, its seeds, its train sequence, its test."""

from __future__ import annotations

import pytest

from denselink.evaluate.table import ROW_ORDER
from denselink.vocabulary import PUBLISHED_MODEL, parse_variant

FACTS = ("trained", "fixed_seed", "has_train_sequence", "tested", "family")


@pytest.mark.parametrize(
    ("name", "facts"),
    [
        ("pretrained", (False, 0, False, False, "pretrained")),
        ("retrained", (True, None, True, False, "retrained")),
        ("sam-mma-add_wrfeat", (True, None, True, True, "sam")),
        ("musam-anyup-centroid-concat", (True, None, True, True, "musam")),
        ("maester-fluo-epoch18249-centroid-add_token", (True, None, True, True, "maester")),
        ("maester-fluo-init-mma-etultra", (True, None, True, True, "maester")),
        ("handcrafted-mma-add_token", (True, None, True, True, "handcrafted")),
    ],
)
def test_variant_properties_follow_from_the_name(name: str, facts: tuple) -> None:
    variant = parse_variant(name)
    assert tuple(getattr(variant, fact) for fact in FACTS) == facts


def test_published_model_is_the_pretrained_baseline() -> None:
    assert PUBLISHED_MODEL == "pretrained" and parse_variant(PUBLISHED_MODEL).name == "pretrained"


def test_table_rows_are_ordered_baselines_then_sam_musam_maester_then_the_control() -> None:
    expected = {"retrained": 0, "pretrained": 1, "sam": 2, "musam": 3, "maester": 4, "handcrafted": 5}
    assert expected == ROW_ORDER
