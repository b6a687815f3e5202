"""Inputs that used to pass validation and fail late (or never) stop where they are read, named.

Each case reproduces a failure met by feeding the pipeline unusual input: a z-stack, NaN pixels,
labels past 16 bits, a track with a gap, an embedding of another sequence or with a lost chunk,
a sequence too short for the window and validation tail, a seed numpy cannot take, feature
tables whose columns differ, a Mitocheck root that would swallow the results, and a raw frame
changed after validation.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pydantic
import pytest
import tifffile
import yaml
import zarr
from conftest import CTC_TOY as SETTINGS  # the toy of the pristine/dataset fixtures

from denselink.data.ctc import main as ctc_main
from denselink.data.ctc import read_man_track, validate_sequence
from denselink.data.manifest import load_manifest
from denselink.data.mitocheck import PLATES, MitocheckSynthSettings, validate_plate
from denselink.data.synthetic import SynthSettings, write_dataset
from denselink.errors import (
    ConfigError,
    CTCFormatError,
    EmbeddingError,
    FeatureTableError,
    MitocheckFormatError,
)
from denselink.features.aggregate import aggregate_sequence
from denselink.tracking.fusion import FeatureTable, check_same_columns
from denselink.tracking.prepare import prepare
from denselink.tracking.settings import TrackastraSettings, min_frames
from denselink.tracking.train import split_tail

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _error(dataset: Path, error: type[Exception] = CTCFormatError) -> Exception:
    with pytest.raises(error) as info:
        validate_sequence(dataset, "toy", "01")
    print(info.value)
    return info.value


# --------------------------------------------------------------------------- CTC validation
def test_multi_page_tiff_is_rejected_naming_the_file(dataset: Path) -> None:
    frame = dataset / "01" / "t003.tif"
    tifffile.imwrite(frame, np.stack([tifffile.imread(frame)] * 3), photometric="minisblack")  # z-stack
    err = _error(dataset)
    assert err.path == str(frame) and "multi-page TIFF (3 pages" in err.problem


def test_nan_pixels_are_rejected_naming_file_and_pixel(dataset: Path) -> None:
    frame = dataset / "01" / "t002.tif"
    image = tifffile.imread(frame).astype(np.float32)
    image[5, 7] = np.nan
    image[9, 1] = np.inf
    tifffile.imwrite(frame, image)
    err = _error(dataset)
    assert err.path == str(frame)
    assert "2 non-finite pixels (NaN or inf), the first at (y=5, x=7)" in err.problem


def test_finite_float_frames_pass(dataset: Path) -> None:
    frame = dataset / "01" / "t002.tif"
    tifffile.imwrite(frame, tifffile.imread(frame).astype(np.float32))
    assert validate_sequence(dataset, "toy", "01").n_frames == 8


def _relabel(dataset: Path, old: int, new: int) -> None:
    """Give track ``old`` the label ``new`` in the int32 masks and in man_track.txt."""
    for path in sorted((dataset / "01_GT" / "TRA").glob("man_track*.tif")):
        mask = tifffile.imread(path).astype(np.int32)
        mask[mask == old] = new
        tifffile.imwrite(path, mask)
    table = dataset / "01_GT" / "TRA" / "man_track.txt"
    rows = [[int(v) for v in line.split()] for line in table.read_text().splitlines()]
    rows = [[new if (i in (0, 3) and v == old) else v for i, v in enumerate(row)] for row in rows]
    table.write_text("".join(" ".join(map(str, row)) + "\n" for row in rows))


def test_labels_past_16_bits_are_rejected(dataset: Path) -> None:
    _relabel(dataset, 1, 70000)
    err = _error(dataset)
    assert err.path.endswith("man_track.txt") and "track label 70000 exceeds 65535" in err.problem
    mask = dataset / "01_GT" / "TRA" / "man_track000.tif"
    _relabel(dataset, 70000, 1)
    image = tifffile.imread(mask).astype(np.int32)
    image[0, 0] = 65536
    tifffile.imwrite(mask, image)
    err = _error(dataset)
    assert err.path == str(mask) and "label 65536 exceeds 65535" in err.problem


def test_int32_masks_within_16_bits_pass(dataset: Path) -> None:
    for path in sorted((dataset / "01_GT" / "TRA").glob("man_track*.tif")):
        tifffile.imwrite(path, tifffile.imread(path).astype(np.int32))
    assert validate_sequence(dataset, "toy", "01").n_frames == 8


def test_track_absent_from_a_middle_frame_is_named(dataset: Path) -> None:
    tracks = read_man_track(dataset / "01_GT" / "TRA" / "man_track.txt")
    row = tracks[tracks["end"] - tracks["start"] >= 2].iloc[0]
    label, t = int(row.label), int(row.start) + 1
    mask_path = dataset / "01_GT" / "TRA" / f"man_track{t:03d}.tif"
    mask = tifffile.imread(mask_path)
    tifffile.imwrite(mask_path, np.where(mask == label, 0, mask).astype(mask.dtype))
    err = _error(dataset)
    assert err.path.endswith("man_track.txt")
    assert (
        f"track {label} ({row.start}-{row.end}) is absent from its frame {t} (man_track{t:03d}.tif)"
        in str(err)
    )
    assert f"a new track whose parent is {label}" in err.problem


def test_manifest_records_the_sha256_of_every_frame(dataset: Path) -> None:
    manifest = validate_sequence(dataset, "toy", "01")
    assert manifest.frame_hashes == [hashlib.sha256(p.read_bytes()).hexdigest() for p in manifest.frames]


# --------------------------------------------------------------------------- Mitocheck plates
def _plate(tmp_path: Path) -> Path:
    sequence = tmp_path / "mito" / PLATES[1].plate_id / "W00001"
    sequence.mkdir(parents=True)
    for t in range(3):
        tifffile.imwrite(sequence / f"t{t:03d}.tif", np.full((16, 16), t, np.float32))
    return sequence


def test_mitocheck_nan_frame_and_z_stack_are_named(tmp_path: Path) -> None:
    sequence = _plate(tmp_path)
    assert len(validate_plate(tmp_path / "mito", 1)) == 1
    image = np.zeros((16, 16), np.float32)
    image[3, 4] = np.nan
    tifffile.imwrite(sequence / "t001.tif", image)
    with pytest.raises(MitocheckFormatError, match=r"1 non-finite pixels .* \(y=3, x=4\)") as info:
        validate_plate(tmp_path / "mito", 1)
    assert info.value.path == str(sequence / "t001.tif")
    tifffile.imwrite(sequence / "t002.tif", np.zeros((4, 16, 16), np.float32), photometric="minisblack")
    with pytest.raises(MitocheckFormatError, match="multi-page TIFF") as info:
        validate_plate(tmp_path / "mito", 1)
    assert info.value.path == str(sequence / "t002.tif")


# --------------------------------------------------------------------------- embeddings
def _embedding(dataset: Path, tmp_path: Path, keys: str = "name") -> tuple[Path, Path]:
    """The manifest of the sequence and a random embedding zarr recording its frames' hashes."""
    manifest = validate_sequence(dataset, "toy", "01")
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(manifest.to_dict()))
    store = tmp_path / "emb.zarr"
    group = zarr.open_group(store, mode="w", zarr_format=3)
    height, width = manifest.shape
    array = group.create_array(
        "embedding", shape=(manifest.n_frames, 3, height, width), chunks=(1, 3, 32, 32), dtype="float16",
        config={"write_empty_chunks": True},
    )  # fmt: skip
    array[:] = np.random.default_rng(0).normal(size=array.shape).astype(np.float16)
    hashes = {(p.name if keys == "name" else str(p)): hashlib.sha256(p.read_bytes()).hexdigest()
              for p in manifest.frames}  # fmt: skip
    array.attrs.update({"dataset": "toy", "sequence": "01", "source_hashes": hashes})
    return store, manifest_path


@pytest.mark.parametrize("keys", ["name", "path"], ids=["foundation-style keys", "maester-style keys"])
def test_embedding_of_this_sequence_is_aggregated(dataset: Path, tmp_path: Path, keys: str) -> None:
    store, manifest = _embedding(dataset, tmp_path, keys)
    rows = aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")
    assert rows == len(pd.read_parquet(tmp_path / "f.parquet")) > 0


def test_embedding_of_another_sequence_is_refused(dataset: Path, tmp_path: Path) -> None:
    store, manifest = _embedding(dataset, tmp_path)
    other = tmp_path / "other"
    write_dataset(other, SETTINGS.model_copy(update={"seed": 2}))  # same names, shape and count
    data = json.loads(manifest.read_text())
    data["frames"] = [str(other / "01" / Path(p).name) for p in data["frames"]]
    data["frame_hashes"] = [hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in data["frames"]]
    manifest.write_text(json.dumps(data))
    with pytest.raises(
        EmbeddingError, match=r"frame 0 \(t000.tif\) is not the one it was computed from"
    ) as info:
        aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")
    assert info.value.path == str(store) and str(manifest) in info.value.problem
    assert not (tmp_path / "f.parquet").exists()


def test_embedding_of_a_frame_changed_since_is_refused(dataset: Path, tmp_path: Path) -> None:
    store, manifest = _embedding(dataset, tmp_path)
    data = json.loads(manifest.read_text())
    data.pop("frame_hashes")  # an older manifest: the reader hashes the frames itself
    manifest.write_text(json.dumps(data))
    frame = dataset / "01" / "t004.tif"
    tifffile.imwrite(frame, tifffile.imread(frame)[::-1].copy())
    with pytest.raises(EmbeddingError, match=r"frame 4 \(t004.tif\) is not the one"):
        aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")


def test_embedding_of_another_dataset_name_or_without_hashes_is_refused(
    dataset: Path, tmp_path: Path
) -> None:
    store, manifest = _embedding(dataset, tmp_path)
    array = zarr.open_group(store, mode="r+")["embedding"]
    array.attrs["sequence"] = "02"
    with pytest.raises(EmbeddingError, match="computed from sequence '02', but .* is sequence '01'"):
        aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")
    array.attrs["sequence"] = "01"
    del array.attrs["source_hashes"]
    with pytest.raises(EmbeddingError, match="records no source_hashes"):
        aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")


def test_missing_chunk_is_named_not_read_as_zeros(dataset: Path, tmp_path: Path) -> None:
    store, manifest = _embedding(dataset, tmp_path)
    chunk = store / "embedding" / "c" / "5" / "0" / "1" / "0"
    assert chunk.is_file()
    chunk.unlink()
    with pytest.raises(EmbeddingError, match=r"chunk c/5/0/1/0 \(frame 5\) is missing") as info:
        aggregate_sequence(store, manifest, "centroid", tmp_path / "f.parquet")
    assert info.value.path == str(store)
    assert not (tmp_path / "f.parquet").exists()


def test_corrupt_chunk_is_named(dataset: Path, tmp_path: Path) -> None:
    store, manifest = _embedding(dataset, tmp_path)
    array = zarr.open_group(store, mode="r")["embedding"]
    assert array.compressors, "the test needs a compressed chunk to corrupt"
    chunk = store / "embedding" / "c" / "2" / "0" / "0" / "1"
    chunk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(EmbeddingError, match=r"chunk c/2/0/0/1 \(frame 2\) is unreadable"):
        aggregate_sequence(store, manifest, "mma", tmp_path / "f.parquet")


def test_foundation_embedding_of_another_sequence_or_with_a_lost_chunk_is_refused(tmp_path: Path) -> None:
    """The writer's records against the reader's checks: `foundation embed` (tiny random encoder)."""
    from denselink.foundation.embed import FoundationSettings, embed_sequence

    root = tmp_path / "two"
    write_dataset(root, SETTINGS.model_copy(update={"sequences": ["01", "02"], "n_frames": 4}))
    manifests = {}
    for seq in ("01", "02"):
        manifests[seq] = tmp_path / f"{seq}.json"
        manifests[seq].write_text(json.dumps(validate_sequence(root, "two", seq).to_dict()))
    encoder = {"img_size": 64, "embed_dim": 32, "depth": 1, "num_heads": 2}
    settings = FoundationSettings(random_init=True, encoder=encoder, upsampler="guided", device="cpu")
    store = tmp_path / "sam01.zarr"
    embed_sequence(manifests["01"], store, "sam", settings)
    assert aggregate_sequence(store, manifests["01"], "mma", tmp_path / "ok.parquet") > 0
    with pytest.raises(EmbeddingError, match=r"frame 0 \(t000.tif\) is not the one it was computed from"):
        aggregate_sequence(store, manifests["02"], "mma", tmp_path / "f.parquet")
    (store / "embedding" / "c" / "2" / "0" / "0" / "0").unlink()
    with pytest.raises(EmbeddingError, match=r"chunk c/2/0/0/0 \(frame 2\) is missing"):
        aggregate_sequence(store, manifests["01"], "mma", tmp_path / "f.parquet")
    assert not (tmp_path / "f.parquet").exists()


# --------------------------------------------------------------------------- lengths, seeds, columns
@pytest.mark.parametrize(("window", "fraction"), [(4, 0.0), (4, 0.25), (6, 0.1), (3, 0.5), (2, 0.9)])
def test_min_frames_is_where_split_tail_starts_to_work(window: int, fraction: float) -> None:
    def data(n_frames: int) -> SimpleNamespace:
        starts = range(n_frames - window + 1)
        windows = [{"t1": t} for t in starts]
        return SimpleNamespace(window_size=window, windows=windows, n_objects=[1] * len(windows),
                               n_divs=[0] * len(windows))  # fmt: skip

    needed = min_frames(window, fraction)
    train, val, _ = split_tail(data(needed), needed, fraction)
    assert len(train.windows) >= 1 and (fraction == 0 or len(val.windows) >= 1)
    if fraction > 0:
        with pytest.raises(ConfigError, match="leaves no train or val window"):
            split_tail(data(needed - 1), needed - 1, fraction)


def test_prepare_refuses_a_sequence_too_short_for_window_and_tail(dataset: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(validate_sequence(dataset, "toy", "01").to_dict()))
    settings = TrackastraSettings(window=4, val_fraction=0.25)  # needs 8 frames: it has 8
    settings_short = TrackastraSettings(window=5, val_fraction=0.25)  # needs 10
    with pytest.raises(ConfigError, match="has 8 frames; window 5 with val_fraction 0.25 needs at least 10"):
        prepare(manifest, tmp_path / "short.pt", settings_short)
    assert not (tmp_path / "short.pt").exists()
    assert min_frames(settings.window, settings.val_fraction) == load_manifest(manifest).n_frames


def test_validate_refuses_a_sequence_shorter_than_tracking_needs(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    argv = ["--dataset-dir", str(dataset), "--dataset", "toy", "--seq", "01", "--out", str(out)]
    with pytest.raises(
        ConfigError, match="toy/01 has 8 frames; window and validation tail need at least 9"
    ) as info:
        ctc_main([*argv, "--min-frames", "9", "--min-frames-key", "protocols.clean.val_fraction"])
    assert info.value.path == "protocols.clean.val_fraction" and not out.exists()
    assert ctc_main([*argv, "--min-frames", "8"]) == 0 and out.is_file()


@pytest.mark.parametrize(
    "model", [SynthSettings, MitocheckSynthSettings], ids=["data synth", "mitocheck synth"]
)
def test_seeds_outside_numpy_range_are_settings_errors(model: type[pydantic.BaseModel]) -> None:
    model(seed=2**32 - 1)
    for seed in (2**32, -1):
        with pytest.raises(pydantic.ValidationError, match="seed"):
            model(seed=seed)


def _table(path: Path, n_features: int) -> FeatureTable:
    frame = pd.DataFrame({"frame": [0, 0], "label": [1, 2], "y": 1.0, "x": 1.0, "area": 3})
    for i in range(n_features):
        frame[f"f{i:03d}"] = np.float32(i)
    frame.to_parquet(path)
    return FeatureTable(path)


def test_feature_tables_with_other_columns_name_both_files(tmp_path: Path) -> None:
    train, evaluation = tmp_path / "train.parquet", tmp_path / "eval.parquet"
    _table(train, 4)
    table = _table(evaluation, 3)
    with pytest.raises(FeatureTableError, match="feature columns differ: 4 vs 3 features") as info:
        check_same_columns(table, train, 4)
    assert str(train) in info.value.path and str(evaluation) in info.value.path
    train.unlink()  # the training table is gone: the model's input width still decides
    with pytest.raises(FeatureTableError, match="3 features, but the model was trained on 4"):
        check_same_columns(table, train, 4)
    check_same_columns(_table(tmp_path / "same.parquet", 4), tmp_path / "same.parquet", 4)


def _cell_table(manifest: Path, out: Path, n_features: int) -> None:
    """Random features for every cell of the manifest's masks."""
    rows = []
    for t, mask_path in enumerate(json.loads(manifest.read_text())["masks"]):
        mask = tifffile.imread(mask_path)
        rows += [{"frame": t, "label": int(label)} for label in np.unique(mask[mask > 0])]
    table = pd.DataFrame(rows)
    for i in range(n_features):
        table[f"f{i:03d}"] = np.random.default_rng(i).normal(size=len(table)).astype(np.float32)
    table.to_parquet(out)


def test_evaluate_names_both_tables_when_columns_differ(dataset: Path, tmp_path: Path) -> None:
    from denselink.tracking.evaluate import evaluate_run
    from denselink.tracking.train import train

    manifest = tmp_path / "m.json"
    manifest.write_text(json.dumps(validate_sequence(dataset, "toy", "01").to_dict()))
    settings = TrackastraSettings(
        window=4, d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, epochs=1,
        batch_size=2, train_samples=4, crop_size=None, max_tokens=256, augment=0,
        mixed_precision=False, fusion="add_wrfeat",
    )  # fmt: skip
    prepare(manifest, tmp_path / "01.pt", settings)
    _cell_table(manifest, tmp_path / "train.parquet", 4)
    _cell_table(manifest, tmp_path / "eval.parquet", 3)
    train(tmp_path / "01.pt", tmp_path / "run", 0, settings, tmp_path / "train.parquet")
    with pytest.raises(FeatureTableError, match="feature columns differ: 4 vs 3 features") as info:
        evaluate_run(tmp_path / "run", manifest, tmp_path / "s.json", tmp_path / "res", "paper", settings,
                     features=tmp_path / "eval.parquet")  # fmt: skip
    assert (
        str(tmp_path / "train.parquet") in info.value.path
        and str(tmp_path / "eval.parquet") in info.value.path
    )
    assert not (tmp_path / "s.json").exists()


# --------------------------------------------------------------------------- through snakemake
def snakemake(workdir: Path, config: dict, *args: str) -> subprocess.CompletedProcess[str]:
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    cmd = [str(BIN / "snakemake"), "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    cmd += ["--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    proc.stderr = proc.stdout + proc.stderr
    return proc


def mini() -> dict:
    return yaml.safe_load((REPO / "workflow" / "configs" / "mini.yaml").read_text())


def _short(c: dict) -> tuple[str, str]:
    c["datasets"]["Synth-HeLa"]["synth"]["n_frames"] = 7
    return (
        "protocols.clean.val_fraction",
        "Synth-HeLa/02 has 7 frames; window and validation tail need at least 8",
    )


def _big_seed(c: dict) -> tuple[str, str]:
    c["tracking"]["seeds"] = [0, 2**32]
    return "tracking.seeds.1", "4294967296 is greater than the maximum of 4294967295"


def _dot_root(c: dict) -> tuple[str, str]:
    c["mitocheck"]["root"] = "."
    return "mitocheck.root", "is the working directory itself"


def _root_holding_results(c: dict) -> tuple[str, str]:
    c["mitocheck"]["root"] = "results"
    return "mitocheck.root", "contains results_root"


@pytest.mark.parametrize(
    "case",
    [_short, _big_seed, _dot_root, _root_holding_results],
    ids=["too short", "seed 2**32", "mitocheck.root .", "mitocheck.root holding the results"],
)
def test_config_errors_stop_at_start_up(case, tmp_path: Path) -> None:
    config = mini()
    key, problem = case(config)
    proc = snakemake(tmp_path, config, "-n")
    assert proc.returncode != 0
    assert f"{key}: " in proc.stderr and problem in proc.stderr, proc.stderr[-2000:]
    assert "Job stats" not in proc.stderr


def test_short_local_sequence_stops_at_validation_naming_the_key(tmp_path: Path) -> None:
    data_root = tmp_path / "raw"
    write_dataset(
        data_root / "Synth-HeLa", SETTINGS.model_copy(update={"sequences": ["01", "02"], "n_frames": 7})
    )
    config = mini()
    config["data_root"] = str(data_root)
    config["datasets"]["Synth-HeLa"] = {"source": "ctc", "download": False, "sequences": ["01", "02"]}
    proc = snakemake(
        tmp_path,
        config,
        "--cores",
        "1",
        "results/mini/models/Synth-HeLa/clean/train02/retrained/seed0/done.json",
    )
    assert proc.returncode != 0 and "Error in rule data_validate" in proc.stderr, proc.stderr[-2000:]
    log = tmp_path / "results" / "mini" / "logs" / "data_validate" / "Synth-HeLa" / "02.log"
    line = log.read_text().strip().splitlines()[-1]
    expected = f"{data_root / 'Synth-HeLa' / '02'} has 7 frames; window and validation tail need at least 8"
    assert line == f"denselink: config error: protocols.clean.val_fraction: {expected}", line
    assert not (tmp_path / "results" / "mini" / "trackastra_data").exists()


def test_changed_raw_frame_reruns_validation(tmp_path: Path) -> None:
    config = mini()
    target = "results/mini/data/Synth-HeLa/01/manifest.json"
    done = snakemake(tmp_path, config, "--cores", "1", target)
    assert done.returncode == 0, done.stderr[-2000:]
    again = snakemake(tmp_path, config, "-n", target)
    assert "Nothing to be done" in again.stderr, again.stderr[-2000:]
    frame = tmp_path / "results" / "mini" / "raw" / "Synth-HeLa" / "01" / "t003.tif"
    tifffile.imwrite(frame, tifffile.imread(frame)[::-1].copy())
    changed = snakemake(tmp_path, config, "-n", target)
    assert (
        "rule data_validate" in changed.stderr
        and f"Updated input files: {frame.relative_to(tmp_path)}" in (changed.stderr)
    ), changed.stderr[-2000:]
