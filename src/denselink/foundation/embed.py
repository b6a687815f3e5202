"""``denselink foundation embed``: SAM / muSAM embeddings of a sequence, upsampled to pixels, into zarr.

Output: a zarr v3 group with array ``embedding`` ``(T, 256, H, W)`` float16, chunks
``(1, 256, tile, tile)``; attrs (on the group and the array) record backbone, weights, upsampler
and settings. Frames are encoded and upsampled ``batch_size`` at a time and written as they come.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
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
from denselink.data.manifest import SequenceManifest, load_manifest
from denselink.device import device_record, resolve_device
from denselink.errors import CTCFormatError
from denselink.foundation.sam import encode_batch, grid_geometry, load_encoder
from denselink.foundation.settings import FoundationSettings
from denselink.foundation.upsample import (
    AnyUpUpsampler,
    BilinearUpsampler,
    GuidedUpsampler,
    Upsampler,
    load_anyup,
)

log = logging.getLogger(__name__)

MODEL_TYPES = {"sam": "vit_b", "musam": "vit_b_lm"}


def make_upsampler(settings: FoundationSettings, device: torch.device) -> Upsampler:
    """The configured upsampler; a fallback is announced with a WARNING line."""
    if settings.upsampler == "anyup":
        a = settings.anyup
        model, provenance = load_anyup(
            a.repo,
            a.source,
            a.pretrained,
            device,
            a.commit,
            a.weights_url,
            a.weights_sha256,
            settings.cache_dir,
            a.weights_path,
        )
        return AnyUpUpsampler(model, tile_pixels=a.tile_pixels, provenance=provenance)
    log.warning(
        "upsampler '%s' is configured instead of AnyUp (the paper's upsampler); recorded in the zarr attrs",
        settings.upsampler,
    )
    if settings.upsampler == "guided":
        return GuidedUpsampler(settings.guided.sigma_spatial, settings.guided.sigma_range)
    return BilinearUpsampler()


def _source_hashes(manifest: SequenceManifest) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in manifest.frames}


COMMAND = "foundation embed"


def embed_sequence(
    manifest_path: str | Path,
    out: str | Path,
    model: str,
    settings: FoundationSettings,
    force: bool = False,
) -> dict[str, Any]:
    """Embed every frame of a sequence into ``out`` (zarr); returns the attrs written.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    check_output(out, COMMAND, force)
    manifest = load_manifest(manifest_path)
    model_type = settings.model_type or MODEL_TYPES[model]
    device = resolve_device(settings.device, f"foundation.{model}.device")
    spec = settings.encoder.spec()
    upsampler = make_upsampler(settings, device)
    encoder, weights = load_encoder(
        model_type,
        spec,
        settings.checkpoint,
        settings.cache_dir,
        settings.random_init,
        settings.seed,
        settings.implementation,
    )
    encoder = encoder.to(device)
    height, width = manifest.shape
    geometry = grid_geometry(manifest.shape, spec)
    attrs: dict[str, Any] = {
        "backbone": model,
        **weights,
        "upsampler": upsampler.name,
        **getattr(upsampler, "provenance", {}),
        "image_shape": [height, width],
        "grid_valid": list(geometry.valid),
        "grid_extent": list(geometry.extent),
        "dtype": "float16",
        **device_record(device),
        "source_hashes": _source_hashes(manifest),
        "settings": settings.model_dump(mode="json"),
        "denselink_version": __version__,
    }
    log.info("embedding %d frames of %s with %s (%s)", manifest.n_frames, manifest_path, model_type, attrs)
    with atomic_path(out, COMMAND, force) as tmp:
        group = zarr.open_group(tmp, mode="w", zarr_format=3, attributes=attrs)
        array = group.create_array(
            "embedding",
            shape=(manifest.n_frames, spec.out_chans, height, width),
            chunks=(1, spec.out_chans, min(settings.chunk, height), min(settings.chunk, width)),
            dtype="float16",
            attributes=attrs,
            config={"write_empty_chunks": True},  # every chunk stored: readers treat a missing one as lost
            compressors=compressors(settings.compression, settings.compression_level),
        )
        for start in tqdm(range(0, manifest.n_frames, settings.batch_size), desc="embed", unit="batch"):
            stop = min(start + settings.batch_size, manifest.n_frames)
            frames = np.stack([_checked_frame(manifest, t) for t in range(start, stop)])
            with torch.no_grad():
                features = encode_batch(encoder, list(frames), spec, device)
                dense = upsampler(features.float(), frames, geometry.extent)
            array[start:stop] = dense.to(torch.float16).cpu().numpy()
    return attrs


def _checked_frame(manifest: SequenceManifest, t: int) -> np.ndarray:
    frame = manifest.read_frame(t)
    if frame.shape != tuple(manifest.shape):
        raise CTCFormatError(
            manifest.frames[t], f"frame shape {frame.shape} != manifest shape {manifest.shape}"
        )
    return frame


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        COMMAND,
        "SAM (vit_b) or muSAM (vit_b_lm) image embeddings of every frame, upsampled to pixels "
        "(AnyUp, or a declared bilinear/guided fallback), written as zarr (T, 256, H, W) float16.",
    )
    parser.add_argument("--model", required=True, choices=sorted(MODEL_TYPES), help="sam | musam")
    parser.add_argument("--manifest", required=True, type=Path, help="sequence manifest JSON (data validate)")
    parser.add_argument("--out", required=True, type=Path, help="output zarr directory")
    parser.add_argument(
        "--settings",
        default=None,
        help="FoundationSettings as inline JSON or a YAML/JSON file (keys: model_type, checkpoint, "
        "cache_dir, random_init, seed, encoder{img_size,embed_dim,depth,num_heads}, upsampler, "
        "anyup{repo,source,commit,pretrained,weights_url,weights_path,weights_sha256,tile_pixels}, "
        "guided{sigma_spatial,sigma_range}, batch_size, device, chunk, "
        "compression, compression_level); omitted keys take the paper's values",
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink foundation embed``."""
    args, settings = start(build_parser(), argv, COMMAND, FoundationSettings, logs=True)
    embed_sequence(args.manifest, args.out, args.model, settings, args.force)
    return 0
