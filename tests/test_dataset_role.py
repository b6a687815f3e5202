"""A dataset's role: a positive control is marked as one in Table 1."""

from __future__ import annotations

import json
from pathlib import Path

from denselink.evaluate.metrics import load_metrics, metrics_record, write_metrics
from denselink.evaluate.table import TableSettings, build_table, render_markdown
from denselink.pipeline.checks import load_config
from denselink.pipeline.jobs import table_settings

REPO = Path(__file__).resolve().parents[1]


def test_mini_config_passes_synth_hela_as_the_positive_control_to_the_table() -> None:
    config = load_config(
        [REPO / "workflow" / "configs" / "mini.yaml"], REPO / "workflow" / "schemas" / "config.schema.yaml"
    )
    roles = json.loads(table_settings(config))["dataset_roles"]
    assert roles == {"Synth-Motion": "study", "Synth-HeLa": "positive_control"}


def test_table_marks_the_sections_of_a_positive_control(tmp_path: Path) -> None:
    paths = []
    for dataset in ("Synth-HeLa", "Synth-Motion"):
        for seed in range(2):
            record = metrics_record(
                dataset=dataset,
                variant="retrained",
                seed=seed,
                protocol="clean",
                train_seq="02",
                eval_seq="01",
                checkpoint="checkpoints/epoch001.pt",
                scores={"LNK": 0.9, "TRA": 0.9, "DET": 1.0},
                per_epoch=[{"epoch": 1, "LNK": 0.9, "TRA": 0.9, "DET": 1.0, "val_loss": 1.0}],
            )
            paths.append(tmp_path / dataset / f"seed{seed}.json")
            write_metrics(paths[-1], record)
    runs, epochs = load_metrics(paths)
    settings = TableSettings(protocols=["clean"], dataset_roles={"Synth-HeLa": "positive_control"})
    sections = [
        line
        for line in render_markdown(build_table(runs, epochs, settings), settings).splitlines()
        if line.startswith("### ")
    ]
    assert sorted(sections) == [
        "### Synth-HeLa (positive control): train on 02, evaluate on 01",
        "### Synth-Motion: train on 02, evaluate on 01",
    ]
