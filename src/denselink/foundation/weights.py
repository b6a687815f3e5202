"""Checkpoints of the SAM-family encoders: registry, checksummed download, loading.

The URLs and xxh128 checksums are those of micro_sam's model registry (``micro_sam.util.models``).
When micro_sam is installed its registry (a pooch object) fetches the file; otherwise the same
file is downloaded here and checked against the same checksum. A configured local checkpoint is
used as it is (no registry checksum applies to it; its hashes are recorded in the output).
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch
import xxhash
from tqdm import tqdm

from denselink.atomic import atomic_path
from denselink.errors import CheckpointError, DownloadError
from denselink.torch_files import load_torch_file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegistryEntry:
    """One downloadable encoder checkpoint."""

    url: str
    xxh128: str
    filename: str


REGISTRY: dict[str, RegistryEntry] = {
    "vit_b": RegistryEntry(
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        xxh128="6923c33df3637b6a922d7682bfc9a86b",
        filename="vit_b",
    ),
    "vit_b_lm": RegistryEntry(
        url="https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io/diplomatic-bug/1.2/files/vit_b.pt",
        xxh128="fe9252a29f3f4ea53c15a06de471e186",
        filename="vit_b_lm",
    ),
}
DEFAULT_CACHE = Path("~/.cache/denselink/models")


def file_hashes(path: str | Path, chunk_size: int = 1 << 20) -> dict[str, str]:
    """``{"sha256": ..., "xxh128": ...}`` of a file, read once in chunks."""
    sha, xxh = hashlib.sha256(), xxhash.xxh128()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            sha.update(chunk)
            xxh.update(chunk)
    return {"sha256": sha.hexdigest(), "xxh128": xxh.hexdigest()}


def _download(url: str, target: Path) -> None:
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            total = int(response.headers.get("Content-Length") or 0) or None
            with (
                open(tmp, "wb") as out,
                tqdm(total=total, unit="B", unit_scale=True, desc=target.name) as bar,
            ):
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:
        raise DownloadError(url, f"download failed ({err})") from err


def _fetch_with_micro_sam(model_type: str, cache_dir: Path | None) -> Path | None:
    try:
        from micro_sam.util import models
    except ImportError:
        return None
    registry = models()
    if cache_dir is not None:
        registry.path = cache_dir.expanduser()
    log.info("fetching %s through micro_sam's registry into %s", model_type, registry.path)
    return Path(registry.fetch(model_type, progressbar=True))


def fetch_checkpoint(model_type: str, cache_dir: str | Path | None = None) -> Path:
    """Path of the registry checkpoint of ``model_type``, downloaded (checksum-checked) if not cached."""
    if model_type not in REGISTRY:
        raise CheckpointError(model_type, f"unknown model type; known: {sorted(REGISTRY)}")
    cache = None if cache_dir is None else Path(cache_dir)
    via_micro_sam = _fetch_with_micro_sam(model_type, cache)
    if via_micro_sam is not None:
        return via_micro_sam
    entry = REGISTRY[model_type]
    target = (cache or DEFAULT_CACHE).expanduser() / entry.filename
    if not target.is_file():
        log.info("downloading %s from %s", model_type, entry.url)
        _download(entry.url, target)
    actual = file_hashes(target)["xxh128"]
    if actual != entry.xxh128:
        corrupt = target.with_name(target.name + ".corrupt")
        shutil.move(target, corrupt)
        raise DownloadError(
            target, f"xxh128 {actual} does not match the registry's {entry.xxh128}; moved to {corrupt.name}"
        )
    return target


def load_encoder_state(path: str | Path) -> OrderedDict[str, torch.Tensor]:
    """The ``image_encoder`` weights (prefix removed) of a SAM or micro_sam checkpoint file.

    Accepts a plain SAM state dict, micro_sam's exported ``{"model_state", "decoder_state"}`` and
    torch_em training checkpoints whose keys start with ``sam.``, as micro_sam does.
    """
    path = Path(path)
    state = load_torch_file(path, weights_only=True)
    if isinstance(state, dict) and "model_state" in state:
        state = state["model_state"]
    if not isinstance(state, dict):
        raise CheckpointError(path, f"expected a state dict, found {type(state).__name__}")
    encoder: OrderedDict[str, torch.Tensor] = OrderedDict()
    for key, value in state.items():
        name = key[len("sam.") :] if key.startswith("sam.") else key
        if name.startswith("image_encoder."):
            encoder[name[len("image_encoder.") :]] = value
    if not encoder:
        raise CheckpointError(path, "no 'image_encoder.*' weights in this checkpoint")
    return encoder
