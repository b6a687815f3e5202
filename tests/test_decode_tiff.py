"""One TIFF decoder for CTC and Mitocheck validation: axes of length 1 dropped, a corrupt file named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from denselink.data.ctc import decode_tiff
from denselink.errors import CTCFormatError, MitocheckFormatError


def test_decode_drops_axes_of_length_one(tmp_path: Path) -> None:
    image = np.arange(20, dtype=np.uint16).reshape(1, 4, 5)
    tifffile.imwrite(tmp_path / "t.tif", image)
    assert np.array_equal(decode_tiff(tmp_path / "t.tif"), image[0])


@pytest.mark.parametrize(
    ("given", "error"),
    [((), CTCFormatError), ((MitocheckFormatError,), MitocheckFormatError)],
    ids=["CTC by default", "Mitocheck when given"],
)
def test_corrupt_tiff_is_the_callers_error(tmp_path: Path, given: tuple, error: type) -> None:
    path = tmp_path / "t.tif"
    path.write_bytes(b"\0" * 64)
    with pytest.raises(error) as info:
        decode_tiff(path, *given)
    assert type(info.value) is error and info.value.path == str(path)
    assert info.value.problem.startswith("unreadable or corrupt TIFF (")
