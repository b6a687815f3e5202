"""trackastra's ``BalancedBatchSampler``, copied so that training does not need lightning.

From ``trackastra/data/distributed.py`` (identical in trackastra 0.4.1 and 0.5.6), unchanged but for
its imports, two debug log lines and its comments. That module imports ``lightning`` at its top for a
``LightningDataModule`` denselink does not use; lightning is only in trackastra's ``train`` extra,
which denselink does not install. BSD 3-Clause License, Copyright (c) 2024, Benjamin Gallusser,
Martin Weigert.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from torch.utils.data import BatchSampler, ConcatDataset, Dataset
from trackastra.data import CTCData


class BalancedBatchSampler(BatchSampler):
    """samples batch indices such that the number of objects in each batch is balanced
    (so to reduce the number of paddings in the batch).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        n_pool: int = 10,
        num_samples: int | None = None,
        weight_by_ndivs: bool = False,
        weight_by_dataset: bool = False,
        drop_last: bool = False,
    ):
        if isinstance(dataset, CTCData):
            self.n_objects = dataset.n_objects
            self.n_divs = np.array(dataset.n_divs)
            self.n_sizes = np.ones(len(dataset)) * len(dataset)
        elif isinstance(dataset, ConcatDataset):
            self.n_objects = tuple(n for d in dataset.datasets for n in d.n_objects)
            self.n_divs = np.array(tuple(n for d in dataset.datasets for n in d.n_divs))
            self.n_sizes = np.array(tuple(len(d) for d in dataset.datasets for _ in range(len(d))))
        else:
            raise NotImplementedError(f"BalancedBatchSampler: Unknown dataset type {type(dataset)}")
        assert len(self.n_objects) == len(self.n_divs) == len(self.n_sizes)

        self.batch_size = batch_size
        self.n_pool = n_pool
        self.drop_last = drop_last
        self.num_samples = num_samples
        self.weight_by_ndivs = weight_by_ndivs
        self.weight_by_dataset = weight_by_dataset

    def get_probs(self, idx):
        idx = np.array(idx)
        if self.weight_by_ndivs:  # noqa: SIM108 (kept as in trackastra)
            probs = 1 + np.sqrt(self.n_divs[idx])
        else:
            probs = np.ones(len(idx))
        if self.weight_by_dataset:
            probs = probs / (self.n_sizes[idx] + 1e-6)

        probs = probs / (probs.sum() + 1e-10)
        return probs

    def sample_batches(self, idx: Iterable[int]):
        num_samples = self.num_samples if self.num_samples is not None else len(idx)
        idx = np.random.choice(idx, num_samples, replace=True, p=self.get_probs(idx))

        n_pool = min(
            self.n_pool * self.batch_size,
            (len(idx) // self.batch_size) * self.batch_size,
        )

        batches = []
        for i in range(0, len(idx), n_pool):
            idx_pool = idx[i : i + n_pool]
            idx_pool = sorted(idx_pool, key=lambda i: self.n_objects[i])
            jj = np.arange(0, len(idx_pool), self.batch_size)
            np.random.shuffle(jj)
            for j in jj:
                batch = idx_pool[j : j + self.batch_size]
                batches.append(batch)
        return batches

    def __iter__(self):
        idx = np.arange(len(self.n_objects))
        batches = self.sample_batches(idx)
        return iter(batches)

    def __len__(self):
        if self.num_samples is not None:
            return self.num_samples // self.batch_size
        else:
            return len(self.n_objects) // self.batch_size
