"""Benchmark: bytes on disk of dense embedding volumes per zarr codec (raw float16 / stored bytes).

Two kinds of volume, on a generated cell sequence (no released weights are reachable here):
- ``maester``: cover-and-stride at the paper's dimensions (80/5/192/14, central_patch 4) with random
  weights on a 48x48 frame: every pixel receives a different token, the volume is not smooth;
- ``foundation``: a random-weight ViT grid (256 channels) upsampled to pixels by the guided upsampler
  (AnyUp's output is smooth in the same way), 2 frames of 128x128.

Codecs: ``none``; ``zstd-0`` (zarr's default, what volumes were written with before the setting
existed); ``zstd`` and ``blosc-zstd`` (bit-shuffled) at the settings' default level. The headline
``ratio`` is that of the default codec per kind; ``denselink plan`` uses it for its disk estimate.

    .venv/bin/python benchmarks/embedding_storage.py
"""

from __future__ import annotations

import datetime
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
import zarr
from zarr.codecs import ZstdCodec

from denselink import __version__
from denselink.atomic import write_json
from denselink.compression import compressors
from denselink.data.synthetic import SynthSettings, generate_sequence
from denselink.foundation.embed import FoundationSettings
from denselink.foundation.sam import EncoderSpec, encode_batch, grid_geometry, load_encoder
from denselink.foundation.upsample import GuidedUpsampler
from denselink.machine import machine_info
from denselink.maester.cover import CoverGeometry, cover_and_stride
from denselink.maester.dataset import minmax_scale
from denselink.maester.infer import MaesterInferSettings
from denselink.maester.model import MaesterModelSettings, build_model

RESULTS = Path(__file__).resolve().parent / "results" / "embedding_storage.json"
LEVEL = MaesterInferSettings().compression_level
DEFAULT = MaesterInferSettings().compression
CODECS = {
    "none": (),
    "zstd-0": (ZstdCodec(level=0),),
    f"zstd-{LEVEL}": compressors("zstd", LEVEL),
    f"blosc-zstd-{LEVEL}": compressors("blosc-zstd", LEVEL),
}


def frames(shape: tuple[int, int], n: int) -> np.ndarray:
    settings = SynthSettings(shape=shape, n_frames=max(n, 2), n_cells=max(2, shape[0] * shape[1] // 600))
    return generate_sequence(settings, 0).frames[:n]


def maester_volume() -> np.ndarray:
    model = build_model(MaesterModelSettings(), seed=0).eval()
    frame = minmax_scale(frames((48, 48), 1)[0])
    return cover_and_stride(model.encode, frame, CoverGeometry(), batch_size=128)[None].astype(np.float16)


def foundation_volume() -> np.ndarray:
    spec = EncoderSpec(img_size=128, embed_dim=64, depth=2, num_heads=2)
    encoder, _ = load_encoder("vit_b", spec, random_init=True, seed=0)
    raw = frames((128, 128), 2)
    guided = FoundationSettings().guided
    features = encode_batch(encoder.eval(), list(raw), spec, torch.device("cpu"))
    with torch.no_grad():
        dense = GuidedUpsampler(guided.sigma_spatial, guided.sigma_range)(
            features.float(), raw, grid_geometry(raw.shape[1:], spec).extent
        )
    return dense.to(torch.float16).numpy()


def stored_bytes(volume: np.ndarray, codecs: tuple, root: Path) -> int:
    group = zarr.open_group(root, mode="w", zarr_format=3)
    chunks = (1, volume.shape[1], *(min(256, n) for n in volume.shape[2:]))  # as the writers chunk
    array = group.create_array(
        "embedding", shape=volume.shape, chunks=chunks, dtype="float16", compressors=codecs
    )
    array[:] = volume
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and p.name != "zarr.json")


def main() -> None:
    torch.set_num_threads(1)
    volumes = {"maester": maester_volume(), "foundation": foundation_volume()}
    rows: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind, volume in volumes.items():
            rows[kind] = {"shape": list(volume.shape), "raw_bytes": volume.nbytes, "codecs": {}}
            for name, codecs in CODECS.items():
                size = stored_bytes(volume, codecs, Path(tmp) / f"{kind}-{name}.zarr")
                rows[kind]["codecs"][name] = {"bytes": size, "ratio": volume.nbytes / size}
    default = f"{DEFAULT}-{LEVEL}"
    result = {
        "ratio": {kind: rows[kind]["codecs"][default]["ratio"] for kind in rows},
        "default_codec": default,
        "volumes": rows,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "denselink_version": __version__,
        "machine": machine_info(),
    }
    write_json(RESULTS, result)
    print(json.dumps({k: result[k] for k in ("ratio", "default_codec")}, indent=2))


if __name__ == "__main__":
    main()
