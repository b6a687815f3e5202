"""Download a Cell Tracking Challenge training dataset: streamed, checksummed, extracted atomically.

Checksum policy: a sha256 given by the caller (flag or config) is enforced. Without one, the
digest recorded in ``{data_root}/{dataset}.sha256`` by an earlier download is enforced; when
there is no record either, the digest is computed, recorded there and printed (trust on first
use), so every later download of the dataset must match the first one.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from denselink.atomic import atomic_path
from denselink.command import command_parser
from denselink.errors import DownloadError

CTC_TRAINING_URL = "https://data.celltrackingchallenge.net/training-datasets/{dataset}.zip"
KNOWN_DATASETS = ("Fluo-N2DL-HeLa", "DIC-C2DH-HeLa")
CHUNK_BYTES = 1 << 20


def dataset_url(dataset: str) -> str:
    """Official CTC training-data URL of ``dataset``."""
    return CTC_TRAINING_URL.format(dataset=dataset)


def is_present(data_root: str | Path, dataset: str) -> bool:
    """Whether ``{data_root}/{dataset}`` already holds sequence 01 and the TRA ground truth of 02."""
    root = Path(data_root) / dataset
    return (root / "01").is_dir() and (root / "02_GT" / "TRA").is_dir()


def checksum_record(data_root: str | Path, dataset: str) -> Path:
    """File in which the trusted sha256 of a dataset's archive is recorded."""
    return Path(data_root) / f"{dataset}.sha256"


def fetch(url: str, dest: Path) -> str:
    """Stream ``url`` (http, https or file) to ``dest`` with a progress bar; return its sha256."""
    digest = hashlib.sha256()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, dest.open("wb") as sink:
            total = response.headers.get("Content-Length")
            with tqdm(
                total=int(total) if total else None, unit="B", unit_scale=True, desc=Path(url).name
            ) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    sink.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
    except (urllib.error.URLError, OSError, ValueError) as err:
        raise DownloadError(url, f"download failed ({type(err).__name__}: {err})") from err
    return digest.hexdigest()


def _expected_sha256(data_root: Path, dataset: str, sha256: str | None) -> str | None:
    if sha256:
        return sha256.lower()
    record = checksum_record(data_root, dataset)
    if record.is_file():
        return record.read_text().split()[0].lower()
    return None


def _extract(archive: Path, url: str, dest: Path) -> None:
    """Extract ``archive`` into ``dest``, unwrapping a single top-level folder, refusing unsafe paths."""
    try:
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                parts = PurePosixPath(name).parts
                if name.startswith("/") or ".." in parts:
                    raise DownloadError(url, f"archive member {name!r} points outside the target directory")
            zf.extractall(dest)
    except zipfile.BadZipFile as err:
        raise DownloadError(url, f"not a valid zip archive ({err})") from err
    entries = [p for p in dest.iterdir() if p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir():
        wrapper = entries[0]
        for child in list(wrapper.iterdir()):
            child.rename(dest / child.name)
        wrapper.rmdir()
    macosx = dest / "__MACOSX"
    if macosx.exists():
        shutil.rmtree(macosx)


def download_dataset(
    dataset: str, data_root: str | Path, url: str | None = None, sha256: str | None = None
) -> Path:
    """Download and extract ``dataset`` to ``{data_root}/{dataset}`` unless it is already there."""
    data_root = Path(data_root)
    target = data_root / dataset
    if is_present(data_root, dataset):
        print(f"{dataset}: already present at {target}, skipping download")
        return target
    url = url or dataset_url(dataset)
    expected = _expected_sha256(data_root, dataset, sha256)
    data_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_root, prefix=f".download-{dataset}-") as scratch:
        archive = Path(scratch) / f"{dataset}.zip"
        actual = fetch(url, archive)
        if expected is not None and actual != expected:
            raise DownloadError(url, f"sha256 mismatch: expected {expected}, got {actual}")
        with atomic_path(target, "data download") as tmp:
            tmp.mkdir()
            _extract(archive, url, tmp)
            if not ((tmp / "01").is_dir() and (tmp / "02_GT" / "TRA").is_dir()):
                raise DownloadError(url, "archive holds no 01/ and 02_GT/TRA/ (not a CTC training dataset)")
    if expected is None:
        record = checksum_record(data_root, dataset)
        with atomic_path(record, "data download") as tmp:
            tmp.write_text(f"{actual}  {url}\n")
        print(f"{dataset}: sha256 {actual} recorded in {record} (trust on first use)")
    else:
        print(f"{dataset}: sha256 verified ({actual})")
    return target


def main(argv: list[str] | None = None) -> int:
    """``denselink data download``: fetch a CTC training dataset into the data root."""
    parser = command_parser(
        "data download",
        "Download a Cell Tracking Challenge training dataset (checksummed) and extract it to "
        "{data-root}/{dataset}/. Skipped when {dataset}/01 and {dataset}/02_GT/TRA already exist.",
    )
    parser.add_argument("--dataset", required=True, help=f"dataset name, e.g. {' or '.join(KNOWN_DATASETS)}")
    parser.add_argument("--data-root", type=Path, required=True, help="directory that receives {dataset}/")
    parser.add_argument("--url", default=None, help="archive URL (default: the official CTC training zip)")
    parser.add_argument(
        "--sha256",
        default=None,
        help="expected sha256 of the archive; without it (or empty) the digest recorded in "
        "{data-root}/{dataset}.sha256 is enforced, or recorded there on first download",
    )
    args = parser.parse_args(argv)
    download_dataset(args.dataset, args.data_root, url=args.url, sha256=args.sha256 or None)
    return 0
