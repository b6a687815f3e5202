"""``tracking evaluate --protocol`` is checked against how the run was trained (its config.json)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from tracking_toy import write_swap_sequence

from denselink import cli
from denselink.errors import ConfigError
from denselink.tracking.evaluate import evaluate_run
from denselink.tracking.prepare import prepare
from denselink.tracking.settings import TrackastraSettings
from denselink.tracking.train import train

TINY = {
    "window": 4,
    "d_model": 16,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "pos_embed_per_dim": 4,
    "feat_embed_per_dim": 2,
    "epochs": 2,
    "warmup_epochs": 0,
    "train_samples": 16,
    "crop_size": None,
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs on Toy/02: validated on its tail, on Toy/01 (--val-data), and without validation data."""
    root = tmp_path_factory.mktemp("provenance")
    paths: dict[str, Path] = {"root": root}
    data = TrackastraSettings(**TINY, val_fraction=0.0)
    for seq in ("01", "02"):
        paths[f"manifest{seq}"], _ = write_swap_sequence(root, seq, seed=int(seq))
        prepare(paths[f"manifest{seq}"], root / f"{seq}.pt", data)
    train(root / "02.pt", root / "tail", 0, TrackastraSettings(**TINY, val_fraction=0.25))
    train(root / "02.pt", root / "val01", 0, data, val_data=root / "01.pt")
    train(root / "02.pt", root / "none", 0, data)
    return paths | {name: root / name for name in ("tail", "val01", "none")}


def _evaluate(runs: dict[str, Path], run: str, seq: str, protocol: str, out: Path, **meta) -> dict:
    settings = TrackastraSettings(**TINY, val_fraction=0.25 if run == "tail" else 0.0)
    return evaluate_run(
        runs[run], runs[f"manifest{seq}"], out / "m.json", out / "RES", protocol, settings, meta=meta
    )


def _refusal(runs: dict[str, Path], run: str, seq: str, protocol: str, out: Path, **meta) -> ConfigError:
    with pytest.raises(ConfigError) as err:
        _evaluate(runs, run, seq, protocol, out, **meta)
    assert not (out / "m.json").exists()
    return err.value


def test_config_records_the_validation_sequence(runs: dict[str, Path]) -> None:
    configs = {name: json.loads((runs[name] / "config.json").read_text()) for name in ("tail", "val01")}
    assert (configs["val01"]["val_dataset"], configs["val01"]["val_seq"]) == ("Toy", "01")
    assert (configs["tail"]["val_seq"], configs["tail"]["settings"]["val_fraction"]) == (None, 0.25)


def test_clean_run_on_the_other_sequence_records_its_validation(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    record = _evaluate(runs, "tail", "01", "clean", tmp_path)
    assert (record["protocol"], record["train_seq"], record["eval_seq"]) == ("clean", "02", "01")
    assert (record["val_seq"], record["val_fraction"]) == (None, 0.25)
    stored = json.loads((tmp_path / "m.json").read_text())
    assert (stored["val_seq"], stored["val_fraction"]) == (None, 0.25)


def test_validated_on_the_scored_sequence_is_not_clean(runs: dict[str, Path], tmp_path: Path) -> None:
    err = _refusal(runs, "val01", "01", "clean", tmp_path)
    assert err.path == str(runs["val01"] / "config.json")
    assert err.problem == (
        "cannot be scored on Toy/01 under protocol 'clean': it validated on Toy/01, the scored sequence"
    )
    record = _evaluate(runs, "val01", "02", "paper", tmp_path / "paper")  # the authors' protocol
    assert (record["protocol"], record["val_seq"], record["eval_seq"]) == ("paper", "01", "02")


def test_trained_on_the_scored_sequence_is_not_clean(runs: dict[str, Path], tmp_path: Path) -> None:
    err = _refusal(runs, "tail", "02", "clean", tmp_path)
    assert err.problem == (
        "cannot be scored on Toy/02 under protocol 'clean': it trained on Toy/02, the scored sequence"
    )


def test_no_validation_data_is_not_clean_and_every_mismatch_is_named(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    err = _refusal(runs, "none", "02", "clean", tmp_path)
    assert err.problem == (
        "cannot be scored on Toy/02 under protocol 'clean': clean chooses the checkpoint by validation "
        "loss, but the run has no validation data; it trained on Toy/02, the scored sequence"
    )


def test_run_recorded_without_val_seq_is_checked_through_its_validation_cache(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    (old / "checkpoints").symlink_to(runs["val01"] / "checkpoints")
    config = json.loads((runs["val01"] / "config.json").read_text())
    del config["val_seq"], config["val_dataset"]
    (old / "config.json").write_text(json.dumps(config))
    err = _refusal(runs | {"old": old}, "old", "01", "clean", tmp_path / "out")
    assert err.problem.endswith("it validated on Toy/01, the scored sequence")
    config["val_data"] = str(tmp_path / "gone.pt")
    (old / "config.json").write_text(json.dumps(config))
    err = _refusal(runs | {"old": old}, "old", "01", "clean", tmp_path / "out")
    assert err.path == str(old / "config.json")
    assert err.problem.startswith(f"records val_data {tmp_path / 'gone.pt'} but not its sequence")


def test_labels_must_name_the_runs_data(runs: dict[str, Path], tmp_path: Path) -> None:
    err = _refusal(runs, "tail", "01", "clean", tmp_path, train_seq="01")
    assert (err.path, err.problem) == ("--train-seq", f"{runs['tail']}: labelled 01, but the data is 02")
    err = _refusal(runs, "tail", "01", "clean", tmp_path, eval_seq="03")
    assert (err.path, err.problem) == ("--eval-seq", f"{runs['tail']}: labelled 03, but the data is 01")


def test_cli_refuses_clean_for_a_run_validated_on_the_scored_sequence(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["tracking", "evaluate", "--model-dir", str(runs["val01"]), "--manifest", str(runs["manifest01"]),
            "--out", str(tmp_path / "m.json"), "--res-dir", str(tmp_path / "RES"),
            "--settings", json.dumps({**TINY, "val_fraction": 0.0})]  # fmt: skip
    capsys.readouterr()
    assert cli.main(argv) == 2  # --protocol defaults to clean
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"denselink: config error: {runs['val01'] / 'config.json'}: cannot be scored on Toy/01 under "
        "protocol 'clean': it validated on Toy/01, the scored sequence"
    )
    assert not (tmp_path / "m.json").exists() and not (tmp_path / "RES").exists()
