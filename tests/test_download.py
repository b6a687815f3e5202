"""Dataset download: checksum pass/fail, trust on first use, skip when present, safe extraction."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from denselink.data.download import checksum_record, dataset_url, download_dataset, is_present, main
from denselink.data.synthetic import SynthSettings, write_dataset
from denselink.errors import DownloadError


def _zip_dataset(source: Path, archive: Path, top: str) -> str:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.rglob("*")):
            zf.write(path, f"{top}/{path.relative_to(source)}")
    return hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A CTC-style zip (one top-level folder) of a tiny synthetic dataset, and its sha256."""
    root = tmp_path_factory.mktemp("zip")
    write_dataset(root / "Toy", SynthSettings(n_frames=3, n_cells=2))
    digest = _zip_dataset(root / "Toy", root / "Toy.zip", "Toy")
    return root / "Toy", root / "Toy.zip", digest


def test_official_urls() -> None:
    assert (
        dataset_url("Fluo-N2DL-HeLa")
        == "https://data.celltrackingchallenge.net/training-datasets/Fluo-N2DL-HeLa.zip"
    )
    assert (
        dataset_url("DIC-C2DH-HeLa")
        == "https://data.celltrackingchallenge.net/training-datasets/DIC-C2DH-HeLa.zip"
    )


def test_matching_checksum_extracts_dataset(served: tuple[Path, Path, str], tmp_path: Path) -> None:
    source, archive, digest = served
    target = download_dataset("Toy", tmp_path, url=archive.as_uri(), sha256=digest.upper())
    assert target == tmp_path / "Toy" and is_present(tmp_path, "Toy")
    extracted = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
    assert extracted == sorted(str(p.relative_to(source)) for p in source.rglob("*") if p.is_file())
    assert (target / "01/t002.tif").read_bytes() == (source / "01/t002.tif").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Toy"]


def test_mismatching_checksum_names_url_and_leaves_nothing(
    served: tuple[Path, Path, str], tmp_path: Path
) -> None:
    _, archive, digest = served
    with pytest.raises(DownloadError) as info:
        download_dataset("Toy", tmp_path, url=archive.as_uri(), sha256="0" * 64)
    assert info.value.path == archive.as_uri()
    assert f"expected {'0' * 64}, got {digest}" in info.value.problem
    assert list(tmp_path.iterdir()) == []


def test_trust_on_first_use_records_and_enforces(served: tuple[Path, Path, str], tmp_path: Path) -> None:
    source, archive, digest = served
    assert main(["--dataset", "Toy", "--data-root", str(tmp_path), "--url", archive.as_uri()]) == 0
    assert checksum_record(tmp_path, "Toy").read_text().split()[0] == digest
    changed = tmp_path / "changed.zip"
    _zip_dataset(source, changed, "Other")
    (tmp_path / "Toy" / "02_GT" / "TRA").rename(tmp_path / "moved")  # no longer complete: download again
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        download_dataset("Toy", tmp_path, url=changed.as_uri())


def test_present_dataset_is_skipped_without_network(
    served: tuple[Path, Path, str], tmp_path: Path, capsys
) -> None:
    _, archive, digest = served
    download_dataset("Toy", tmp_path, url=archive.as_uri(), sha256=digest)
    capsys.readouterr()
    assert download_dataset("Toy", tmp_path, url="http://127.0.0.1:9/unreachable.zip") == tmp_path / "Toy"
    assert "already present" in capsys.readouterr().out


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_download_and_missing_url(
    served: tuple[Path, Path, str], http_root: tuple[Path, str], tmp_path: Path
) -> None:
    _, archive, digest = served
    directory, base = http_root
    (directory / "Toy.zip").write_bytes(archive.read_bytes())
    data_root = tmp_path / "data"
    download_dataset("Toy", data_root, url=f"{base}/Toy.zip", sha256=digest)
    assert is_present(data_root, "Toy")
    with pytest.raises(DownloadError, match="download failed") as info:
        download_dataset("Gone", data_root, url=f"{base}/Gone.zip")
    assert info.value.path == f"{base}/Gone.zip"


def test_archive_escaping_the_target_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../outside.txt", "x")
    with pytest.raises(DownloadError, match="outside the target"):
        download_dataset("Evil", tmp_path / "data", url=archive.as_uri())
    assert not (tmp_path / "outside.txt").exists()
    assert not (tmp_path / "data" / "Evil").exists()


def test_archive_without_ctc_layout_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "other.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("Other/readme.txt", "x")
    with pytest.raises(DownloadError, match="not a CTC training dataset"):
        download_dataset("Other", tmp_path / "data", url=archive.as_uri())
    assert not (tmp_path / "data" / "Other").exists()
