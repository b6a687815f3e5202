"""Cut this crop of Fluo-N2DH-SIM+ 01's TRA ground truth from the original CTC training data (README.md).

    python tests/data/ctc_sim01_one_child/make_crop.py --source /path/to/Fluo-N2DH-SIM+ [--out DIR]

Only ``01_GT/TRA`` is cut (masks and ``man_track.txt``, no raw frames), by the rules of
``tests/data/ctc_sim_crop/make_crop.py`` (whose functions this script uses), to the frames and
region of ``CROP``: they hold track 2's single child 60 (frames 24 -> 25 of the original) and the
division of track 9 into 67 and 68 (frame 35 -> 36).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import tifffile

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "ctc_sim_crop"))
import make_crop as sim_crop  # noqa: E402  (the sibling crop's script)

CROP = sim_crop.Crop(t0=18, n_frames=20, y0=352, x0=320, height=256, width=256)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="original Fluo-N2DH-SIM+ folder")
    parser.add_argument("--out", type=Path, default=HERE, help="crop folder to write")
    args = parser.parse_args()
    tra_in, tra_out = args.source / "01_GT" / "TRA", args.out / "01_GT" / "TRA"
    tra_out.mkdir(parents=True, exist_ok=True)
    times = range(CROP.t0, CROP.t0 + CROP.n_frames)
    masks = [
        sim_crop.drop_slivers(sim_crop.cut(tifffile.imread(tra_in / f"man_track{t:03d}.tif"), CROP))
        for t in times
    ]
    masks, table = sim_crop.crop_tracks(masks, sim_crop.read_man_track(tra_in / "man_track.txt"), CROP.t0)
    for t, mask in enumerate(masks):
        tifffile.imwrite(tra_out / f"man_track{t:03d}.tif", mask, compression="lzw")
    lines = [" ".join(str(int(v)) for v in row) for row in table.itertuples(index=False)]
    (tra_out / "man_track.txt").write_text("".join(f"{line}\n" for line in lines))
    print(f"01: {CROP}, {len(table)} tracks, {int((table['parent'] > 0).sum())} with a parent")


if __name__ == "__main__":
    main()
