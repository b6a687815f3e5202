"""Sequence manifests: the checked view of a raw sequence that every later stage reads.

A manifest JSON holds either one sequence (a validated CTC sequence) or, for Mitocheck
plates and other pretraining collections, ``{"sequences": [<sequence>, ...]}``.
A sequence is ``{"dataset", "sequence", "frames": [...], "masks": [...], "man_track",
"shape": [H, W], "dtype", "frame_hashes": [...]}``; ``masks`` is empty and ``man_track`` null for
raw-only data. ``frame_hashes`` holds the sha256 of each frame file as validated (empty where the
frames were only checked from their headers, as for Mitocheck plates); embeddings record the same
hashes, so a reader can check that an embedding was computed from this sequence.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from denselink.errors import CTCFormatError
from denselink.json_files import read_json


@dataclass(frozen=True)
class SequenceManifest:
    """Paths and geometry of one image sequence (frames in time order)."""

    dataset: str
    sequence: str
    frames: list[Path]
    shape: tuple[int, int]
    dtype: str
    masks: list[Path] = field(default_factory=list)
    man_track: Path | None = None
    frame_hashes: list[str] = field(default_factory=list)

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def has_masks(self) -> bool:
        return bool(self.masks)

    def read_frame(self, t: int) -> np.ndarray:
        """Raw frame ``t`` as a 2D array."""
        return read_tiff(self.frames[t])

    def read_mask(self, t: int) -> np.ndarray:
        """Tracking label mask of frame ``t`` (0 is background)."""
        if not self.masks:
            raise CTCFormatError(self.sequence, "this sequence has no ground-truth masks")
        return read_tiff(self.masks[t])

    def read_frames(self) -> np.ndarray:
        """All frames stacked as ``(T, H, W)``."""
        return np.stack([self.read_frame(t) for t in range(self.n_frames)])

    def read_masks(self) -> np.ndarray:
        """All masks stacked as ``(T, H, W)``."""
        return np.stack([self.read_mask(t) for t in range(self.n_frames)])

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["frames"] = [str(p) for p in self.frames]
        data["masks"] = [str(p) for p in self.masks]
        data["man_track"] = None if self.man_track is None else str(self.man_track)
        data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SequenceManifest:
        return cls(
            dataset=str(data["dataset"]),
            sequence=str(data["sequence"]),
            frames=[Path(p) for p in data["frames"]],
            shape=(int(data["shape"][0]), int(data["shape"][1])),
            dtype=str(data["dtype"]),
            masks=[Path(p) for p in data.get("masks", [])],
            man_track=None if data.get("man_track") is None else Path(data["man_track"]),
            frame_hashes=[str(h) for h in data.get("frame_hashes", [])],
        )


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (the hash embeddings record of their source frames)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_tiff(path: str | Path) -> np.ndarray:
    """Read a 2D TIFF (LZW-compressed too), naming the file when it is unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CTCFormatError(path, "file is missing")
    try:
        image = tifffile.imread(path)
    except Exception as err:  # tifffile raises many types for corrupt files
        raise CTCFormatError(path, f"unreadable or corrupt TIFF ({type(err).__name__}: {err})") from err
    if image.size == 0:
        raise CTCFormatError(path, "corrupt or truncated TIFF (no pixel data)")
    image = np.squeeze(image)
    if image.ndim != 2:
        raise CTCFormatError(path, f"expected a 2D image, got shape {image.shape}")
    return image


def load_manifests(path: str | Path) -> list[SequenceManifest]:
    """All sequences of a manifest file (one for a CTC sequence, many for a plate)."""
    path = Path(path)
    missing = "manifest does not exist (run the validate step first)"
    data = read_json(path, CTCFormatError, missing, "manifest is not valid JSON")
    entries = data.get("sequences", [data])
    try:
        return [SequenceManifest.from_dict(entry) for entry in entries]
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise CTCFormatError(path, f"manifest entry is malformed ({err!r})") from err


def load_manifest(path: str | Path) -> SequenceManifest:
    """The single sequence of a CTC sequence manifest."""
    manifests = load_manifests(path)
    if len(manifests) != 1:
        raise CTCFormatError(path, f"expected one sequence, found {len(manifests)}")
    return manifests[0]
