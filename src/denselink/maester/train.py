"""``denselink maester train``: MAESTER pretraining, single process or DDP under torchrun.

    denselink maester train --manifest M [M ...] --out results/maester/RUN --settings JSON [--resume]
    torchrun --standalone --nproc_per_node N -m denselink.cli maester train --manifest ... --out ...

Writes ``{out}/checkpoints/epoch{N}.pt`` at the configured epochs (N counts from 0, so ``epoch49.pt`` is
the state after 50 epochs, the authors' ``model_49.pt``), a rolling ``{out}/checkpoints/last.pt``,
``{out}/loss.csv`` (per-epoch loss averaged over all ranks) and, when finished, ``{out}/done.json``;
with ``save_initial`` also ``{out}/checkpoints/init.pt``, the seeded weights before any step.
Before the first epoch the frames are decoded once into ``{out}/frames`` (uncompressed, memory-mapped;
reused on ``--resume``, removed at the end unless ``keep_frame_store``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from denselink import __version__
from denselink.atomic import add_force_flag, atomic_path, check_output, claim_directory, write_json
from denselink.command import command_parser, start
from denselink.data.manifest import load_manifests
from denselink.device import device_record, resolve_device
from denselink.errors import ConfigError, DivergenceError
from denselink.filenames import DONE, MAESTER_INITIAL, MAESTER_LAST, maester_checkpoint
from denselink.maester.checkpoint import read_checkpoint, restore_rng_states, rng_states, save_checkpoint
from denselink.maester.dataset import EpochSampler, MaesterCropDataset, check_volume_fits
from denselink.maester.frame_store import build_frame_store
from denselink.maester.model import build_model
from denselink.maester.settings import MaesterSettings


def _derived_seed(*key: int) -> int:
    return int(np.random.SeedSequence(list(key), spawn_key=(1,)).generate_state(1)[0])


def _setup(device_setting: str) -> tuple[int, int, torch.device]:
    """Rank, world size and device; joins the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_setting, "maester.train.device", index=local_rank)
    use_cuda = device.type == "cuda"
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return rank, world, device


COMMAND = "maester train"


def _write_loss_csv(path: Path, history: list[list[float]]) -> None:
    with atomic_path(path) as tmp:
        rows = "".join(f"{int(epoch)},{loss:.8g},{seconds:.3f}\n" for epoch, loss, seconds in history)
        tmp.write_text("epoch,loss,seconds\n" + rows)


def train(
    manifests: list[Path], out: Path, settings: MaesterSettings, resume: bool = False, force: bool = False
) -> dict[str, Any]:
    """Pretrain MAESTER on the sequences of ``manifests``; returns the ``done.json`` content.

    ``out`` must be absent or this command's own run folder (``force`` replaces anything else). A
    non-finite epoch loss stops the run with a DivergenceError before that epoch's checkpoint is saved.
    """
    cfg = settings.train
    check_output(out, COMMAND, force)
    sequences = [seq for path in manifests for seq in load_manifests(path)]
    if not sequences:
        raise ConfigError("--manifest", "no sequences to sample from")
    pad = (cfg.pad if cfg.pad_time else 0, cfg.pad, cfg.pad)
    for seq in sequences:  # before decoding anything
        where = seq.frames[0].parent if seq.frames else f"{seq.dataset}/{seq.sequence}"
        check_volume_fits(where, (seq.n_frames, *seq.shape), settings.model.img_size, cfg.sampling, pad)
    rank, world, device = _setup(cfg.device)
    if rank == 0:
        claim_directory(out, COMMAND, force)
    if world > 1:
        dist.barrier()  # the run folder is claimed before any process writes into it
    store = build_frame_store(sequences, out / "frames", rank, world)
    samples = math.ceil(cfg.samples_per_epoch / world)
    dataset = MaesterCropDataset(
        store,
        settings.model.img_size,
        samples,
        cfg.seed,
        rank,
        cfg.sampling,
        cfg.augment,
        cfg.pad,
        cfg.pad_time,
    )
    model = build_model(settings.model, cfg.seed).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    last = out / MAESTER_LAST
    start, history = 0, []
    if resume and last.is_file():
        state = read_checkpoint(last)
        if state["model_settings"] != settings.model.model_dump():
            raise ConfigError(last, "model settings differ from the checkpoint being resumed")
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        restore_rng_states(state["rng"])
        start, history = state["epoch"] + 1, state["loss_history"]
    ddp = DistributedDataParallel(model) if world > 1 else model
    sampler = EpochSampler(samples)
    loader = DataLoader(
        dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda", persistent_workers=cfg.num_workers > 0,
    )  # fmt: skip
    if cfg.save_initial and start == 0 and rank == 0:
        initial = {"model_settings": settings.model.model_dump(), "train_settings": cfg.model_dump()}
        save_checkpoint(out / MAESTER_INITIAL, {**initial, "state_dict": model.state_dict(), "epoch": None})
    save_epochs = set(cfg.save_epochs)
    epochs = tqdm(range(start, cfg.epochs), "maester epochs", cfg.epochs, disable=rank != 0, initial=start)
    for epoch in epochs:
        began = time.perf_counter()
        sampler.set_epoch(epoch)
        masks = torch.Generator(device=device).manual_seed(_derived_seed(cfg.seed, epoch, rank))
        ddp.train()
        losses = []
        for batch in tqdm(loader, desc=f"epoch {epoch}", leave=False, disable=rank != 0):
            loss = ddp(batch.to(device, non_blocking=True), generator=masks)[0]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        totals = torch.stack(
            [
                torch.stack(losses).double().sum(),
                torch.tensor(float(len(losses)), dtype=torch.float64, device=device),
            ]
        )
        if world > 1:
            dist.all_reduce(totals)
        history.append([epoch, float(totals[0] / totals[1]), time.perf_counter() - began])
        if not math.isfinite(history[-1][1]):
            raise DivergenceError(
                out,
                f"epoch {epoch}: mean loss is {history[-1][1]}; no checkpoint of this epoch was written "
                "(lower train.lr, or check the input frames for non-finite pixels)",
            )
        if rank == 0:
            payload = {
                "model_settings": settings.model.model_dump(),
                "train_settings": cfg.model_dump(),
                "state_dict": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch,
                "rng": rng_states(),
                "loss_history": history,
                "world_size": world,
                "denselink_version": __version__,
            }
            if epoch in save_epochs:
                save_checkpoint(out / maester_checkpoint(epoch), payload)
            save_checkpoint(last, payload)
            _write_loss_csv(out / "loss.csv", history)

    def kept(e: int) -> bool:
        return (out / maester_checkpoint(e)).is_file()

    done = {
        "checkpoints": {str(e): maester_checkpoint(e) for e in sorted(save_epochs) if kept(e)},
        "last": MAESTER_LAST,
        **({"initial": MAESTER_INITIAL} if cfg.save_initial else {}),
        "epochs": cfg.epochs,
        "final_loss": history[-1][1] if history else None,
        "world_size": world,
        **device_record(device),
        "settings": settings.model_dump(),
        "denselink_version": __version__,
    }
    if rank == 0:
        write_json(out / DONE, done)
    if world > 1:
        dist.barrier()
    if rank == 0 and not cfg.keep_frame_store:
        shutil.rmtree(out / "frames")
    if world > 1:
        dist.destroy_process_group()
    return done


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        COMMAND,
        "Pretrain MAESTER (masked autoencoder) on random FOV crops. Runs as one process, or "
        "data-parallel under 'torchrun --nproc_per_node N -m denselink.cli maester train' (nccl on GPU, "
        "gloo on CPU; batch_size is per process, samples_per_epoch is split over processes).",
    )
    parser.add_argument(
        "--manifest", nargs="+", required=True, type=Path,
        help="sequence manifests (a CTC sequence or a multi-sequence plate manifest); crops are drawn "
        "from all their sequences, each sequence equally likely",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, type=Path,
        help="run directory: checkpoints/epoch{N}.pt, checkpoints/last.pt, loss.csv, done.json",
    )  # fmt: skip
    parser.add_argument(
        "--settings", default=None,
        help='JSON or a YAML/JSON file: {"model": MaesterModelSettings, "train": MaesterTrainSettings}; '
        "omitted keys take the paper's values",
    )  # fmt: skip
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from checkpoints/last.pt when it exists (same model settings required)",
    )  # fmt: skip
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args, settings = start(build_parser(), argv, COMMAND, MaesterSettings)
    train(args.manifest, args.out, settings, resume=args.resume, force=args.force)
    return 0
