"""Label-free model selection: choosing among a run's checkpoints without target labels.

An unsupervised domain adaptation method is only usable if its checkpoint (or
its hyper-parameters) can be chosen without target labels; picking the
checkpoint with the best *target test* PCK reports a number no user could
obtain. Each validator here maps a model to a score, **higher is better**,
from data a user has: the labelled source validation set and unlabelled target
images.

* :func:`source_pck`: PCK@0.05 on the labelled source validation set (the
  reference selects its pre-training this way). Blind to the target by design.
* :func:`neg_entropy`: minus the mean spatial entropy of ``f``'s heatmap
  distributions on unlabelled target images (Morerio et al., ICLR 2018, use
  the target entropy to select DA models): a confident detector concentrates
  each keypoint's mass on few cells.
* :func:`head_agreement`: the fraction of target keypoints where ``f`` and
  ``f'`` decode within the PCK@0.05 distance of each other (two heads trained
  on the same features agree where the features are reliable; the idea of
  MCD's discrepancy as a target-error proxy). Only for models with ``f'``.

:func:`select` picks the best candidate by a score; :func:`oracle_select`,
the best by target test PCK, is labelled as what it is: not a valid
unsupervised protocol, only an upper bound of what selection could gain.

Shape legend: ``N`` images, ``K`` keypoints, ``H x W`` heatmap cells.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from regdakit._validation import check_tensor
from regdakit.heatmaps import decode
from regdakit.inference import predict
from regdakit.metrics import pck_threshold
from regdakit.models import PoseResNet

__all__ = [
    "VALIDATORS",
    "head_agreement",
    "heatmap_entropy",
    "neg_entropy",
    "oracle_select",
    "select",
    "source_pck",
]


def heatmap_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of each keypoint's spatial softmax distribution.

    Args:
        logits: ``(N, K, H, W)`` heatmap logits.

    Returns:
        ``(N, K)`` entropies, in ``[0, log(H·W)]``.

    >>> heatmap_entropy(torch.zeros(1, 1, 2, 2))  # uniform over 4 cells: log 4
    tensor([[1.3863]])
    """
    check_tensor("logits", logits, ("N", "K", "H", "W"))
    log_p = torch.log_softmax(logits.flatten(2).float(), dim=-1)  # (N, K, H*W)
    return -(log_p.exp() * log_p).sum(-1)


def neg_entropy(model: PoseResNet, target_images: Iterable[torch.Tensor]) -> float:
    """Minus the mean spatial entropy of ``f`` on unlabelled target images (higher: more confident).

    Args:
        model: The detector (run in eval mode by :func:`regdakit.inference.predict`, its mode restored after).
        target_images: ``(b, 3, S, S)`` batches of unlabelled target images in [0, 1].
    """
    y = predict(model, target_images)  # (N, K, H, W)
    return -float(heatmap_entropy(y).mean())


def head_agreement(model: PoseResNet, target_images: Iterable[torch.Tensor], alpha: float = 0.05) -> float:
    """Fraction of target keypoints where ``f`` and ``f'`` decode within ``alpha`` x the heatmap side.

    Args:
        model: A detector with ``f'`` (run in eval mode, its mode restored after).
        target_images: ``(b, 3, S, S)`` batches of unlabelled target images in [0, 1].
        alpha: The agreement radius as a fraction of the heatmap side (0.05: the PCK@0.05 distance).

    Raises:
        ValueError: The model has no ``f'``.
    """
    if model.head_adv is None:
        raise ValueError("head_agreement needs a model with f' (this one has a single head)")
    y, y_adv = predict(model, target_images, adversarial=True)  # (N, K, H, W) each
    distance = (decode(y)[0] - decode(y_adv)[0]).norm(dim=-1)  # (N, K) heatmap cells
    return float((distance < pck_threshold(y.shape[-1], alpha)).float().mean())


def source_pck(model: PoseResNet, source_val: Iterable[tuple[torch.Tensor, ...]], skeleton: Any) -> float:
    """PCK@0.05 ("all") of ``f`` on the labelled source validation batches ``(images, keypoints px, visible)``."""
    from regdakit.training import evaluate  # the trainer's evaluation, one definition of PCK

    return evaluate(model, source_val, skeleton)["pck@0.05/all"]


#: name -> validator ``(model, data) -> score``, higher is better; ``data`` holds ``"source_val"`` (labelled
#: source batches), ``"target_images"`` (unlabelled target image batches) and ``"skeleton"``.
VALIDATORS: dict[str, Callable[[PoseResNet, Mapping[str, Any]], float]] = {
    "source_pck": lambda model, data: source_pck(model, data["source_val"], data["skeleton"]),
    "neg_entropy": lambda model, data: neg_entropy(model, data["target_images"]),
    "head_agreement": lambda model, data: head_agreement(model, data["target_images"]),
}


def select(candidates: Sequence[Mapping[str, Any]], score: str) -> Mapping[str, Any]:
    """The candidate with the highest ``candidate[score]`` (the earliest on ties); NaN / None scores never win.

    Args:
        candidates: e.g. ``[{"iteration": 50, "neg_entropy": -3.1, ...}, ...]``.
        score: The key to maximise.

    Raises:
        ValueError: No candidate has a finite score.

    >>> select([{"it": 1, "s": 0.2}, {"it": 2, "s": 0.5}, {"it": 3, "s": 0.5}], "s")["it"]
    2
    """
    valid = [c for c in candidates if c.get(score) is not None and math.isfinite(c[score])]
    if not valid:
        raise ValueError(f"no candidate has a finite {score!r} (of {len(candidates)})")
    return max(valid, key=lambda c: c[score])  # max keeps the first of equal scores


def oracle_select(candidates: Sequence[Mapping[str, Any]], target_pck: str = "target_pck") -> Mapping[str, Any]:
    """The candidate with the best *target test* PCK. **Not a valid UDA protocol**: it reads target labels.

    Reported only beside label-free selection, as the bound of what any selection could gain.
    """
    return select(candidates, target_pck)
