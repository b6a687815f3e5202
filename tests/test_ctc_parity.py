"""LNK/TRA/DET equal the Cell Tracking Challenge's py-ctcmetrics on real GT with a single-child parent.

tests/data/ctc_sim01_one_child is a crop of Fluo-N2DH-SIM+ 01's TRA ground truth in which track 2
has one child (60) and track 9 divides (67, 68). A parent link to a single child is a parent link
for the CTC; a linking of the detections writes it as one track, a wrong-semantics edge (EC).
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
import tifffile

from denselink import cli
from denselink.evaluate.metrics import CTC_KEYS, load_ctc_graph, score_ctc
from denselink.tracking.predict import write_ctc
from denselink.tracking.scoring import GroundTruth, score_linking

CROP = Path(__file__).parent / "data" / "ctc_sim01_one_child" / "01_GT"
evaluate_sequence = pytest.importorskip("ctc_metrics.scripts.evaluate").evaluate_sequence


def reference(res: Path) -> dict[str, float]:
    """py-ctcmetrics' ``evaluate_sequence`` (as ``ctc_evaluate``) on the crop, named as CTC_KEYS."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_sequence(str(res), str(CROP), metrics=["Valid", "DET", "TRA", "LNK"], threads=1)
    assert result["Valid"] == 1
    return {key: result[key] for key in CTC_KEYS}


@pytest.fixture(scope="module")
def crop() -> dict:
    gt = load_ctc_graph(CROP / "TRA", "man_track.txt", name="GT")
    number = {node: i for i, node in enumerate(gt.graph.nodes)}
    linking = nx.DiGraph()
    for node, attrs in gt.graph.nodes(data=True):
        linking.add_node(number[node], time=int(attrs["t"]), label=int(attrs["segmentation_id"]))
    linking.add_edges_from((number[u], number[v]) for u, v in gt.graph.edges)
    masks = np.stack([tifffile.imread(p) for p in sorted((CROP / "TRA").glob("man_track*.tif"))])
    node = {(a["time"], a["label"]): n for n, a in linking.nodes(data=True)}
    truth = GroundTruth.from_graph(gt.graph, "crop")
    return {"truth": truth, "linking": linking, "masks": masks, "node": node}


def mistakes(crop: dict) -> nx.DiGraph:
    """The GT linking with a daughter link dropped, a false division, a link over a frame and a swap."""
    graph, node = crop["linking"].copy(), crop["node"]
    graph.remove_edge(node[17, 9], node[18, 68])  # 9 -> 67 alone: a track link where the GT divides
    graph.add_edge(node[9, 40], node[10, 98])  # a false division of 40 into 40 and 98
    graph.add_edge(node[8, 22], node[10, 10])  # 22 continues into 10, skipping frame 9
    graph.remove_edges_from([(node[3, 4], node[4, 4]), (node[3, 37], node[4, 37])])
    graph.add_edges_from([(node[3, 4], node[4, 37]), (node[3, 37], node[4, 4])])  # identities swapped
    return graph


def test_crop_holds_a_single_child_parent_and_a_division() -> None:
    tracks = np.loadtxt(CROP / "TRA" / "man_track.txt", dtype=int)
    parents, children = np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)
    assert dict(zip(parents.tolist(), children.tolist(), strict=True)) == {2: 1, 9: 2}


def test_gt_linking_has_one_wrong_semantics_edge_as_in_py_ctcmetrics(crop: dict, tmp_path: Path) -> None:
    res = write_ctc(crop["linking"], crop["masks"], tmp_path / "RES")
    expected = reference(res)
    n_edges = crop["truth"].n_edges
    assert (expected["AOGM_EC"], expected["AOGM_ED"], expected["AOGM_EA"]) == (1, 0, 0)
    assert expected["LNK"] == pytest.approx(1 - 1 / (1.5 * n_edges))
    assert score_linking(crop["linking"], crop["truth"]) == expected
    assert score_ctc(CROP / "TRA", res) == expected


def test_linking_with_mistakes_equals_py_ctcmetrics(crop: dict, tmp_path: Path) -> None:
    graph = mistakes(crop)
    res = write_ctc(graph, crop["masks"], tmp_path / "RES")
    expected = reference(res)
    # EC: 2 -> 60 and 9 -> 67 written as one track, 40 -> 40 now out of a division;
    # ED: 40 -> 98, 22 -> 10 and the two swapped links; EA: 9 -> 68 and the two swapped GT links
    counts = {key: expected[f"AOGM_{key}"] for key in ("NS", "FN", "FP", "ED", "EA", "EC")}
    assert counts == {"NS": 0, "FN": 0, "FP": 0, "ED": 4, "EA": 3, "EC": 3}
    assert score_linking(graph, crop["truth"]) == expected
    assert score_ctc(CROP / "TRA", res) == expected


@pytest.mark.parametrize("gt", [CROP, CROP / "TRA"])
def test_evaluate_score_prints_py_ctcmetrics_scores(
    crop: dict, tmp_path: Path, gt: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    res = write_ctc(mistakes(crop), crop["masks"], tmp_path / "RES")
    expected = reference(res)
    capsys.readouterr()
    assert cli.main(["evaluate", "score", "--res", str(res), "--gt", str(gt)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"res": str(res), "gt": str(CROP / "TRA"), **expected}


def _error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert cli.main(argv) == 2
    return capsys.readouterr().err.strip()


def test_evaluate_score_names_the_bad_folder(crop: dict, tmp_path: Path, capsys) -> None:
    res = write_ctc(crop["linking"], crop["masks"], tmp_path / "RES")
    score = ["evaluate", "score", "--res", str(res), "--gt"]
    assert _error(score + [str(tmp_path / "nothing")], capsys) == (
        f"denselink: CTC format error: {tmp_path / 'nothing'}: GT folder does not exist"
    )
    assert "not a {seq}_GT or TRA folder" in _error(score + [str(tmp_path)], capsys)
    (res / "mask019.tif").unlink()
    assert _error(score + [str(CROP)], capsys) == (
        f"denselink: CTC format error: {res}: 19 masks, the GT {CROP / 'TRA'} has 20"
    )
    (res / "res_track.txt").unlink()
    assert _error(score + [str(CROP)], capsys) == (
        f"denselink: CTC format error: {res / 'res_track.txt'}: track file is missing"
    )


def test_invalid_result_is_refused_naming_it(crop: dict, tmp_path: Path, capsys) -> None:
    res = write_ctc(crop["linking"], crop["masks"], tmp_path / "RES")
    track_file = res / "res_track.txt"
    lines = track_file.read_text().splitlines()
    track_file.write_text("\n".join([*lines, lines[0]]) + "\n")  # a label twice
    line = _error(["evaluate", "score", "--res", str(res), "--gt", str(CROP)], capsys)
    invalid = "py-ctcmetrics finds the result invalid: Labels are not unique."
    assert line == f"denselink: CTC format error: {res}: {invalid}"
    label, start, end, _ = lines[0].split()
    track_file.write_text("\n".join([f"{label} {start} {end} 999", *lines[1:]]) + "\n")  # no track 999
    line = _error(["evaluate", "score", "--res", str(res), "--gt", str(CROP)], capsys)
    assert line.startswith(f"denselink: CTC format error: {res}: py-ctcmetrics cannot score the result (")
