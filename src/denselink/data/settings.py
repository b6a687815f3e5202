"""Settings of the data commands and the Mitocheck tables (paper Tables 3, 4); no heavy imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from denselink.settings import StageSettings


class SynthSettings(StageSettings):
    """Settings of the synthetic CTC generator (defaults: a tiny dataset for tests and CI)."""

    shape: tuple[int, int] = Field((64, 64), description="Frame size (H, W) in pixels.")
    n_frames: int = Field(12, ge=2, description="Frames per sequence.")
    n_cells: int = Field(6, ge=1, description="Cells in the first frame.")
    max_cells: int = Field(24, ge=1, description="No cell divides while this many cells are alive.")
    sequences: list[str] = Field(["01", "02"], min_length=1, description="Sequence names to write.")
    seed: int = Field(
        0, ge=0, lt=2**32, description="Master seed; each sequence gets its own stream spawned from it."
    )
    mode: Literal["default", "ambiguous", "texture"] = Field(
        "default",
        description="'default': cells of varied shape move freely; 'ambiguous': all cells share one "
        "size and shape and move in pairs that swap places; 'texture': as 'ambiguous', and all cells "
        "share one mean intensity, told apart only by their stripes' orientation.",
    )
    radius: tuple[float, float] = Field(
        (4.0, 6.0), description="Range of cell semi-axes in pixels (ambiguous mode uses their mean for all)."
    )
    speed: float = Field(1.5, ge=0, description="Standard deviation of a cell's velocity (pixels per frame).")
    persistence: float = Field(
        0.7, ge=0, lt=1, description="Velocity autocorrelation from one frame to the next."
    )
    division_prob: float = Field(0.05, ge=0, le=1, description="Probability per frame that a cell divides.")
    min_division_age: int = Field(3, ge=1, description="Frames a cell lives before it can divide.")
    swap_every: int = Field(4, ge=1, description="Ambiguous mode: frames between two swaps of a pair.")
    swap_frames: int = Field(1, ge=1, description="Ambiguous mode: frames one swap (a half turn) takes.")
    pair_gap: float = Field(1.0, ge=0, description="Ambiguous mode: pixels between the two cells of a pair.")
    keep_pairs: bool = Field(
        False,
        description="Ambiguous and texture modes: when a paired cell divides, one daughter takes its place "
        "in the pair, which goes on swapping, and the other moves alone; false: the pair breaks up (pairs "
        "then thin out, and a long sequence's last frames may hold no swap).",
    )
    intensity: tuple[float, float] = Field(
        (0.3, 0.9), description="Range of cell mean intensities (fraction of full scale)."
    )
    texture_amplitude: float = Field(0.4, ge=0, le=1, description="Relative amplitude of the cell texture.")
    texture_period: tuple[float, float] = Field(
        (2.5, 6.0), description="Range of the texture's wavelengths in pixels."
    )
    textures: int = Field(
        4, ge=2, description="Texture mode: stripe orientations in the palette (pi/textures apart)."
    )
    stripe_period: float = Field(4.0, gt=2, description="Texture mode: stripe wavelength in pixels.")
    background: float = Field(0.08, ge=0, le=1, description="Background intensity (fraction of full scale).")
    noise: float = Field(0.03, ge=0, description="Standard deviation of additive Gaussian noise (fraction).")
    blur: float = Field(0.7, ge=0, description="Gaussian blur sigma (pixels) applied before the noise.")
    dtype: Literal["uint8", "uint16"] = Field(
        "uint16", description="Raw frame dtype (12-bit range for uint16)."
    )


@dataclass(frozen=True)
class Plate:
    """One row of the paper's Table 3."""

    number: int
    plate_id: str
    n_sequences: int


PLATES: dict[int, Plate] = {
    1: Plate(1, "dfdcb304-ffe1-4844-bae3-9ee1ed4749a7", 318),
    2: Plate(2, "fa92aee7-424d-4b12-8557-c957971f8400", 384),
    3: Plate(3, "f2305557-54d0-41fa-acab-5b7d6abf435e", 384),
    4: Plate(4, "fa2d73ab-af7c-43f9-b6a9-996566867a99", 318),
}

# Table 4: pretraining datasets of increasing size (percent of plate 1) -> plates included.
DATASETS: dict[int, tuple[int, ...]] = {100: (1,), 200: (1, 2), 300: (1, 2, 3), 400: (1, 2, 3, 4)}


class MitocheckSynthSettings(StageSettings):
    """A miniature of the Mitocheck layout made from synthetic frames (for the mini config)."""

    plates: list[int] = Field([1, 2, 3, 4], min_length=1, description="Table 3 plate numbers to create.")
    sequences_per_plate: int = Field(2, ge=1, description="Sequences per plate (real plates hold 318-384).")
    shape: tuple[int, int] = Field((48, 64), description="Frame size (H, W); real Mitocheck is 1024 x 1344.")
    n_frames: int = Field(6, ge=2, description="Frames per sequence.")
    n_cells: int = Field(6, ge=1, description="Cells in the first frame of a sequence.")
    seed: int = Field(0, ge=0, lt=2**32, description="Master seed; each plate gets its own stream.")
