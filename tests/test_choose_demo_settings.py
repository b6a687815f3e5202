"""The demo-settings search: its runs touch only 02, its choice is the lowest mean validation loss,
and it refuses a run from the evaluation sequence."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from denselink.errors import ConfigError

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "choose_demo_settings.py"
VARIANTS = ("retrained", "maester-synth-epoch3-centroid-add_wrfeat")


@pytest.fixture(scope="module")
def search():
    spec = importlib.util.spec_from_file_location("choose_demo_settings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def rows_of(losses: dict[tuple[int, int], list[float]]) -> list[dict]:
    """Runs of two datasets x two arms x seeds 0-1 per candidate, losses in that order."""
    rows = []
    for (cutoff, augment), values in losses.items():
        keys = [(d, v, s) for d in ("Synth-HeLa", "Synth-Motion") for v in VARIANTS for s in (0, 1)]
        for (dataset, variant, seed), loss in zip(keys, values, strict=True):
            rows.append(
                dict(
                    spatial_pos_cutoff=cutoff,
                    augment=augment,
                    dataset=dataset,
                    variant=variant,
                    seed=seed,
                    train_seq="02",
                    val_seq=None,
                    val_start_frame=24,
                    lowest_val_loss=loss,
                    path=f"runs/spc{cutoff}-aug{augment}/{dataset}/{variant}/seed{seed}",
                )
            )
    return rows


LOSSES = {
    (16, 0): [0.20] * 8,
    (16, 3): [0.10] * 8,
    (32, 0): [0.30] * 8,
    (32, 3): [0.12, 0.12, 0.04, 0.04, 0.06, 0.06, 0.02, 0.02],  # mean 0.06: the lowest
    (64, 0): [0.25] * 8,
    (64, 3): [0.09] * 8,
}


def test_choose_takes_the_lowest_mean(search) -> None:
    result = search.choose(rows_of(LOSSES), ["01"])
    assert result["chosen"] == {"spatial_pos_cutoff": 32, "augment": 3}
    means = {(c["spatial_pos_cutoff"], c["augment"]): c["mean_lowest_val_loss"] for c in result["candidates"]}
    assert means == pytest.approx({(16, 0): 0.2, (16, 3): 0.1, (32, 0): 0.3, (32, 3): 0.06, (64, 0): 0.25,
                                   (64, 3): 0.09})  # fmt: skip
    winner = next(c for c in result["candidates"] if c["spatial_pos_cutoff"] == 32 and c["augment"] == 3)
    assert winner["runs"] == 8
    assert winner["by_dataset_arm"] == pytest.approx(
        {"Synth-HeLa/maester": 0.04, "Synth-HeLa/retrained": 0.12, "Synth-Motion/maester": 0.02,
         "Synth-Motion/retrained": 0.06}
    )  # fmt: skip


def test_a_tie_goes_to_the_earlier_candidate(search) -> None:
    result = search.choose(rows_of({(64, 3): [0.1] * 8, (16, 0): [0.1] * 8}), ["01"])
    assert result["chosen"] == {"spatial_pos_cutoff": 64, "augment": 3}


@pytest.mark.parametrize("field", ["train_seq", "val_seq"])
def test_a_run_on_the_evaluation_sequence_is_refused(search, field: str) -> None:
    rows = rows_of(LOSSES)
    rows[5][field] = "01"
    with pytest.raises(ConfigError) as err:
        search.choose(rows, ["01"])
    assert str(err.value) == (
        f"config error: {rows[5]['path']}: run uses evaluation sequence 01: "
        "the choice uses validation data only"
    )


def test_validation_must_be_the_held_out_tail(search) -> None:
    rows = rows_of(LOSSES)
    rows[2]["val_start_frame"] = None
    with pytest.raises(ConfigError, match="validation must be the held-out tail of the training sequence"):
        search.choose(rows, ["01"])


def test_candidates_must_have_the_same_runs(search) -> None:
    rows = [row for row in rows_of(LOSSES) if not (row["spatial_pos_cutoff"] == 64 and row["seed"] == 1)]
    with pytest.raises(ConfigError) as err:
        search.choose(rows, ["01"])
    assert str(err.value) == (
        "config error: spatial_pos_cutoff=64, augment=0: "
        "candidates must have the same runs (dataset, variant, seed), each once"
    )


def test_lowest_val_loss_skips_epochs_without_one(search, tmp_path: Path) -> None:
    log = tmp_path / "train_log.csv"
    log.write_text(
        "epoch,train_loss,val_loss,lr,seconds\n0,0.5,nan,0.001,1.0\n1,0.4,0.30,0.001,1.0\n"
        "2,0.3,0.25,0.001,1.0\n3,0.2,0.27,0.001,1.0\n"
    )
    assert search.lowest_val_loss(log) == (0.25, 2)


def test_the_demo_runs_read_only_the_training_sequence(search, tmp_path: Path) -> None:
    cfg = search.load_config([search.CONFIG], search.SCHEMA)
    runs = search.plan_runs(cfg, [(16, 0), (32, 3)], tmp_path)
    assert len(runs) == 2 * 2 * 2 * len(cfg["tracking"]["seeds"])  # candidates x datasets x arms x seeds
    assert {search.arm_of(run.variant) for run in runs} == {"retrained", "maester"}
    inputs = [path for run in runs for path in run.inputs.values()]
    assert all("/02" in path and "/01" not in path for path in inputs)
    first = runs[0]
    assert (first.settings["spatial_pos_cutoff"], first.settings["augment"]) == (16, 0)
    assert first.settings["val_fraction"] == 0.25 and first.settings["fusion"] == "none"
    fused = next(run for run in runs if run.variant != "retrained" and run.candidate == (32, 3))
    assert fused.settings["fusion"] == "add_wrfeat" and sorted(fused.inputs) == ["data", "features"]
