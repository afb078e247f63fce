"""What the training methods share besides their optimiser: the supervised loss, the label rule, one update.

Every method of :data:`regdakit.methods.METHODS` trains ``f`` on labelled
batches with the same supervised loss (:func:`source_loss`), every
adaptation method refuses target batches that carry labels
(:func:`check_unlabelled`), and every step is a sequence of updates "these
players minimise this loss" (:func:`minimise`). They live here, not in one
method that the others would import as a library.

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.

>>> check_source_loss("kl")
'kl'
>>> try:
...     check_unlabelled({"image": torch.zeros(1, 3, 32, 32), "weight": torch.ones(1, 2)})
... except ValueError as err:
...     print(str(err).split(":")[0])
batch_t carries target labels ['weight']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from regdakit.losses import kl_heatmap_loss, mse_heatmap_loss

__all__ = [
    "LABEL_KEYS",
    "SOURCE_LOSSES",
    "check_labelled",
    "check_source_loss",
    "check_unlabelled",
    "minimise",
    "parameters",
    "source_loss",
    "supervised_update",
]

#: The supervised heatmap losses: spatial KL (the paper's, RegDA's pre-training) and MSE on the logits
#: (the reference's separate ERM baseline).
SOURCE_LOSSES = ("kl", "mse")

#: Keys of a labelled batch; none may appear in a target batch.
LABEL_KEYS = ("keypoints", "visible", "heatmap", "weight")


def check_source_loss(name: str, setting: str = "source_loss") -> str:
    """``name`` if it is one of :data:`SOURCE_LOSSES`; a ``ValueError`` naming ``setting`` otherwise."""
    if name not in SOURCE_LOSSES:
        raise ValueError(f"{setting} must be one of {SOURCE_LOSSES}, got {name!r}")
    return name


def source_loss(y: torch.Tensor, heatmap: torch.Tensor, weight: torch.Tensor, loss: str = "kl") -> torch.Tensor:
    """Supervised heatmap loss of a head, KL (softmax over ``H·W``) or MSE on the logits.

    Args:
        y: ``(B, K, H, W)`` logits of ``f`` (or ``f'``).
        heatmap: ``(B, K, H, W)`` ground-truth heatmaps ``H(y)``.
        weight: ``(B, K)`` visibility weights (labelled data only).
        loss: One of :data:`SOURCE_LOSSES`.

    Returns:
        Scalar tensor.
    """
    if check_source_loss(loss, "loss") == "kl":
        return kl_heatmap_loss(y, heatmap, weight)
    return mse_heatmap_loss(y, heatmap, weight)


def check_labelled(batch: Mapping[str, Any], name: str = "batch_s") -> None:
    """Refuse a batch without ``image``, ``heatmap`` and ``weight`` (a supervised step needs all three)."""
    for key in ("image", "heatmap", "weight"):
        if key not in batch:
            raise ValueError(f"{name} needs {key!r} (a labelled batch), has {sorted(batch)}")


def check_unlabelled(batch_t: Mapping[str, Any]) -> None:
    """Refuse a target batch that carries any of :data:`LABEL_KEYS`, or has no ``image``.

    Unsupervised adaptation may use target *images* only; the trainer builds
    target streams without labels, and this check makes a leak an error
    instead of a silently better number.
    """
    leaked = [key for key in LABEL_KEYS if key in batch_t]
    if leaked:
        raise ValueError(
            f"batch_t carries target labels {leaked}: adaptation never sees target labels; "
            "build the target stream without labels (labels=False)"
        )
    if "image" not in batch_t:
        raise ValueError(f"batch_t needs 'image', has {sorted(batch_t)}")


def parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters an optimiser steps, in order (for ``backward(inputs=...)``)."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def minimise(
    loss: torch.Tensor, optimizers: Iterable[torch.optim.Optimizer], inputs: list[torch.Tensor] | None = None
) -> None:
    """One update of the given players: ``zero_grad`` all, ``loss.backward(inputs=inputs)``, ``step`` all.

    Args:
        loss: Scalar to minimise.
        optimizers: The players this update moves (the others keep their weights).
        inputs: Restrict the backward to these tensors (e.g. ``psi``'s parameters in RegDA's step C),
            so no gradient is computed for parameters nobody steps.
    """
    optimizers = list(optimizers)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward(inputs=inputs)
    for opt in optimizers:
        opt.step()


def supervised_update(
    model: torch.nn.Module, batch: Mapping[str, Any], optimizers: Mapping[str, torch.optim.Optimizer], loss: str
) -> dict[str, float]:
    """One supervised update of ``psi`` and ``f`` on a labelled ``batch``: ERM's step and continue-ERM's.

    Only the main head runs (``f'``'s forward would cost a head for nothing).

    Args:
        model: The detector (``model.heatmaps`` gives ``f``'s ``(B, K, H/4, W/4)`` output).
        batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        optimizers: Every optimiser the update steps.
        loss: ``"kl"`` or ``"mse"``.

    Returns:
        ``{"A/source": L_src}``.
    """
    check_labelled(batch, "batch_s")
    y = model.heatmaps(batch["image"])  # (B, K, H/4, W/4)
    value = source_loss(y, batch["heatmap"], batch["weight"], loss)
    minimise(value, optimizers.values())
    return {"A/source": value.item()}
