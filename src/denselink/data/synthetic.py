"""Synthetic Cell Tracking Challenge data: textured cells that move, touch, cross and divide.

Every cell carries its own appearance (a mean intensity and a sinusoidal texture fixed in the
cell's own coordinate frame), so appearance identifies a cell over time. In ``"ambiguous"``
mode all cells have the same size and shape and move in pairs that swap places, so that
motion alone cannot tell the partners apart and appearance features are needed. In
``"texture"`` mode the cells are moreover identical in everything trackastra's wrfeat measures
(equal discs, one mean intensity): only the orientation of their stripes tells them apart
(partners get orthogonal stripes, daughters keep their mother's), so only an image encoder
that sees the texture can follow a cell through a swap.

The output follows the CTC layout (``{out}/01/t000.tif``, ``{out}/01_GT/TRA/man_track000.tif``,
``{out}/01_GT/TRA/man_track.txt``); masks are ``uint16`` labels equal to track ids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from scipy import ndimage
from tqdm import tqdm

from denselink.atomic import add_force_flag, atomic_path
from denselink.command import command_parser, start
from denselink.data.ctc import frame_name, mask_name, write_man_track
from denselink.data.settings import SynthSettings

FULL_SCALE = {"uint8": 255, "uint16": 4095}
GROWTH_FRAMES = 3
CHILD_SCALE = 0.75
SWAP_COLUMNS = ["frame", "first", "second"]


@dataclass
class SyntheticSequence:
    """One generated sequence: raw frames, TRA label masks and the CTC track table.

    ``textures`` maps each track label to its stripe orientation index (texture mode; else -1);
    ``swaps`` has one row per completed swap of a pair: the first frame showing the partners
    ``first`` and ``second`` in each other's places.
    """

    frames: np.ndarray
    masks: np.ndarray
    tracks: pd.DataFrame
    textures: dict[int, int] = field(default_factory=dict)
    swaps: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SWAP_COLUMNS))


@dataclass
class _Cell:
    label: int
    start: int
    parent: int
    axes: np.ndarray  # target semi-axes (a, b)
    angle: float
    intensity: float
    wavevectors: np.ndarray  # (2, 2) texture wave vectors in cell coordinates
    phases: np.ndarray  # (2,)
    texture: int = -1  # stripe orientation index (texture mode)
    grows: bool = True  # daughters start at CHILD_SCALE and grow
    end: int = -1
    position: np.ndarray = field(default_factory=lambda: np.zeros(2))

    def current_axes(self, t: int) -> np.ndarray:
        if self.parent == 0 or not self.grows:
            return self.axes
        grown = min(1.0, (t - self.start) / GROWTH_FRAMES)
        return self.axes * (CHILD_SCALE + (1 - CHILD_SCALE) * grown)


@dataclass
class _Agent:
    """A single cell, or a pair of cells that orbit their midpoint (ambiguous mode)."""

    members: list[_Cell]
    centre: np.ndarray
    velocity: np.ndarray
    orientation: float = 0.0
    separation: float = 0.0
    swap_clock: int = 0

    def reach(self, t: int) -> float:
        return self.separation / 2 + max(float(c.current_axes(t).max()) for c in self.members)

    def place_members(self) -> None:
        if len(self.members) == 1:
            self.members[0].position = self.centre.copy()
            return
        offset = self.separation / 2 * np.array([math.sin(self.orientation), math.cos(self.orientation)])
        self.members[0].position = self.centre + offset
        self.members[1].position = self.centre - offset


class _Simulation:
    def __init__(self, settings: SynthSettings, rng: np.random.Generator) -> None:
        self.s = settings
        self.rng = rng
        self.cells: list[_Cell] = []
        self.agents: list[_Agent] = []
        self.swaps: list[tuple[int, int, int]] = []
        self.shape = np.array(settings.shape, dtype=float)

    def new_cell(self, t: int, parent: _Cell | None = None, texture: int = -1) -> _Cell:
        s, rng = self.s, self.rng
        if s.mode == "texture":
            return self.new_striped_cell(t, parent, texture)
        if s.mode == "ambiguous":
            axes = np.full(2, sum(s.radius) / 2)
        elif parent is not None:
            axes = parent.axes * rng.uniform(0.9, 1.1, 2)
        else:
            axes = rng.uniform(*s.radius, 2)
        if parent is None:
            intensity = rng.uniform(*s.intensity)
        else:
            intensity = float(np.clip(parent.intensity * rng.uniform(0.8, 1.2), *s.intensity))
        periods = rng.uniform(*s.texture_period, 2)
        directions = rng.uniform(0, np.pi, 2)
        wavevectors = (2 * np.pi / periods)[:, None] * np.stack([np.cos(directions), np.sin(directions)], 1)
        cell = _Cell(
            label=len(self.cells) + 1,
            start=t,
            parent=0 if parent is None else parent.label,
            axes=axes,
            angle=float(rng.uniform(0, np.pi)) if s.mode == "default" else 0.0,
            intensity=float(intensity),
            wavevectors=wavevectors,
            phases=rng.uniform(0, 2 * np.pi, 2),
        )
        self.cells.append(cell)
        return cell

    def new_striped_cell(self, t: int, parent: _Cell | None, texture: int) -> _Cell:
        """A texture-mode cell: the common disc and intensity, stripes of orientation ``texture``."""
        s = self.s
        if parent is not None:
            texture = parent.texture
        direction = np.pi * texture / s.textures
        wavevector = 2 * np.pi / s.stripe_period * np.array([math.cos(direction), math.sin(direction)])
        cell = _Cell(
            label=len(self.cells) + 1,
            start=t,
            parent=0 if parent is None else parent.label,
            axes=np.full(2, sum(s.radius) / 2),
            angle=0.0,
            intensity=sum(s.intensity) / 2,
            wavevectors=np.stack([wavevector, np.zeros(2)]),
            phases=np.array([np.pi / 2, 0.0]),  # cos stripes (bright centre line); no second wave
            texture=texture,
            grows=False,
        )
        self.cells.append(cell)
        return cell

    def partner_textures(self) -> tuple[int, int]:
        """Two orientations as far apart as the palette allows (orthogonal for an even palette)."""
        first = int(self.rng.integers(0, self.s.textures))
        return first, (first + self.s.textures // 2) % self.s.textures

    def random_velocity(self) -> np.ndarray:
        return self.rng.normal(0, self.s.speed, 2)

    def seed_agents(self) -> None:
        s = self.s
        if s.mode in ("ambiguous", "texture"):
            for _ in range(s.n_cells // 2):
                textures = self.partner_textures() if s.mode == "texture" else (-1, -1)
                members = [self.new_cell(0, texture=textures[0]), self.new_cell(0, texture=textures[1])]
                separation = 2 * float(members[0].axes[0]) + s.pair_gap
                agent = _Agent(
                    members,
                    np.zeros(2),
                    self.random_velocity(),
                    orientation=float(self.rng.uniform(0, 2 * np.pi)),
                    separation=separation,
                    swap_clock=int(self.rng.integers(0, s.swap_every)),
                )
                self.agents.append(agent)
            if s.n_cells % 2:
                texture = self.partner_textures()[0] if s.mode == "texture" else -1
                self.agents.append(
                    _Agent([self.new_cell(0, texture=texture)], np.zeros(2), self.random_velocity())
                )
        else:
            for _ in range(s.n_cells):
                self.agents.append(_Agent([self.new_cell(0)], np.zeros(2), self.random_velocity()))
        self.scatter()

    def scatter(self) -> None:
        """Place agents at random positions, avoiding overlaps where the frame allows it."""
        placed: list[tuple[np.ndarray, float]] = []
        for agent in self.agents:
            reach = agent.reach(0)
            low = np.minimum(reach, self.shape / 2)
            best, best_gap = None, -np.inf
            for _ in range(50):
                centre = self.rng.uniform(low, self.shape - 1 - low)
                gap = min((np.linalg.norm(centre - c) - reach - r for c, r in placed), default=np.inf)
                if gap > best_gap:
                    best, best_gap = centre, gap
                if gap >= 0:
                    break
            agent.centre = best
            placed.append((best, reach))
            agent.place_members()

    def divide(self, t: int) -> None:
        s = self.s
        alive = sum(len(a.members) for a in self.agents)
        for agent in list(self.agents):
            for cell in list(agent.members):
                if alive >= s.max_cells or t - cell.start < s.min_division_age:
                    continue
                if self.rng.random() >= s.division_prob:
                    continue
                alive += 1
                cell.end = t - 1
                if s.keep_pairs and len(agent.members) == 2:
                    self.divide_in_pair(t, agent, cell)
                    break
                self.agents.remove(agent)
                for partner in agent.members:
                    if partner is not cell:
                        self.agents.append(_Agent([partner], partner.position.copy(), agent.velocity.copy()))
                axis = self.rng.uniform(0, np.pi)
                offset = CHILD_SCALE * float(cell.axes.max()) * np.array([math.sin(axis), math.cos(axis)])
                for sign in (1.0, -1.0):
                    child = self.new_cell(t, parent=cell)
                    velocity = agent.velocity + sign * offset / GROWTH_FRAMES
                    self.agents.append(_Agent([child], cell.position + sign * offset / 2, velocity))
                break

    def divide_in_pair(self, t: int, agent: _Agent, cell: _Cell) -> None:
        """``cell`` divides: one daughter takes its place in the pair, the other moves off alone."""
        axis = self.rng.uniform(0, np.pi)
        offset = CHILD_SCALE * float(cell.axes.max()) * np.array([math.sin(axis), math.cos(axis)])
        stays, leaves = self.new_cell(t, parent=cell), self.new_cell(t, parent=cell)
        agent.members[agent.members.index(cell)] = stays
        velocity = agent.velocity + offset / GROWTH_FRAMES
        self.agents.append(_Agent([leaves], cell.position + offset, velocity))

    def move(self, t: int) -> None:
        s = self.s
        noise_scale = s.speed * math.sqrt(1 - s.persistence**2)
        for agent in self.agents:
            agent.velocity = s.persistence * agent.velocity + self.rng.normal(0, noise_scale, 2)
            agent.centre = agent.centre + agent.velocity
            if len(agent.members) == 2:
                agent.swap_clock += 1
                if agent.swap_clock > s.swap_every:
                    agent.orientation += np.pi / s.swap_frames
                    if agent.swap_clock >= s.swap_every + s.swap_frames:
                        agent.swap_clock = 0
                        first, second = agent.members
                        self.swaps.append((t, first.label, second.label))
        self.repel(t)
        for agent in self.agents:
            reach = min(agent.reach(t), float(self.shape.min()) / 2)
            low, high = np.full(2, reach), self.shape - 1 - reach
            below, above = agent.centre < low, agent.centre > high
            agent.centre = np.where(below, 2 * low - agent.centre, agent.centre)
            agent.centre = np.where(above, 2 * high - agent.centre, agent.centre)
            agent.centre = np.clip(agent.centre, low, np.maximum(low, high))
            agent.velocity = np.where(below | above, -agent.velocity, agent.velocity)
            agent.place_members()

    def repel(self, t: int, iterations: int = 3, touch: float = 0.9) -> None:
        """Push overlapping agents apart until they at most touch (slightly overlapping outlines)."""
        if len(self.agents) < 2:
            return
        centres = np.stack([a.centre for a in self.agents])
        reach = np.array([a.reach(t) for a in self.agents])
        for _ in range(iterations):
            diff = centres[:, None, :] - centres[None, :, :]
            dist = np.linalg.norm(diff, axis=-1)
            overlap = np.clip(touch * (reach[:, None] + reach[None, :]) - dist, 0, None)
            np.fill_diagonal(overlap, 0)
            if not overlap.any():
                break
            unit = diff / np.maximum(dist, 1e-6)[..., None]
            centres = centres + 0.5 * (overlap[..., None] * unit).sum(axis=1)
        for agent, centre in zip(self.agents, centres, strict=True):
            agent.centre = centre

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.s
        height, width = s.shape
        best = np.full((height, width), np.inf, dtype=np.float32)
        labels = np.zeros((height, width), dtype=np.uint16)
        signal = np.zeros((height, width), dtype=np.float32)
        for agent in self.agents:
            for cell in agent.members:
                axes = cell.current_axes(t)
                half = math.ceil(float(axes.max())) + 1
                cy, cx = cell.position
                y0, y1 = max(0, int(cy) - half), min(height, int(cy) + half + 2)
                x0, x1 = max(0, int(cx) - half), min(width, int(cx) + half + 2)
                if y0 >= y1 or x0 >= x1:
                    continue
                dy = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
                dx = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
                cos, sin = math.cos(cell.angle), math.sin(cell.angle)
                u, v = cos * dy + sin * dx, -sin * dy + cos * dx
                distance = (u / axes[0]) ** 2 + (v / axes[1]) ** 2
                window = (slice(y0, y1), slice(x0, x1))
                wins = (distance <= 1) & (distance < best[window])
                texture = np.sin(cell.wavevectors[0, 0] * u + cell.wavevectors[0, 1] * v + cell.phases[0])
                texture += np.sin(cell.wavevectors[1, 0] * u + cell.wavevectors[1, 1] * v + cell.phases[1])
                if s.mode == "texture":  # zero mean over the disc: every cell has the same mean intensity
                    texture -= texture[distance <= 1].mean()
                value = cell.intensity * (1 + 0.5 * s.texture_amplitude * texture)
                best[window] = np.where(wins, distance, best[window])
                labels[window] = np.where(wins, cell.label, labels[window])
                signal[window] = np.where(wins, value, signal[window])
        image = (
            ndimage.gaussian_filter(signal + s.background, s.blur) if s.blur > 0 else signal + s.background
        )
        image = image + self.rng.normal(0, s.noise, image.shape)
        scale = FULL_SCALE[s.dtype]
        frame = np.rint(np.clip(image, 0, 1) * scale).astype(s.dtype)
        return frame, labels

    def run(self) -> SyntheticSequence:
        s = self.s
        self.seed_agents()
        frames, masks = [], []
        for t in range(s.n_frames):
            if t > 0:
                self.divide(t)
                self.move(t)
            frame, labels = self.render(t)
            frames.append(frame)
            masks.append(labels)
        for cell in self.cells:
            if cell.end < 0:
                cell.end = s.n_frames - 1
        tracks = pd.DataFrame(
            [(c.label, c.start, c.end, c.parent) for c in self.cells],
            columns=["label", "start", "end", "parent"],
        )
        textures = {c.label: c.texture for c in self.cells}
        swaps = pd.DataFrame(self.swaps, columns=SWAP_COLUMNS)
        return SyntheticSequence(np.stack(frames), np.stack(masks), tracks, textures, swaps)


def sequence_rng(settings: SynthSettings, seq_index: int) -> np.random.Generator:
    """The random stream of sequence ``seq_index``, spawned from the master seed."""
    children = np.random.SeedSequence(settings.seed).spawn(len(settings.sequences))
    return np.random.default_rng(children[seq_index])


def generate_sequence(settings: SynthSettings, seq_index: int) -> SyntheticSequence:
    """Generate sequence number ``seq_index`` of ``settings.sequences`` (deterministic)."""
    if not 0 <= seq_index < len(settings.sequences):
        raise IndexError(f"seq_index {seq_index} outside 0..{len(settings.sequences) - 1}")
    return _Simulation(settings, sequence_rng(settings, seq_index)).run()


def write_sequence(root: Path, name: str, sequence: SyntheticSequence) -> None:
    """Write one sequence in CTC layout under ``root`` (not atomic by itself)."""
    raw_dir, tra_dir = root / name, root / f"{name}_GT" / "TRA"
    raw_dir.mkdir(parents=True)
    tra_dir.mkdir(parents=True)
    n_frames = len(sequence.frames)
    for t in range(n_frames):
        tifffile.imwrite(raw_dir / frame_name(t, n_frames), sequence.frames[t])
        tifffile.imwrite(tra_dir / mask_name(t, n_frames), sequence.masks[t])
    write_man_track(tra_dir / "man_track.txt", sequence.tracks)


COMMAND = "data synth"


def write_dataset(out: Path, settings: SynthSettings, force: bool = False) -> None:
    """Generate every sequence of ``settings`` and write them as one CTC dataset, atomically.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    with atomic_path(out, COMMAND, force) as tmp:
        tmp.mkdir()
        for index, name in enumerate(tqdm(settings.sequences, desc="synthetic sequences", unit="seq")):
            write_sequence(tmp, name, generate_sequence(settings, index))


def main(argv: list[str] | None = None) -> int:
    """``denselink data synth``: write a synthetic CTC dataset."""
    parser = command_parser(
        COMMAND, "Generate synthetic CTC sequences (textured cells that move, touch, cross, divide)."
    )
    parser.add_argument("--out", type=Path, required=True, help="dataset directory to create")
    parser.add_argument(
        "--settings",
        default=None,
        help="SynthSettings as inline JSON or a YAML/JSON file (keys: see docs/data.md); defaults if omitted",
    )
    add_force_flag(parser)
    args, settings = start(parser, argv, COMMAND, SynthSettings)
    write_dataset(args.out, settings, args.force)
    print(f"wrote {len(settings.sequences)} synthetic sequences to {args.out}")
    return 0
