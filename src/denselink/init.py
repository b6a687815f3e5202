"""``denselink init``: a commented, valid starter config for your own CTC dataset folders.

    denselink init data/Fluo-N2DH-SIM+ [more dataset folders] [--out my_config.yaml] [--machine cpu|gpu]

Each folder is read as a Cell Tracking Challenge dataset (``01``, ``01_GT/TRA``, ``02``, ...): its
sequences, frame counts, shapes, dtypes, ground truth and cells per frame are listed in the config's
comments. The config runs Table 1 on these datasets under the ``clean`` protocol (train on 02, score on
01, and 01 -> 02, a held-out tail of the training sequence for validation), with a crop size that fits
the frames and model sizes for the machine: ``gpu`` (a GPU cluster: the paper's sizes) or ``cpu`` (a
laptop: the demo's tiny sizes); by default ``gpu`` when torch sees CUDA. No Appendix C section is
written: those studies are not run. The written config is checked as ``snakemake`` checks it, and
``denselink plan`` states its jobs, time and disk (run from the repository root). An existing file is
replaced only when ``denselink init`` wrote it (or with ``--force``).
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from denselink.atomic import add_force_flag, atomic_path, check_output
from denselink.command import command_parser
from denselink.data.scan import SequenceScan, scan_dataset
from denselink.errors import ConfigError
from denselink.pipeline.versions import CONFIG_VERSION
from denselink.tracking.settings import TrackastraSettings, min_frames

COMMAND = "init"
SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
VAL_FRACTION = 0.1  # the clean protocol's held-out tail, as config.yaml
CROP = 256  # trackastra's training crop (TrackastraSettings.crop_size), shrunk to fit smaller frames
MAESTER_FOV = 80  # the paper's MAESTER field of view (img_size)
CPU_SIDE = 512  # on a CPU, frames are proposed downsampled to at most this many pixels per side
DOWNSAMPLE_KEY = "downsample"
"""The per-dataset downsampling key (``datasets.NAME.downsample``): written when the schema has it,
else the proposed factor is a comment."""

MACHINES: dict[str, dict[str, Any]] = {
    "gpu": {
        "about": "a GPU cluster: the paper's model sizes (paper Table 2 and trackastra's), 8 seeds",
        "embeddings": ["sam", "musam", "maester"],
        "aggregations": ["mma", "centroid"],
        "seeds": [0, 1, 2, 3, 4, 5, 6, 7],
        "maester": {"procs": 4, "model": {}, "train": {"epochs": 18250}, "infer": {}},
        "tracking": {"epochs": 100, "train_samples": 50000},
        "resources": {
            "default": {"cpus": 2, "mem_mb": 8000, "runtime": 60, "gpus": 0},
            "maester_train": {"cpus": 32, "mem_mb": 256000, "runtime": 10080, "gpus": 4},
            "maester_infer": {"cpus": 8, "mem_mb": 64000, "runtime": 240, "gpus": 1},
            "foundation_embed": {"cpus": 8, "mem_mb": 64000, "runtime": 240, "gpus": 1},
            "tracking_train": {"cpus": 8, "mem_mb": 32000, "runtime": 720, "gpus": 1},
            "tracking_evaluate": {"cpus": 4, "mem_mb": 16000, "runtime": 720},
        },
        "profile": "profiles/slurm",
    },
    "cpu": {
        "about": "a CPU laptop: the demo's tiny model sizes (workflow/configs/mini.yaml), 3 seeds",
        "embeddings": ["maester"],
        "aggregations": ["centroid"],
        "seeds": [0, 1, 2],
        "maester": {
            "procs": 1,
            "model": {
                "img_size": 20,
                "patch_size": 5,
                "embed_dim": 16,
                "depth": 2,
                "num_heads": 1,
                "decoder_embed_dim": 16,
                "decoder_depth": 1,
                "decoder_num_heads": 1,
            },
            "train": {
                "batch_size": 8,
                "samples_per_epoch": 256,
                "epochs": 8,
                "num_workers": 0,
                "device": "cpu",
            },
            "infer": {"device": "cpu"},
        },  # fmt: skip
        "tracking": {
            "window": 4,
            "d_model": 32,
            "nhead": 2,
            "num_encoder_layers": 1,
            "num_decoder_layers": 1,
            "epochs": 12,
            "warmup_epochs": 1,
            "lr": 4.0e-3,
            "batch_size": 8,
            "train_samples": 256,
            "normalize": "zscore",
            "mixed_precision": False,
            "device": "cpu",
        },  # fmt: skip
        "resources": {"default": {"cpus": 1, "mem_mb": 4000, "runtime": 120, "gpus": 0}},
        "profile": "profiles/local",
    },
}


@dataclass(frozen=True)
class Dataset:
    """A dataset folder as the config names it."""

    name: str
    folder: Path
    sequences: list[SequenceScan]

    @property
    def tracked(self) -> list[SequenceScan]:
        """Sequences with TRA ground truth: those Table 1 trains and scores on."""
        return [s for s in self.sequences if s.tra]


def _name_of(folder: Path, given: str | None) -> str:
    name = given or folder.name
    if not NAME.match(name):
        raise ConfigError(
            "--name" if given else folder,
            f"{name!r} is not a dataset name (letters, digits and _ . + -, starting with a letter or "
            "digit); give one with --name",
        )
    return name


def read_datasets(folders: list[Path], names: list[str] | None) -> list[Dataset]:
    """Scan the dataset folders; each needs two sequences with TRA ground truth."""
    if names is not None and len(names) != len(folders):
        raise ConfigError("--name", f"{len(names)} names for {len(folders)} folders: one per folder")
    datasets = []
    for k, folder in enumerate(folders):
        dataset = Dataset(_name_of(folder, names[k] if names else None), folder, scan_dataset(folder))
        if len(dataset.tracked) < 2:
            found = ", ".join(s.name for s in dataset.tracked) or "none"
            raise ConfigError(
                folder,
                f"Table 1's clean protocol trains on one sequence and scores another: it needs two "
                f"sequences with TRA ground truth (SEQ_GT/TRA with man_track.txt), found {found}",
            )
        datasets.append(dataset)
    if len({d.name for d in datasets}) != len(datasets):
        raise ConfigError("--name", "two dataset folders have the same name; give names with --name")
    return datasets


def data_root(datasets: list[Dataset], workdir: Path) -> Path:
    """The folder holding every dataset folder (relative to ``workdir`` when inside it)."""
    parents = {d.folder.resolve().parent for d in datasets}
    if len(parents) != 1:
        raise ConfigError(
            ", ".join(str(d.folder) for d in datasets),
            "the dataset folders lie in different folders; put them (or links to them) in one folder",
        )
    root = parents.pop()
    if root == workdir or root in workdir.parents or root == Path.home():
        raise ConfigError(
            root,
            "the dataset folders lie in the working directory, a parent of it or the home folder; "
            "move them (or links to them) into a folder of their own, e.g. data/",
        )
    return Path(os.path.relpath(root, workdir)) if workdir in root.parents else root


def run_name(dataset: str, seq: str) -> str:
    """A MAESTER run name (letters, digits, _ and .) for pretraining on one sequence."""
    return f"{re.sub(r'[^A-Za-z0-9]+', '_', dataset).strip('_').lower()}_{seq}"


def propose_crop(datasets: list[Dataset]) -> list[int] | None:
    """Trackastra's 256 x 256 training crop, shrunk to the smallest frame side; None: no frame is larger."""
    side = min(min(s.shape) for d in datasets for s in d.tracked)
    return [min(CROP, side)] * 2 if any(max(s.shape) > CROP for d in datasets for s in d.tracked) else None


def propose_downsample(dataset: Dataset, machine: str) -> tuple[int, str]:
    """A downsampling factor and its reason: cells about half the MAESTER field of view across (or less);
    on a CPU, frames of at most CPU_SIDE pixels per side as well."""
    diameters = [s.cell_diameter for s in dataset.tracked if s.cell_diameter]
    diameter = max(diameters) if diameters else 0.0
    factor = max(1, round(diameter / (MAESTER_FOV / 2)))
    reason = (
        f"cells ~{diameter:.0f} px across (median), ~{diameter / factor:.0f} px after it, in MAESTER's "
        f"{MAESTER_FOV}-px field of view"
    )
    side = max(max(s.shape) for s in dataset.tracked)
    if machine == "cpu" and math.ceil(side / CPU_SIDE) > factor:
        factor = math.ceil(side / CPU_SIDE)
        reason = f"frames of {side} px per side, at most {CPU_SIDE} on a CPU"
    return factor, reason


def propose_val_fraction(datasets: list[Dataset], window: int) -> float:
    """The clean protocol's held-out tail, 10 %; a sequence too short for a window and its tail: error."""
    shortest = min(s.frames for d in datasets for s in d.tracked)
    if shortest < min_frames(window, VAL_FRACTION):
        raise ConfigError(
            "datasets",
            f"a sequence of {shortest} frames is too short for training windows of {window} frames and a "
            f"validation tail (at least {min_frames(window, VAL_FRACTION)} frames)",
        )
    return VAL_FRACTION


def _flow(value: Any) -> str:
    """A value in YAML flow style on one line."""
    return yaml.safe_dump([value], default_flow_style=True, width=10_000, sort_keys=False).strip()[1:-1]


def _schema_has_downsample() -> bool:
    schema = yaml.safe_load(SCHEMA.read_text())
    return DOWNSAMPLE_KEY in schema["$defs"]["dataset"]["properties"]


def render(
    datasets: list[Dataset], root: Path, machine: str, why: str, out: Path, results_root: str = "results"
) -> str:
    """The config's text: keys with a comment saying where each proposal comes from."""
    spec = MACHINES[machine]
    window = spec["tracking"].get("window", TrackastraSettings.model_fields["window"].default)
    val_fraction = propose_val_fraction(datasets, window)
    crop = propose_crop(datasets)
    first, second = (s.name for s in datasets[0].tracked[:2])
    downsample_key = _schema_has_downsample()
    epochs = spec["maester"]["train"]["epochs"]
    today = datetime.date.today().isoformat()
    lines = [
        f"# Starter config written by `denselink init` on {today} for {spec['about']}.",
        f"# Machine: {machine} ({why}). Every key and its default: docs/config.md.",
        f"# Check the cost first:  denselink plan --configfile {out}",
        f"# Then Table 1:          snakemake --profile {spec['profile']} --configfile {out}",
        f"config_version: {CONFIG_VERSION}",
        f"results_root: {_flow(results_root)}",
        f"data_root: {_flow(str(root))}",
        "",
        "datasets:",
    ]
    for dataset in datasets:
        lines += [f"  {_flow(dataset.name)}:", "    source: ctc", "    download: false"]
        if dataset.folder.name != dataset.name:
            lines.append(f"    folder: {_flow(dataset.folder.name)} # the data folder of this name")
        tracked = _flow([s.name for s in dataset.tracked])
        lines.append(f"    sequences: {tracked} # those with TRA ground truth")
        for s in dataset.sequences:
            gt = "TRA" if s.tra else "no TRA"
            cells = f", ~{s.cells_per_frame:.0f} cells per frame" if s.cells_per_frame is not None else ""
            lines.append(
                f"    # {s.name}: {s.frames} frames of {s.shape[0]} x {s.shape[1]} {s.dtype}; "
                f"{gt}, SEG in {s.seg_frames} frames{cells}"
            )
        factor, reason = propose_downsample(dataset, machine)
        if downsample_key:
            lines.append(f"    {DOWNSAMPLE_KEY}: {factor} # proposed: {reason}")
        else:
            lines.append(f"    # proposed downsampling factor {factor} ({reason}); no config key for it yet")
    lines += [
        "",
        "maester: # self-supervised pretraining on each dataset's first sequence, as the paper did",
        f"  procs: {spec['maester']['procs']}",
    ]
    for key in ("model", "train", "infer"):
        values = dict(spec["maester"][key])
        if key == "train":
            values["save_epochs"] = [epochs - 1]
        if values:
            lines.append(f"  {key}: {_flow(values)}")
    lines.append("  runs:")
    for dataset in datasets:
        seq = dataset.tracked[0].name
        lines.append(f"    {run_name(dataset.name, seq)}: [{_flow(f'{dataset.name}/{seq}')}]")
    tracking = dict(spec["tracking"], crop_size=crop)
    lines += [
        "",
        "features:",
        f"  aggregations: {_flow(spec['aggregations'])}",
        "",
        "tracking:",
        f"  seeds: {_flow(spec['seeds'])}",
        f"  settings: {_flow(tracking)} # crop_size: 256 x 256 or the smallest frame side; null: whole",
        "",
        "protocols:",
        "  clean: # train on one sequence, validate on its last frames, score on the other",
        f"    val_fraction: {val_fraction}",
        "    directions:",
        f"      - {{train: {_flow(second)}, eval: {_flow(first)}}}",
        f"      - {{train: {_flow(first)}, eval: {_flow(second)}}}",
        "",
        "# Table 1: the only study this config runs (no appendix_c section: those studies are not run).",
        "table1:",
        f"  datasets: {_flow([d.name for d in datasets])}",
        "  protocols: [clean]",
        f"  embeddings: {_flow(spec['embeddings'])}",
        "  pretrained: true # trackastra's published model; a 'skipped' row when it is not downloaded",
        "  maester:",
    ]
    for dataset in datasets:
        run = run_name(dataset.name, dataset.tracked[0].name)
        lines.append(f"    {_flow(dataset.name)}: {{run: {run}, epoch: {epochs - 1}}}")
    lines += [
        "",
        "# Dense embedding volumes are deleted once their feature tables exist (the default).",
        "storage:",
        "  keep_dense: {maester: false, foundation: false}",
        "",
        "resources:",
    ]
    lines += [f"  {rule}: {_flow(values)}" for rule, values in spec["resources"].items()]
    return "\n".join(lines) + "\n"


def default_machine() -> tuple[str, str]:
    """``gpu`` when torch sees CUDA, else ``cpu``; and why."""
    import torch

    if torch.cuda.is_available():
        return "gpu", f"torch sees {torch.cuda.device_count()} CUDA device(s)"
    return "cpu", "torch sees no CUDA device"


def write_config(
    folders: list[Path],
    out: Path,
    machine: str | None = None,
    names: list[str] | None = None,
    force: bool = False,
    workdir: Path | None = None,
) -> Path:
    """Scan ``folders``, write the starter config ``out`` and check it as the workflow does."""
    from denselink.pipeline.checks import load_config, preflight

    workdir = (workdir or Path.cwd()).resolve()
    check_output(out, COMMAND, force)
    datasets = read_datasets([Path(f) for f in folders], names)
    why = "chosen with --machine"
    if machine is None:
        machine, why = default_machine()
    text = render(datasets, data_root(datasets, workdir), machine, why, out)
    with atomic_path(out, COMMAND, force) as tmp:
        tmp.write_text(text)
        preflight(load_config([tmp], SCHEMA), workdir)  # checked as snakemake checks it, before the rename
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0], "\n".join(__doc__.splitlines()[4:]))
    parser.add_argument("folders", type=Path, nargs="+", help="CTC dataset folders (01, 01_GT/TRA, 02, ...)")
    parser.add_argument("--out", type=Path, default=Path("my_config.yaml"), help="config to write")
    parser.add_argument(
        "--machine", choices=sorted(MACHINES), default=None,
        help="model sizes for a GPU cluster or a CPU laptop (default: gpu when torch sees CUDA)",
    )  # fmt: skip
    parser.add_argument(
        "--name", nargs="+", default=None,
        help="dataset names, one per folder (default: the folder names), e.g. a renamed folder's CTC name",
    )  # fmt: skip
    parser.add_argument(
        "--no-plan", action="store_true", help="do not run `denselink plan` on the written config"
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink init``."""
    args = build_parser().parse_args(argv)
    out = write_config(args.folders, args.out, args.machine, args.name, args.force)
    print(f"wrote {out}")
    if args.no_plan:
        return 0
    if not Path("Snakefile").is_file():
        print(f"run `denselink plan --configfile {out}` from the repository root for jobs, time and disk")
        return 0
    from denselink.plan import plan_configs, summary

    rows, _, config, _ = plan_configs([out])
    print(summary(rows, config))
    print("GPU-hours: A100 estimates of the GPU steps (slower on a CPU, for which no cost is recorded)")
    print(f"per rule: denselink plan --configfile {out}")
    return 0
