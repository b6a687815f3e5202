"""``denselink maester infer``: dense MAESTER embeddings of a sequence, by cover-and-stride, into zarr.

    denselink maester infer --checkpoint C --manifest M --out Z.zarr --settings JSON

Writes a zarr v3 group with array ``embedding`` ``(T, C, H, W)`` float16, chunks ``(1, C, tile, tile)``;
every frame is min-max scaled (as in pretraining) before inference.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr
from tqdm import tqdm

from denselink import __version__
from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser, start
from denselink.compression import compressors
from denselink.data.manifest import load_manifest
from denselink.device import device_record, resolve_device
from denselink.errors import ConfigError, CTCFormatError
from denselink.maester.checkpoint import load_model
from denselink.maester.cover import (
    CoverGeometry,
    cover_and_stride,
    cover_and_stride_reference,
    plan_cover,
)
from denselink.maester.dataset import minmax_scale
from denselink.maester.settings import MaesterInferSettings

__all__ = ["MaesterInferSettings", "cover_and_stride", "cover_and_stride_reference", "infer_sequence", "main"]


def _autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    if device.type != "cuda":
        if setting in ("bf16", "fp16"):
            raise ConfigError("--settings autocast", f"{setting} runs on CUDA only; use 'auto' or 'off'")
        return None
    if setting == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[setting]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


COMMAND = "maester infer"


def infer_sequence(
    checkpoint: str | Path,
    manifest: str | Path,
    out: str | Path,
    settings: MaesterInferSettings,
    force: bool = False,
) -> Path:
    """Embed every frame of ``manifest``'s sequence with the encoder of ``checkpoint``; returns ``out``.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    checkpoint, out = Path(checkpoint), Path(out)
    check_output(out, COMMAND, force)
    sequence = load_manifest(manifest)
    missing = [p for p in sequence.frames if not p.is_file()]
    if missing:
        raise CTCFormatError(missing[0], f"frame file is missing ({len(missing)} missing in total)")
    model, state = load_model(checkpoint)
    model_settings = model.settings
    geometry = CoverGeometry(
        model_settings.img_size, model_settings.patch_size, settings.central_patch, settings.legacy_offset
    )
    plan_cover(sequence.shape, geometry)  # raises early when the frames are too small
    device = resolve_device(settings.device, "maester.infer.device")
    amp = _autocast_dtype(settings.autocast, device)
    model.to(device)
    height, width = sequence.shape
    tile = (min(settings.tile, height), min(settings.tile, width))
    attrs: dict[str, Any] = {
        "backbone": "maester",
        "checkpoint": str(checkpoint),
        "checkpoint_sha256": _sha256(checkpoint),
        "epoch": state.get("epoch"),
        "image_shape": [height, width],
        "dtype": "float16",
        "dataset": sequence.dataset,
        "sequence": sequence.sequence,
        **device_record(device),
        "model_settings": model_settings.model_dump(),
        "settings": settings.model_dump(),
        "source_hashes": {str(p): _sha256(p) for p in sequence.frames},
        "denselink_version": __version__,
    }
    with atomic_path(out, COMMAND, force) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3)
        array = group.create_array(
            "embedding",
            shape=(sequence.n_frames, model_settings.embed_dim, height, width),
            chunks=(1, model_settings.embed_dim, *tile),
            dtype="float16",
            fill_value=0,
            config={"write_empty_chunks": True},  # every chunk stored: readers treat a missing one as lost
            compressors=compressors(settings.compression, settings.compression_level),
        )
        for t in tqdm(range(sequence.n_frames), desc=f"maester {sequence.sequence}"):
            frame = minmax_scale(sequence.read_frame(t))
            dense = cover_and_stride(model.encode, frame, geometry, settings.batch_size, device, amp)
            array[t] = dense.astype(np.float16)
        array.attrs.update(attrs)
        group.attrs.update(attrs)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        COMMAND, "Dense per-pixel MAESTER embeddings of one sequence by cover-and-stride inference."
    )
    parser.add_argument(
        "--checkpoint", required=True, type=Path,
        help="a denselink MAESTER checkpoint (checkpoints/epoch{N}.pt) or an original MAESTER state dict",
    )  # fmt: skip
    parser.add_argument("--manifest", required=True, type=Path, help="manifest of one sequence")
    parser.add_argument(
        "--out", required=True, type=Path,
        help="output zarr v3 group; array 'embedding' (T, C, H, W) float16 (written atomically)",
    )  # fmt: skip
    parser.add_argument(
        "--settings", default=None,
        help="JSON or a YAML/JSON file with MaesterInferSettings keys (central_patch, batch_size, "
        "legacy_offset, autocast, device, tile, compression, compression_level); omitted keys take "
        "the defaults",
    )  # fmt: skip
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args, settings = start(build_parser(), argv, COMMAND, MaesterInferSettings)
    infer_sequence(args.checkpoint, args.manifest, args.out, settings, args.force)
    return 0
