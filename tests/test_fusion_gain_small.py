"""The fusion-gain benchmark's ideal identity features carry identity and nothing else."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from denselink.data.ctc import validate_sequence, write_manifest
from denselink.data.synthetic import SynthSettings, write_dataset

FRESH_FROM = 6
BENCHMARK = Path(__file__).resolve().parents[1] / "benchmarks" / "fusion_gain.py"


def _benchmark():
    spec = importlib.util.spec_from_file_location("fusion_gain", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tables(tmp_path: Path) -> dict[str, pd.DataFrame]:
    fusion_gain = _benchmark()
    settings = SynthSettings(mode="ambiguous", shape=(48, 48), n_frames=10, seed=3, division_prob=0.3)
    write_dataset(tmp_path / "synth", settings)
    tables = {}
    for code_seed, seq in enumerate(("01", "02")):
        write_manifest(validate_sequence(tmp_path / "synth", "Synth", seq), tmp_path / f"{seq}.json")
        fresh_from = FRESH_FROM if seq == "02" else None
        out = fusion_gain.identity_table(
            tmp_path / f"{seq}.json", tmp_path / f"{seq}.parquet", 7 + code_seed, fresh_from=fresh_from
        )
        tables[seq] = pd.read_parquet(out)
    return tables


def _codes(table: pd.DataFrame) -> dict[int, np.ndarray]:
    columns = [c for c in table.columns if c.startswith("f") and c[1:].isdigit()]
    codes = {}
    for label, rows in table.groupby("label"):
        values = rows[columns].to_numpy()
        np.testing.assert_array_equal(values, np.repeat(values[:1], len(values), axis=0))
        codes[int(label)] = values[0]
    return codes


def test_identity_codes_are_per_track_and_per_sequence(tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    train, tail = (
        tables["02"][tables["02"]["frame"] < FRESH_FROM],
        tables["02"][tables["02"]["frame"] >= FRESH_FROM],
    )
    codes = {"01": _codes(tables["01"]), "02": _codes(train), "02-tail": _codes(tail)}
    for seq_codes in codes.values():
        stacked = np.stack(list(seq_codes.values()))
        distances = np.linalg.norm(stacked[:, None] - stacked[None], axis=-1)
        assert (distances[~np.eye(len(stacked), dtype=bool)] > 1.0).all()  # distinct tracks, distinct codes
    # regression: one codebook keyed by track id gave track k of the eval sequence the code of the
    # training sequence's track k, so a model that memorised training lineages linked unrelated cells;
    # the validation tail gets fresh codes too, so val_loss measures transfer to unseen codes
    for first, second in (("01", "02"), ("02", "02-tail"), ("01", "02-tail")):
        shared = sorted(set(codes[first]) & set(codes[second]))
        assert len(shared) >= 6
        for label in shared:
            assert np.linalg.norm(codes[first][label] - codes[second][label]) > 1.0
    again = _tables(tmp_path / "again")
    for seq, table in tables.items():
        pd.testing.assert_frame_equal(table, again[seq])


def test_palette_codes_come_from_k_shared_codes(tmp_path: Path) -> None:
    fusion_gain = _benchmark()
    write_dataset(tmp_path / "synth", SynthSettings(mode="ambiguous", shape=(48, 48), n_frames=6, n_cells=8))
    write_manifest(validate_sequence(tmp_path / "synth", "Synth", "01"), tmp_path / "01.json")
    tables = [
        pd.read_parquet(
            fusion_gain.identity_table(tmp_path / "01.json", tmp_path / f"{k}.parquet", k, palette=2)
        )
        for k in (1, 2)
    ]
    codes = [np.unique(table.filter(regex=r"^f\d+$").to_numpy(), axis=0) for table in tables]
    assert len(codes[0]) == 2  # 8 tracks, 2 colours
    np.testing.assert_array_equal(codes[0], codes[1])  # the palette is shared by all sequences
    assert [len(_codes(table)) for table in tables] == [8, 8]
