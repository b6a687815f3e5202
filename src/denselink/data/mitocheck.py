"""Mitocheck plates for MAESTER pretraining (paper Tables 3 and 4).

Local layout: ``{mitocheck_root}/{plate_id}/{sequence_name}/*.tif``, one 2D TIFF per frame in
natural name order. A plate manifest is ``{"plate": id, "plate_number": n, "sequences": [...]}``
with raw-only sequence entries (see :mod:`denselink.data.manifest`); a dataset manifest is the
union of plate manifests, ``{"plates": [...], "dataset": name, "sequences": [...]}``.
"""

from __future__ import annotations

import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from tqdm import tqdm

from denselink.atomic import add_force_flag, atomic_path, check_output, write_json
from denselink.command import command_parser
from denselink.data.ctc import check_finite, decode_tiff, frame_name, tiff_header
from denselink.data.manifest import SequenceManifest
from denselink.data.settings import DATASETS, PLATES, MitocheckSynthSettings, Plate
from denselink.data.synthetic import SynthSettings, generate_sequence
from denselink.errors import MitocheckFormatError
from denselink.json_files import read_json
from denselink.settings import load_settings


def dataset_name(size: int) -> str:
    """Table 4 name of a dataset size, e.g. ``Mitocheck (200%)``."""
    return f"Mitocheck ({size}%)"


def resolve_plate(plate: str | int) -> Plate:
    """A plate by its Table 3 number (1..4) or its Mitocheck plate id."""
    for entry in PLATES.values():
        if str(plate) in (str(entry.number), entry.plate_id):
            return entry
    raise MitocheckFormatError(
        str(plate), f"unknown plate; expected 1..4 or one of {[p.plate_id for p in PLATES.values()]}"
    )


def _natural_key(path: Path) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def validate_plate(
    mitocheck_root: str | Path, plate: str | int, strict: bool = False
) -> list[SequenceManifest]:
    """Check every sequence of a plate (TIFF headers; float frames decoded too); return raw-only manifests."""
    entry = resolve_plate(plate)
    plate_dir = Path(mitocheck_root).resolve() / entry.plate_id
    if not plate_dir.is_dir():
        raise MitocheckFormatError(plate_dir, f"plate directory of plate {entry.number} is missing")
    sequence_dirs = sorted((p for p in plate_dir.iterdir() if p.is_dir()), key=_natural_key)
    if not sequence_dirs:
        raise MitocheckFormatError(plate_dir, "plate directory holds no sequence directories")
    if len(sequence_dirs) != entry.n_sequences:
        problem = (
            f"{len(sequence_dirs)} sequences, Table 3 lists {entry.n_sequences} for plate {entry.number}"
        )
        if strict:
            raise MitocheckFormatError(plate_dir, problem)
        warnings.warn(f"{plate_dir}: {problem}", stacklevel=2)
    manifests = []
    for sequence_dir in tqdm(sequence_dirs, desc=f"plate {entry.number}", unit="seq"):
        frames = sorted(sequence_dir.glob("*.tif"), key=_natural_key)
        if not frames:
            raise MitocheckFormatError(sequence_dir, "sequence holds no .tif frames (empty sequence)")
        shape, dtype = tiff_header(frames[0], MitocheckFormatError)
        for path in frames[1:]:
            frame_shape, frame_dtype = tiff_header(path, MitocheckFormatError)
            if frame_shape != shape:
                raise MitocheckFormatError(path, f"shape {frame_shape} differs from {frames[0].name} {shape}")
            if frame_dtype != dtype:
                raise MitocheckFormatError(path, f"dtype {frame_dtype} differs from {frames[0].name} {dtype}")
        if dtype.kind not in "uif":
            raise MitocheckFormatError(frames[0], f"dtype {dtype} is not numeric")
        if dtype.kind == "f":  # integer pixels are finite; float ones are decoded and checked
            for path in frames:
                check_finite(decode_tiff(path, MitocheckFormatError), path, MitocheckFormatError)
        manifests.append(
            SequenceManifest(
                dataset=f"mitocheck-plate{entry.number}",
                sequence=sequence_dir.name,
                frames=frames,
                shape=shape,
                dtype=str(dtype),
            )
        )
    return manifests


def plate_manifest(mitocheck_root: str | Path, plate: str | int, strict: bool = False) -> dict[str, Any]:
    """The manifest dict of one validated plate."""
    entry = resolve_plate(plate)
    sequences = validate_plate(mitocheck_root, entry.number, strict=strict)
    return {
        "plate": entry.plate_id,
        "plate_number": entry.number,
        "sequences": [m.to_dict() for m in sequences],
    }


def _read_plate_manifest(path: Path) -> dict[str, Any]:
    data = read_json(path, MitocheckFormatError, "plate manifest does not exist")
    if not isinstance(data, dict) or "plate" not in data or not isinstance(data.get("sequences"), list):
        raise MitocheckFormatError(path, "not a plate manifest (needs 'plate' and a 'sequences' list)")
    try:
        for sequence in data["sequences"]:
            SequenceManifest.from_dict(sequence)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise MitocheckFormatError(path, f"malformed sequence entry ({err!r})") from err
    return data


def union_manifests(paths: list[Path], size: int | None = None) -> dict[str, Any]:
    """Union of plate manifests; with ``size``, the plates must be exactly Table 4's for that size."""
    plates: list[str] = []
    sequences: list[dict[str, Any]] = []
    for path in paths:
        data = _read_plate_manifest(path)
        if data["plate"] in plates:
            raise MitocheckFormatError(path, f"plate {data['plate']} is given twice")
        plates.append(data["plate"])
        sequences.extend(data["sequences"])
    if size is not None:
        if size not in DATASETS:
            raise MitocheckFormatError(
                f"size {size}", f"unknown dataset size; Table 4 has {sorted(DATASETS)}"
            )
        wanted = {PLATES[n].plate_id for n in DATASETS[size]}
        if set(plates) != wanted:
            raise MitocheckFormatError(
                ", ".join(str(p) for p in paths),
                f"{dataset_name(size)} needs plates {sorted(wanted)}, got {sorted(plates)}",
            )
    return {"plates": plates, "dataset": None if size is None else dataset_name(size), "sequences": sequences}


def write_synthetic_plates(out: Path, settings: MitocheckSynthSettings, force: bool = False) -> None:
    """Write ``{out}/{plate_id}/{sequence}/t000.tif ...`` from the synthetic generator, atomically.

    An existing ``out`` is replaced only if this command wrote it (or ``force``).
    """
    for number in settings.plates:
        resolve_plate(number)
    plate_seeds = np.random.SeedSequence(settings.seed).spawn(len(PLATES))
    with atomic_path(out, "data mitocheck synth", force) as tmp:
        for number in settings.plates:
            names = [f"W{i + 1:05d}" for i in range(settings.sequences_per_plate)]
            generator = SynthSettings(
                shape=settings.shape,
                n_frames=settings.n_frames,
                n_cells=settings.n_cells,
                sequences=names,
                seed=int(plate_seeds[number - 1].generate_state(1)[0]),
            )
            for index, name in enumerate(tqdm(names, desc=f"synthetic plate {number}", unit="seq")):
                sequence_dir = tmp / PLATES[number].plate_id / name
                sequence_dir.mkdir(parents=True)
                frames = generate_sequence(generator, index).frames
                for t, frame in enumerate(frames):
                    tifffile.imwrite(sequence_dir / frame_name(t, len(frames)), frame)


def main(argv: list[str] | None = None) -> int:
    """``denselink data mitocheck {manifest,dataset,synth}``."""
    parser = command_parser("data mitocheck", "Mitocheck plate manifests (paper Tables 3, 4) and miniatures.")
    commands = parser.add_subparsers(dest="command", required=True)
    manifest = commands.add_parser("manifest", help="validate one plate directory and write its manifest")
    manifest.add_argument("--mitocheck-root", type=Path, required=True, help="directory holding {plate_id}/")
    manifest.add_argument("--plate", required=True, help="plate number 1..4 (Table 3) or Mitocheck plate id")
    manifest.add_argument("--out", type=Path, required=True, help="manifest JSON to write")
    manifest.add_argument(
        "--strict",
        action="store_true",
        help="a sequence count that differs from Table 3 is an error, not a warning",
    )
    dataset = commands.add_parser("dataset", help="union of plate manifests into one dataset manifest")
    dataset.add_argument("--manifests", type=Path, nargs="+", required=True, help="plate manifest JSONs")
    dataset.add_argument(
        "--size",
        type=int,
        default=None,
        choices=sorted(DATASETS),
        help="Table 4 size (percent); checks the plates",
    )
    dataset.add_argument("--out", type=Path, required=True, help="dataset manifest JSON to write")
    synth = commands.add_parser("synth", help="write a synthetic miniature of the Mitocheck layout")
    synth.add_argument("--out", type=Path, required=True, help="Mitocheck root to create")
    synth.add_argument(
        "--settings", default=None, help="MitocheckSynthSettings as inline JSON or a YAML/JSON file"
    )
    for subparser in (manifest, dataset, synth):
        add_force_flag(subparser)
    args = parser.parse_args(argv)
    command = f"data mitocheck {args.command}"
    check_output(args.out, command, args.force)
    if args.command == "manifest":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            data = plate_manifest(args.mitocheck_root, args.plate, strict=args.strict)
        for warning in caught:
            print(f"warning: {warning.message}", file=sys.stderr)
        write_json(args.out, data, command, args.force)
        print(f"plate {data['plate_number']}: {len(data['sequences'])} sequences -> {args.out}")
    elif args.command == "dataset":
        data = union_manifests(args.manifests, args.size)
        write_json(args.out, data, command, args.force)
        print(f"{data['dataset'] or 'dataset'}: {len(data['sequences'])} sequences -> {args.out}")
    else:
        settings = load_settings(MitocheckSynthSettings, args.settings)
        write_synthetic_plates(args.out, settings, args.force)
        print(f"wrote {len(settings.plates)} synthetic plates to {args.out}")
    return 0
