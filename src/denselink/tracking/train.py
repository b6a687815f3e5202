"""``denselink tracking train``: train trackastra (optionally fused) for one seed on a prepared cache.

The training is trackastra's ``scripts/train.py`` (WrappedLightningModule + BalancedDataModule)
in plain torch: the same loss (BCE on logits + causal-normalised BCE, up-weighted continuing and
dividing links, delta-t mask, size prefactor), AdamW, linear warm-up then cosine per epoch,
trackastra's balanced batch sampler, wrfeat augmentation, random crops and token clipping.
Writes ``checkpoints/epoch{N:03d}.pt`` after every epoch (N from 0, as the authors' runs),
``train_log.csv``, ``config.json`` and finally ``done.json``.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm
from trackastra.data import CTCData, collate_sequence_padding
from trackastra.utils import blockwise_causal_norm, blockwise_sum

import denselink
from denselink import arg_types
from denselink.atomic import add_force_flag, atomic_path, check_output, claim_directory, write_json
from denselink.command import command_parser, start
from denselink.device import device_record, resolve_device
from denselink.errors import ConfigError, DivergenceError
from denselink.features.recipe import describe_table
from denselink.filenames import CHECKPOINT_DIR, DONE, RUN_CONFIG, TRAIN_LOG, trackastra_checkpoint
from denselink.tracking.fusion import FeatureTable, FusedTrackingTransformer, FusedWindows, build_model
from denselink.tracking.prepare import PreparedSequence, load_prepared
from denselink.tracking.sampler import BalancedBatchSampler
from denselink.tracking.settings import TrackastraSettings
from denselink.tracking.train_log import write_log

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python, numpy's global and torch's random streams."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def configure_sampling(data: CTCData, settings: TrackastraSettings, augment: int, seed: int) -> None:
    """Switch on trackastra's augmentation / crop / token clipping, with seeded generators."""
    crop = tuple(settings.crop_size) if settings.crop_size else None
    _, data.augmenter, data.cropper = data._setup_features_augs_wrfeat(data.ndim, "wrfeat", augment, crop)
    data.max_tokens = settings.max_tokens
    seed_sampling(data, seed)


def seed_sampling(data: CTCData, seed: int) -> None:
    """Re-seed the private generators of trackastra's augmentations and cropper."""
    parts = list(data.augmenter.augmentations) if data.augmenter is not None else []
    if data.cropper is not None:
        parts.append(data.cropper)
    for k, part in enumerate(parts):
        part._rng = np.random.RandomState((seed * 1000 + k) % 2**32)


def subset_windows(data: CTCData, keep: list[int]) -> CTCData:
    """A shallow copy of ``data`` holding only the windows ``keep``."""
    subset = copy.copy(data)
    subset.windows = [data.windows[i] for i in keep]
    subset.n_objects = tuple(data.n_objects[i] for i in keep)
    subset.n_divs = [data.n_divs[i] for i in keep]
    return subset


def split_tail(data: CTCData, n_frames: int, val_fraction: float) -> tuple[CTCData, CTCData | None, int]:
    """Split windows into those before and those fully inside the last ``val_fraction`` of frames.

    Returns (train windows, validation windows or None, first validation frame).
    """
    if val_fraction == 0:
        return data, None, n_frames
    window = data.window_size
    start = n_frames - max(window, math.ceil(val_fraction * n_frames))
    train = [i for i, w in enumerate(data.windows) if w["t1"] + window <= start]
    val = [i for i, w in enumerate(data.windows) if w["t1"] >= start]
    if not train or not val:
        raise ConfigError(
            "val_fraction", f"{val_fraction} of {n_frames} frames leaves no train or val window of {window}"
        )
    return subset_windows(data, train), subset_windows(data, val), start


def lr_factor(epoch: int, warmup_epochs: int, max_epochs: int, cosine_final: float) -> float:
    """trackastra's WarmupCosineLRScheduler factor for ``epoch`` (0-based)."""
    if epoch < warmup_epochs:
        return 1e-2 + (1 - 1e-2) * epoch / warmup_epochs
    rel = (epoch - warmup_epochs) / (max_epochs - warmup_epochs + 1)
    return 0.5 * (1 + math.cos(math.pi * rel)) * (1 - cosine_final) + cosine_final


def association_loss(
    model: torch.nn.Module,
    batch: dict[str, torch.Tensor],
    causal_norm: str,
    delta_cutoff: int,
    div_upweight: float,
    eps: float = torch.finfo(torch.float32).eps,
) -> torch.Tensor:
    """trackastra's training loss (``WrappedLightningModule._common_step``) of one padded batch."""
    target, timepoints = batch["assoc_matrix"], batch["timepoints"]
    padding_mask = batch["padding_mask"].bool()
    logits = model(batch["coords"], batch["features"], padding_mask=padding_mask)
    if torch.isnan(logits).any():  # diverged weights: a NaN loss (step skipped, epoch reported), no BCE crash
        return logits.new_tensor(float("nan"))
    logits.clamp_(torch.finfo(torch.float16).min, torch.finfo(torch.float16).max)
    mask_invalid = padding_mask.unsqueeze(1) | padding_mask.unsqueeze(2)
    logits[mask_invalid] = 0
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, target, reduction="none")
    if causal_norm != "none":
        soft = torch.stack(
            [
                blockwise_causal_norm(a, t, mode=causal_norm, mask_invalid=m)
                for a, t, m in zip(logits, timepoints, mask_invalid, strict=True)
            ]
        )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            soft_loss = torch.nn.functional.binary_cross_entropy(
                soft.float(), target.float(), reduction="none"
            )
        loss = 0.01 * loss + soft_loss
    with torch.no_grad():
        sum1 = torch.stack([blockwise_sum(a, t, dim=-1) for a, t in zip(target, timepoints, strict=True)])
        sum2 = torch.stack([blockwise_sum(a, t, dim=-2) for a, t in zip(target, timepoints, strict=True)])
        block = target * (sum1 + sum2)
        weight = 1 + 1.0 * (block == 2) + div_upweight * (block > 2)
    loss = loss * weight
    dt = timepoints.unsqueeze(1) - timepoints.unsqueeze(2)
    mask = ((dt > 0) & (dt <= delta_cutoff) & ~mask_invalid).float()
    per_sample = (loss * mask / (mask.sum(dim=(1, 2), keepdim=True) + eps)).sum(dim=(1, 2))
    prefactor = torch.pow(mask.sum(dim=(1, 2)), 0.2)
    return (per_sample * prefactor / (prefactor.sum() + eps)).sum()


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {key: value.to(device) for key, value in batch.items()}


def _loader(dataset: FusedWindows, batch_sampler: Any = None, batch_size: int = 8) -> DataLoader:
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate_sequence_padding)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_sequence_padding)


def evaluate_loss(model: torch.nn.Module, loader: DataLoader, settings: TrackastraSettings, device) -> float:
    """Batch-size weighted mean loss over ``loader`` (no gradients, eval mode)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = _to_device(batch, device)
            loss = association_loss(
                model, batch, settings.causal_norm, settings.delta_cutoff, settings.div_upweight
            )
            if torch.isfinite(loss):
                n = len(batch["coords"])
                total, count = total + float(loss) * n, count + n
    return total / count if count else float("nan")


def _cells(data: CTCData) -> tuple[np.ndarray, np.ndarray]:
    frames = np.concatenate([np.asarray(w["timepoints"]) for w in data.windows])
    labels = np.concatenate([np.asarray(w["labels"]) for w in data.windows])
    return frames, labels


def _save_checkpoint(path: Path, model: torch.nn.Module, record: dict[str, Any]) -> None:
    fusion = model.fusion_config if isinstance(model, FusedTrackingTransformer) else None
    payload = {**record, "model_config": dict(model.config), "fusion_config": fusion}
    payload["state_dict"] = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


COMMAND = "tracking train"


def _stop_if_diverged(out: Path, row: dict[str, Any], model: torch.nn.Module, validated: bool) -> None:
    """A DivergenceError naming the epoch when it had no finite step, a non-finite val_loss or weights."""
    problem = None
    if not math.isfinite(row["train_loss"]):
        problem = "every training step had a non-finite loss"
    elif validated and not math.isfinite(row["val_loss"]):
        problem = "the validation loss is not finite"
    elif not all(torch.isfinite(p).all() for p in model.parameters()):
        problem = "the weights are not finite"
    if problem:
        raise DivergenceError(
            out,
            f"epoch {row['epoch']}: {problem}; no checkpoint of this epoch was written "
            "(lower lr, or check the inputs and features for non-finite values)",
        )


@dataclass
class TrainingData:
    """The training windows, the validation windows and the feature tables of one run."""

    prepared: PreparedSequence
    train: CTCData
    val: CTCData | None
    val_start: int
    val_prepared: PreparedSequence | None
    table: FeatureTable | None
    val_table: FeatureTable | None
    recipe: dict[str, Any] | None


@dataclass
class Loaders:
    """The training loader, and the validation loader with the split it draws from."""

    train: DataLoader
    val: DataLoader | None
    val_split: CTCData | None


@dataclass
class Optimisation:
    """AdamW, its per-epoch warm-up/cosine schedule and the gradient scaler of mixed precision."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    mixed: bool


@dataclass
class EarlyStopping:
    """The best validation loss so far and the epochs since it (trackastra's patience rule)."""

    enabled: bool
    patience: int
    best: float = math.inf
    best_epoch: int | None = None
    wait: int = 0
    stopped: bool = False

    def update(self, epoch: int, val_loss: float) -> bool:
        """Record ``epoch``'s validation loss; True when training should stop after it."""
        if math.isfinite(val_loss) and val_loss < self.best:
            self.best, self.best_epoch, self.wait = val_loss, epoch, 0
        else:
            self.wait += 1
        self.stopped = self.enabled and self.wait >= self.patience
        return self.stopped


def check_inputs(settings: TrackastraSettings, features: Path | None, val_data: Path | None) -> None:
    """Refuse a fusion without features (or features without one) and validation that cannot be."""
    if (features is None) != (settings.fusion == "none"):
        raise ConfigError(
            "--features", f"fusion={settings.fusion!r} needs --features exactly when not 'none'"
        )
    if val_data is not None and settings.val_fraction > 0:
        raise ConfigError("--val-data", "give either --val-data or a val_fraction > 0, not both")
    if settings.early_stopping and val_data is None and settings.val_fraction == 0:
        raise ConfigError(
            "early_stopping", "early stopping needs validation data: a val_fraction > 0 or --val-data"
        )


def load_data(
    prepared: PreparedSequence,
    settings: TrackastraSettings,
    features: Path | None,
    val_data: Path | None,
    val_features: Path | None,
) -> TrainingData:
    """Load the feature tables and the validation sequence, split off the validation tail."""
    table = FeatureTable(features) if features is not None else None
    recipe = describe_table(features) if features is not None else None
    train_data, val_split, val_start = split_tail(prepared.data, prepared.n_frames, settings.val_fraction)
    val_table, val_prepared = table, None
    if val_data is not None:
        val_prepared = load_prepared(val_data, settings)
        val_split = val_prepared.data
        val_table = FeatureTable(val_features) if val_features is not None else None
        if (val_table is None) != (table is None):
            raise ConfigError("--val-features", "fused training with --val-data needs --val-features")
    if table is not None:
        table.check_covers(*_cells(train_data))
    if val_table is not None and val_split is not None:
        val_table.check_covers(*_cells(val_split))
    return TrainingData(prepared, train_data, val_split, val_start, val_prepared, table, val_table, recipe)


def training_device(settings: TrackastraSettings) -> torch.device:
    """The device of the settings; deterministic algorithms on the CPU."""
    device = resolve_device(settings.device, "tracking.settings.device")
    if device.type == "cpu":
        torch.use_deterministic_algorithms(True)
    return device


def fusion_settings(settings: TrackastraSettings, table: FeatureTable | None) -> dict[str, Any] | None:
    """The ``fusion_config`` of a fused model (None without a feature table)."""
    if table is None:
        return None
    fusion_config = dict(
        fusion=settings.fusion,
        embed_dim=table.dim,
        normalize=settings.normalize,
        concat_dim=settings.concat_dim,
        concat_hidden=settings.concat_hidden,
    )
    if settings.fusion == "etultra":
        fusion_config["etultra_dim"] = settings.etultra_dim
    return fusion_config


def build_fused_model(
    settings: TrackastraSettings,
    data: TrainingData,
    fusion_config: dict[str, Any] | None,
    device: torch.device,
) -> torch.nn.Module:
    """The transformer (fused when configured) on ``device``, its feature statistics from training frames."""
    model = build_model(settings.transformer_kwargs(data.train.feat_dim), fusion_config).to(device)
    if isinstance(model, FusedTrackingTransformer):
        rows = np.array([t < data.val_start for t, _ in data.table.index], dtype=bool)
        values = data.table.values[rows]
        model.set_feature_statistics(values.mean(axis=0), values.std(axis=0))
    return model


def build_loaders(data: TrainingData, settings: TrackastraSettings, seed: int) -> Loaders:
    """The balanced, augmented training loader and the unaugmented validation loader."""
    configure_sampling(data.train, settings, settings.augment, seed)
    sampler = BalancedBatchSampler(
        data.train,
        batch_size=settings.batch_size,
        n_pool=settings.n_pool_sampler,
        num_samples=settings.train_samples,
        weight_by_ndivs=settings.weight_by_ndivs,
    )
    train_loader = _loader(FusedWindows(data.train, data.table), batch_sampler=sampler)
    if data.val is None:
        return Loaders(train_loader, None, None)
    val_split = copy.copy(data.val)
    configure_sampling(val_split, settings, 0, seed)
    return Loaders(
        train_loader,
        _loader(FusedWindows(val_split, data.val_table), batch_size=settings.batch_size),
        val_split,
    )


def build_optimisation(
    model: torch.nn.Module, settings: TrackastraSettings, device: torch.device
) -> Optimisation:
    """AdamW with a linear warm-up then cosine schedule, and the scaler of CUDA mixed precision."""
    warmup = min(settings.warmup_epochs, settings.epochs)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, warmup, settings.epochs, settings.cosine_final)
    )
    mixed = settings.mixed_precision and device.type == "cuda"
    return Optimisation(optimizer, scheduler, torch.amp.GradScaler("cuda", enabled=mixed), mixed)


def run_config(
    settings: TrackastraSettings,
    seed: int,
    data_path: Path,
    features: Path | None,
    val_data: Path | None,
    val_features: Path | None,
    data: TrainingData,
    model: torch.nn.Module,
    fusion_config: dict[str, Any] | None,
    device: torch.device,
) -> dict[str, Any]:
    """The run's ``config.json``: settings, inputs, split and model configuration."""
    return {
        "settings": settings.model_dump(),
        "seed": seed,
        "data": str(data_path),
        "features": None if features is None else str(features),
        "val_data": None if val_data is None else str(val_data),
        "val_features": None if val_features is None else str(val_features),
        "val_dataset": None if data.val_prepared is None else data.val_prepared.dataset,
        "val_seq": None if data.val_prepared is None else data.val_prepared.sequence,
        "dataset": data.prepared.dataset,
        "train_seq": data.prepared.sequence,
        "n_frames": data.prepared.n_frames,
        "val_start_frame": data.val_start if val_data is None else None,
        "train_windows": len(data.train),
        "val_windows": 0 if data.val is None else len(data.val),
        "model_config": dict(model.config),
        "fusion_config": fusion_config,
        "features_recipe": data.recipe,
        "device": str(device),
        "versions": {"denselink": denselink.__version__, "torch": torch.__version__},
    }


def start_run_folder(out: Path, config: dict[str, Any], force: bool) -> None:
    """Claim ``out``, drop an earlier run's checkpoints and done record, write ``config.json``."""
    claim_directory(out, COMMAND, force)
    # A rerun replaces the whole run: checkpoints of an earlier, longer run must not be scored as this one's.
    shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    (out / DONE).unlink(missing_ok=True)
    write_json(out / RUN_CONFIG, config)


def train_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimisation: Optimisation,
    settings: TrackastraSettings,
    device: torch.device,
    epoch: int,
) -> float:
    """One pass over the training loader; the batch-size weighted mean of its finite losses."""
    model.train()
    total, count = 0.0, 0
    for batch in tqdm(loader, desc=f"epoch {epoch}", leave=False):
        batch = _to_device(batch, device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=optimisation.mixed):
            loss = association_loss(
                model, batch, settings.causal_norm, settings.delta_cutoff, settings.div_upweight
            )
        if not torch.isfinite(loss):
            log.warning("non-finite loss in epoch %d, step skipped", epoch)
            continue
        optimisation.optimizer.zero_grad(set_to_none=True)
        optimisation.scaler.scale(loss).backward()
        optimisation.scaler.step(optimisation.optimizer)
        optimisation.scaler.update()
        n = len(batch["coords"])
        total, count = total + float(loss.detach()) * n, count + n
    optimisation.scheduler.step()
    return total / count if count else float("nan")


def validate(
    model: torch.nn.Module, loaders: Loaders, settings: TrackastraSettings, device: torch.device, seed: int
) -> float:
    """The validation loss with the validation split re-seeded (NaN without validation data)."""
    if loaders.val is None:
        return float("nan")
    seed_sampling(loaders.val_split, seed)
    return evaluate_loss(model, loaders.val, settings, device)


def run_epoch(
    epoch: int,
    model: torch.nn.Module,
    loaders: Loaders,
    optimisation: Optimisation,
    settings: TrackastraSettings,
    device: torch.device,
    seed: int,
) -> dict[str, Any]:
    """Train and validate one epoch; its ``train_log.csv`` row."""
    start = time.perf_counter()
    lr = optimisation.optimizer.param_groups[0]["lr"]
    train_loss = train_epoch(model, loaders.train, optimisation, settings, device, epoch)
    val_loss = validate(model, loaders, settings, device, seed)
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val_loss,
        "lr": lr,
        "seconds": round(time.perf_counter() - start, 3),
    }


def record_epoch(
    out: Path, rows: list[dict[str, Any]], model: torch.nn.Module, validated: bool, extra: dict[str, Any]
) -> None:
    """Stop on divergence, else write the last row's checkpoint (with ``extra``) and the whole log."""
    row = rows[-1]
    _stop_if_diverged(out, row, model, validated)
    _save_checkpoint(out / trackastra_checkpoint(row["epoch"]), model, {**row, **extra})
    write_log(out / TRAIN_LOG, rows)
    log.info(
        "epoch %d: train_loss %.5f val_loss %.5f lr %.2e",
        row["epoch"],
        row["train_loss"],
        row["val_loss"],
        row["lr"],
    )


def write_done(
    out: Path, rows: list[dict[str, Any]], stopping: EarlyStopping, device: torch.device
) -> dict[str, Any]:
    """Write and return the ``done.json`` record: epochs run, early stop, best epoch, checkpoints, device."""
    done = {
        "epochs_run": len(rows),
        "stopped_early": stopping.stopped,
        "best_val_epoch": stopping.best_epoch,
        "checkpoints": [trackastra_checkpoint(row["epoch"]) for row in rows],
        **device_record(device),
    }
    write_json(out / DONE, done)
    return done


def train(
    data_path: Path,
    out: Path,
    seed: int,
    settings: TrackastraSettings,
    features: Path | None = None,
    val_data: Path | None = None,
    val_features: Path | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Train one seed; returns the ``done.json`` record.

    ``out`` must be absent or this command's own run folder (``force`` replaces anything else).
    """
    out = check_output(out, COMMAND, force)
    prepared = load_prepared(data_path, settings)
    check_inputs(settings, features, val_data)
    data = load_data(prepared, settings, features, val_data, val_features)
    device = training_device(settings)
    seed_everything(seed)
    fusion_config = fusion_settings(settings, data.table)
    model = build_fused_model(settings, data, fusion_config, device)
    loaders = build_loaders(data, settings, seed)
    optimisation = build_optimisation(model, settings, device)
    stopping = EarlyStopping(settings.early_stopping, max(1, settings.epochs // 6))  # the authors' epochs//6
    config = run_config(
        settings, seed, data_path, features, val_data, val_features, data, model, fusion_config, device
    )
    start_run_folder(out, config, force)

    rows: list[dict[str, Any]] = []
    for epoch in range(settings.epochs):
        rows.append(run_epoch(epoch, model, loaders, optimisation, settings, device, seed))
        record_epoch(
            out, rows, model, loaders.val is not None, {"seed": seed, "features_recipe": data.recipe}
        )
        if stopping.update(epoch, rows[-1]["val_loss"]):
            log.info("early stopping after epoch %d (best val_loss at epoch %s)", epoch, stopping.best_epoch)
            break
    return write_done(out, rows, stopping, device)


def build_parser() -> argparse.ArgumentParser:
    parser = command_parser(COMMAND, __doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="cache of `tracking prepare` (training seq)")
    parser.add_argument(
        "--features", type=Path, default=None, help="feature parquet of the training sequence"
    )
    parser.add_argument("--out", type=Path, required=True, help="run directory (checkpoints/, logs)")
    parser.add_argument("--seed", type=arg_types.seed, required=True, help="seed of every random stream")
    parser.add_argument(
        "--val-data",
        type=Path,
        default=None,
        help="cache of another sequence for val_loss (the authors validated on 01 while training on 02)",
    )
    parser.add_argument("--val-features", type=Path, default=None, help="feature parquet of --val-data")
    parser.add_argument(
        "--settings", default=None, help="TrackastraSettings as inline JSON or a YAML/JSON file"
    )
    add_force_flag(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``denselink tracking train``."""
    args, settings = start(build_parser(), argv, COMMAND, TrackastraSettings, logs=True)
    train(
        args.data, args.out, args.seed, settings, args.features, args.val_data, args.val_features, args.force
    )
    return 0
