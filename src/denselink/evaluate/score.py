"""``denselink evaluate score``: LNK, TRA, DET and the CTC's error counts of any CTC result folder.

Scores ``--res`` (``mask*.tif`` + ``res_track.txt``) against ``--gt`` (a ``{seq}_GT`` folder with
``TRA/``, as ``ctc_evaluate --gt`` takes it, or its ``TRA`` folder) with the Cell Tracking
Challenge's own implementation, py-ctcmetrics (:func:`denselink.evaluate.metrics.score_ctc`), and
prints one JSON object on stdout: ``LNK``, ``TRA``, ``DET``, ``AOGM``, ``AOGM_0`` and the error
counts ``AOGM_NS``, ``AOGM_FN``, ``AOGM_FP`` (split, missing, redundant nodes) and ``AOGM_ED``,
``AOGM_EA``, ``AOGM_EC`` (redundant, missing and wrong-semantics edges), as ``ctc_evaluate`` names
them, plus the two folders. A folder that is missing, incomplete or invalid is named in the error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from denselink.command import command_parser
from denselink.errors import CTCFormatError
from denselink.evaluate.metrics import score_ctc


def gt_tra_folder(gt: Path) -> Path:
    """The folder holding ``man_track.txt``: ``gt/TRA`` of a ``{seq}_GT`` folder, or ``gt`` itself."""
    gt = Path(gt)
    if not gt.is_dir():
        raise CTCFormatError(gt, "GT folder does not exist")
    for folder in (gt / "TRA", gt):
        if (folder / "man_track.txt").is_file():
            return folder
    raise CTCFormatError(gt, "neither TRA/man_track.txt nor man_track.txt: not a {seq}_GT or TRA folder")


def score_folder(res: Path, gt: Path) -> dict[str, object]:
    """The JSON object ``evaluate score`` prints for ``res`` against ``gt``."""
    tra = gt_tra_folder(gt)
    return {"res": str(res), "gt": str(tra), **score_ctc(tra, Path(res))}


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser("evaluate score", __doc__.splitlines()[0])
    parser.add_argument(
        "--res", type=Path, required=True, help="CTC result folder (mask*.tif, res_track.txt)"
    )
    parser.add_argument(
        "--gt", type=Path, required=True, help="ground truth: a {seq}_GT folder (with TRA/) or its TRA folder"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink evaluate score``."""
    args = build_parser().parse_args(argv)
    json.dump(score_folder(args.res, args.gt), sys.stdout)
    sys.stdout.write("\n")
    return 0
