"""Matplotlib drawing of the Appendix C figures from precomputed points (see ``points``)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from denselink.atomic import atomic_path  # noqa: E402

BASELINE_COLOR = "0.35"
PROTOCOL_TITLES = {
    "paper": "paper: each seed's best Trackastra epoch (authors' App. C;\n"
    "Table 1 takes one epoch for all seeds)",
    "clean": "clean: checkpoint of lowest validation loss",
}
SPREAD = "mean ± SD (ddof=1) over seeds"


def _sd(point: dict) -> float:
    """A point's SD, 0 where one seed gives none."""
    return point["sd"] or 0.0


def _baseline(ax: Axes, point: dict | None) -> None:
    if point is None:
        return
    ax.axhline(point["mean"], color=BASELINE_COLOR, linestyle="--", linewidth=1.2)
    ax.axhspan(point["mean"] - _sd(point), point["mean"] + _sd(point), color=BASELINE_COLOR, alpha=0.15, lw=0)


def _mark_missing(ax: Axes, xs: list[float], colors: list[str]) -> None:
    """Hollow markers on the bottom edge of the axes, annotated 'missing'."""
    if not xs:
        return
    transform = ax.get_xaxis_transform()
    ax.scatter(
        xs, [0.03] * len(xs), transform=transform, facecolors="none", edgecolors=colors, s=50, zorder=5
    )
    for x in xs:
        ax.annotate(
            "missing",
            (x, 0.03),
            xycoords=transform,
            xytext=(0, 7),
            textcoords="offset points",
            ha="center",
            fontsize=7,
            rotation=90,
            color="0.3",
        )


def _legend_extras(has_baseline: bool, has_missing: bool) -> list[Line2D]:
    handles = []
    if has_baseline:
        handles.append(
            Line2D([], [], color=BASELINE_COLOR, linestyle="--", label=f"Trackastra (re-trained), {SPREAD}")
        )
    if has_missing:
        handles.append(
            Line2D(
                [],
                [],
                marker="o",
                markerfacecolor="none",
                markeredgecolor="0.3",
                linestyle="none",
                label="missing run (no data)",
            )
        )
    return handles


def scaling_figure(
    title: str, series_labels: dict[str, str], protocols: dict[str, dict], xlabel: str
) -> Figure:
    """One panel per protocol: mean LNK ± SD over seeds against pretraining epoch (log x), per series."""
    n = max(len(protocols), 1)
    fig, axes = plt.subplots(1, n, figsize=(6.2 * n, 4.6), sharex=True, sharey=True, squeeze=False)
    xs = [p["x"] for data in protocols.values() for p in data["points"] + data["missing"] if p["x"] > 0]
    if xs:  # missing runs are drawn in axes coordinates, so the shared range must include them
        axes[0][0].set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    colors = {s: f"C{i}" for i, s in enumerate(series_labels)}
    for ax, (protocol, data) in zip(axes[0], protocols.items(), strict=False):
        _baseline(ax, data["baseline"])
        for series, label in series_labels.items():
            pts = [p for p in data["points"] if p["series"] == series]
            if pts:
                xs, ms, sds = [p["x"] for p in pts], [p["mean"] for p in pts], [_sd(p) for p in pts]
                name = f"MAESTER pretrained on {label}"
                ax.errorbar(xs, ms, yerr=sds, color=colors[series], marker="o", capsize=3, label=name)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_title(PROTOCOL_TITLES[protocol], fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        if not data["points"]:
            ax.text(0.5, 0.5, "no runs selectable under this protocol", transform=ax.transAxes, ha="center")
        missing = data["missing"]
        _mark_missing(ax, [m["x"] for m in missing], [colors[m["series"]] for m in missing])
    has_baseline = any(data["baseline"] is not None for data in protocols.values())
    has_missing = any(data["missing"] for data in protocols.values())
    axes[0][0].set_ylabel(f"LNK ({SPREAD})")
    return _finish(fig, title, _legend_extras(has_baseline, has_missing))


def _finish(fig: Figure, title: str, extras: list[Line2D]) -> Figure:
    """One legend for the whole figure (unique entries of all panels) below the panels, and a title."""
    entries: dict[str, object] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    for handle in extras:
        entries.setdefault(handle.get_label(), handle)
    fig.suptitle(title)
    if entries:
        fig.legend(
            list(entries.values()), list(entries), loc="lower center", ncol=min(len(entries), 4), fontsize=9
        )
    fig.tight_layout(rect=(0, 0.1 if entries else 0, 1, 1))
    return fig


def transfer_figure(title: str, panels: list[dict]) -> Figure:
    """One row per protocol, one panel per MAESTER embedding: LNK over Trackastra epochs, mean ± SD."""
    protocols = list(dict.fromkeys(panel["protocol"] for panel in panels)) or [None]
    ncols = max([sum(p["protocol"] == protocol for p in panels) for protocol in protocols] + [1])
    fig, axes = plt.subplots(
        len(protocols), ncols, figsize=(6.0 * ncols, 4.4 * len(protocols)), sharey=True, squeeze=False
    )
    for ax in axes.flat:
        ax.set_visible(False)
    for row, protocol in enumerate(protocols):
        mine = [panel for panel in panels if panel["protocol"] == protocol]
        for ax, panel in zip(axes[row], mine, strict=False):
            ax.set_visible(True)
            _transfer_panel(ax, panel)
        axes[row][0].set_ylabel(f"LNK ({SPREAD})")
    return _finish(fig, title, [])


def _transfer_panel(ax: Axes, panel: dict) -> None:
    """One embedding's curve over the re-trained baseline's curve of the same protocol."""
    baseline = panel["baseline"]
    if baseline is not None and baseline["points"]:
        _band(ax, baseline["points"], BASELINE_COLOR, f"Trackastra (re-trained), {SPREAD}", dashed=True)
    if panel["missing"]:
        ax.text(
            0.5,
            0.5,
            "missing: no runs for\n" + panel["variant"],
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="0.3",
            bbox={"facecolor": "white", "edgecolor": "0.5", "linestyle": ":"},
        )
    else:
        _band(ax, panel["points"], "C0", f"with MAESTER embeddings, {SPREAD}", dashed=False)
    ax.set_title(panel["title"], fontsize=10)
    ax.set_xlabel("Trackastra training epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(True, alpha=0.25)


def _band(ax: Axes, points: list[dict], color: str, label: str, dashed: bool) -> None:
    xs = [p["x"] for p in points]
    means = [p["mean"] for p in points]
    ax.plot(xs, means, color=color, linestyle="--" if dashed else "-", label=label)
    ax.fill_between(
        xs,
        [p["mean"] - _sd(p) for p in points],
        [p["mean"] + _sd(p) for p in points],
        color=color,
        alpha=0.2,
        lw=0,
    )


def save(
    fig: Figure, out_dir: Path, stem: str, command: str | None = None, force: bool = False
) -> list[Path]:
    """Write ``{stem}.png`` (150 dpi) and ``{stem}.svg`` atomically as ``command``'s outputs; the paths."""
    paths = []
    for suffix in ("png", "svg"):
        path = Path(out_dir) / f"{stem}.{suffix}"
        with atomic_path(path, command, force) as tmp:
            metadata = {"Date": None} if suffix == "svg" else None
            fig.savefig(tmp, format=suffix, dpi=150, metadata=metadata, bbox_inches="tight")
        paths.append(path)
    plt.close(fig)
    return paths
