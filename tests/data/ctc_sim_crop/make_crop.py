"""Cut the test crop of Fluo-N2DH-SIM+ from the original CTC training data (see README.md beside it).

    python tests/data/ctc_sim_crop/make_crop.py --source /path/to/Fluo-N2DH-SIM+ [--out DIR]

Every sequence is cut to the frames and region in ``CROPS`` (chosen for the divisions they hold).
Raw frames and TRA masks keep their dtype (uint16) and LZW compression. ``man_track.txt`` is
rewritten so that it holds exactly what the cut masks show, by the CTC rules:

- a mask region with fewer than ``MIN_AREA`` pixels inside the crop counts as outside it;
- a track present in several separate runs of frames (it left the crop and came back) is split:
  the first run keeps the label, each later run gets a new label and no parent;
- start and end are the first and last frame of the run, renumbered from 0;
- a parent link is kept only when the parent's run ends at the parent's original last frame
  (the division is inside the crop); otherwise the track starts without a parent.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

MIN_AREA = 30


@dataclass(frozen=True)
class Crop:
    """Frames ``t0 .. t0+n_frames-1`` and the region ``[y0, y0+height) x [x0, x0+width)``."""

    t0: int
    n_frames: int
    y0: int
    x0: int
    height: int
    width: int


CROPS = {
    "01": Crop(t0=8, n_frames=24, y0=400, x0=64, height=256, width=240),
    "02": Crop(t0=126, n_frames=24, y0=96, x0=224, height=240, width=256),
}


def read_man_track(path: Path) -> pd.DataFrame:
    """``label start end parent`` rows of a CTC track file."""
    return pd.read_csv(path, sep=r"\s+", header=None, names=["label", "start", "end", "parent"], dtype=int)


def cut(image: np.ndarray, crop: Crop) -> np.ndarray:
    """The crop's region of one frame."""
    return image[crop.y0 : crop.y0 + crop.height, crop.x0 : crop.x0 + crop.width]


def drop_slivers(mask: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """``mask`` with regions of fewer than ``min_area`` pixels set to background."""
    labels, counts = np.unique(mask, return_counts=True)
    small = labels[(counts < min_area) & (labels != 0)]
    return np.where(np.isin(mask, small), 0, mask).astype(mask.dtype)


def presence_runs(present: list[set[int]]) -> dict[int, list[tuple[int, int]]]:
    """Per label, the maximal runs ``(first, last)`` of consecutive frames it is present in."""
    runs: dict[int, list[tuple[int, int]]] = {}
    for t, labels in enumerate(present):
        for label in labels:
            spans = runs.setdefault(label, [])
            if spans and spans[-1][1] == t - 1:
                spans[-1] = (spans[-1][0], t)
            else:
                spans.append((t, t))
    return runs


def crop_tracks(
    masks: list[np.ndarray], tracks: pd.DataFrame, t0: int
) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Relabel split tracks in the cut ``masks`` (in place) and build the consistent track table."""
    original = tracks.set_index("label")
    runs = presence_runs([set(np.unique(m[m > 0]).tolist()) for m in masks])
    next_label = int(max(tracks["label"].max(), max(runs, default=0))) + 1
    names: dict[tuple[int, int], int] = {}  # (label, run index) -> label in the crop
    for label in sorted(runs):
        for k, (first, last) in enumerate(runs[label]):
            names[label, k] = label
            if k > 0:
                names[label, k], next_label = next_label, next_label + 1
                for t in range(first, last + 1):
                    masks[t][masks[t] == label] = names[label, k]
    rows = []
    for label in sorted(runs):
        for k, (first, last) in enumerate(runs[label]):
            parent = 0
            mother = int(original.at[label, "parent"])
            born_inside = k == 0 and t0 + first == int(original.at[label, "start"])
            if born_inside and mother in runs and t0 + runs[mother][-1][1] == int(original.at[mother, "end"]):
                parent = names[mother, len(runs[mother]) - 1]
            rows.append((names[label, k], first, last, parent))
    table = pd.DataFrame(rows, columns=["label", "start", "end", "parent"]).sort_values("label")
    return masks, table.reset_index(drop=True)


def crop_sequence(source: Path, out: Path, seq: str, crop: Crop) -> pd.DataFrame:
    """Write the cut raw frames, TRA masks and ``man_track.txt`` of one sequence; return the tracks."""
    frames_out, tra_out = out / seq, out / f"{seq}_GT" / "TRA"
    frames_out.mkdir(parents=True, exist_ok=True)
    tra_out.mkdir(parents=True, exist_ok=True)
    times = range(crop.t0, crop.t0 + crop.n_frames)
    for t in times:
        frame = cut(tifffile.imread(source / seq / f"t{t:03d}.tif"), crop)
        tifffile.imwrite(frames_out / f"t{t - crop.t0:03d}.tif", frame, compression="lzw")
    masks = [
        drop_slivers(cut(tifffile.imread(source / f"{seq}_GT" / "TRA" / f"man_track{t:03d}.tif"), crop))
        for t in times
    ]
    masks, table = crop_tracks(masks, read_man_track(source / f"{seq}_GT" / "TRA" / "man_track.txt"), crop.t0)
    for t, mask in enumerate(masks):
        tifffile.imwrite(tra_out / f"man_track{t:03d}.tif", mask, compression="lzw")
    lines = [" ".join(str(int(v)) for v in row) for row in table.itertuples(index=False)]
    (tra_out / "man_track.txt").write_text("".join(f"{line}\n" for line in lines))
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="original Fluo-N2DH-SIM+ folder")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent, help="crop folder to write")
    args = parser.parse_args()
    for seq, crop in CROPS.items():
        table = crop_sequence(args.source, args.out, seq, crop)
        print(f"{seq}: {crop}, {len(table)} tracks, {int((table['parent'] > 0).sum())} with a parent")


if __name__ == "__main__":
    main()
