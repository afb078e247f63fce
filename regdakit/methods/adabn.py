"""AdaBN (Li et al., 2016): re-estimate BatchNorm statistics on the target, change no weight.

A baseline of the synthetic benchmark: the source-only model evaluated with
BatchNorm's running mean and variance recomputed from unlabelled target
images. It costs a few forward passes and separates what target *statistics*
alone recover from what an adaptation method learns.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recompute_batchnorm"]


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, images: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm layer's running statistics by their average over ``images``.

    Each layer's statistics are reset, then accumulated with a cumulative
    average (``momentum=None``) over the batches in train mode; weights and
    biases do not change. The model is left in eval mode.

    Args:
        model: Any module with BatchNorm layers.
        images: Batches ``(B, 3, H, W)`` of unlabelled target images, on the model's device.

    Returns:
        The number of images seen.

    Raises:
        ValueError: ``images`` is empty, or the model has no BatchNorm layer.
    """
    layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not layers:
        raise ValueError("the model has no BatchNorm layer: AdaBN has nothing to recompute")
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch counts equally
    model.train()
    seen = 0
    try:
        for x in images:
            model(x)
            seen += x.shape[0]
    finally:
        for m, momentum in zip(layers, momenta, strict=True):
            m.momentum = momentum
        model.eval()
    if seen == 0:
        raise ValueError("images is empty: AdaBN needs at least one batch of target images")
    return seen
