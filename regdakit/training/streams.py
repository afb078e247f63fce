"""The data of a run: ``(task, domain)`` -> endless training streams and fixed evaluation sets.

A domain is a synthetic domain of the task (:data:`regdakit.data.synthetic.DOMAINS`),
rendered on the fly, or a real dataset of :data:`regdakit.data.real.DATASETS`
read from its folder (``source_root`` / ``target_root``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from regdakit.data.streams import LoaderStream, eval_batches
from regdakit.data.synthetic import SyntheticStream, make_dataset
from regdakit.data.transforms import Augment
from regdakit.training.config import ROTATION, TrainConfig, real_datasets

__all__ = ["make_eval_sets", "make_stream"]


def _root(cfg: TrainConfig, domain: str) -> str:
    """The folder of the real dataset ``domain``: ``source_root`` for the source domain, else ``target_root``."""
    return cfg.source_root if domain == cfg.source_domain else cfg.target_root  # type: ignore[return-value]


def make_stream(
    cfg: TrainConfig, domain: str, seed: int, labels: bool, *, rank: int = 0, world_size: int = 1
) -> Iterator[dict[str, Any]]:
    """An endless batch stream of ``domain``; unlabelled streams yield only ``image`` and ``meta``.

    Labelled batches carry ``heatmap`` targets, Gaussians of width ``cfg.sigma`` heatmap cells.

    Synthetic domains render fresh batches; real datasets are shuffled per
    epoch by a :class:`regdakit.data.streams.LoaderStream` over their
    ``train`` split (augmented per item in the workers).

    With ``world_size`` processes, each stream yields ``cfg.batch_size / world_size``
    images; on a real dataset rank ``rank`` draws from its own shard (items
    ``rank, rank + world_size, ...``), so one epoch of all ranks covers the set
    once. The caller gives each rank its own ``seed``
    (:func:`regdakit.distributed.stream_seed`).

    Raises:
        ValueError: ``cfg.batch_size`` is not a multiple of ``world_size``.
    """
    if cfg.batch_size % world_size:
        raise ValueError(
            f"batch_size {cfg.batch_size} (the global batch) must be a multiple of the {world_size} processes"
        )
    batch_size = cfg.batch_size // world_size
    augment = Augment(rotation=ROTATION[cfg.task]) if cfg.augment else None
    real = real_datasets()
    if domain in real:
        dataset = real[domain](
            _root(cfg, domain),
            "train",
            image_size=cfg.image_size,
            heatmap_size=cfg.heatmap_size if labels else None,
            sigma=cfg.sigma,
            transform=augment,
            labels=labels,
        )
        if world_size > 1:
            dataset = torch.utils.data.Subset(dataset, range(rank, len(dataset), world_size))
        return LoaderStream(dataset, batch_size, seed, cfg.workers)
    return SyntheticStream(
        cfg.task,
        domain,
        batch_size,
        cfg.image_size,
        seed,
        heatmap_size=cfg.heatmap_size if labels else None,
        sigma=cfg.sigma,
        augment=augment,
        labels=labels,
    )


def make_eval_sets(cfg: TrainConfig) -> dict[str, Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]:
    """``{"source_val", "target_test"}`` -> re-iterable ``(images, keypoints in pixels, visible)`` batches.

    Synthetic domains: fixed sets of ``eval_size`` images (seed 0, split
    ``val`` for the source, ``test`` for the target). Real datasets: the
    whole ``test`` split (the reference validates its source on the source
    test split too).
    """
    sets = {"source_val": (cfg.source_domain, "val"), "target_test": (cfg.target_domain, "test")}
    real = real_datasets()
    out: dict[str, Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    for name, (domain, split) in sets.items():
        if domain in real:
            dataset = real[domain](_root(cfg, domain), "test", image_size=cfg.image_size)
            out[name] = eval_batches(dataset, batch_size=64, workers=cfg.workers)
        else:
            images, keypoints, visible = make_dataset(
                cfg.task, domain, split, cfg.image_size, cfg.eval_size, seed=0
            ).tensors()
            out[name] = list(zip(images.split(64), keypoints.split(64), visible.split(64), strict=True))
    return out
