"""prepare -> train -> evaluate on a tiny ambiguous sequence: caching, determinism, fusion gain."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import tifffile
import torch
from trackastra.tracking import graph_to_ctc
from tracking_toy import write_dividing_sequence, write_swap_sequence

from denselink import cli
from denselink.atomic import MARKER, claim_directory
from denselink.data.manifest import load_manifest
from denselink.errors import ConfigError, DivergenceError, FeatureTableError
from denselink.evaluate.metrics import SCORES, score_ctc
from denselink.tracking.evaluate import evaluate_pretrained, evaluate_run, list_checkpoints
from denselink.tracking.predict import MASK_COMPRESSION, export_trackastra_folder, link, load_checkpoint
from denselink.tracking.prepare import TrackingCacheError, load_prepared, prepare
from denselink.tracking.score_cache import (
    ScoreCacheError,
    build_score_cache,
    load_score_cache,
    write_score_cache,
)
from denselink.tracking.settings import TrackastraSettings
from denselink.tracking.train import lr_factor, train

MINI = {
    "window": 4,
    "d_model": 32,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "pos_embed_per_dim": 8,
    "feat_embed_per_dim": 4,
    "epochs": 4,
    "warmup_epochs": 1,
    "train_samples": 128,
    "lr": 2e-3,
    "crop_size": None,
    "val_fraction": 0.25,
}


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy")
    eval_manifest, eval_features = write_swap_sequence(root, "01", seed=1)
    train_manifest, train_features = write_swap_sequence(root, "02", seed=0)
    cache = root / "02.pt"
    prepare(train_manifest, cache, TrackastraSettings(**MINI))
    return {
        "root": root,
        "cache": cache,
        "train_manifest": train_manifest,
        "train_features": train_features,
        "eval_manifest": eval_manifest,
        "eval_features": eval_features,
    }


def _run(toy: dict[str, Path], out: Path, fusion: str = "none", seed: int = 0, **extra) -> dict:
    settings = TrackastraSettings(**{**MINI, **extra}, fusion=fusion)
    fused = fusion != "none"
    train(toy["cache"], out, seed, settings, toy["train_features"] if fused else None)
    return evaluate_run(
        out,
        toy["eval_manifest"],
        out / "metrics.json",
        out / "01_RES",
        "paper",
        settings,
        toy["eval_features"] if fused else None,
    )


def test_cache_is_reused_and_refused_for_other_settings(toy: dict[str, Path]) -> None:
    stamp = toy["cache"].stat().st_mtime_ns
    first = load_prepared(toy["cache"], TrackastraSettings(**MINI))
    assert len(first.data) == 12 - 4 + 1 and first.data.feat_dim == 7
    assert first.dataset == "Toy" and first.sequence == "02" and first.n_frames == 12
    assert first.data.windows[0]["img"] is None  # dense arrays are not cached
    assert toy["cache"].stat().st_mtime_ns == stamp
    with pytest.raises(TrackingCacheError, match="window"):
        load_prepared(toy["cache"], TrackastraSettings(**{**MINI, "window": 6}))


def test_lr_schedule_is_trackastras_warmup_then_cosine() -> None:
    assert lr_factor(0, 10, 100, 0.001) == pytest.approx(0.01)
    assert lr_factor(5, 10, 100, 0.001) == pytest.approx(0.01 + 0.99 * 0.5)
    assert lr_factor(10, 10, 100, 0.001) == pytest.approx(1.0)
    assert lr_factor(99, 10, 100, 0.001) == pytest.approx(
        0.5 * (1 + math.cos(math.pi * 89 / 91)) * 0.999 + 0.001
    )


def test_same_seed_gives_identical_model_and_metrics(toy: dict[str, Path], tmp_path: Path) -> None:
    first = _run(toy, tmp_path / "a", fusion="add_token", epochs=2)
    second = _run(toy, tmp_path / "b", fusion="add_token", epochs=2)
    assert first.pop("checkpoint").endswith("a/checkpoints/epoch001.pt")
    assert second.pop("checkpoint").endswith("b/checkpoints/epoch001.pt")
    assert first == second and first["LNK"] > 0
    assert (tmp_path / "a" / "metrics.json").read_bytes().replace(b"/a/", b"/b/") == (
        tmp_path / "b" / "metrics.json"
    ).read_bytes()
    for name in ("epoch000.pt", "epoch001.pt"):
        a = torch.load(tmp_path / "a" / "checkpoints" / name, weights_only=False)["state_dict"]
        b = torch.load(tmp_path / "b" / "checkpoints" / name, weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a)
    log = pd.read_csv(tmp_path / "a" / "train_log.csv")
    assert list(log.columns) == ["epoch", "train_loss", "val_loss", "lr", "seconds"]
    assert list(log.epoch) == [0, 1] and log.val_loss.notna().all()
    assert json.loads((tmp_path / "a" / "done.json").read_text())["epochs_run"] == 2


def test_identity_features_link_the_ambiguous_case_better(toy: dict[str, Path], tmp_path: Path) -> None:
    retrained = _run(toy, tmp_path / "retrained")
    fused = _run(toy, tmp_path / "fused", fusion="add_token")
    assert fused["LNK"] >= 0.9
    assert fused["LNK"] > retrained["LNK"] + 0.3
    assert sorted(p.name for p in (tmp_path / "fused" / "01_RES").iterdir())[:3] == [
        MARKER,
        "mask000.tif",
        "mask001.tif",
    ]


def test_missing_cell_features_stop_training_early(toy: dict[str, Path], tmp_path: Path) -> None:
    table = pd.read_parquet(toy["train_features"])
    partial = tmp_path / "partial.parquet"
    table[~((table.frame == 3) & (table.label == 2))].to_parquet(partial)
    settings = TrackastraSettings(**MINI, fusion="add_wrfeat")
    with pytest.raises(FeatureTableError, match="frame 3, label 2"):
        train(toy["cache"], tmp_path / "run", 0, settings, partial)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_pretrained_folder_scores_like_its_checkpoint_and_absent_is_skipped(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    record = _run(toy, run, epochs=3)
    last = next(row for row in record["per_epoch"] if row["epoch"] == 2)
    folder = export_trackastra_folder(run / "checkpoints" / "epoch002.pt", tmp_path / "exported")
    settings = TrackastraSettings(**MINI)
    pretrained = evaluate_pretrained(
        str(folder), toy["eval_manifest"], tmp_path / "p.json", tmp_path / "p_RES", "paper", settings
    )
    assert pretrained["variant"] == "pretrained" and pretrained["TRA"] > 0
    assert [pretrained[k] for k in ("LNK", "TRA", "DET")] == [last[k] for k in ("LNK", "TRA", "DET")]
    skipped = evaluate_pretrained(
        str(tmp_path / "absent"),
        toy["eval_manifest"],
        tmp_path / "s.json",
        tmp_path / "s_RES",
        "paper",
        settings,
    )
    assert skipped["status"] == "skipped" and skipped["LNK"] is None and "absent" in skipped["reason"]
    assert [p.name for p in (tmp_path / "s_RES").iterdir()] == [MARKER]  # no masks, no res_track.txt


def test_cli_runs_prepare_train_evaluate(toy: dict[str, Path], tmp_path: Path) -> None:
    settings = json.dumps({**MINI, "epochs": 1})
    cache = tmp_path / "02.pt"
    assert cli.main(["tracking", "prepare", "--manifest", str(toy["train_manifest"]), "--out", str(cache),
                     "--settings", settings]) == 0  # fmt: skip
    run = tmp_path / "run"
    assert cli.main(["tracking", "train", "--data", str(cache), "--out", str(run), "--seed", "3",
                     "--settings", settings]) == 0  # fmt: skip
    out = tmp_path / "metrics.json"
    assert cli.main(["tracking", "evaluate", "--model-dir", str(run), "--manifest", str(toy["eval_manifest"]),
                     "--protocol", "clean", "--out", str(out), "--res-dir", str(tmp_path / "RES"),
                     "--variant", "retrained", "--settings", settings]) == 0  # fmt: skip
    metrics = json.loads(out.read_text())
    assert (metrics["seed"], metrics["train_seq"], metrics["eval_seq"], metrics["protocol"]) == (
        3,
        "02",
        "01",
        "clean",
    )
    assert [row["epoch"] for row in metrics["per_epoch"]] == [0]
    assert metrics["device"] == "cpu" and json.loads((run / "done.json").read_text())["device"] == "cpu"
    bad = json.dumps({**MINI, "window": 5})
    assert cli.main(["tracking", "train", "--data", str(cache), "--out", str(run), "--seed", "3",
                     "--settings", bad]) == 2  # fmt: skip


def test_one_evaluate_scores_a_cells_seeds_as_separate_calls(toy: dict[str, Path], tmp_path: Path) -> None:
    """``--model-dir A B`` writes, per run, the metrics and CTC result that scoring each alone writes."""
    settings = TrackastraSettings(**{**MINI, "epochs": 2})
    runs = [tmp_path / f"seed{seed}" for seed in (0, 1)]
    for seed, run in enumerate(runs):
        train(toy["cache"], run, seed, settings)
    common = [
        "--manifest",
        str(toy["eval_manifest"]),
        "--protocol",
        "paper",
        "--settings",
        settings.model_dump_json(),
    ]
    together = [tmp_path / "together" / f"seed{seed}" for seed in (0, 1)]
    argv = [
        "tracking",
        "evaluate",
        "--model-dir",
        *map(str, runs),
        "--seed",
        "0",
        "1",
        *common,
        "--out",
        *(str(d / "m.json") for d in together),
        "--res-dir",
        *(str(d / "RES") for d in together),
    ]
    assert cli.main(argv) == 0  # fmt: skip
    for seed, (run, both) in enumerate(zip(runs, together, strict=True)):
        alone = tmp_path / "alone" / f"seed{seed}"
        assert cli.main(["tracking", "evaluate", "--model-dir", str(run), "--seed", str(seed), *common,
                         "--out", str(alone / "m.json"), "--res-dir", str(alone / "RES")]) == 0  # fmt: skip
        mine, theirs = json.loads((both / "m.json").read_text()), json.loads((alone / "m.json").read_text())
        assert mine["per_epoch"] == theirs["per_epoch"] and mine["seed"] == seed
        assert sorted(p.name for p in (both / "RES").iterdir()) == sorted(
            p.name for p in (alone / "RES").iterdir()
        )
        assert (both / "RES" / "res_track.txt").read_bytes() == (alone / "RES" / "res_track.txt").read_bytes()
    one_out = ["--out", str(tmp_path / "x.json"), "--res-dir", str(tmp_path / "x1"), str(tmp_path / "x2")]
    short = ["tracking", "evaluate", "--model-dir", *map(str, runs), *common, *one_out]
    assert cli.main(short) == 2 and not (tmp_path / "x.json").exists()


def test_retraining_drops_checkpoints_of_an_earlier_longer_run(toy: dict[str, Path], tmp_path: Path) -> None:
    out = claim_directory(tmp_path / "run", "tracking train")  # the folder of an earlier run
    stale = out / "checkpoints" / "epoch099.pt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier run")
    train(toy["cache"], out, 0, TrackastraSettings(**{**MINI, "epochs": 2}))
    assert sorted(p.name for p in (out / "checkpoints").glob("epoch*.pt")) == ["epoch000.pt", "epoch001.pt"]


def test_early_stopping_without_validation_data_is_refused_before_training(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    settings = TrackastraSettings(**{**MINI, "val_fraction": 0.0, "early_stopping": True})
    with pytest.raises(ConfigError, match="early_stopping: early stopping needs validation data"):
        train(toy["cache"], tmp_path / "run", 0, settings)
    assert not (tmp_path / "run").exists()


def test_early_stopping_ends_patience_epochs_after_the_best_val_loss(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    settings = TrackastraSettings(**{**MINI, "epochs": 12, "lr": 0.5, "early_stopping": True})
    done = train(toy["cache"], tmp_path / "run", 0, settings)
    log = pd.read_csv(tmp_path / "run" / "train_log.csv")
    patience = 12 // 6
    best = int(log.loc[log["val_loss"].idxmin(), "epoch"])
    assert done["stopped_early"] and done["best_val_epoch"] == best
    assert done["epochs_run"] == len(log) == best + patience + 1 < 12


@pytest.fixture(scope="module")
def dividing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A generated sequence with divisions and a run whose checkpoints link it imperfectly."""
    root = tmp_path_factory.mktemp("dividing")
    manifest = write_dividing_sequence(root, 14, 0.15)
    settings = TrackastraSettings(**{**MINI, "epochs": 3, "val_fraction": 0.0})
    prepare(manifest, root / "01.pt", settings)
    train(root / "01.pt", root / "run", 0, settings)
    return {"root": root, "manifest": manifest, "run": root / "run"}


def test_cached_scoring_equals_the_old_per_checkpoint_path(dividing: dict[str, Path], tmp_path: Path) -> None:
    """Every epoch's scores and the chosen epoch's CTC result of ``tracking evaluate`` are the old path's.

    The old path: trackastra's ``predict_windows``, ``build_graph``, ``track_greedy`` and ``graph_to_ctc``
    on the sequence's frames and masks, the result written as TIFFs and scored by traccuracy from files.
    """
    manifest = load_manifest(dividing["manifest"])
    cache_path = tmp_path / "score.pt"
    assert cli.main(["tracking", "score-cache", "--manifest", str(dividing["manifest"]),
                     "--out", str(cache_path)]) == 0  # fmt: skip
    settings = TrackastraSettings(**{**MINI, "epochs": 3, "val_fraction": 0.0})
    record = evaluate_run(
        dividing["run"], dividing["manifest"], tmp_path / "m.json", tmp_path / "RES", "paper",
        settings, score_cache=cache_path,
    )  # fmt: skip
    images, masks = manifest.read_frames().astype("float32"), manifest.read_masks().astype("int32")
    gt_dir = Path(manifest.man_track).parent
    imperfect = 0
    for checkpoint, row in zip(list_checkpoints(dividing["run"]), record["per_epoch"], strict=True):
        model, _ = load_checkpoint(checkpoint)
        table, relabeled = graph_to_ctc(link(model, images, masks), masks)
        res = tmp_path / f"{checkpoint.stem}_RES"
        res.mkdir()
        for t, mask in enumerate(relabeled):
            tifffile.imwrite(res / f"mask{t:03d}.tif", mask.astype("uint16"), compression=MASK_COMPRESSION)
        lines = [f"{r.label} {r.t1} {r.t2} {r.parent}\n" for r in table.itertuples()]
        (res / "res_track.txt").write_text("".join(lines))
        old = score_ctc(gt_dir, res)
        assert {key: row[key] for key in SCORES} == {key: old[key] for key in SCORES}
        imperfect += old["LNK"] < 1
        if row["epoch"] == record["epoch"]:
            assert _ctc_files(tmp_path / "RES") == _ctc_files(res)
    assert imperfect >= 2, "the checkpoints should link imperfectly so that errors are compared"
    cache = load_score_cache(cache_path, manifest)
    divisions = [n for n in cache.gt_graph.nodes if cache.gt_graph.out_degree(n) == 2]
    assert divisions, "the sequence should divide so that division links are scored"


def _ctc_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_score_cache_of_another_sequence_is_refused(dividing: dict[str, Path], toy: dict[str, Path]) -> None:
    manifest = load_manifest(dividing["manifest"])
    path = dividing["root"] / "toy-score.pt"
    write_score_cache(build_score_cache(load_manifest(toy["eval_manifest"])), path, toy["eval_manifest"])
    with pytest.raises(ScoreCacheError, match="expected"):
        load_score_cache(path, manifest)


@pytest.mark.parametrize("val_fraction", [0.25, 0.0])
def test_absurd_learning_rate_stops_training_naming_the_epoch(
    toy: dict[str, Path], tmp_path: Path, val_fraction: float
) -> None:
    settings = TrackastraSettings(**{**MINI, "lr": 1e30, "warmup_epochs": 0, "val_fraction": val_fraction})
    out = tmp_path / "run"
    with pytest.raises(DivergenceError) as err:
        train(toy["cache"], out, 0, settings)
    epoch = int(err.value.problem.split(":")[0].removeprefix("epoch "))
    assert "no checkpoint of this epoch was written" in err.value.problem
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == [
        f"epoch{e:03d}.pt" for e in range(epoch)
    ]
    assert not (out / "done.json").exists()
    for path in (out / "checkpoints").glob("*.pt"):  # what was saved is finite
        assert all(
            torch.isfinite(v).all() for v in torch.load(path, weights_only=False)["state_dict"].values()
        )


def test_detections_linked_to_nothing_stay_as_single_frame_tracks(
    toy: dict[str, Path], tmp_path: Path
) -> None:
    from denselink.tracking.fusion import build_model
    from denselink.tracking.predict import write_ctc

    torch.manual_seed(0)
    model = build_model(TrackastraSettings(**MINI).transformer_kwargs(7), None)
    manifest = load_manifest(toy["eval_manifest"])
    images, masks = manifest.read_frames().astype("float32"), manifest.read_masks().astype("int32")
    graph = link(model, images, masks, edge_threshold=1.0)  # no association reaches 1: no links
    detections = sum(len(set(frame[frame > 0].tolist())) for frame in masks)
    assert graph.number_of_edges() == 0
    assert graph.number_of_nodes() == detections
    result = write_ctc(graph, masks, tmp_path / "RES")
    lines = (result / "res_track.txt").read_text().splitlines()
    assert len(lines) == detections
    for t, mask in enumerate(masks):
        written = tifffile.imread(result / f"mask{t:03d}.tif")
        assert ((written > 0) == (mask > 0)).all()
