"""Evaluation: PCK of ``f``'s decoded predictions on the fixed sets, in one process or sharded over ranks.

PCK@0.05 and PCK@0.1 per keypoint group on fixed synthetic sets (source
``val`` and target ``test``, rendered with seed 0 so every run sees the same
images: :func:`regdakit.training.streams.make_eval_sets`) every
``eval_every`` iterations and at the end. A run reports the last
iteration's numbers and, beside them, their mean over the last
``summary_evals`` evaluations (:func:`mean_of_last`): one snapshot of a short
adaptation is noisy (issue 18: 200 more plain iterations moved a target PCK
between 11.2 and 12.8). No checkpoint is ever chosen by target labels.

Under torchrun each rank predicts its share of a set (:func:`shard_eval_set`)
and :func:`evaluate_sharded` gathers the predictions, so every rank reports
the numbers one process would.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from regdakit import distributed
from regdakit.data.streams import eval_batches
from regdakit.distributed import Context
from regdakit.heatmaps import decode
from regdakit.inference import predict
from regdakit.keypoints import Skeleton
from regdakit.metrics import pck, pck_threshold
from regdakit.models import PoseResNet

__all__ = ["evaluate", "evaluate_sharded", "mean_of_last", "shard_eval_set"]


def evaluate(
    model: PoseResNet,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    skeleton: Skeleton,
) -> dict[str, float]:
    """PCK@0.05 and PCK@0.1 per group of ``f``'s decoded predictions, in eval mode (running BatchNorm statistics).

    Args:
        model: The detector (run in eval mode by :func:`regdakit.inference.predict`; its mode is restored after).
        batches: ``(images (b, 3, S, S) in [0, 1], keypoints (b, K, 2) in pixels, visible (b, K))``
            batches, e.g. from :func:`~regdakit.training.streams.make_eval_sets`.
        skeleton: Gives the groups.

    Returns:
        ``{"pck@0.05/all": ..., "pck@0.05/<group>": ..., "pck@0.1/...": ...}``; PCK is computed
        over all valid pairs of the whole set, not averaged over batches.
    """
    return _pck_metrics(*_predict(model, batches), skeleton)


def _predict(
    model: PoseResNet, batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``f``'s decoded predictions in eval mode: ``(pred (N, K, 2), gt (N, K, 2), visible (N, K), side)``.

    Positions are in heatmap cells; ``side`` is the heatmap side (0 when ``batches`` is empty).
    The images go through :func:`regdakit.inference.predict`; each batch's labels are kept
    aside, in order, as its images pass.
    """
    keypoints, visible, image_sides, heatmap_sides = [], [], [], []

    def images() -> Iterator[torch.Tensor]:
        for x, keypoints_px, visible_ in batches:
            keypoints.append(keypoints_px.float())  # (b, K, 2) pixels
            visible.append(visible_.bool())
            image_sides.append(x.shape[-1])
            yield x

    def positions(y: torch.Tensor) -> torch.Tensor:  # (b, K, H, W) logits -> (b, K, 2) heatmap cells
        heatmap_sides.append(y.shape[-1])
        return decode(y)[0]

    pred = predict(model, images(), then=positions)
    if not keypoints:
        return torch.zeros(0, 0, 2), torch.zeros(0, 0, 2), torch.zeros(0, 0, dtype=torch.bool), 0
    gt = [kp * (side / size) for kp, side, size in zip(keypoints, heatmap_sides, image_sides, strict=True)]
    return pred, torch.cat(gt), torch.cat(visible), heatmap_sides[-1]


def _pck_metrics(
    pred: torch.Tensor, gt: torch.Tensor, visible: torch.Tensor, side: int, skeleton: Skeleton
) -> dict[str, float]:
    """PCK@0.05 and PCK@0.1 per group over all ``(N, K)`` pairs (positions in heatmap cells of side ``side``)."""
    out: dict[str, float] = {}
    for alpha in (0.05, 0.1):
        result = pck(pred, gt, visible, pck_threshold(side, alpha), skeleton)
        out.update({f"pck@{alpha}/{group}": value for group, value in result.per_group.items()})
    return out


def evaluate_sharded(
    model: PoseResNet,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    skeleton: Skeleton,
    ctx: Context,
) -> dict[str, float]:
    """:func:`evaluate` with ``batches`` (this rank's shard) predicted here and the predictions of all ranks gathered.

    Every rank predicts its contiguous shard (:func:`shard_eval_set`); the gathered
    predictions, in rank order, are the whole set once, and PCK is computed
    over them as :func:`evaluate` computes it in one process. Every rank
    returns the same numbers.

    Args:
        model: The detector (run in eval mode and restored, as by :func:`evaluate`).
        batches: This rank's ``(images (b, 3, S, S), keypoints (b, K, 2) in pixels, visible (b, K))`` batches.
        skeleton: Gives the groups.
        ctx: The process group; in one process this is :func:`evaluate`.
    """
    if not ctx.distributed:
        return evaluate(model, batches, skeleton)
    parts = [p for p in ctx.gather(_predict(model, batches)) if p[3] > 0]  # drop empty shards
    pred, gt, visible = (torch.cat([p[i] for p in parts]) for i in range(3))
    return _pck_metrics(pred, gt, visible, parts[0][3], skeleton)


def shard_eval_set(batches: Iterable[tuple[torch.Tensor, ...]], ctx: Context) -> Iterable[tuple[torch.Tensor, ...]]:
    """This rank's contiguous share of an evaluation set (all of it in one process).

    Args:
        batches: ``(images (b, 3, S, S), keypoints (b, K, 2), visible (b, K))`` batches of
            :func:`~regdakit.training.streams.make_eval_sets`: a list (a synthetic set) or the
            :class:`~regdakit.data.streams.eval_batches` of a real dataset's test split.
        ctx: The process group.

    Returns:
        Images ``[lo, hi)`` of the set's ``N``, ``(lo, hi) = shard_range(N, rank, world_size)``
        (:func:`regdakit.distributed.shard_range`), in batches of at most 64, of the same kind as ``batches``.
    """
    if not ctx.distributed:
        return batches
    if isinstance(batches, eval_batches):  # a real dataset's test split: a shard of the dataset
        lo, hi = distributed.shard_range(len(batches.dataset), ctx.rank, ctx.world_size)
        subset = torch.utils.data.Subset(batches.dataset, range(lo, hi))
        return eval_batches(subset, batch_size=batches.batch_size, workers=batches.workers)
    images, keypoints, visible = (torch.cat(parts) for parts in zip(*batches, strict=True))
    lo, hi = distributed.shard_range(len(images), ctx.rank, ctx.world_size)
    return list(zip(images[lo:hi].split(64), keypoints[lo:hi].split(64), visible[lo:hi].split(64), strict=True))


def mean_of_last(evaluations: Iterable[tuple[int, dict[str, dict[str, float]]]], last: int) -> dict[str, Any]:
    """The mean of the last ``last`` evaluations, per set and metric: what ``final.json`` reports as its summary.

    Args:
        evaluations: ``(iteration, {set: {metric: value}})`` pairs, in any order; an iteration evaluated twice
            (a resumed run) counts once, with its later value.
        last: How many of the latest evaluations to average (>= 1); fewer when the run has fewer.

    Returns:
        ``{"evaluations": n, "iterations": [...], "metrics": {set: {metric: mean}}}``, ``n`` the number averaged
        and ``iterations`` theirs, in order.

    Raises:
        ValueError: ``last`` < 1, or no evaluation.

    >>> runs = [(100, {"target_test": {"pck@0.05/all": 0.2}}), (200, {"target_test": {"pck@0.05/all": 0.4}})]
    >>> mean_of_last(runs, 3)
    {'evaluations': 2, 'iterations': [100, 200], 'metrics': {'target_test': {'pck@0.05/all': 0.30000000000000004}}}
    """
    if isinstance(last, bool) or not isinstance(last, int) or last < 1:
        raise ValueError(f"last must be an int >= 1, got {last!r}")
    by_iteration = dict(evaluations)  # a later record of the same iteration wins
    if not by_iteration:
        raise ValueError("no evaluation to summarise")
    iterations = sorted(by_iteration)[-last:]
    chosen = [by_iteration[i] for i in iterations]
    metrics = {
        name: {key: sum(e[name][key] for e in chosen) / len(chosen) for key in chosen[-1][name]} for name in chosen[-1]
    }
    return {"evaluations": len(chosen), "iterations": iterations, "metrics": metrics}
