"""The experiment as Python: vocabulary, stage registry, layout, grid and config checks, without Snakemake."""

from __future__ import annotations

import copy
import itertools
import json
import re
from pathlib import Path
from types import SimpleNamespace as job

import pytest
import yaml

from denselink import cli
from denselink.errors import ConfigError
from denselink.pipeline import grid, jobs, scoring
from denselink.pipeline import layout as L
from denselink.pipeline.checks import load_config
from denselink.pipeline.layout import Layout, fill
from denselink.stages import STAGES, registered_settings, settings_of
from denselink.vocabulary import AGGREGATIONS, BACKBONES, FUSIONS, PROTOCOLS, parse_variant, variant_name

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
FULL = REPO / "config.yaml"
MINI = REPO / "workflow" / "configs" / "mini.yaml"
APPC_EPOCHS = [49, 149, 449, 1399, 2399, 4399, 6399, 8399, 10399, 12399, 14399, 16399, 16599, 17599, 18249]


@pytest.fixture(scope="module")
def full() -> dict:
    return load_config([FULL], SCHEMA)


@pytest.fixture(scope="module")
def mini() -> dict:
    return load_config([MINI], SCHEMA)


# --------------------------------------------------------------------------- vocabulary
@pytest.mark.parametrize(
    ("backbone", "agg", "fusion"), list(itertools.product(BACKBONES, AGGREGATIONS, FUSIONS))
)
def test_variant_names_round_trip(backbone, agg, fusion):
    run, epoch = ("fluo_a.b", 18249) if backbone == "maester" else (None, None)
    name = variant_name(backbone, agg, fusion, run=run, epoch=epoch)
    parsed = parse_variant(name)
    assert (parsed.backbone, parsed.agg, parsed.fusion, parsed.run, parsed.epoch) == (
        backbone,
        agg,
        fusion,
        run,
        epoch,
    )
    assert parsed.name == name


def test_unknown_fusion_is_refused_naming_the_choices():
    with pytest.raises(ConfigError, match="add_wrfeat"):
        parse_variant("sam-mma-add_tokens")


def test_fusion_modes_are_declared_once():
    """Only the vocabulary lists the fusion modes; code, schema and settings derive from it."""
    listing = re.compile(r"""["']?add_wrfeat["']?\s*,\s*["']?add_token""")
    places = [
        path.relative_to(REPO).as_posix()
        for folder in ("src", "workflow")
        for path in (REPO / folder).rglob("*")
        if path.suffix in {".py", ".smk", ".yaml"} and listing.search(path.read_text())
    ]
    assert places == ["src/denselink/vocabulary.py"]


def test_schema_enums_come_from_the_vocabulary():
    defs = json.loads((SCHEMA.parent / "stages.schema.json").read_text())["$defs"]
    assert defs["Fusion"]["enum"] == list(FUSIONS)
    assert defs["Aggregation"]["enum"] == list(AGGREGATIONS)
    assert defs["Protocol"]["enum"] == list(PROTOCOLS)
    table = settings_of("TableSettings").load().model_json_schema()
    assert table["properties"]["main_fusion"]["enum"] == list(FUSIONS)


# --------------------------------------------------------------------------- stage registry
def test_cli_commands_are_the_registry():
    assert list(cli.COMMANDS) == [stage.words for stage in STAGES]


def test_job_keys_are_settings_fields_the_workflow_fills(full):
    for entry in registered_settings():
        assert set(entry.job_keys) <= set(entry.load().model_fields), entry.name
    tracking = json.loads(jobs.tracking_settings(full, "clean", "sam-mma-concat"))
    assert set(settings_of("TrackastraSettings").job_keys) <= set(tracking)
    table = json.loads(jobs.table_settings(full))
    assert set(settings_of("TableSettings").job_keys) <= set(table)


# --------------------------------------------------------------------------- layout
def test_layout_fills_given_fields_and_keeps_the_rest_as_wildcards():
    layout = Layout("/scratch/r s", "data")
    assert layout.path(L.METRICS, dataset="D", protocol="clean") == (
        "/scratch/r s/metrics/D/clean/{train_seq}-{eval_seq}/{variant}/seed{seed}.json"
    )
    assert layout.log("tracking_train", "D/x") == "/scratch/r s/logs/tracking_train/D/x.log"
    assert L.maester_checkpoint("results/maester/fluo", 49) == "results/maester/fluo/checkpoints/epoch49.pt"
    assert fill(L.MAESTER_CHECKPOINT, epoch=3) == "checkpoints/epoch3.pt"


# --------------------------------------------------------------------------- grid
def test_full_config_runs_every_table1_cell_with_8_seeds(full):
    embeddings = {
        "Fluo-N2DL-HeLa": ["sam-anyup", "musam-anyup", "maester-fluo-epoch18249"],
        "DIC-C2DH-HeLa": ["sam-anyup", "musam-anyup", "maester-dic-epoch18249"],
    }
    targets = grid.table1_targets(full)
    assert len(targets) == len(set(targets)) == 2 * 3 * (1 + (1 + 3 * 2 * len(FUSIONS)) * 8)
    directions = {"clean": ["02-01", "01-02"], "paper": ["02-02"]}
    for dataset, protocol in itertools.product(embeddings, directions):
        for direction in directions[protocol]:
            stem = f"results/metrics/{dataset}/{protocol}/{direction}"
            assert f"{stem}/pretrained/seed0.json" in targets
            for emb, agg, fusion in itertools.product(embeddings[dataset], ["mma", "centroid"], FUSIONS):
                name = f"{emb.replace('-anyup', '')}-{agg}-{fusion}"
                assert {f"{stem}/{name}/seed{s}.json" for s in range(8)} <= set(targets)
    features = grid.features_path(full, "Fluo-N2DL-HeLa", "02", "sam-mma-add_wrfeat")
    assert features == "results/features/Fluo-N2DL-HeLa/02/sam-anyup-mma.parquet"


def test_full_config_runs_the_appendix_c_grid(full):
    runs = {"fluo": APPC_EPOCHS, **{f"mitocheck{size}": APPC_EPOCHS for size in (100, 200, 300, 400)}}
    expected = {
        f"results/metrics/Fluo-N2DL-HeLa/{protocol}/{direction}/maester-{run}-epoch{e}-centroid-add_wrfeat/seed{s}.json"
        for protocol, direction in (("paper", "02-02"), ("clean", "02-01"))
        for run, run_epochs in runs.items()
        for e in run_epochs
        for s in range(8)
    }
    found = {
        p for study in ("compute_scaling", "transfer", "data_scaling") for p in grid.appc_targets(full, study)
    }
    assert found == expected and len(found) == 2 * 5 * 15 * 8
    assert (
        full["appendix_c"]["compute_scaling"]["epochs"]
        == APPC_EPOCHS
        == full["maester"]["train"]["save_epochs"]
    )


def test_full_config_paper_protocol_trains_as_the_authors(full):
    """train 02 with val_loss on 01; 300 epochs for the baseline (early-stopped) and MAESTER-centroid;
    under clean no run stops early."""
    cache01 = "results/trackastra_data/Fluo-N2DL-HeLa/01.pt"
    cases = {
        ("paper", "retrained"): (cache01, 300, True, 0.0),
        ("paper", "maester-fluo-epoch18249-centroid-add_token"): (cache01, 300, False, 0.0),
        ("paper", "sam-mma-add_token"): (cache01, 100, False, 0.0),
        ("clean", "retrained"): (None, 100, False, 0.1),
    }
    for (protocol, variant), (val, epochs, stopping, fraction) in cases.items():
        wildcards = job(dataset="Fluo-N2DL-HeLa", protocol=protocol, train_seq="02", variant=variant)
        inputs = grid.train_inputs(full, wildcards)
        settings = json.loads(jobs.tracking_settings(full, protocol, variant))
        assert inputs.get("val_data") == val, (protocol, variant)
        assert (settings["epochs"], settings["early_stopping"], settings["val_fraction"]) == (
            epochs,
            stopping,
            fraction,
        )
        assert settings["fusion"] == (parse_variant(variant).fusion or "none")
    fused = grid.train_inputs(
        full, job(dataset="Fluo-N2DL-HeLa", protocol="paper", train_seq="02", variant="sam-mma-add_token")
    )
    assert fused["val_features"] == "results/features/Fluo-N2DL-HeLa/01/sam-anyup-mma.parquet"


def test_pretrained_is_scored_alone_and_a_cell_from_every_seeds_model(full):
    cell = dict(dataset="DIC-C2DH-HeLa", protocol="clean", train_seq="02", eval_seq="01")
    pretrained = scoring.evaluate_inputs(full, job(**cell, variant="pretrained"))
    assert pretrained == {"manifest": "results/data/DIC-C2DH-HeLa/01/manifest.json"}
    fused = scoring.evaluate_inputs(full, job(**cell, variant="musam-centroid-concat"))
    assert fused["models"] == [
        f"results/models/DIC-C2DH-HeLa/clean/train02/musam-centroid-concat/seed{seed}/done.json"
        for seed in range(8)
    ]
    assert fused["score_cache"] == "results/trackastra_eval/DIC-C2DH-HeLa/01.pt"
    assert fused["features"] == "results/features/DIC-C2DH-HeLa/01/musam-anyup-centroid.parquet"


def test_a_cells_outputs_are_its_seeds_metrics(mini):
    """The scoring job of a cell writes what the grid asks of it: one metrics JSON per seed."""
    outputs = scoring.cell_outputs(mini, L.METRICS)
    root = Layout.of(mini).results_root
    assert outputs == [f"{root}/metrics/{L.CELL}/seed{seed}.json" for seed in mini["tracking"]["seeds"]]
    dataset, (train_seq, eval_seq) = mini["table1"]["datasets"][0], grid.directions(mini, "clean")[0]
    cell = dict(dataset=dataset, protocol="clean", train_seq=train_seq, eval_seq=eval_seq)
    cell["variant"] = "retrained"
    wanted = grid.grid_metrics(mini, dataset, ["retrained"], ["clean"], all_directions=False)
    assert [fill(p, **cell) for p in outputs] == wanted and len(wanted) == 3


def test_mini_config_grid(mini):
    targets = grid.table1_targets(mini)
    # 2 datasets x 2 protocols x (retrained + MAESTER x 1 agg x 1 fusion) x 3 seeds; no pretrained row
    assert len(targets) == 2 * 2 * 2 * 3
    assert grid.all_targets(mini, REPO / "absent.png") == grid.table1_files(mini) + [
        f"results/mini/figures/{study}.{ext}"
        for study in ("compute_scaling", "transfer", "data_scaling")
        for ext in ("png", "svg", "json")
    ]


def test_resources_merge_the_rule_over_the_default(full):
    assert jobs.slurm_resources(full, "tracking_train") == {
        "mem_mb": 32000,
        "runtime": 720,
        "cpus_per_task": 8,
        "gpu": 1,
    }
    assert jobs.rule_resources(full, "fusion_gain_plot")["cpus"] == full["resources"]["default"]["cpus"]
    assert jobs.maester_launcher(full).startswith("torchrun --standalone --nproc_per_node 4")


# --------------------------------------------------------------------------- config checks
def _set(*path_and_value):
    *path, key, value = path_and_value

    def edit(config: dict) -> None:
        node = config
        for part in path:
            node = node[part]
        node[key] = value

    return edit


BAD_CONFIGS = {
    "unknown-stage-key": (
        _set("tracking", "settings", "d_modle", 32),
        "tracking.settings",
        "'d_modle' was unexpected",
    ),
    "unknown-top-key": (_set("seedz", [0]), "<top level>", "'seedz' was unexpected"),
    "wrong-type": (
        _set("maester", "train", "epochs", "three"),
        "maester.train.epochs",
        "not of type 'integer'",
    ),
    "out-of-range": (_set("protocols", "clean", "val_fraction", 1.5), "protocols.clean.val_fraction", "1.5"),
    "negative-seed": (
        _set("tracking", "seeds", [-1]),
        "tracking.seeds.0",
        "-1 is less than the minimum of 0",
    ),
    "unknown-fusion": (_set("tracking", "fusion", "add"), "tracking.fusion", "'add' is not one of"),
    "unsaved-epoch": (
        _set("maester", "train", "save_epochs", [1, 2]),
        "table1.maester.Synth-HeLa.epoch",
        "save_epochs",
    ),
}


@pytest.mark.parametrize(("edit", "key", "problem"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_is_refused_naming_the_key(tmp_path, edit, key, problem):
    bad = yaml.safe_load(MINI.read_text())
    edit(bad)
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_config([tmp_path / "bad.yaml"], SCHEMA)
    lines = [err.value.path, *err.value.problem.splitlines()]
    assert any(line.strip().startswith(f"{key}:") and problem in line for line in lines) or (
        err.value.path == key and problem in err.value.problem
    )


def test_later_config_files_override_earlier_ones(tmp_path):
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"tracking": {"seeds": [5]}}))
    merged = load_config([MINI, overlay], SCHEMA)
    original = yaml.safe_load(MINI.read_text())
    assert merged["tracking"]["seeds"] == [5]
    assert merged["tracking"]["fusion"] == original["tracking"]["fusion"]
    assert copy.deepcopy(merged) == load_config([MINI, overlay], SCHEMA)
