"""Benchmark: do fused per-cell features improve trackastra's linking where only appearance helps?

A positive control, not evidence for dense or self-supervised features: generated data in
``texture`` mode, equal discs of one mean intensity in pairs that swap places, told apart only by
their stripes' orientation, so wrfeat (the baseline's features) cannot follow a cell through a swap
and any gain must come from the fused features. The data are built so that appearance must win;
the benchmark measures whether the fusion passes such a cue along, and which features carry it.
Every arm trains the same mini trackastra on sequence 02 (validation: its last quarter, which holds
swaps: ``keep_pairs`` keeps the pairs swapping to the last frame, and the run stops if the
validation frames hold none; training stops when the validation loss has not improved for
``patience`` epochs), picks the lowest-validation-loss epoch and links sequence 01 (clean
protocol); arms differ only in the per-cell features fused with the main fusion mode:

- ``retrained``: no fused features (the re-trained baseline);
- ``oracle`` / ``oracle_noise{s}``: the cell's texture as a code (one fixed random vector per
  orientation, shared by all sequences) plus Gaussian noise of standard deviation ``s`` per cell
  and frame (the dose-response; ``oracle_noise_inf`` is the noise alone: uninformative);
- ``shuffled``: the exact oracle codes moved between whole tracks (each track takes the code of
  another track of its sequence, by a random permutation of the tracks): a track keeps one code in
  all its frames, but the code no longer names its texture (``partners_told_apart`` says how often
  the two partners of a swap still carry different codes);
- ``maester-{agg}``: MAESTER pretrained on sequence 02 only, cover-and-stride inference on both
  sequences, aggregated per cell;
- ``maester_untrained-{agg}``: the same MAESTER architecture with its seeded initial weights (no
  training step): isolates self-supervision;
- ``handcrafted``: a fixed function of the pixels under each mask, an intensity histogram plus
  oriented-gradient energies (``denselink features handcrafted``): isolates "any appearance";
- ``sam-{agg}``: a random-initialised SAM-architecture (vit_b layout, tiny) encoder, guided
  upsampling (not run by default: random weights, like ``maester_untrained``).

Seeds are paired across arms. The number of seeds comes from a power calculation (paired t-test)
on an internal pilot: the first ``--pilot`` seeds of ``retrained`` and ``oracle`` estimate the
standard deviation of the paired LNK difference; the pilot's seeds count towards the total.
Intervals are paired t-based 95 % CIs of the mean difference (``ci_method``), with the range of the
per-seed differences beside them. Writes ``benchmarks/results/fusion_gain.json`` (headline
``p_value``: exact oracle vs baseline) and ``fusion_gain.png`` beside it.

    nice .venv/bin/python benchmarks/fusion_gain.py [--max-seeds 10] [--arms retrained,oracle,...]
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
import torch
from scipy import stats

import denselink
from denselink.atomic import atomic_path, write_json
from denselink.data.ctc import validate_sequence, write_manifest
from denselink.data.synthetic import SynthSettings, generate_sequence, write_dataset
from denselink.errors import ConfigError
from denselink.features.aggregate import aggregate_sequence
from denselink.features.handcrafted import HandcraftedSettings, handcrafted_sequence
from denselink.filenames import MAESTER_INITIAL, TRAIN_LOG, maester_checkpoint
from denselink.foundation.embed import FoundationSettings, embed_sequence
from denselink.machine import machine_info
from denselink.maester.infer import MaesterInferSettings, infer_sequence
from denselink.maester.train import MaesterSettings
from denselink.maester.train import train as train_maester
from denselink.tracking.evaluate import evaluate_run
from denselink.tracking.prepare import load_prepared, prepare
from denselink.tracking.settings import TrackastraSettings
from denselink.tracking.train import split_tail, train

RESULTS = Path(__file__).resolve().parent / "results" / "fusion_gain.json"
DESIGN = 2  # 2: keep_pairs, shuffle by track, untrained-MAESTER and hand-crafted arms, t-based CIs
CONFIDENCE = 0.95
CODE_SEED, CODE_DIM = 2024, 8
DOSES = (0.0, 1.0, math.inf)  # noise sd per code dimension (codes have unit variance)
SYNTH = {
    "mode": "texture",
    "shape": (64, 64),
    "n_frames": 40,
    "n_cells": 8,
    "division_prob": 0.02,
    "swap_every": 3,
    "keep_pairs": True,  # a dividing cell's daughter keeps its pair: the validation tail holds swaps
    "texture_amplitude": 0.8,
    "seed": 0,
}
TRACKASTRA = {
    "window": 4,
    "d_model": 32,
    "num_encoder_layers": 1,
    "num_decoder_layers": 1,
    "pos_embed_per_dim": 8,
    "feat_embed_per_dim": 4,
    "epochs": 24,
    "warmup_epochs": 2,
    "train_samples": 128,
    "lr": 2e-3,
    "crop_size": None,
    "val_fraction": 0.25,
    "spatial_pos_cutoff": 32,  # the frame is 64 px: 256 (default) blurs the positions of neighbours
    "early_stopping": True,
    "fusion": "add_wrfeat",
    "normalize": "zscore",  # embeddings of unknown scale; without it MAESTER features were ignored
}
MAESTER = {
    "model": {
        "img_size": 20,
        "patch_size": 5,
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 1,
        "decoder_embed_dim": 32,
        "decoder_depth": 1,
        "decoder_num_heads": 1,
    },
    "train": {
        "batch_size": 16,
        "lr": 1e-3,
        "samples_per_epoch": 512,
        "epochs": 6,
        "save_epochs": [5],
        "save_initial": True,  # the seeded initial weights: the maester_untrained arm
        "num_workers": 0,
        "device": "cpu",
    },
}
SAM = {
    "model_type": "vit_b",
    "random_init": True,
    "encoder": {"img_size": 256, "embed_dim": 32, "depth": 1, "num_heads": 2},
    "upsampler": "guided",
    "device": "cpu",
}
POWER = {"alpha": 0.05, "power": 0.8, "min_effect": 0.1, "pilot": 3, "min_seeds": 4}
MIN_EFFECT_REASON = (
    "the partners' links at swaps are a fifth of the eval sequence's links (swap_links_fraction) and "
    "the baseline keeps almost none of them; a feature that identifies the texture can recover most of "
    "them, so 0.1 is the smallest LNK gain worth detecting"
)
ARMS = (
    "retrained",
    *(f"oracle{'' if s == 0 else f'_noise{s:g}'}" for s in DOSES),
    "shuffled",
    "maester-centroid",
    "maester_untrained-centroid",
    "handcrafted",
    "maester-mma",
    "maester_untrained-mma",
    "sam-centroid",
    "sam-mma",
)
# mma: see texture_probe; sam: a random-weight encoder of another architecture (maester_untrained
# is the random-weight control of the embedding that is fused), left out to fit the run in ~25 min
DEFAULT_ARMS = tuple(arm for arm in ARMS if not arm.endswith("-mma") and not arm.startswith("sam"))
ENCODERS = ("maester", "maester_untrained", "sam")


# --------------------------------------------------------------------------- features per arm
def cell_rows(manifest_path: Path) -> pd.DataFrame:
    """frame, label, y, x, area of every GT cell of a sequence."""
    from denselink.data.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    rows = []
    for t in range(manifest.n_frames):
        mask = manifest.read_mask(t)
        for label in np.unique(mask[mask > 0]):
            ys, xs = np.nonzero(mask == label)
            rows.append((t, int(label), ys.mean(), xs.mean(), len(ys)))
    return pd.DataFrame(rows, columns=["frame", "label", "y", "x", "area"])


def oracle_table(
    cells: pd.DataFrame, textures: dict[int, int], noise: float, seed: int, shuffle: bool = False
) -> pd.DataFrame:
    """The texture as a code (fixed per orientation), plus noise; ``shuffle``: codes moved between tracks.

    Under ``shuffle`` each track takes the exact code of another track (a random permutation of the
    sequence's tracks), so a track keeps one code in all its frames but the code no longer names its
    texture.
    """
    palette = np.random.default_rng(CODE_SEED).normal(size=(max(textures.values()) + 1, CODE_DIM))
    rng = np.random.default_rng(seed)
    if shuffle:
        tracks = sorted(textures)
        textures = dict(zip(tracks, (textures[int(t)] for t in rng.permutation(tracks)), strict=True))
    codes = palette[[textures[int(label)] for label in cells["label"]]]
    if math.isinf(noise):
        codes = rng.normal(size=codes.shape)
    elif noise > 0:
        codes = codes + noise * rng.normal(size=codes.shape)
    columns = pd.DataFrame(codes.astype(np.float32), columns=[f"f{i:03d}" for i in range(CODE_DIM)])
    return pd.concat([cells.reset_index(drop=True), columns], axis=1)


def arm_noise(arm: str) -> float:
    return 0.0 if arm == "oracle" else float(arm.removeprefix("oracle_noise"))


def embedding_tables(root: Path, manifests: dict[str, Path], arms: list[str]) -> dict[str, float]:
    """Compute the real embeddings the arms need and their per-cell tables; returns seconds per step."""
    seconds = {}
    backbones = {arm.split("-")[0] for arm in arms if arm.startswith(ENCODERS)}
    if backbones & {"maester", "maester_untrained"}:
        start = time.perf_counter()
        train_maester([manifests["02"]], root / "maester", MaesterSettings(**MAESTER))
        seconds["maester_pretrain"] = time.perf_counter() - start
    checkpoints = {
        "maester": root / "maester" / maester_checkpoint(MAESTER["train"]["save_epochs"][-1]),
        "maester_untrained": root / "maester" / MAESTER_INITIAL,
    }
    for backbone in sorted(backbones & set(checkpoints)):
        start = time.perf_counter()
        for seq, manifest in manifests.items():
            infer_sequence(
                checkpoints[backbone],
                manifest,
                root / f"{backbone}-{seq}.zarr",
                MaesterInferSettings(device="cpu"),
            )
        seconds[f"{backbone}_infer"] = time.perf_counter() - start
    if "sam" in backbones:
        start = time.perf_counter()
        for seq, manifest in manifests.items():
            embed_sequence(manifest, root / f"sam-{seq}.zarr", "sam", FoundationSettings(**SAM))
        seconds["sam_embed"] = time.perf_counter() - start
    if "handcrafted" in arms:
        start = time.perf_counter()
        for seq, manifest in manifests.items():
            handcrafted_sequence(manifest, root / f"handcrafted-{seq}.parquet", HandcraftedSettings())
        seconds["handcrafted"] = time.perf_counter() - start
    for arm in arms:
        if arm.startswith(ENCODERS):
            backbone, agg = arm.split("-")
            for seq, manifest in manifests.items():
                aggregate_sequence(
                    root / f"{backbone}-{seq}.zarr", manifest, agg, root / f"{arm}-{seq}.parquet"
                )
    return seconds


def write_tables(root: Path, manifests: dict[str, Path], textures: dict[str, dict], arms: list[str]) -> None:
    """Feature parquets ``{arm}-{seq}.parquet`` of the oracle and shuffled arms."""
    for index, seq in enumerate(manifests):
        cells = cell_rows(manifests[seq])
        for arm in arms:
            if arm.startswith("oracle") or arm == "shuffled":
                noise = 0.0 if arm == "shuffled" else arm_noise(arm)
                table = oracle_table(cells, textures[seq], noise, 100 * index + 7, shuffle=arm == "shuffled")
                table.to_parquet(root / f"{arm}-{seq}.parquet")


def texture_probe(root: Path, arm: str, textures: dict[str, dict]) -> float:
    """Accuracy on sequence 01 of a ridge read-out of the texture, fitted on sequence 02's cells."""
    data = {}
    for seq in ("01", "02"):
        table = pd.read_parquet(root / f"{arm}-{seq}.parquet")
        data[seq] = (
            table.filter(regex=r"^f\d+$").to_numpy(np.float64),
            np.array([textures[seq][int(label)] for label in table["label"]]),
        )
    (train_x, train_y), (test_x, test_y) = data["02"], data["01"]
    mean, sd = train_x.mean(axis=0), train_x.std(axis=0) + 1e-9
    design = np.c_[(train_x - mean) / sd, np.ones(len(train_x))]
    target = np.eye(train_y.max() + 1)[train_y]
    weights = np.linalg.solve(design.T @ design + np.eye(design.shape[1]), design.T @ target)
    predicted = (np.c_[(test_x - mean) / sd, np.ones(len(test_x))] @ weights).argmax(axis=1)
    return float((predicted == test_y).mean())


# --------------------------------------------------------------------------- scores
def swap_link_recall(res_dir: Path, masks: np.ndarray, swaps: pd.DataFrame) -> float:
    """Fraction of the GT links at swap events (both partners, t-1 -> t) kept within one result track."""
    kept = total = 0
    for t, *partners in swaps.itertuples(index=False):
        before, now = (tifffile.imread(res_dir / f"mask{k:03d}.tif") for k in (t - 1, t))
        for label in partners:
            was, is_ = before[masks[t - 1] == label], now[masks[t] == label]
            if was.size == 0 or is_.size == 0:
                continue
            total += 1
            kept += int(np.bincount(was).argmax() == np.bincount(is_).argmax())
    return kept / total if total else math.nan


def partners_told_apart(table: pd.DataFrame, swaps: pd.DataFrame) -> float:
    """Fraction of swaps whose two partners carry different feature vectors in the swap's frame."""
    features = table.set_index(["frame", "label"]).filter(regex=r"^f\d+$")
    apart = [
        not np.array_equal(features.loc[(t, first)].to_numpy(), features.loc[(t, second)].to_numpy())
        for t, first, second in swaps.itertuples(index=False)
    ]
    return float(np.mean(apart)) if apart else math.nan


def validation_swaps(prepared: Path, swaps: pd.DataFrame) -> tuple[int, int]:
    """(first validation frame, swaps inside the validation frames) of the prepared training sequence.

    The validation frames are those ``tracking.train.split_tail`` holds out; a swap at frame ``t``
    changes the link ``t-1 -> t``, which lies inside them when ``t-1`` is the first validation frame
    or later.
    """
    settings = TrackastraSettings(**TRACKASTRA)
    data = load_prepared(prepared, settings)
    _, _, start = split_tail(data.data, data.n_frames, settings.val_fraction)
    return start, int((swaps["frame"] > start).sum())


def gt_links(tracks: pd.DataFrame) -> int:
    """Edges of the GT lineage graph: continuing links plus one per daughter."""
    return int((tracks["end"] - tracks["start"]).sum() + (tracks["parent"] > 0).sum())


def paired_stats(values: np.ndarray, baseline: np.ndarray) -> dict[str, float]:
    """Mean paired difference, its paired t-based CI, the differences' range and the paired t-test's p.

    With all differences equal the interval is that value and p is 1 (no difference) or 0.
    """
    diff = values - baseline
    mean = float(diff.mean())
    if np.any(diff != diff[0]):
        sem = float(diff.std(ddof=1) / math.sqrt(len(diff)))
        half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(diff) - 1)) * sem
        p = float(stats.ttest_rel(values, baseline).pvalue)
    else:
        half, p = 0.0, 1.0 if diff[0] == 0 else 0.0
    return {
        "delta_mean": mean,
        "ci_low": mean - half,
        "ci_high": mean + half,
        "diff_min": float(diff.min()),
        "diff_max": float(diff.max()),
        "p_value": p,
    }


def seeds_for_power(sd_diff: float, effect: float, alpha: float, power: float, floor: int) -> int:
    """Smallest n whose two-sided paired t-test reaches ``power`` for a true mean difference ``effect``."""
    for n in range(max(2, floor), 1000):
        df, shift = n - 1, effect / max(sd_diff, 1e-9) * math.sqrt(n)
        critical = stats.t.ppf(1 - alpha / 2, df)
        achieved = 1 - stats.nct.cdf(critical, df, shift) + stats.nct.cdf(-critical, df, shift)
        if achieved >= power:
            return n
    return 1000


# --------------------------------------------------------------------------- runs
def run_arm(root: Path, arm: str, seed: int, manifests: dict[str, Path], masks01, swaps01) -> dict[str, Any]:
    fused = arm != "retrained"
    settings = TrackastraSettings(**{**TRACKASTRA, "fusion": TRACKASTRA["fusion"] if fused else "none"})
    run = root / "runs" / f"{arm}-seed{seed}"
    features = {seq: root / f"{arm}-{seq}.parquet" for seq in manifests} if fused else {}
    start = time.perf_counter()
    train(root / "02.pt", run, seed, settings, features.get("02"))
    trained = time.perf_counter()
    record = evaluate_run(
        run,
        manifests["01"],
        run / "metrics.json",
        run / "RES",
        "clean",
        settings,
        features.get("01"),
        "chosen",
    )
    log = pd.read_csv(run / TRAIN_LOG)
    return {
        "arm": arm,
        "seed": seed,
        "LNK": record["LNK"],
        "DET": record["DET"],
        "TRA": record["TRA"],
        "swap_link_recall": swap_link_recall(run / "RES", masks01, swaps01),
        "epoch": record["epoch"],
        "epochs_trained": len(log),
        "val_loss": [round(v, 5) for v in log["val_loss"]],
        "train_s": round(trained - start, 2),
        "evaluate_s": round(time.perf_counter() - trained, 2),
    }


def summarise(runs: list[dict], arms: list[str], n: int) -> list[dict[str, Any]]:
    by_arm = {arm: sorted((r for r in runs if r["arm"] == arm), key=lambda r: r["seed"])[:n] for arm in arms}
    base = np.array([r["LNK"] for r in by_arm["retrained"]])
    base_swap = np.array([r["swap_link_recall"] for r in by_arm["retrained"]])
    out = []
    for arm in arms:
        lnk = np.array([r["LNK"] for r in by_arm[arm]])
        swap = np.array([r["swap_link_recall"] for r in by_arm[arm]])
        entry = {"name": arm, "n": len(lnk), "lnk_mean": float(lnk.mean()), "lnk_sd": float(lnk.std(ddof=1))}
        entry["swap_link_recall_mean"] = float(swap.mean())
        entry["det_mean"] = float(np.mean([r["DET"] for r in by_arm[arm]]))
        entry["epochs_trained_mean"] = float(np.mean([r["epochs_trained"] for r in by_arm[arm]]))
        if arm == "retrained":
            entry |= {"delta_mean": 0.0, "ci_low": 0.0, "ci_high": 0.0, "p_value": None}
        else:
            entry |= paired_stats(lnk, base)
            swap_stats = paired_stats(swap, base_swap)
            entry |= {f"swap_{k}": v for k, v in swap_stats.items()}
        if arm.startswith("oracle"):  # strict JSON has no Infinity: the noise-only arm has noise_sd null
            noise = arm_noise(arm)
            entry |= {"noise_sd": noise if math.isfinite(noise) else None, "noise_only": math.isinf(noise)}
        out.append(entry)
    return out


def plot(result: dict[str, Any], out: Path) -> None:
    """LNK per arm with its paired t-based 95 % CI, and the oracle's dose-response over its noise."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = result["arms"]
    base = next(a for a in arms if a["name"] == "retrained")["lnk_mean"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 2]})
    names = [a["name"] for a in arms]
    means = np.array([a["lnk_mean"] for a in arms])
    low = np.array([base + a["ci_low"] for a in arms])
    high = np.array([base + a["ci_high"] for a in arms])
    left.errorbar(range(len(arms)), means, yerr=[means - low, high - means], fmt="o", capsize=3)
    left.axhline(base, color="grey", ls="--", lw=1, label="re-trained baseline")
    left.set_xticks(range(len(arms)), names, rotation=40, ha="right")
    left.set_ylabel("LNK on sequence 01 (clean)")
    left.set_title(
        f"Positive control (texture data): LNK per arm, n = {arms[0]['n']} seeds\n"
        "bars: baseline + paired t-based 95 % CI of the difference",
        fontsize=9,
    )
    left.legend(fontsize=8)
    finite = sorted((a for a in arms if a.get("noise_sd") is not None), key=lambda a: a["noise_sd"])
    noise_only = [a for a in arms if a.get("noise_only")]
    xs = [a["noise_sd"] for a in finite]
    for key, label in (("lnk_mean", "LNK"), ("swap_link_recall_mean", "links at swaps kept")):
        right.plot(xs, [a[key] for a in finite], "o-", label=f"oracle: {label}")
        if noise_only:
            right.axhline(noise_only[0][key], ls=":", lw=1, color=right.lines[-1].get_color())
    right.axhline(base, color="grey", ls="--", lw=1, label="baseline LNK")
    right.set_xlabel("noise sd added to the texture code (dotted: noise only)")
    right.set_title("dose-response of the oracle feature", fontsize=9)
    right.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="result JSON (the plot goes beside it)")
    parser.add_argument(
        "--arms", default=",".join(DEFAULT_ARMS), help="comma-separated arms (retrained is added)"
    )
    parser.add_argument("--max-seeds", type=int, default=10, help="cap on the power calculation's seeds")
    parser.add_argument("--seeds", type=int, default=None, help="fixed seeds: skip the power calculation")
    parser.add_argument(
        "--runs-log",
        type=Path,
        default=None,
        help="JSON-lines file of finished runs: appended to, and runs with the same settings are reused",
    )
    parser.add_argument("--synth", default="{}", help="JSON overrides of the SynthSettings")
    parser.add_argument("--trackastra", default="{}", help="JSON overrides of the TrackastraSettings")
    parser.add_argument("--maester", default="{}", help="JSON overrides of MAESTER's train settings")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    synth = SynthSettings(**{**SYNTH, **json.loads(args.synth)})
    TRACKASTRA.update(json.loads(args.trackastra))
    MAESTER["train"].update(json.loads(args.maester))
    arms = ["retrained", *[a for a in args.arms.split(",") if a and a != "retrained"]]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        parser.error(f"unknown arms {unknown}; choose from {ARMS}")
    started = time.perf_counter()
    runs: list[dict] = []
    key = json.dumps(
        [DESIGN, synth.model_dump(), TRACKASTRA, MAESTER, SAM, CODE_SEED, CODE_DIM], sort_keys=True
    )
    cached = {}
    if args.runs_log is not None and args.runs_log.is_file():
        for line in args.runs_log.read_text().splitlines():
            record = json.loads(line)
            if record.pop("settings_key") == key:
                cached[record["arm"], record["seed"]] = record
    with tempfile.TemporaryDirectory(prefix="fusion-gain-") as tmp:
        root = Path(tmp)
        write_dataset(root / "synth", synth)
        manifests, textures = {}, {}
        for index, seq in enumerate(synth.sequences):
            manifests[seq] = root / f"{seq}.json"
            write_manifest(validate_sequence(root / "synth", "Synth", seq), manifests[seq])
            textures[seq] = generate_sequence(synth, index).textures
        truth01 = generate_sequence(synth, synth.sequences.index("01"))
        truth02 = generate_sequence(synth, synth.sequences.index("02"))
        prepare(manifests["02"], root / "02.pt", TrackastraSettings(**TRACKASTRA))
        val_start, val_swaps = validation_swaps(root / "02.pt", truth02.swaps)
        if val_swaps == 0:
            raise ConfigError(
                "--synth", f"the validation frames of 02 (from frame {val_start}) hold no swap: "
                "checkpoints could not be chosen on the effect measured"
            )  # fmt: skip
        write_tables(root, manifests, textures, arms)
        seconds = embedding_tables(root, manifests, arms)
        probes = {arm: texture_probe(root, arm, textures) for arm in arms if arm != "retrained"}
        told_apart = {
            arm: partners_told_apart(pd.read_parquet(root / f"{arm}-01.parquet"), truth01.swaps)
            for arm in arms
            if arm.startswith("oracle") or arm == "shuffled"
        }

        def run_seeds(seeds: range, which: list[str]) -> None:
            for seed in seeds:
                for arm in which:
                    if any(r["arm"] == arm and r["seed"] == seed for r in runs):
                        continue
                    record = cached.get((arm, seed))
                    if record is None:
                        record = run_arm(root, arm, seed, manifests, truth01.masks, truth01.swaps)
                        if args.runs_log is not None:
                            with args.runs_log.open("a") as log_file:
                                log_file.write(json.dumps({**record, "settings_key": key}) + "\n")
                    runs.append(record)
                    print(
                        arm, seed, round(record["LNK"], 4), round(record["swap_link_recall"], 3), flush=True
                    )

        if args.seeds is not None:
            n, power = args.seeds, {"fixed_seeds": args.seeds}
            run_seeds(range(n), arms)
        else:
            pilot = POWER["pilot"]
            pilot_arms = ["retrained", "oracle"] if "oracle" in arms else arms[:2]
            run_seeds(range(pilot), pilot_arms)
            lnk = {a: np.array([r["LNK"] for r in runs if r["arm"] == a]) for a in pilot_arms}
            sd = float(np.std(lnk[pilot_arms[1]] - lnk["retrained"], ddof=1))
            needed = seeds_for_power(
                sd, POWER["min_effect"], POWER["alpha"], POWER["power"], POWER["min_seeds"]
            )
            n = min(needed, args.max_seeds)
            power = {
                **POWER,
                "test": "two-sided paired t-test on per-seed LNK (noncentral t)",
                "pilot_arms": pilot_arms,
                "pilot_sd_paired_diff": sd,
                "seeds_needed": needed,
                "max_seeds": args.max_seeds,
                "seeds_used": n,
                "assumptions": (
                    f"the smallest LNK gain worth detecting is {POWER['min_effect']} ({MIN_EFFECT_REASON}); "
                    "the sd of the paired "
                    f"difference is the one measured on the first {pilot} seeds (internal pilot, its seeds "
                    "count towards n); seeds capped at max_seeds"
                ),
            }
            run_seeds(range(n), arms)  # seed by seed, so that a stopped run leaves whole seeds
    summary = summarise(runs, arms, n)
    for entry in summary:
        entry["texture_probe"] = probes.get(entry["name"])
        entry["partners_told_apart"] = told_apart.get(entry["name"])
    by_name = {a["name"]: a for a in summary}
    headline = by_name.get("oracle", summary[-1])
    diffs = np.array([r["LNK"] for r in runs if r["arm"] == headline["name"]][:n]) - np.array(
        [r["LNK"] for r in runs if r["arm"] == "retrained"][:n]
    )
    result = {
        "p_value": headline["p_value"],
        "lnk_baseline": by_name["retrained"]["lnk_mean"],
        "lnk_fused": headline["lnk_mean"],
        "effect_size": float(diffs.mean() / diffs.std(ddof=1)) if diffs.std(ddof=1) > 0 else None,
        "headline": f"{headline['name']} vs retrained: Cohen's d of the paired LNK differences",
        "arms": summary,
        "power": power,
        "runs": runs,
        "seconds": {
            **{k: round(v, 1) for k, v in seconds.items()},
            "total": round(time.perf_counter() - started, 1),
        },
        "positive_control": "data built so that appearance must win (partners differ only in their "
        "stripes and trade places): a gain shows that the fusion passes such a cue along; it is no evidence "
        "for dense or self-supervised features (see the maester_untrained and handcrafted arms)",
        "ci_method": f"paired t-based {CONFIDENCE:.0%} CI of the mean LNK difference (df = n - 1); "
        "diff_min/diff_max: the range of the per-seed differences",
        "swaps_in_eval_sequence": len(truth01.swaps),
        "swaps_in_train_sequence": len(truth02.swaps),
        "validation_start_frame": val_start,
        "swaps_in_validation_frames": val_swaps,
        "partners_told_apart": "fraction of the swaps of 01 whose partners carry different codes (oracle "
        "and shuffled arms): the shuffled arm moves codes between whole tracks, so partners that drew "
        "different codes can still be told apart by their codes",
        "swap_links_fraction": 2 * len(truth01.swaps) / gt_links(truth01.tracks),
        "texture_probe": "accuracy on 01 of a ridge read-out of the texture (4 classes) from the arm's "
        "per-cell features, fitted on 02: whether the features carry the cue at all",
        "settings": {
            "synthetic": synth.model_dump(),
            "trackastra": TRACKASTRA,
            "maester": MAESTER,
            "sam": SAM,
            "oracle_code_dim": CODE_DIM,
            "protocol": "clean: train 02 (its last quarter validates; early stopping), "
            "lowest val_loss epoch, eval 01",
        },
        "machine": machine_info(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": denselink.__version__,
    }
    write_json(args.out, result)
    plot(result, args.out.with_suffix(".png"))
    for arm in summary:
        print({k: arm[k] for k in ("name", "n", "lnk_mean", "delta_mean", "ci_low", "ci_high", "p_value")})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
