"""Fixtures shared by the CTC validation tests: one generated toy dataset, copied fresh for each test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from denselink.data.synthetic import SynthSettings, write_dataset

CTC_TOY = SynthSettings(sequences=["01"], n_frames=8, division_prob=0.3, seed=1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy dataset, written once per test module; never modified."""
    root = tmp_path_factory.mktemp("ctc") / "toy"
    write_dataset(root, CTC_TOY)
    return root


@pytest.fixture
def dataset(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the toy dataset that the test may damage."""
    return Path(shutil.copytree(pristine, tmp_path / "toy"))
