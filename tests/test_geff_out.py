"""geff output of ``tracking track --geff`` and ``tracking evaluate --geff``, read back with the geff library.

Every geff node must be one cell of the CTC result (its frame, input label and track id, the track id
being the cell's label in the written ``mask%03d.tif``), every cell a node, and the edges exactly the
links the CTC result encodes: consecutive frames of one track, and parent end -> daughter start.
"""

from __future__ import annotations

import json
from pathlib import Path

import geff
import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr
from tracking_toy import write_dividing_sequence

from denselink import cli
from denselink.data.manifest import load_manifest
from denselink.tracking.geff_out import GRAPH_NAME, geff_beside

SETTINGS = {"window": 4, "d_model": 32, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1}
SETTINGS |= {"epochs": 3, "warmup_epochs": 1, "batch_size": 4, "train_samples": 48, "crop_size": None}
SETTINGS |= {"max_tokens": 256, "val_fraction": 0.0, "lr": 3e-3}


def _run(*argv: str | Path) -> None:
    assert cli.main([str(a) for a in argv]) == 0, argv


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A dividing sequence (manifest, frames, masks) and a plain model trained on it for 3 epochs."""
    root = tmp_path_factory.mktemp("geff")
    manifest = write_dividing_sequence(root, n_frames=10, division_prob=0.15)
    settings = json.dumps(SETTINGS)
    _run("tracking", "prepare", "--manifest", manifest, "--out", root / "01.pt", "--settings", settings)
    _run("tracking", "train", "--data", root / "01.pt", "--out", root / "run", "--seed", "0",
         "--settings", settings)  # fmt: skip
    sequence = load_manifest(manifest)
    return {"root": root, "manifest": manifest, "run": root / "run",
            "images": sequence.frames[0].parent, "masks": sequence.masks[0].parent}  # fmt: skip


def ctc_links(res_dir: Path, masks: np.ndarray) -> tuple[dict[tuple[int, int], int], set]:
    """From a CTC folder: ``(frame, input label) -> track id`` and the links it encodes, by (frame, label)."""
    result = np.stack([tifffile.imread(p) for p in sorted(res_dir.glob("mask*.tif"))])
    cells = {}
    for t, (mask, tracked) in enumerate(zip(masks, result, strict=True)):
        for label in np.unique(mask[mask > 0]):
            values = np.unique(tracked[mask == label])
            assert len(values) == 1  # one track id per cell
            cells[(t, int(label))] = int(values[0])
    by_track = {(t, track): key for key, track in cells.items() for t in [key[0]]}
    names = ["track", "t1", "t2", "parent"]
    table = pd.read_csv(res_dir / "res_track.txt", sep=" ", header=None, names=names)
    links = set()
    for row in table.itertuples():
        links |= {(by_track[(t, row.track)], by_track[(t + 1, row.track)]) for t in range(row.t1, row.t2)}
        if row.parent:
            t2 = int(table.loc[table.track == row.parent, "t2"].iloc[0])
            links.add((by_track[(t2, row.parent)], by_track[(row.t1, row.track)]))
    return cells, links


def geff_links(path: Path) -> tuple[dict[tuple[int, int], int], set]:
    """From a geff group: ``(frame, input label) -> track id`` and its edges, by (frame, label)."""
    graph, metadata = geff.read(path / GRAPH_NAME)
    assert metadata.directed
    key = {node: (int(a["time"]), int(a["label"])) for node, a in graph.nodes(data=True)}
    assert len(set(key.values())) == graph.number_of_nodes()
    cells = {key[node]: int(a["track_id"]) for node, a in graph.nodes(data=True)}
    return cells, {(key[u], key[v]) for u, v in graph.edges}


def test_track_geff_equals_the_ctc_result(trained: dict[str, Path], tmp_path: Path) -> None:
    out, geff_path = tmp_path / "RES", tmp_path / "tracks.geff.zarr"
    _run("tracking", "track", "--model", trained["run"], "--images", trained["images"],
         "--masks", trained["masks"], "--out", out, "--geff", geff_path)  # fmt: skip
    masks = np.stack([tifffile.imread(p) for p in sorted(trained["masks"].glob("*.tif"))])
    expected_cells, expected_links = ctc_links(out, masks)
    cells, links = geff_links(geff_path)
    assert cells == expected_cells
    assert links == expected_links
    assert len(links) > 0.8 * (len(cells) - len({track for track in cells.values()}))  # a linking, not bare
    assert any(sum(1 for u, _ in links if u == parent) == 2 for parent in cells)  # at least one division
    np.testing.assert_array_equal(zarr.open_group(geff_path, mode="r")["segmentation"][...], masks)


def test_evaluate_geff_is_written_beside_the_chosen_result(trained: dict[str, Path], tmp_path: Path) -> None:
    res = tmp_path / "res01"
    _run("tracking", "evaluate", "--model-dir", trained["run"], "--manifest", trained["manifest"],
         "--protocol", "paper", "--out", tmp_path / "m.json", "--res-dir", res,
         "--settings", json.dumps(SETTINGS), "--geff")  # fmt: skip
    assert geff_beside(res) == tmp_path / "res01.geff.zarr"
    masks = load_manifest(trained["manifest"]).read_masks()
    expected_cells, expected_links = ctc_links(res, masks)
    cells, links = geff_links(geff_beside(res))
    assert (cells, links) == (expected_cells, expected_links)


def test_evaluate_geff_with_pretrained_is_refused(
    trained: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["tracking", "evaluate", "--pretrained", tmp_path, "--manifest", trained["manifest"],
            "--out", tmp_path / "m.json", "--res-dir", tmp_path / "r", "--geff"]  # fmt: skip
    code = cli.main([str(a) for a in argv])
    assert code == 2
    assert capsys.readouterr().err.strip() == (
        "denselink: config error: --geff: is written for trained runs (--model-dir), not --pretrained"
    )
    assert not (tmp_path / "m.json").exists()
