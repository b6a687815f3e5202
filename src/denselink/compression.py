"""Lossless zarr codecs for the dense embedding volumes (the largest outputs of the pipeline).

Float16 embeddings compress little (their low mantissa bits are noise): in
benchmarks/results/embedding_storage.json Blosc zstd with bit-shuffling, the default, stores a MAESTER
cover-and-stride volume 1.46x and an upsampled foundation volume 1.35x smaller than raw (zarr's default,
zstd level 0: 1.18x and 1.15x). Whether a volume is kept at all is the workflow's choice
(``storage.keep_dense`` in the config: a volume not kept is deleted once its feature tables exist).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from zarr.codecs import BloscCodec, ZstdCodec

Compression = Literal["blosc-zstd", "zstd", "none"]


def compressors(name: Compression, level: int) -> tuple[BloscCodec | ZstdCodec, ...]:
    """The zarr v3 ``compressors`` of a setting: Blosc zstd with bit-shuffle, plain zstd, or none."""
    from zarr.codecs import BloscCodec, ZstdCodec  # zarr only where volumes are written

    if name == "blosc-zstd":
        return (BloscCodec(cname="zstd", clevel=level, shuffle="bitshuffle"),)
    if name == "zstd":
        return (ZstdCodec(level=level),)
    return ()
