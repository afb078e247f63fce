"""Run a detector over a set of images: the one prediction loop of regdakit.

Evaluation (:func:`regdakit.training.evaluate`), the error maps of notebooks
01–02 (:func:`regdakit.density.predict`), the label-free validators
(:mod:`regdakit.selection`) and the benchmarks all predict through
:func:`predict`, so eval mode, ``no_grad``, the device and batching are
handled in one place.

Shape legend: ``N`` images, ``b`` images in a batch, ``K`` keypoints, ``S x
S`` image pixels (``S`` divisible by 32; the letters do not require a square),
``H x W`` heatmap cells (``S / 4`` for a :class:`~regdakit.models.PoseResNet`).

>>> from regdakit.models import pose_resnet
>>> model = pose_resnet("tiny", num_keypoints=21)
>>> tuple(predict(model, torch.rand(5, 3, 64, 64), batch_size=2).shape)
(5, 21, 16, 16)
>>> model.training  # the mode it came in with
True
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable

import torch
from torch import nn

from regdakit._validation import check_tensor

__all__ = ["predict"]


def predict(
    model: nn.Module,
    images: torch.Tensor | Iterable[torch.Tensor],
    *,
    batch_size: int = 64,
    adversarial: bool = False,
    then: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The heatmaps of ``f`` (and ``f'``) for a set of images, batch by batch, in eval mode and without gradients.

    The model runs in eval mode (BatchNorm's running statistics, nothing updated)
    under ``torch.no_grad``; every submodule gets its own train/eval mode back
    afterwards, also when a batch raises. Batches go to the device of the model's
    parameters; results come back to the CPU as float32 and are concatenated.

    Args:
        model: A :class:`~regdakit.models.PoseResNet` (``model.heatmaps(x)`` gives ``f``'s logits,
            ``model(x)`` gives ``(y, y_adv)``), or a module with the same two calls.
        images: ``(N, 3, S, S)`` in [0, 1], split into batches of ``batch_size``; or an iterable of
            ``(b, 3, S, S)`` batches, used as they come (a list, a generator, a data loader's images).
        batch_size: Images per forward pass when ``images`` is one tensor.
        adversarial: Also return ``f'``'s logits (the model must have ``f'``).
        then: Applied to each batch's float32 logits ``(b, K, H, W)`` on the device before they move
            to the CPU, e.g. ``lambda y: decode(y)[0]`` to keep ``(b, K, 2)`` positions instead of maps.

    Returns:
        ``y``: ``(N, K, H, W)`` logits of ``f`` (or ``then``'s outputs, concatenated along the first
        dimension); with ``adversarial=True`` the pair ``(y, y_adv)``. An empty set gives ``(0,)``
        tensors: without an image the shape of an output is unknown.

    Raises:
        ValueError: ``batch_size`` is not an int >= 1; ``images`` is a tensor of another shape;
            ``adversarial=True`` and the model has no ``f'``.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(images, torch.Tensor):
        check_tensor("images", images, ("N", 3, "S", "S"))
        images = images.split(batch_size)
    device = _device(model)
    finish = then if then is not None else (lambda y: y)
    modes = [(module, module.training) for module in model.modules()]
    ys: list[torch.Tensor] = []
    ys_adv: list[torch.Tensor] = []
    model.eval()
    try:
        with torch.no_grad():
            for x in images:
                x = x.to(device)
                if not adversarial:
                    ys.append(finish(model.heatmaps(x).float()).cpu())
                    continue
                y, y_adv = model(x)
                if y_adv is None:
                    raise ValueError("adversarial=True needs a model with f' (this one has a single head)")
                ys.append(finish(y.float()).cpu())
                ys_adv.append(finish(y_adv.float()).cpu())
    finally:
        for module, training in modes:
            module.training = training
    if adversarial:
        return _cat(ys), _cat(ys_adv)
    return _cat(ys)


def _device(model: nn.Module) -> torch.device:
    """Where the model's parameters (or buffers) live; the CPU for a module without either."""
    first = next(itertools.chain(model.parameters(), model.buffers()), None)
    return torch.device("cpu") if first is None else first.device


def _cat(parts: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat(parts) if parts else torch.zeros(0)
