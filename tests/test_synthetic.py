"""The synthetic generator: CTC-valid, deterministic, divisions with parent links, ambiguous swaps."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from denselink.atomic import MARKER
from denselink.data.ctc import read_man_track, validate_sequence
from denselink.data.synthetic import SynthSettings, generate_sequence, main, write_dataset


def _files(root: Path) -> dict[str, bytes]:
    """The dataset's files (the output marker aside)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MARKER
    }


def _centroids(masks: np.ndarray) -> list[dict[int, tuple[np.ndarray, int]]]:
    """Per frame: label -> (centroid, area)."""
    out = []
    for mask in masks:
        labels = [int(v) for v in np.unique(mask) if v]
        centres = ndimage.center_of_mass(np.ones_like(mask), mask, labels)
        areas = ndimage.sum_labels(np.ones_like(mask), mask, labels)
        out.append({lab: (np.array(c), int(a)) for lab, c, a in zip(labels, centres, areas, strict=True)})
    return out


@pytest.mark.parametrize("mode", ["default", "ambiguous"])
def test_generated_dataset_passes_validator(tmp_path: Path, mode: str) -> None:
    settings = SynthSettings(mode=mode, division_prob=0.2)
    write_dataset(tmp_path / "syn", settings)
    for index, seq in enumerate(settings.sequences):
        manifest = validate_sequence(tmp_path / "syn", "syn", seq)
        assert manifest.n_frames == settings.n_frames
        assert manifest.shape == settings.shape
        assert manifest.dtype == "uint16"
        expected = generate_sequence(settings, index)
        np.testing.assert_array_equal(manifest.read_masks(), expected.masks)
        np.testing.assert_array_equal(manifest.read_frames(), expected.frames)
        assert read_man_track(manifest.man_track).equals(expected.tracks)


def test_same_seed_same_bytes_different_seed_different(tmp_path: Path) -> None:
    write_dataset(tmp_path / "a", SynthSettings(seed=3))
    write_dataset(tmp_path / "b", SynthSettings(seed=3))
    write_dataset(tmp_path / "c", SynthSettings(seed=4))
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 2 * (2 * 12 + 1)
    assert a == b
    assert a.keys() == c.keys()
    assert a["01/t000.tif"] != c["01/t000.tif"]
    assert a["01/t000.tif"] != a["02/t000.tif"]


def test_divisions_end_parent_and_start_two_children() -> None:
    sequence = generate_sequence(SynthSettings(division_prob=0.3, n_frames=15), 0)
    tracks = sequence.tracks.set_index("label")
    children = tracks[tracks["parent"] > 0]
    assert len(children) >= 4
    geometry = _centroids(sequence.masks)
    for parent, group in children.groupby("parent"):
        assert len(group) == 2
        parent_end = int(tracks.at[parent, "end"])
        assert (group["start"] == parent_end + 1).all()
        assert parent not in geometry[parent_end + 1]
        parent_centre, parent_area = geometry[parent_end][parent]
        for child in group.index:
            child_centre, _ = geometry[parent_end + 1][child]
            assert np.linalg.norm(child_centre - parent_centre) < np.sqrt(parent_area)


def test_every_track_is_drawn_in_every_frame_of_its_span() -> None:
    sequence = generate_sequence(SynthSettings(division_prob=0.2, n_cells=10, shape=(64, 64)), 1)
    for row in sequence.tracks.itertuples(index=False):
        for t in range(sequence.masks.shape[0]):
            present = bool((sequence.masks[t] == row.label).any())
            assert present == (row.start <= t <= row.end)


def _motion_confusions(settings: SynthSettings) -> tuple[int, int, list[float]]:
    """Links where the nearest previous cell is another track, links where mean intensity is right, areas."""
    sequence = generate_sequence(settings, 0)
    geometry = _centroids(sequence.masks)
    wrong_by_motion = right_by_appearance = 0
    areas = [area for frame in geometry for _, area in frame.values()]
    for t in range(1, len(geometry)):
        before, now = geometry[t - 1], geometry[t]
        for label, (centre, _) in now.items():
            if label not in before:
                continue
            nearest = min(before, key=lambda other: np.linalg.norm(before[other][0] - centre))
            if nearest == label:
                continue
            wrong_by_motion += 1
            brightness = {
                lab: sequence.frames[t - 1][sequence.masks[t - 1] == lab].mean() for lab in (label, nearest)
            }
            own = sequence.frames[t][sequence.masks[t] == label].mean()
            if abs(own - brightness[label]) < abs(own - brightness[nearest]):
                right_by_appearance += 1
    return wrong_by_motion, right_by_appearance, areas


def test_ambiguous_mode_swaps_same_shape_cells() -> None:
    common = dict(n_frames=16, n_cells=6, division_prob=0.0, shape=(80, 80))
    ambiguous = _motion_confusions(SynthSettings(mode="ambiguous", **common))
    default = _motion_confusions(SynthSettings(mode="default", **common))
    wrong, right_by_appearance, areas = ambiguous
    # 3 pairs swapping every 5 frames: each swap fools nearest-neighbour linking for both partners
    assert wrong >= 12
    assert default[0] <= 2
    assert right_by_appearance >= 0.8 * wrong
    # all cells share one size and shape: areas within a few boundary pixels of each other
    assert max(areas) - min(areas) <= 0.25 * np.median(areas)


def test_mini_generation_is_fast() -> None:
    start = time.perf_counter()
    for index in range(2):
        generate_sequence(SynthSettings(), index)
    assert time.perf_counter() - start < 2.0


def test_cli_writes_configured_sequences(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    assert (
        main(["--out", str(out), "--settings", '{"sequences": ["01"], "n_frames": 3, "dtype": "uint8"}']) == 0
    )
    assert sorted(p.name for p in out.iterdir()) == [MARKER, "01", "01_GT"]
    manifest = validate_sequence(out, "cli", "01")
    assert (manifest.n_frames, manifest.dtype) == (3, "uint8")


def test_traccuracy_loads_generated_ground_truth(tmp_path: Path) -> None:
    from traccuracy.loaders import load_ctc_data

    settings = SynthSettings(sequences=["01"], division_prob=0.3, n_cells=8)
    write_dataset(tmp_path / "syn", settings)
    tra = tmp_path / "syn/01_GT/TRA"
    graph = load_ctc_data(str(tra), str(tra / "man_track.txt"), run_checks=True).graph
    tracks = generate_sequence(settings, 0).tracks
    lengths = tracks["end"] - tracks["start"] + 1
    assert graph.number_of_nodes() == int(lengths.sum())
    assert graph.number_of_edges() == int((lengths - 1).sum() + (tracks["parent"] > 0).sum())


TEXTURE = dict(mode="texture", shape=(80, 80), n_frames=16, n_cells=8, texture_amplitude=0.8, seed=5)


def _isolated_cells(mask: np.ndarray, margin: int = 1) -> list[int]:
    """Labels whose mask neither touches another cell (within ``margin`` pixels) nor the frame border."""
    out = []
    for label in (int(v) for v in np.unique(mask) if v):
        own = mask == label
        ring = ndimage.binary_dilation(own, iterations=margin) & ~own
        ys, xs = np.nonzero(own)
        inside = ys.min() >= margin and xs.min() >= margin
        inside &= ys.max() < mask.shape[0] - margin and xs.max() < mask.shape[1] - margin
        if inside and not mask[ring].any():
            out.append(label)
    return out


def _wrfeat_by_texture(settings: SynthSettings) -> dict[str, dict[int, list[float]]]:
    """wrfeat's diameter, mean intensity and inertia tensor of every isolated cell, by its texture."""
    from trackastra.data.wrfeat import WRFeatures

    sequence = generate_sequence(settings, 0)
    out: dict[str, dict[int, list[float]]] = {}
    for t, (frame, mask) in enumerate(zip(sequence.frames, sequence.masks, strict=True)):
        keep = _isolated_cells(mask)
        isolated = np.where(np.isin(mask, keep), mask, 0).astype(np.int32)
        feats = WRFeatures.from_mask_img(isolated[None], frame[None].astype(np.float32), t_start=t)
        for i, label in enumerate(feats.labels):
            texture = sequence.textures[int(label)]
            for name, values in feats.features.items():
                if name != "border_dist":
                    for k, value in enumerate(values[i]):
                        out.setdefault(f"{name}{k}", {}).setdefault(texture, []).append(float(value))
    return out


def test_texture_mode_cells_are_equal_in_everything_wrfeat_measures() -> None:
    features = _wrfeat_by_texture(SynthSettings(**TEXTURE))
    assert set(features["intensity_mean0"]) == {0, 1, 2, 3}
    assert sum(len(v) for v in features["intensity_mean0"].values()) >= 40
    magnitude: dict[str, float] = {}  # per feature family (the inertia tensor's scale is its diagonal)
    for name, by_texture in features.items():
        family = name.rstrip("0123456789")
        values = np.concatenate(list(by_texture.values()))
        magnitude[family] = max(magnitude.get(family, 0.0), abs(float(np.median(values))))
    for name, by_texture in features.items():
        means = np.array([np.mean(v) for v in by_texture.values()])
        # texture groups differ by less than 2 % of the feature's scale: wrfeat cannot tell them apart
        assert np.ptp(means) <= 0.02 * magnitude[name.rstrip("0123456789")], (name, means)
    # the same check sees the per-cell intensities of ambiguous mode
    ambiguous = _wrfeat_by_texture(SynthSettings(**{**TEXTURE, "mode": "ambiguous"}))
    cells = np.concatenate(list(ambiguous["intensity_mean0"].values()))
    assert np.ptp(cells) > 0.2 * np.median(cells)


def _stripe_orientation(frame: np.ndarray, own: np.ndarray) -> float:
    """Dominant gradient direction inside a cell (angle from the y axis, modulo pi)."""
    image = ndimage.gaussian_filter(frame.astype(np.float64), 0.5)
    gy, gx = np.gradient(image)
    inner = ndimage.binary_erosion(own, iterations=2)
    jyy, jxx, jyx = (gy[inner] ** 2).sum(), (gx[inner] ** 2).sum(), (gy[inner] * gx[inner]).sum()
    return float(0.5 * np.arctan2(2 * jyx, jyy - jxx)) % np.pi


def test_texture_mode_stripes_identify_the_texture() -> None:
    settings = SynthSettings(**TEXTURE)
    sequence = generate_sequence(settings, 0)
    hits = total = 0
    for frame, mask in zip(sequence.frames, sequence.masks, strict=True):
        for label in _isolated_cells(mask):
            angle = _stripe_orientation(frame, mask == label)
            palette = np.pi * np.arange(settings.textures) / settings.textures
            error = np.abs((angle - palette + np.pi / 2) % np.pi - np.pi / 2)
            hits += int(np.argmin(error)) == sequence.textures[label]
            total += 1
    assert total >= 40
    assert hits >= 0.95 * total


def test_texture_mode_partners_differ_and_daughters_inherit() -> None:
    sequence = generate_sequence(SynthSettings(**{**TEXTURE, "division_prob": 0.3}), 0)
    tracks = sequence.tracks
    children = tracks[tracks["parent"] > 0]
    assert len(children) >= 4
    for child, parent in zip(children["label"], children["parent"], strict=True):
        assert sequence.textures[int(child)] == sequence.textures[int(parent)]
    founders = tracks[tracks["parent"] == 0]["label"].tolist()
    # pairs are seeded consecutively: partners have orthogonal stripes (palette of 4)
    for first, second in zip(founders[0::2], founders[1::2], strict=True):
        assert (sequence.textures[first] - sequence.textures[second]) % 4 == 2


def test_texture_mode_swaps_throughout_the_sequence() -> None:
    settings = SynthSettings(**{**TEXTURE, "division_prob": 0.0, "swap_every": 3, "n_frames": 21})
    sequence = generate_sequence(settings, 0)
    swaps = sequence.swaps
    pairs = settings.n_cells // 2
    period = settings.swap_every + settings.swap_frames
    assert len(swaps) >= pairs * ((settings.n_frames - 1) // period)
    assert swaps["frame"].min() <= period and swaps["frame"].max() >= settings.n_frames - period
    geometry = _centroids(sequence.masks)
    for t, first, second in swaps.itertuples(index=False):
        before, now = geometry[t - 1], geometry[t]
        # each partner now stands where the other stood: nearest-neighbour linking swaps them
        for a, b in ((first, second), (second, first)):
            assert np.linalg.norm(now[a][0] - before[b][0]) < np.linalg.norm(now[a][0] - before[a][0])


def test_keep_pairs_a_daughter_takes_its_mothers_place_and_the_pair_goes_on_swapping() -> None:
    common = {**TEXTURE, "division_prob": 0.1, "n_frames": 32}
    kept = generate_sequence(SynthSettings(**common, keep_pairs=True), 0)
    broken = generate_sequence(SynthSettings(**common), 0)
    pairs, period = TEXTURE["n_cells"] // 2, 4 + 1  # swap_every 4 (default), swap_frames 1
    tracks = kept.tracks.set_index("label")
    daughters_in_pairs = 0
    for t, first, second in kept.swaps.itertuples(index=False):
        # partners stay orthogonal (a daughter keeps its mother's stripes) and are alive at the swap
        # (a daughter born in the frame of a swap takes part in it)
        assert (kept.textures[first] - kept.textures[second]) % 4 == 2
        for label in (first, second):
            assert tracks.at[label, "start"] <= t <= tracks.at[label, "end"]
        daughters_in_pairs += int(tracks.at[first, "parent"] > 0) + int(tracks.at[second, "parent"] > 0)
    assert (tracks["parent"] > 0).sum() >= 6 and daughters_in_pairs >= 3
    # every pair still swaps in the last period; without keep_pairs divisions break pairs up for good
    assert (kept.swaps["frame"] > 31 - period).sum() == pairs
    assert (broken.swaps["frame"] > 31 - period).sum() < pairs


def test_demo_positive_control_holds_swaps_in_its_validation_frames() -> None:
    import yaml

    config = yaml.safe_load((Path(__file__).resolve().parents[1] / "workflow/configs/mini.yaml").read_text())
    settings = SynthSettings(**config["datasets"]["Synth-HeLa"]["synth"])
    clean = config["protocols"]["clean"]
    window = config["tracking"]["settings"]["window"]
    for direction in clean["directions"]:
        sequence = generate_sequence(settings, settings.sequences.index(direction["train"]))
        # the first validation frame, as tracking.train.split_tail holds out the tail
        start = settings.n_frames - max(window, math.ceil(clean["val_fraction"] * settings.n_frames))
        # a swap at frame t changes the link t-1 -> t: inside the validation frames when t-1 >= start
        assert (sequence.swaps["frame"] > start).sum() >= 4
