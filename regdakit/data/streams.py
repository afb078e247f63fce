"""Endless, resumable batch streams over a map-style dataset (real datasets).

:class:`LoaderStream` shuffles a dataset once per epoch with a permutation
drawn from ``(seed, epoch)``, serves it in full batches (the last partial
batch is dropped, as the reference does) through a ``DataLoader`` with
workers, and starts the next epoch when one ends. Its state is ``(epoch,
position)``, so a resumed run continues with exactly the batches it would
have seen. (Random augmentation inside workers is drawn afresh after a
resume; the synthetic streams resume bit for bit.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

__all__ = ["LoaderStream", "eval_batches"]


class LoaderStream:
    """Endless batches of ``dataset`` (dicts collated by ``default_collate``).

    Args:
        dataset: A map-style dataset (e.g. a :class:`regdakit.data.base.KeypointDataset`).
        batch_size: Items per batch; the dataset must hold at least one batch.
        seed: Seeds the per-epoch shuffles.
        workers: ``DataLoader`` worker processes (0 loads in this process).
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int = 0, workers: int = 0) -> None:
        n = len(dataset)  # type: ignore[arg-type]
        if n < batch_size:
            raise ValueError(f"dataset has {n} items, fewer than one batch of {batch_size}")
        self.dataset, self.batch_size, self.seed, self.workers = dataset, batch_size, seed, workers
        self.epoch, self.position = 0, 0
        self._iterator: Iterator[Any] | None = None

    def _batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.dataset), generator=g).tolist()  # type: ignore[arg-type]
        full = len(order) // self.batch_size
        return [order[i * self.batch_size : (i + 1) * self.batch_size] for i in range(self.position, full)]

    def _start(self) -> None:
        batches = self._batches()
        if not batches:  # the epoch is used up: move on
            self.epoch, self.position = self.epoch + 1, 0
            batches = self._batches()
        loader = DataLoader(self.dataset, batch_sampler=batches, num_workers=self.workers)
        self._iterator = iter(loader)

    def __iter__(self) -> LoaderStream:
        return self

    def __next__(self) -> dict[str, Any]:
        if self._iterator is None:
            self._start()
        assert self._iterator is not None
        try:
            batch = next(self._iterator)
        except StopIteration:
            self.epoch, self.position = self.epoch + 1, 0
            self._start()
            batch = next(self._iterator)
        self.position += 1
        return batch

    def state_dict(self) -> dict[str, int]:
        """Where the stream is: ``{"epoch", "position"}`` (batches served in this epoch)."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        """Continue from :meth:`state_dict`."""
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
        self._iterator = None


class eval_batches:  # noqa: N801 - reads as a function at the call site
    """Re-iterable ``(images, keypoints, visible)`` batches of a labelled dataset, in order.

    Args:
        dataset: Items with ``image``, ``keypoints`` and ``visible``.
        batch_size: Items per batch.
        workers: ``DataLoader`` workers.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 64, workers: int = 0) -> None:
        self.dataset, self.batch_size, self.workers = dataset, batch_size, workers

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        loader = DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.workers)
        for batch in loader:
            yield batch["image"], batch["keypoints"], batch["visible"]
