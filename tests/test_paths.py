"""Config paths are resolved and checked before any job; writers stay inside their root."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from denselink.errors import ConfigError
from denselink.pipeline.checks import check_stage_settings, preflight
from denselink.pipeline.paths import assert_inside, check_config_paths

REPO = Path(__file__).resolve().parents[1]


def mini_config() -> dict:
    return yaml.safe_load((REPO / "workflow" / "configs" / "mini.yaml").read_text())


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_mini_config_resolves_under_workdir(tmp_path: Path) -> None:
    paths = check_config_paths(mini_config(), tmp_path)
    assert paths["results_root"] == tmp_path / "results" / "mini"
    assert paths["data_root"] == tmp_path / "results" / "mini" / "raw"
    assert paths["datasets.Synth-HeLa"] == tmp_path / "results" / "mini" / "raw" / "Synth-HeLa"
    assert paths["mitocheck.root"] == tmp_path / "results" / "mini" / "raw" / "mitocheck"
    assert all(path.is_absolute() for path in paths.values())


def test_relative_workdir_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert check_config_paths(mini_config(), Path("."))["results_root"] == tmp_path / "results" / "mini"


@pytest.mark.parametrize("key", ["results_root", "data_root"])
@pytest.mark.parametrize(
    ("root", "problem"),
    [
        (".", "is the working directory itself"),
        ("..", "is a parent of the working directory"),
        ("results/../..", "is a parent of the working directory"),
        ("/", "is a parent of the working directory"),
        ("~", "is the home folder"),
    ],
)
def test_root_that_is_the_workdir_a_parent_or_home_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str, root: str, problem: str
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # not a parent of the working directory
    with pytest.raises(ConfigError) as err:
        check_config_paths(mini_config() | {key: root}, tmp_path / "work")
    assert err.value.path == key and problem in err.value.problem, err.value.problem


@pytest.mark.parametrize("root", ["../scratch/my results", "results/../../x", "{tmp}/scratch/run 1"])
def test_roots_outside_the_workdir_need_no_permission(tmp_path: Path, root: str) -> None:
    work = tmp_path / "work"
    config = mini_config() | {
        "results_root": root.format(tmp=tmp_path),
        "data_root": root.format(tmp=tmp_path) + "/raw",
    }
    paths = check_config_paths(config, work)
    expected = Path(os.path.normpath(work / root.format(tmp=tmp_path)))
    assert paths["results_root"] == expected and paths["data_root"] == expected / "raw"
    assert paths["datasets.Synth-HeLa"] == expected / "raw" / "Synth-HeLa"


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere"])
def test_dataset_name_leaving_the_data_root_is_refused(tmp_path: Path, name: str) -> None:
    config = mini_config()
    config["datasets"] = {name: config["datasets"]["Synth-HeLa"]}
    with pytest.raises(ConfigError) as err:
        check_config_paths(config, tmp_path)
    assert err.value.path == f"datasets.{name}" and "leaves" in err.value.problem


def test_maester_run_name_leaving_its_folder_is_refused(tmp_path: Path) -> None:
    config = mini_config()
    config["maester"]["runs"][".."] = ["Synth-HeLa/01"]
    with pytest.raises(ConfigError) as err:
        check_config_paths(config, tmp_path)
    assert err.value.path == "maester.runs..." and "leaves" in err.value.problem


def test_generated_mitocheck_root_is_checked_like_a_root(tmp_path: Path) -> None:
    config = mini_config()
    config["mitocheck"]["root"] = "."
    with pytest.raises(ConfigError, match="mitocheck.root: .* is the working directory itself"):
        check_config_paths(config, tmp_path)


def test_results_root_that_is_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "results").write_text("not a folder")
    with pytest.raises(ConfigError, match="results_root: .* exists and is not a directory"):
        check_config_paths(mini_config() | {"results_root": "results"}, tmp_path)


def test_local_ctc_dataset_must_exist(tmp_path: Path) -> None:
    config = paper_config()
    config["datasets"]["Fluo-N2DL-HeLa"]["download"] = False
    config["mitocheck"]["source"] = "synthetic"
    with pytest.raises(ConfigError) as err:
        check_config_paths(config, tmp_path)
    assert err.value.path == "datasets.Fluo-N2DL-HeLa"
    assert str(tmp_path / "data" / "Fluo-N2DL-HeLa") in err.value.problem
    (tmp_path / "data" / "Fluo-N2DL-HeLa").mkdir(parents=True)
    assert (
        check_config_paths(config, tmp_path)["datasets.Fluo-N2DL-HeLa"]
        == tmp_path / "data" / "Fluo-N2DL-HeLa"
    )


def test_downloaded_dataset_may_be_absent(tmp_path: Path) -> None:
    config = paper_config()
    config["mitocheck"]["source"] = "synthetic"
    paths = check_config_paths(config, tmp_path)
    assert paths["datasets.DIC-C2DH-HeLa"] == tmp_path / "data" / "DIC-C2DH-HeLa"


def test_local_mitocheck_root_must_exist_when_runs_use_it(tmp_path: Path) -> None:
    config = paper_config()
    with pytest.raises(ConfigError) as err:
        check_config_paths(config, tmp_path)
    assert err.value.path == "mitocheck.root" and "does not exist" in err.value.problem
    config["maester"]["runs"] = {"fluo": ["Fluo-N2DL-HeLa/01"]}
    assert check_config_paths(config, tmp_path)["mitocheck.root"] == tmp_path / "data" / "mitocheck"


def test_dry_run_collects_absent_inputs_instead_of_raising(tmp_path: Path) -> None:
    missing: list[str] = []
    paths = check_config_paths(paper_config(), tmp_path, missing=missing)
    assert paths["mitocheck.root"] == tmp_path / "data" / "mitocheck"
    assert missing == [
        f"mitocheck.root: {tmp_path / 'data' / 'mitocheck'} does not exist "
        "(maester.runs use local Mitocheck plates)"
    ]


def test_foundation_checkpoint_must_be_a_file(tmp_path: Path) -> None:
    config = mini_config()
    config["foundation"]["sam"] = {"model_type": "vit_b", "checkpoint": "weights/sam_vit_b.pt"}
    with pytest.raises(ConfigError) as err:
        check_config_paths(config, tmp_path)
    assert err.value.path == "foundation.sam.checkpoint"
    assert str(tmp_path / "weights" / "sam_vit_b.pt") in err.value.problem
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "sam_vit_b.pt").write_bytes(b"x")
    assert (
        check_config_paths(config, tmp_path)["foundation.sam.checkpoint"]
        == tmp_path / "weights" / "sam_vit_b.pt"
    )


def test_unused_backbone_checkpoint_is_not_required(tmp_path: Path) -> None:
    config = mini_config()
    config["foundation"]["musam"] = {"checkpoint": "absent.pt"}
    config["table1"]["embeddings"] = ["sam", "maester"]
    assert check_config_paths(config, tmp_path)["foundation.musam.checkpoint"] == tmp_path / "absent.pt"


def test_local_anyup_clone_must_hold_hubconf(tmp_path: Path) -> None:
    config = mini_config()
    config["foundation"]["sam"] = {
        "upsampler": "anyup",
        "anyup": {"repo": "third_party/anyup", "source": "local"},
    }
    with pytest.raises(ConfigError, match="foundation.sam.anyup.repo: .* does not exist"):
        check_config_paths(config, tmp_path)
    (tmp_path / "third_party" / "anyup").mkdir(parents=True)
    with pytest.raises(ConfigError, match="holds no hubconf.py"):
        check_config_paths(config, tmp_path)
    (tmp_path / "third_party" / "anyup" / "hubconf.py").write_text("")
    assert (
        check_config_paths(config, tmp_path)["foundation.sam.anyup.repo"]
        == tmp_path / "third_party" / "anyup"
    )


def test_pretrained_model_folder(tmp_path: Path) -> None:
    config = mini_config()
    assert "tracking.pretrained_model" not in check_config_paths(config, tmp_path)  # a trackastra name
    config["tracking"]["pretrained_model"] = "models/general"
    assert "tracking.pretrained_model" not in check_config_paths(config, tmp_path)  # absent: row skipped
    (tmp_path / "models" / "general").mkdir(parents=True)
    with pytest.raises(ConfigError, match="tracking.pretrained_model: .* holds no model.pt"):
        check_config_paths(config, tmp_path)
    (tmp_path / "models" / "general" / "model.pt").write_bytes(b"x")
    assert (
        check_config_paths(config, tmp_path)["tracking.pretrained_model"] == tmp_path / "models" / "general"
    )


def test_assert_inside(tmp_path: Path) -> None:
    root = tmp_path / "results"
    root.mkdir()
    assert assert_inside(root / "metrics" / "a.json", root) == root / "metrics" / "a.json"
    assert assert_inside(root, root) == root
    with pytest.raises(ConfigError, match="outside"):
        assert_inside(root / ".." / "a.json", root)
    with pytest.raises(ConfigError, match="outside"):
        assert_inside(tmp_path / "results2" / "a.json", root)  # a sibling sharing the prefix


def test_assert_inside_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "results"
    root.mkdir()
    (tmp_path / "outside").mkdir()
    (root / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ConfigError) as err:
        assert_inside(root / "link" / "a.json", root)
    assert err.value.path == str(root / "link" / "a.json")


def test_preflight_parses_every_stage_section(tmp_path: Path) -> None:
    assert preflight(mini_config(), tmp_path)["results_root"] == tmp_path / "results" / "mini"
    config = mini_config()
    config["maester"]["model"]["patch_size"] = 4
    with pytest.raises(ConfigError) as err:
        check_stage_settings(config)
    assert err.value.path == "maester" and "patch_size must be odd" in err.value.problem
    config = mini_config()
    config["datasets"]["Synth-HeLa"]["synth"]["n_frames"] = "ten"
    with pytest.raises(ConfigError) as err:
        preflight(config, tmp_path)
    assert err.value.path == "datasets.Synth-HeLa.synth" and "n_frames" in err.value.problem


# composed flags ("--strict" or "", "--model-dir X" | "--pretrained X", "torchrun ..."): quoted or constant
COMPOSED_FLAGS = {"params.launcher", "params.model", "params.optional", "params.strict"}


def test_every_value_in_a_rule_shell_command_is_quoted() -> None:
    checked = 0
    for path in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.findall(r"shell:\n((?:[ \t]+\".*\"\n)+)", path.read_text()):
            for name in re.findall(r"\{([^{}:]+)\}", block):
                assert name in COMPOSED_FLAGS, f"{path.name}: {{{name}}} is not quoted (use {{{name}:q}})"
                checked += 1
            checked += block.count(":q}")
    assert checked > 50  # every rule's command was found
