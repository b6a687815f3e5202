"""Benchmark: the project's LNK/TRA/DET against the Cell Tracking Challenge's own py-ctcmetrics on real data.

For every sequence (01, 02) of every CTC dataset under ``--ctc-root`` (Fluo-N2DH-SIM+,
Fluo-N2DH-GOWT1 and Fluo-C2DL-MSC here), the GT lineage is turned into linkings of the GT
detections: the GT itself (whose single-child parent links a linking writes as one track) and
``--perturbed`` copies with ``--errors`` mistakes each (links dropped, targets swapped, false
divisions, links that skip a frame), seeded. Each linking is written as a CTC result folder
(``write_ctc``, as ``tracking evaluate`` writes the chosen checkpoint's) and scored three ways:

- ``reference``: py-ctcmetrics' ``evaluate_sequence`` (what ``ctc_evaluate --res RES --gt 0x_GT``
  runs), metrics DET, TRA, LNK;
- ``folder``: :func:`denselink.evaluate.metrics.score_ctc` (``denselink evaluate score``);
- ``arrays``: :func:`denselink.tracking.scoring.score_linking` (``tracking evaluate``'s scorer);

and, for the record, ``traccuracy`` (traccuracy's ``CTCMetrics``, the scorer before).

Writes ``benchmarks/results/ctc_parity.json``: per sequence its GT size, single-child parents and
every linking's LNK/TRA/DET and error counts by each scorer; ``max_abs_diff`` of LNK/TRA/DET
between the reference and each scorer over all sequences, and whether every error count agreed.

    nice -n 5 .venv/bin/python benchmarks/ctc_parity.py [--ctc-root /work/ctc] [--perturbed 1] [--errors 40]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import json
import logging
import tempfile
import time
import warnings
from importlib.metadata import version
from pathlib import Path

import networkx as nx
import numpy as np
import tifffile

from denselink import __version__
from denselink.evaluate.metrics import CTC_KEYS, ERROR_COUNTS, SCORES, load_ctc_graph, score_ctc
from denselink.machine import machine_info
from denselink.tracking.predict import write_ctc
from denselink.tracking.scoring import GroundTruth, score_linking

RESULTS = Path(__file__).resolve().parent / "results" / "ctc_parity.json"
DATASETS = ("Fluo-N2DH-SIM+", "Fluo-N2DH-GOWT1", "Fluo-C2DL-MSC")


def gt_linking(graph: nx.DiGraph) -> nx.DiGraph:
    """The GT lineage as a linking of the GT detections (int nodes with ``time`` and ``label``)."""
    number = {node: i for i, node in enumerate(graph.nodes)}
    linking = nx.DiGraph()
    for node, attrs in graph.nodes(data=True):
        linking.add_node(number[node], time=int(attrs["t"]), label=int(attrs["segmentation_id"]))
    linking.add_edges_from((number[u], number[v]) for u, v in graph.edges)
    return linking


def perturb(graph: nx.DiGraph, rng: np.random.Generator, n: int) -> nx.DiGraph:
    """``n`` mistakes: drop a link, swap two targets, a false division, a link skipping a frame.

    In-degree stays <= 1 and out-degree <= 2, as a greedy linking's.
    """
    graph = graph.copy()
    by_frame: dict[int, list[int]] = {}
    for node, t in graph.nodes(data="time"):
        by_frame.setdefault(t, []).append(node)
    nodes = list(graph.nodes)
    for _ in range(n):
        edges = list(graph.edges)
        kind = int(rng.integers(4))
        if kind == 0 and edges:
            graph.remove_edge(*edges[rng.integers(len(edges))])
        elif kind == 1 and len(edges) > 1:
            u1, v1 = edges[rng.integers(len(edges))]
            t = graph.nodes[u1]["time"]
            same = [(u, v) for u, v in edges if graph.nodes[u]["time"] == t and u != u1 and v != v1]
            same = [(u, v) for u, v in same if graph.nodes[v]["time"] == graph.nodes[v1]["time"]]
            if same:
                u2, v2 = same[rng.integers(len(same))]
                graph.remove_edges_from([(u1, v1), (u2, v2)])
                graph.add_edges_from([(u1, v2), (u2, v1)])
        else:
            u = nodes[rng.integers(len(nodes))]
            step = 1 if kind == 2 else 2
            orphans = [v for v in by_frame.get(graph.nodes[u]["time"] + step, []) if graph.in_degree(v) == 0]
            # a false division (a second child) or a link over a frame from a track's last node
            if orphans and graph.out_degree(u) == (1 if kind == 2 else 0):
                graph.add_edge(u, orphans[rng.integers(len(orphans))])
    return graph


def reference_scores(res: Path, gt: Path) -> dict[str, float]:
    """py-ctcmetrics' ``evaluate_sequence`` (its progress lines swallowed), named as CTC_KEYS."""
    from ctc_metrics.scripts.evaluate import evaluate_sequence

    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluate_sequence(str(res), str(gt), metrics=["Valid", "DET", "TRA", "LNK"], threads=1)
    if result.get("Valid") != 1:
        raise RuntimeError(f"{res}: py-ctcmetrics finds the result invalid")
    return {key: float(result[key]) for key in CTC_KEYS}


def traccuracy_scores(gt_graph, res: Path) -> dict[str, float]:
    """traccuracy's ``CTCMatcher`` + ``CTCMetrics`` (the scorer before), its LNK/TRA/DET and edge errors."""
    from traccuracy.matchers import CTCMatcher
    from traccuracy.metrics import CTCMetrics

    pred = load_ctc_graph(res, "res_track.txt", name="RES")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = CTCMetrics().compute(CTCMatcher().compute_mapping(gt_graph, pred)).results
    names = {"fp_edges": "AOGM_ED", "fn_edges": "AOGM_EA", "ws_edges": "AOGM_EC"}
    return {key: float(result[key]) for key in SCORES} | {names[k]: int(result[k]) for k in names}


def sequence_parity(gt_dir: Path, n_perturbed: int, n_errors: int, seed: int, work: Path) -> dict:
    """Every linking of one sequence scored by the reference and the project's scorers."""
    tra = gt_dir / "TRA"
    gt = load_ctc_graph(tra, "man_track.txt", name="GT")
    truth = GroundTruth.from_graph(gt.graph, str(gt_dir))
    masks = np.stack([tifffile.imread(p) for p in sorted(tra.glob("man_track*.tif"))]).astype(np.int32)
    tracks = np.loadtxt(tra / "man_track.txt", dtype=np.int64, ndmin=2)
    parents, children = np.unique(tracks[tracks[:, 3] > 0, 3], return_counts=True)
    base = gt_linking(gt.graph)
    rng = np.random.default_rng(seed)
    linkings = {"gt": base} | {f"perturbed{k}": perturb(base, rng, n_errors) for k in range(n_perturbed)}
    rows = []
    for name, linking in linkings.items():
        res = write_ctc(linking, masks, work / f"{gt_dir.parent.name}-{gt_dir.name}-{name}")
        start = time.perf_counter()
        arrays = score_linking(linking, truth)
        arrays_s = time.perf_counter() - start
        row = {
            "linking": name,
            "reference": reference_scores(res, gt_dir),
            "folder": score_ctc(tra, res),
            "arrays": arrays,
            "traccuracy": traccuracy_scores(gt, res),
            "arrays_s": arrays_s,
        }
        scores = {k: {s: round(v[s], 6) for s in SCORES} for k, v in row.items() if isinstance(v, dict)}
        print(gt_dir, name, scores)
        rows.append(row)
    return {
        "dataset": gt_dir.parent.name,
        "sequence": gt_dir.name.removesuffix("_GT"),
        "frames": len(masks),
        "gt_nodes": truth.n_nodes,
        "gt_edges": truth.n_edges,
        "single_child_parents": [int(p) for p in parents[children == 1]],
        "divisions": int((children == 2).sum()),
        "linkings": rows,
    }


def summarise(sequences: list[dict]) -> dict:
    """Max |scorer - reference| of LNK/TRA/DET over every linking, and whether every count agreed."""
    summary = {}
    for scorer in ("folder", "arrays", "traccuracy"):
        rows = [(row["reference"], row[scorer]) for seq in sequences for row in seq["linkings"]]
        counts = ERROR_COUNTS if scorer != "traccuracy" else ("ED", "EA", "EC")
        summary[scorer] = {
            "max_abs_diff": {key: max(abs(got[key] - ref[key]) for ref, got in rows) for key in SCORES},
            "counts_equal": all(got[f"AOGM_{c}"] == ref[f"AOGM_{c}"] for ref, got in rows for c in counts),
        }
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ctc-root", type=Path, default=Path("/work/ctc"), help="folder of CTC datasets")
    parser.add_argument("--perturbed", type=int, default=1, help="perturbed linkings per sequence")
    parser.add_argument("--errors", type=int, default=40, help="mistakes per perturbed linking")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    logging.getLogger("traccuracy").setLevel(logging.WARNING)
    start = time.perf_counter()
    sequences = []
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in DATASETS:
            for seq in ("01", "02"):
                gt_dir = args.ctc_root / dataset / f"{seq}_GT"
                if gt_dir.is_dir():
                    parity = sequence_parity(gt_dir, args.perturbed, args.errors, args.seed, Path(tmp))
                    sequences.append(parity)
    summary = summarise(sequences)
    record = {
        "max_abs_diff_vs_reference": {k: v["max_abs_diff"] for k, v in summary.items()},
        "counts_equal_reference": {k: v["counts_equal"] for k, v in summary.items()},
        "sequences_compared": [f"{s['dataset']}/{s['sequence']}" for s in sequences],
        "reference": "py-ctcmetrics evaluate_sequence (metrics Valid, DET, TRA, LNK)",
        "note": "folder = score_ctc (denselink evaluate score); arrays = score_linking (tracking evaluate); "
        "traccuracy = CTCMatcher + CTCMetrics, the scorer before, for the record",
        "settings": {"perturbed": args.perturbed, "errors": args.errors, "seed": args.seed},
        "sequences": sequences,
        "total_s": time.perf_counter() - start,
        "denselink": __version__,
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    record["versions"] = {"py-ctcmetrics": version("py-ctcmetrics"), "traccuracy": version("traccuracy")}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record["max_abs_diff_vs_reference"], indent=2))


if __name__ == "__main__":
    main()
