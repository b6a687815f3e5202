"""``denselink tracking prepare``: build trackastra's per-sequence data once and cache it.

The cache holds a real ``trackastra.data.CTCData`` (GT TRA masks as detections, wrfeat
features, sliding windows with their association matrices), built without augmentation or
cropping; ``tracking train`` switches those on. Dense images and masks are dropped (wrfeat
training never reads them) and association matrices are lz4-compressed as trackastra does.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import torch
from trackastra.data import CTCData
from trackastra.data.data import _CompressedArray

from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser, start
from denselink.data.ctc import check_headers, read_man_track
from denselink.data.manifest import SequenceManifest, load_manifest
from denselink.errors import ConfigError, CTCFormatError, DenselinkError
from denselink.torch_files import load_torch_file
from denselink.tracking.settings import TrackastraSettings, min_frames

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


class TrackingCacheError(DenselinkError):
    """A prepared trackastra cache is missing, malformed or built with other settings."""

    kind = "tracking cache error"


@dataclass
class PreparedSequence:
    """A loaded cache: trackastra's dataset plus where it came from."""

    data: CTCData
    dataset: str
    sequence: str
    n_frames: int
    settings: dict[str, Any]
    path: Path


def check_manifest(manifest: SequenceManifest, where: str | Path) -> None:
    """Raise early when a sequence cannot give GT detections and lineages.

    The files trackastra and traccuracy read as stored are checked again as ``data validate`` checks
    them (the track table's format line by line, 2D frames and masks of one shape), naming the file.
    """
    if not manifest.has_masks or manifest.man_track is None:
        raise CTCFormatError(where, "sequence has no GT TRA masks / man_track.txt to build detections from")
    if len(manifest.masks) != manifest.n_frames:
        raise CTCFormatError(where, f"{manifest.n_frames} frames but {len(manifest.masks)} masks")
    read_man_track(manifest.man_track)
    check_headers(manifest.frames, manifest.masks)


def check_length(manifest: SequenceManifest, where: str | Path, settings: TrackastraSettings) -> None:
    """ConfigError unless the sequence is long enough for the window and the held-out tail."""
    needed = min_frames(settings.window, settings.val_fraction)
    if manifest.n_frames < needed:
        raise ConfigError(
            "tracking.settings.window / protocols.*.val_fraction",
            f"{where} has {manifest.n_frames} frames; window {settings.window} with val_fraction "
            f"{settings.val_fraction} needs at least {needed}",
        )


def _link_ctc_layout(manifest: SequenceManifest, root: Path) -> Path:
    """Symlink the manifest's files into the CTC layout ``CTCData`` expects; return the image dir."""
    images, tra = root / "seq", root / "seq_GT" / "TRA"
    images.mkdir(parents=True)
    tra.mkdir(parents=True)
    for t, (frame, mask) in enumerate(zip(manifest.frames, manifest.masks, strict=True)):
        (images / f"t{t:05d}.tif").symlink_to(Path(frame).resolve())
        (tra / f"man_track{t:05d}.tif").symlink_to(Path(mask).resolve())
    (tra / "man_track.txt").symlink_to(Path(manifest.man_track).resolve())
    return images


def build_ctc_data(manifest: SequenceManifest, settings: TrackastraSettings) -> CTCData:
    """trackastra's dataset of one sequence (GT TRA detections, no augmentation, no crop)."""
    backend = "threading" if settings.prepare_parallel else "sequential"
    with tempfile.TemporaryDirectory() as tmp:
        root = _link_ctc_layout(manifest, Path(tmp))
        try:
            with joblib.parallel_config(backend=backend):
                data = CTCData(
                    root=root,
                    ndim=settings.ndim,
                    detection_folders=["TRA"],
                    window_size=settings.window,
                    max_tokens=None,
                    augment=0,
                    features=settings.features,
                    crop_size=None,
                    compress=False,
                )
        except (ValueError, AssertionError, KeyError) as err:
            raise CTCFormatError(manifest.sequence, f"trackastra cannot build its dataset: {err}") from err
    if len(data.windows) == 0:
        raise CTCFormatError(manifest.sequence, f"fewer frames ({manifest.n_frames}) than window")
    data.imgs = data.gt_masks = None
    data.det_masks = {}
    for window in data.windows:
        window["img"] = window["mask"] = None
        window["assoc_matrix"] = _CompressedArray(window["assoc_matrix"])
    return data


COMMAND = "tracking prepare"


def prepare(manifest_path: Path, out: Path, settings: TrackastraSettings, force: bool = False) -> None:
    """Build and cache the trackastra data of the sequence in ``manifest_path``.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    check_output(out, COMMAND, force)
    manifest = load_manifest(manifest_path)
    check_manifest(manifest, manifest_path)
    check_length(manifest, manifest_path, settings)
    data = build_ctc_data(manifest, settings)
    payload = {
        "format": CACHE_FORMAT,
        "settings": settings.data_key(),
        "dataset": manifest.dataset,
        "sequence": manifest.sequence,
        "n_frames": manifest.n_frames,
        "manifest": str(manifest_path),
        "data": data,
    }
    with atomic_path(out, COMMAND, force) as tmp:
        torch.save(payload, tmp)
    log.info("cached %d windows of %s/%s in %s", len(data.windows), manifest.dataset, manifest.sequence, out)


def load_prepared(path: Path, settings: TrackastraSettings) -> PreparedSequence:
    """Load a cache, refusing one built with data settings other than ``settings``."""
    path = Path(path)
    payload = load_torch_file(
        path, what="cache (built by `denselink tracking prepare`)", error=TrackingCacheError
    )
    if not isinstance(payload, dict) or payload.get("format") != CACHE_FORMAT:
        raise TrackingCacheError(path, f"not a denselink trackastra cache of format {CACHE_FORMAT}")
    wanted = settings.data_key()
    if payload["settings"] != wanted:
        diff = {
            k: (payload["settings"].get(k), v) for k, v in wanted.items() if payload["settings"].get(k) != v
        }
        raise TrackingCacheError(path, f"built with other settings (cached, requested): {diff}; rebuild it")
    return PreparedSequence(
        data=payload["data"],
        dataset=payload["dataset"],
        sequence=payload["sequence"],
        n_frames=int(payload["n_frames"]),
        settings=payload["settings"],
        path=path,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, required=True, help="sequence manifest JSON (with GT masks)")
    parser.add_argument("--out", type=Path, required=True, help="cache file to write, e.g. {seq}.pt")
    parser.add_argument(
        "--settings",
        default=None,
        help="TrackastraSettings as inline JSON or a YAML/JSON file (data keys used; window and "
        "val_fraction also bound the sequence length)",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking prepare``."""
    args, settings = start(build_parser(), argv, COMMAND, TrackastraSettings, logs=True)
    prepare(args.manifest, args.out, settings, args.force)
    return 0
