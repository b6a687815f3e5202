"""``denselink init``: a starter config from CTC folders that the workflow accepts and plans as Table 1."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from denselink import cli
from denselink.data.scan import SequenceScan, scan_dataset
from denselink.errors import ConfigError, OutputError
from denselink.init import Dataset, propose_crop, propose_downsample, propose_val_fraction, write_config
from denselink.pipeline import grid
from denselink.pipeline.checks import load_config, preflight

REPO = Path(__file__).resolve().parents[1]
CROP = REPO / "tests" / "data" / "ctc_sim_crop"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def _dry_run(config: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-n", "--configfile", str(config)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _job_counts(output: str) -> dict[str, int]:
    block = output.split("Job stats:")[-1]
    return {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, flags=re.M)}


@pytest.fixture(scope="module")
def crop_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real crop (folder ctc_sim_crop) under its CTC name, for a CPU laptop."""
    root = tmp_path_factory.mktemp("init")
    return write_config([CROP], root / "config.yaml", "cpu", ["Fluo-N2DH-SIM+"], workdir=root)


def test_scan_reads_the_crop() -> None:
    scans = scan_dataset(CROP)
    assert [(s.name, s.frames, s.shape, s.dtype, s.tra, s.seg_frames) for s in scans] == [
        ("01", 24, (256, 240), "uint16", True, 0),
        ("02", 24, (240, 256), "uint16", True, 0),
    ]
    assert all(s.cells_per_frame > 1 and s.cell_diameter > 5 for s in scans)


def test_crop_config_names_the_data_and_proposes_table1(crop_config: Path) -> None:
    text = crop_config.read_text()
    config = yaml.safe_load(text)
    assert config["data_root"] == str(CROP.parent)
    spec = {k: v for k, v in config["datasets"]["Fluo-N2DH-SIM+"].items() if k != "downsample"}
    assert list(config["datasets"]) == ["Fluo-N2DH-SIM+"]
    assert spec == {"source": "ctc", "download": False, "folder": "ctc_sim_crop", "sequences": ["01", "02"]}
    assert "# 01: 24 frames of 256 x 240 uint16; TRA, SEG in 0 frames" in text
    assert "# 02: 24 frames of 240 x 256 uint16; TRA, SEG in 0 frames" in text
    assert config["protocols"]["clean"] == {
        "val_fraction": 0.1,
        "directions": [{"train": "02", "eval": "01"}, {"train": "01", "eval": "02"}],
    }
    assert config["tracking"]["settings"]["crop_size"] is None  # no frame side above 256
    assert config["tracking"]["settings"]["d_model"] == 32 and config["tracking"]["seeds"] == [0, 1, 2]
    assert config["table1"]["maester"] == {"Fluo-N2DH-SIM+": {"run": "fluo_n2dh_sim_01", "epoch": 7}}
    assert "appendix_c" not in config
    dataset_keys = yaml.safe_load(SCHEMA.read_text())["$defs"]["dataset"]["properties"]
    if "downsample" in dataset_keys:  # the key exists: the proposal is written as a value
        assert config["datasets"]["Fluo-N2DH-SIM+"]["downsample"] == 1
    else:
        assert "# proposed downsampling factor 1 (" in text


def test_crop_config_passes_the_start_up_checks(crop_config: Path) -> None:
    config = load_config([crop_config], SCHEMA)
    preflight(config, crop_config.parent)
    assert grid.studies(config) == ["table1"]
    assert grid.used_datasets(config) == ["Fluo-N2DH-SIM+"]


def test_snakemake_plans_table1_of_the_crop(crop_config: Path) -> None:
    result = _dry_run(crop_config, crop_config.parent)
    assert result.returncode == 0, result.stderr
    counts = _job_counts(result.stdout)
    # 2 directions x (re-trained, MAESTER-centroid) x 3 seeds; a scoring job per cell and pretrained row
    assert counts["tracking_train"] == 12 and counts["tracking_evaluate"] == 4
    assert counts["tracking_evaluate_pretrained"] == 2 and counts["evaluate_table"] == 1
    assert counts["maester_train"] == 1 and counts["maester_infer"] == 2 and counts["data_validate"] == 2
    assert "figures_appendix_c" not in counts
    assert "wildcards: dataset=Fluo-N2DH-SIM+, seq=01" in result.stdout
    assert "data_root/ctc_sim_crop" not in result.stdout
    assert (
        "studies this config runs: table1; not run (no section): appendix_c.compute_scaling" in result.stderr
    )


def test_generated_data_for_a_gpu_cluster(tmp_path: Path) -> None:
    settings = {"shape": [300, 280], "n_frames": 12, "n_cells": 5, "seed": 2}
    assert (
        cli.main(
            ["data", "synth", "--out", str(tmp_path / "data" / "Synth"), "--settings", json.dumps(settings)]
        )
        == 0
    )
    out = write_config([tmp_path / "data" / "Synth"], tmp_path / "gpu.yaml", "gpu", workdir=tmp_path)
    config = yaml.safe_load(out.read_text())
    assert config["data_root"] == "data" and "folder" not in config["datasets"]["Synth"]
    assert config["tracking"]["settings"]["crop_size"] == [256, 256]
    assert config["table1"]["embeddings"] == ["sam", "musam", "maester"]
    assert config["maester"]["train"]["save_epochs"] == [18249] and config["maester"]["procs"] == 4
    assert config["resources"]["tracking_train"]["gpus"] == 1
    assert "# 01: 12 frames of 300 x 280 uint16; TRA, SEG in 0 frames" in out.read_text()
    preflight(load_config([out], SCHEMA), tmp_path)


def _scan(shape: tuple[int, int], diameter: float) -> SequenceScan:
    return SequenceScan("01", 10, shape, "uint16", True, 0, 5.0, diameter)


@pytest.mark.parametrize(
    ("shape", "diameter", "machine", "factor"),
    [
        ((512, 512), 30.0, "gpu", 1),
        ((512, 512), 90.0, "gpu", 2),
        ((1100, 1100), 30.0, "gpu", 1),
        ((1100, 1100), 30.0, "cpu", 3),
        ((512, 512), 170.0, "cpu", 4),
    ],
)
def test_downsampling_factor(shape: tuple[int, int], diameter: float, machine: str, factor: int) -> None:
    dataset = Dataset("X", Path("X"), [_scan(shape, diameter), _scan(shape, diameter)])
    assert propose_downsample(dataset, machine)[0] == factor


def test_crop_fits_the_smallest_frame() -> None:
    small = Dataset("A", Path("A"), [_scan((200, 300), 10.0), _scan((180, 400), 10.0)])
    assert propose_crop([small]) == [180, 180]
    big = Dataset("B", Path("B"), [_scan((512, 700), 10.0), _scan((600, 600), 10.0)])
    assert propose_crop([big]) == [256, 256]


def test_refuses_to_overwrite_a_config_it_did_not_write(tmp_path: Path) -> None:
    mine = tmp_path / "config.yaml"
    mine.write_text("results_root: results\n")
    with pytest.raises(OutputError):
        write_config([CROP], mine, "cpu", ["Fluo-N2DH-SIM+"], workdir=tmp_path)
    assert mine.read_text() == "results_root: results\n"
    written = write_config([CROP], tmp_path / "init.yaml", "cpu", ["Fluo-N2DH-SIM+"], workdir=tmp_path)
    again = write_config([CROP], written, "gpu", ["Fluo-N2DH-SIM+"], workdir=tmp_path)  # its own: replaced
    assert yaml.safe_load(again.read_text())["maester"]["procs"] == 4


def test_one_annotated_sequence_is_refused_naming_the_folder(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "One"
    shutil.copytree(CROP / "01", folder / "01")
    shutil.copytree(CROP / "01_GT", folder / "01_GT")
    shutil.copytree(CROP / "02", folder / "02")
    with pytest.raises(ConfigError) as err:
        write_config([folder], tmp_path / "c.yaml", "cpu", workdir=tmp_path)
    assert err.value.path == str(folder) and "found 01" in err.value.problem
    assert not (tmp_path / "c.yaml").exists()


def test_command_states_jobs_time_and_disk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "config.yaml"
    assert (
        cli.main(["init", str(CROP), "--name", "Fluo-N2DH-SIM+", "--machine", "cpu", "--out", str(out)]) == 0
    )
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed
    assert "studies this config runs: table1;" in printed
    assert "jobs: 32" in printed  # 30 jobs of Table 1, the rule `all` and the fusion-gain plot
    assert re.search(r"disk this run needs under results: [\d.]+ MB kept, at most [\d.]+ MB more", printed)


def test_a_sequence_too_short_for_a_window_and_its_tail_is_refused() -> None:
    short = SequenceScan("02", 7, (64, 64), "uint16", True, 0, 5.0, 10.0)
    dataset = Dataset("X", Path("X"), [_scan((64, 64), 10.0), short])
    assert propose_val_fraction([Dataset("Y", Path("Y"), [_scan((64, 64), 10.0)] * 2)], 4) == 0.1
    with pytest.raises(ConfigError) as err:
        propose_val_fraction([dataset], 4)
    assert err.value.problem == (
        "a sequence of 7 frames is too short for training windows of 4 frames and a validation tail "
        "(at least 8 frames)"
    )
