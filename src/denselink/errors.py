"""One exception type per kind of bad input; each names the file and the problem."""

from __future__ import annotations

from pathlib import Path


class DenselinkError(Exception):
    """Base error: a file (or config location) and what is wrong with it."""

    kind = "error"

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.kind}: {self.path}: {problem}")


class CTCFormatError(DenselinkError):
    """A Cell Tracking Challenge sequence is malformed."""

    kind = "CTC format error"


class MitocheckFormatError(DenselinkError):
    """A Mitocheck plate directory or manifest is malformed."""

    kind = "Mitocheck format error"


class ConfigError(DenselinkError):
    """A configuration file or settings block is invalid."""

    kind = "config error"


class FeatureTableError(DenselinkError):
    """A per-cell feature table does not match the detections it must describe."""

    kind = "feature table error"


class CheckpointError(DenselinkError):
    """A model checkpoint or weight file is missing or unusable."""

    kind = "checkpoint error"


class DownloadError(DenselinkError):
    """A download failed or its checksum does not match."""

    kind = "download error"


class EmbeddingError(DenselinkError):
    """A dense embedding (zarr) is missing or does not match the sequence it must describe."""

    kind = "embedding error"


class OutputError(DenselinkError):
    """An output path holds something the command must not replace, or an output cannot be written."""

    kind = "output error"


class StorageError(DenselinkError):
    """A file cannot be written or read for a reason of the filesystem: a full disk, a quota, permissions."""

    kind = "storage error"


class LockError(DenselinkError):
    """A results root is in use by another run (its lock file names the holder)."""

    kind = "results root locked"


class DivergenceError(DenselinkError):
    """Training produced a non-finite loss or non-finite weights; the run stops at that epoch."""

    kind = "training diverged"
