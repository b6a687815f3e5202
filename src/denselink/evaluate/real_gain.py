"""``denselink evaluate real-gain``: the real-data study's result JSON and forest plot.

Per dataset and arm (:mod:`denselink.pipeline.real`): per-seed LNK/TRA/DET of the chosen checkpoint
and how its training ended (epochs run, stopped early or at the cap; per arm, how many runs stopped
early and how many chose their last epoch), the CTC edge errors (FN, FP, WS) and the recall on hard
links (:mod:`denselink.evaluate.hard_links`) of its CTC result, re-scored from that result (the
re-scored LNK must equal the metrics JSON's); ΔLNK against ``retrained`` and against
``handcrafted`` with paired t 95 % intervals and Holm-adjusted paired t p-values (one family per
reference); the hard links of the training and scored sequences and those inside the validation
tail; and a power calculation from the observed SD of the paired differences. The JSON records the
config files' sha256 and the git commit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from scipy import optimize, stats

from denselink.atomic import add_force_flag, atomic_path, check_output, write_json
from denselink.errors import ConfigError, DenselinkError
from denselink.evaluate.stats import holm
from denselink.settings import StageSettings, load_settings

COMMAND = "evaluate real-gain"
BASELINE, APPEARANCE = "retrained", "handcrafted"
EDGE_ERRORS = {"fn_edges": "AOGM_EA", "fp_edges": "AOGM_ED", "ws_edges": "AOGM_EC"}
"""The study's edge errors by the CTC's count each is: missing, redundant and wrong-semantics edges."""
ERRORS = tuple(EDGE_ERRORS)


class RealGainSettings(StageSettings):
    """Confidence, test level and power of the real-data study's statistics."""

    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the paired t intervals of ΔLNK.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Two-sided test level of the power calculation.")
    power: float = Field(0.8, gt=0, lt=1, description="Power at which the smallest detectable ΔLNK is given.")
    target_delta: float = Field(
        0.01, gt=0, description="ΔLNK for which the seeds needed at `power` are given (from the observed SD)."
    )


class RescoreMismatch(DenselinkError):
    """A CTC result re-scored does not give the LNK its metrics JSON records."""

    kind = "re-scored LNK differs"


# --------------------------------------------------------------------------- statistics
def paired_t(values: list[float], reference: list[float], confidence: float) -> dict[str, float]:
    """Mean paired difference, its paired t interval and the paired t p-value (NaN below 2 pairs)."""
    a, b = np.asarray(values, dtype=float), np.asarray(reference, dtype=float)
    out = {"n": len(a), "delta_mean": float(np.mean(a - b)) if len(a) else math.nan}
    out |= {"ci_low": math.nan, "ci_high": math.nan, "p_unadjusted": math.nan, "sd_diff": math.nan}
    if len(a) < 2:
        return out
    diffs = a - b
    out["sd_diff"] = float(np.std(diffs, ddof=1))
    if np.all(diffs == diffs[0]):  # no spread: the interval is the point, the test is undefined
        out["ci_low"] = out["ci_high"] = float(diffs[0])
        out["p_unadjusted"] = 1.0 if diffs[0] == 0 else 0.0
        return out
    result = stats.ttest_rel(a, b)
    interval = result.confidence_interval(confidence)
    out["ci_low"], out["ci_high"] = float(interval.low), float(interval.high)
    out["p_unadjusted"] = float(result.pvalue)
    return out


def paired_power(delta: float, sd: float, n: int, alpha: float) -> float:
    """Power of the two-sided paired t-test at level ``alpha`` for a true mean difference ``delta``."""
    df, critical = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    shift = delta / sd * math.sqrt(n)
    upper, lower = stats.nct.sf(critical, df, shift), stats.nct.cdf(-critical, df, shift)
    return float(upper + (0.0 if math.isnan(lower) else lower))  # scipy: NaN where the far tail is ~0


def detectable_delta(sd: float, n: int, alpha: float, power: float) -> float:
    """Smallest ΔLNK the paired t-test detects with ``power`` from ``n`` pairs of this SD."""
    if not (sd > 0 and n >= 3):  # one degree of freedom: the noncentral t's tails are not computed stably
        return math.nan
    return float(optimize.brentq(lambda d: paired_power(d, sd, n, alpha) - power, 1e-6 * sd, 10 * sd))


def seeds_needed(delta: float, sd: float, alpha: float, power: float, limit: int = 10_000) -> int | None:
    """Fewest pairs (at least 3) with which the paired t-test detects ``delta`` with ``power`` (None past
    ``limit``)."""
    if not sd > 0:
        return None
    return next((n for n in range(3, limit + 1) if paired_power(delta, sd, n, alpha) >= power), None)


def compare_arms(per_arm: dict[str, dict[int, float]], reference: str, confidence: float) -> dict[str, dict]:
    """Paired comparisons of every other arm with ``reference`` over common seeds, Holm over the family."""
    base = per_arm[reference]
    rows = {}
    for arm, values in per_arm.items():
        if arm == reference:
            continue
        seeds = sorted(set(values) & set(base))
        rows[arm] = paired_t([values[s] for s in seeds], [base[s] for s in seeds], confidence)
    for arm, p in zip(rows, holm([row["p_unadjusted"] for row in rows.values()]), strict=True):
        rows[arm]["p_value"] = p
    return rows


# --------------------------------------------------------------------------- one dataset
def _mean(values: list[float]) -> float:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def sequence_links(manifest: str, score_cache: str | None) -> tuple[Any, list, np.ndarray]:
    """The sequence's manifest, GT links and which are hard (from its score cache, or built here)."""
    from denselink.data.manifest import load_manifest
    from denselink.evaluate.hard_links import graph_links
    from denselink.tracking.score_cache import build_score_cache, load_score_cache

    sequence = load_manifest(manifest)
    cache = load_score_cache(Path(score_cache), sequence) if score_cache else build_score_cache(sequence)
    links, hard = graph_links(cache.gt_graph, cache.gt_location_keys)
    return (sequence, cache), links, hard


def hard_link_counts(links: list, hard: np.ndarray, n_frames: int, window: int, val_fraction: float) -> dict:
    """Links and hard links of a sequence, and of its validation tail (both cells inside it)."""
    start = n_frames - max(window, math.ceil(val_fraction * n_frames)) if val_fraction > 0 else n_frames
    tail = np.array([src[0] >= start for src, _ in links], dtype=bool)
    return {
        "frames": n_frames,
        "links": len(links),
        "hard": int(hard.sum()),
        "validation_first_frame": start if val_fraction > 0 else None,
        "validation_links": int(tail.sum()),
        "validation_hard": int((tail & hard).sum()),
    }


def training_record(done: str) -> dict[str, Any]:
    """How a run's training ended (its ``done.json``): epochs run, whether early stopping ended it, the
    epoch of its lowest validation loss."""
    record = json.loads(Path(done).read_text())
    return {key: record.get(key) for key in ("epochs_run", "stopped_early", "best_val_epoch")}


def score_result(tracks: str, masks: np.ndarray, truth: Any, cells: list, hard: list) -> dict[str, float]:
    """LNK/TRA/DET, edge errors and hard-link recall of a CTC result folder of relabelled GT masks."""
    from denselink.evaluate.hard_links import linking_graph, recall, result_links
    from denselink.tracking.scoring import score_linking

    found = result_links(tracks, masks)
    scores = score_linking(linking_graph(found, cells), truth)
    if scores is None:  # nothing linked: no CTC counts to report
        errors = {"LNK_rescored": math.nan, **dict.fromkeys(ERRORS, math.nan)}
    else:
        errors = {"LNK_rescored": scores["LNK"]} | {n: int(scores[k]) for n, k in EDGE_ERRORS.items()}
    return errors | {"hard_link_recall": recall(hard, found)}


def dataset_result(spec: dict[str, Any], settings: RealGainSettings) -> dict[str, Any]:
    """Every arm's per-seed scores and comparisons on one dataset."""
    from denselink.tracking.scoring import GroundTruth

    counts = {}
    for role in ("train", "eval"):
        seq = spec[f"{role}_seq"]
        cache_path = spec["score_cache"] if role == "eval" else None
        (sequence, cache), links, hard = sequence_links(spec["manifests"][seq], cache_path)
        fraction = spec["val_fraction"] if role == "train" else 0.0
        counts[seq] = hard_link_counts(links, hard, sequence.n_frames, spec["window"], fraction)
        if role == "eval":
            masks = sequence.read_masks().astype(np.int32)
            truth = GroundTruth.from_cache(cache)
            cells = list(truth.index)
            hard_eval = [link for link, is_hard in zip(links, hard, strict=True) if is_hard]
    arms = []
    for arm, runs in spec["arms"].items():
        seeds = []
        for run in runs:
            record = json.loads(Path(run["metrics"]).read_text())
            row = {"seed": int(run["seed"]), "epoch": record.get("epoch")} | training_record(run["model"])
            row |= {key: record.get(key) for key in ("LNK", "TRA", "DET")}
            row |= score_result(run["tracks"], masks, truth, cells, hard_eval)
            if row["LNK"] is None or abs(row["LNK_rescored"] - row["LNK"]) > 1e-9:
                problem = f"LNK {row['LNK_rescored']} != {row['LNK']} of {run['metrics']}"
                raise RescoreMismatch(run["tracks"], problem)
            seeds.append(row)
        arms.append(
            {
                "name": arm,
                "variant": spec["variants"][arm],
                "n": len(seeds),
                "lnk_mean": _mean([s["LNK"] for s in seeds]),
                "lnk_sd": float(np.std([s["LNK"] for s in seeds], ddof=1)) if len(seeds) > 1 else math.nan,
                "tra_mean": _mean([s["TRA"] for s in seeds]),
                "det_mean": _mean([s["DET"] for s in seeds]),
                "hard_link_recall": _mean([s["hard_link_recall"] for s in seeds]),
                "errors_mean": {key: _mean([s[key] for s in seeds]) for key in ERRORS},
                "stopped_early": sum(bool(s["stopped_early"]) for s in seeds),
                "chose_last_epoch": sum(s["epoch"] == s["epochs_run"] - 1 for s in seeds),
                "seeds": seeds,
            }
        )
    lnk = {arm["name"]: {s["seed"]: s["LNK"] for s in arm["seeds"]} for arm in arms}
    vs_baseline = compare_arms(lnk, BASELINE, settings.confidence)
    appearance = {k: v for k, v in lnk.items() if k != BASELINE}
    vs_appearance = compare_arms(appearance, APPEARANCE, settings.confidence) if APPEARANCE in lnk else {}
    empty = dict.fromkeys(("delta_mean", "ci_low", "ci_high", "p_value", "p_unadjusted", "sd_diff"))
    for arm in arms:
        arm |= {k: v for k, v in (vs_baseline.get(arm["name"]) or empty).items() if k != "n"}
        against = vs_appearance.get(arm["name"], {})
        arm["vs_handcrafted"] = {k: v for k, v in against.items() if k != "n"} or None
    power = {}
    for arm in arms:
        if arm["name"] == BASELINE:
            continue
        sd, n = arm["sd_diff"], arm["n"]
        power[arm["name"]] = {
            "sd_diff": sd,
            "detectable_delta": detectable_delta(sd, n, settings.alpha, settings.power),
            "seeds_for_target_delta": seeds_needed(settings.target_delta, sd, settings.alpha, settings.power),
        }
    return {
        "downsample": spec["downsample"],
        "train_seq": spec["train_seq"],
        "eval_seq": spec["eval_seq"],
        "hard_links": counts,
        "arms": arms,
        "power": {
            "alpha": settings.alpha,
            "power": settings.power,
            "n": len(next(iter(lnk.values()), {})),
            "target_delta": settings.target_delta,
            "arms": power,
        },
    }


# --------------------------------------------------------------------------- provenance and output
def config_sha256(paths: list[Path]) -> str:
    """sha256 of the config files' bytes, concatenated in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        if not path.is_file():
            raise ConfigError(path, "config file does not exist")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def git_commit(where: Path) -> dict[str, Any]:
    """The commit checked out at ``where`` and whether tracked files differ from it (None outside git)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True)
        except (OSError, subprocess.CalledProcessError):
            return None
        return done.stdout.strip()

    commit = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "tracked_changes": None if changed is None else bool(changed)}


def _finite(node: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(node, dict):
        return {k: _finite(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_finite(v) for v in node]
    if isinstance(node, float) and not math.isfinite(node):
        return None
    return node


def forest_plot(result: dict[str, Any], out: Path, force: bool = False) -> None:
    """ΔLNK and its paired t interval per arm against retrained and handcrafted; a panel per dataset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(result["datasets"])
    fig, axes = plt.subplots(1, len(names), figsize=(5.2 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names, strict=True):
        rows = []
        for arm in result["datasets"][name]["arms"]:
            if arm["name"] != BASELINE:
                rows.append((f"{arm['name']} − retrained", arm, "C0"))
        for arm in result["datasets"][name]["arms"]:
            if arm.get("vs_handcrafted"):
                rows.append((f"{arm['name']} − handcrafted", arm["vs_handcrafted"], "C1"))
        for y, (_, row, colour) in enumerate(reversed(rows)):
            if row["delta_mean"] is None:
                continue
            low, high = row["ci_low"], row["ci_high"]
            if low is not None and high is not None:
                ax.plot([low, high], [y, y], color=colour, lw=2)
            ax.plot(row["delta_mean"], y, "o", color=colour)
            p = row.get("p_value")
            ax.annotate(f"p={p:.2g}" if p is not None else "", (1.0, y), xycoords=("axes fraction", "data"),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)  # fmt: skip
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(5))
        ax.set_yticks(range(len(rows)), [label for label, _, _ in reversed(rows)], fontsize=8)
        info = result["datasets"][name]
        ax.set_title(f"{name} (÷{info['downsample']}, n={info['power']['n']} seeds)", fontsize=9)
        ax.set_xlabel("ΔLNK (paired t 95 % CI; Holm-adjusted p)", fontsize=8)
    fig.tight_layout()
    with atomic_path(out, COMMAND, force) as tmp:
        fig.savefig(tmp, dpi=130, format="png")
    plt.close(fig)


def _interval(row: dict[str, Any] | None) -> str:
    """``Δ [low, high]`` of a comparison row, or a dash."""
    if not row or row.get("delta_mean") is None:
        return "–"
    low, high = row.get("ci_low"), row.get("ci_high")
    bounds = f" [{low:+.4f}, {high:+.4f}]" if low is not None and high is not None else ""
    return f"{row['delta_mean']:+.4f}{bounds}"


def _p(row: dict[str, Any] | None) -> str:
    return "–" if not row or row.get("p_value") is None else f"{row['p_value']:.3f}"


def _count(arm: dict[str, Any], key: str) -> str:
    """``k/n`` of an arm's count (a dash in results written before the count was kept)."""
    return "–" if arm.get(key) is None else f"{arm[key]}/{arm['n']}"


def markdown_summary(result: dict[str, Any]) -> str:
    """The result as Markdown: a table of every arm per dataset, and its power line."""
    head = (
        "| arm | LNK (mean ± SD) | ΔLNK vs retrained [95 % CI] | p (Holm) | ΔLNK vs handcrafted [95 % CI] "
        "| p (Holm) | FN / FP / WS edges | hard-link recall | epochs run (median, range) | stopped early "
        "| best epoch = last run |"
    )
    lines = [f"config sha256 `{result['config_sha256'][:12]}…`, commit `{(result['commit'] or '?')[:7]}`, "
             f"version {result['version']}, seeds {result['seeds'][0]}–{result['seeds'][-1]}"]  # fmt: skip
    for name, data in result["datasets"].items():
        train, scored = data["hard_links"][data["train_seq"]], data["hard_links"][data["eval_seq"]]
        lines += [
            "",
            f"**{name}** (÷{data['downsample']}; {scored['links']} GT links in {data['eval_seq']}, "
            f"{scored['hard']} hard; {train['links']} in {data['train_seq']}, {train['hard']} hard, of which "
            f"{train['validation_links']} links and {train['validation_hard']} hard in the validation tail "
            f"from frame {train['validation_first_frame']})",
            "",
            head,
            "|" + "---|" * (head.count("|") - 1),
        ]
        for arm in data["arms"]:
            runs = [s["epochs_run"] for s in arm["seeds"] if s.get("epochs_run") is not None]
            epochs = f"{int(np.median(runs))} ({min(runs)}–{max(runs)})" if runs else "–"
            errors = " / ".join(f"{arm['errors_mean'][key]:.1f}" for key in ERRORS)
            recall = "–" if arm["hard_link_recall"] is None else f"{arm['hard_link_recall']:.2f}"
            baseline_row = None if arm["name"] == BASELINE else arm
            lines.append(
                f"| {arm['name']} | {arm['lnk_mean']:.4f} ± {arm['lnk_sd']:.4f} | {_interval(baseline_row)} "
                f"| {_p(baseline_row)} | {_interval(arm['vs_handcrafted'])} | {_p(arm['vs_handcrafted'])} "
                f"| {errors} | {recall} | {epochs} | {_count(arm, 'stopped_early')} "
                f"| {_count(arm, 'chose_last_epoch')} |"
            )
        power = data["power"]
        detect = ", ".join(f"{k} {v['detectable_delta']:.4f}" for k, v in power["arms"].items()
                           if v["detectable_delta"] is not None)  # fmt: skip
        need = ", ".join(f"{k} {v['seeds_for_target_delta']}" for k, v in power["arms"].items())
        lines += [
            "",
            f"Smallest ΔLNK detectable with {power['power']:.0%} power at α = {power['alpha']} ({power['n']} "
            f"seeds, observed SD of the paired differences): {detect}; seeds needed for ΔLNK = "
            f"{power['target_delta']}: {need}.",
        ]
    return "\n".join(lines) + "\n"


def real_gain(
    spec: dict[str, Any], configs: list[Path], settings: RealGainSettings, version: int
) -> dict[str, Any]:
    """The study's result dict (see the module docstring)."""
    result = {
        "config_files": [str(p) for p in configs],
        "config_sha256": config_sha256(configs),
        **git_commit(Path.cwd()),
        "version": version,
        "protocol": "clean",
        "data_root": spec.get("data_root"),
        "seeds": spec["seeds"],
        "settings": settings.model_dump(),
        "datasets": {name: dataset_result(ds, settings) for name, ds in spec["datasets"].items()},
    }
    return _finite(result)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate real-gain``."""
    parser = argparse.ArgumentParser(
        prog="denselink evaluate real-gain",
        description="Per dataset and arm of the real-data study: per-seed scores, edge errors, hard-link "
        "recall, paired t ΔLNK against retrained and handcrafted (Holm), power; JSON and forest plot.",
    )
    parser.add_argument("--spec", required=True, help="the study's inputs as JSON (workflow/rules/real.smk)")
    parser.add_argument("--config-file", type=Path, nargs="+", required=True, help="config files of the run")
    parser.add_argument("--version", type=int, required=True, help="real_gain.version of the config")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--plot", type=Path, required=True, help="forest plot PNG")
    parser.add_argument("--markdown", type=Path, default=None, help="the result as Markdown tables")
    parser.add_argument("--settings", default=None, help="RealGainSettings JSON (file or inline)")
    add_force_flag(parser)
    args = parser.parse_args(argv)
    for path in (args.out, args.plot, args.markdown):
        if path is not None:
            check_output(path, COMMAND, args.force)
    try:
        spec = json.loads(args.spec)
    except json.JSONDecodeError as err:
        raise ConfigError("--spec", f"not valid JSON: {err}") from err
    settings = load_settings(RealGainSettings, args.settings)
    result = real_gain(spec, args.config_file, settings, args.version)
    write_json(args.out, result, COMMAND, args.force)
    forest_plot(result, args.plot, args.force)
    if args.markdown is not None:
        with atomic_path(args.markdown, COMMAND, args.force) as tmp:
            tmp.write_text(markdown_summary(result))
    print(f"real-gain: {len(result['datasets'])} datasets -> {args.out}, {args.plot}")
    return 0
