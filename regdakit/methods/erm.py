"""ERM: supervised heatmap regression on labelled batches (source only, or the oracle).

The same step trains the source-only model, RegDA's pre-training phase and the
oracle: for the oracle the trainer passes *target* batches with their labels
as ``batch_s``. ``batch_t`` is ignored (it may be ``None``).

Two recipes of the reference are supported by :class:`Config`:

* the default, RegDA's own pre-training (``ex/regda.py``): spatial KL loss,
  SGD (momentum 0.9, Nesterov, weight decay 1e-4), learning rate 0.1 for the
  upsampling and the head, 0.01 for the backbone;
* :data:`ADAM_MSE`, the reference's separate ``ex/erm.py`` baseline: MSE on
  the logits, Adam 1e-3 everywhere, no weight decay. The reference's "ERM"
  row comes from this recipe, a different one than RegDA starts from.

Both decay the learning rates by ``gamma`` at the iterations in
``milestones`` (the reference decays per epoch at epochs 45 and 60 of 70 and,
because it steps its scheduler at the start of each epoch, one epoch early;
here the milestones are iterations, applied exactly where given).

Shape legend: ``B`` batch, ``K`` keypoints, ``H x W`` heatmap cells.

>>> from regdakit.models import pose_resnet
>>> model = pose_resnet("tiny", 5, adversarial=False)
>>> cfg = Config()
>>> optimizers = make_optimizers(model, cfg)
>>> batch = {"image": torch.rand(2, 3, 64, 64), "heatmap": torch.rand(2, 5, 16, 16), "weight": torch.ones(2, 5)}
>>> sorted(step(model, batch, None, optimizers, cfg, it=0))
['A/source']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from regdakit._validation import check_positive
from regdakit.methods.common import check_source_loss, supervised_update
from regdakit.methods.recipe import check_sgd_momentum
from regdakit.models import PoseResNet, parameter_groups

__all__ = ["ADAM_MSE", "OPTIMIZERS", "PARTS", "STEPS", "Config", "make_optimizers", "make_schedulers", "step"]

OPTIMIZERS = ("sgd", "adam")

#: ERM trains the detector's own ``psi`` and ``f``; a model with ``f'`` keeps it untouched.
PARTS = ()
#: One update.
STEPS = {"A": "psi and f on the labelled batch"}


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of supervised training (defaults: RegDA's pre-training recipe).

    Attributes:
        loss: ``"kl"`` (spatial KL, the paper's) or ``"mse"`` (on the logits, the reference's ``erm.py``).
        optimizer: ``"sgd"`` (momentum, Nesterov, weight decay) or ``"adam"``.
        lr: Learning rate of the upsampling and the head.
        backbone_lr_factor: The backbone learns at ``lr * backbone_lr_factor`` (0.1: fine-tuning).
        momentum: SGD momentum.
        weight_decay: L2 weight decay (SGD and Adam).
        nesterov: SGD Nesterov momentum.
        milestones: Iterations at which every learning rate is multiplied by ``gamma``.
        gamma: Decay factor at each milestone.
    """

    loss: str = "kl"
    optimizer: str = "sgd"
    lr: float = 0.1
    backbone_lr_factor: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    nesterov: bool = True
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1

    def __post_init__(self) -> None:
        check_source_loss(self.loss, "loss")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        for name in ("lr", "backbone_lr_factor"):
            check_positive(name, getattr(self, name))
        check_positive("weight_decay", self.weight_decay, allow_zero=True)
        if not 0 < check_positive("gamma", self.gamma) <= 1:
            raise ValueError(f"gamma must be in (0, 1] (a decay factor), got {self.gamma}")
        if self.optimizer == "sgd":
            check_sgd_momentum(self.momentum, self.nesterov)
        if list(self.milestones) != sorted(self.milestones) or any(m < 1 for m in self.milestones):
            raise ValueError(f"milestones must be increasing iterations >= 1, got {self.milestones}")


#: The reference's separate ``erm.py`` baseline: MSE, Adam 1e-3 for every part, no weight decay.
ADAM_MSE = Config(loss="mse", optimizer="adam", lr=1e-3, backbone_lr_factor=1.0, weight_decay=0.0)


def make_optimizers(model: PoseResNet, cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """One optimiser ``{"model": ...}`` over backbone, upsampling and head (``f'`` is not trained).

    A model built with an adversarial head keeps ``f'`` untouched: ERM never
    computes ``y_adv``.
    """
    groups = parameter_groups(model)
    param_groups = [
        {"params": groups["backbone"], "lr": cfg.lr * cfg.backbone_lr_factor},
        {"params": groups["upsampling"] + groups["head"], "lr": cfg.lr},
    ]
    if cfg.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            param_groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=cfg.nesterov
        )
    else:
        opt = torch.optim.Adam(param_groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return {"model": opt}


def make_schedulers(optimizers: Mapping[str, torch.optim.Optimizer], cfg: Config) -> dict[str, Any]:
    """Step decay at ``cfg.milestones``; the trainer calls ``.step()`` once after every iteration."""
    return {
        name: torch.optim.lr_scheduler.MultiStepLR(opt, list(cfg.milestones), cfg.gamma)
        for name, opt in optimizers.items()
    }


def step(
    model: PoseResNet,
    batch_s: Mapping[str, Any],
    batch_t: Mapping[str, Any] | None,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Config,
    it: int,
) -> dict[str, float]:
    """One supervised update on ``batch_s`` (``image``, ``heatmap``, ``weight``).

    Args:
        model: The detector; only ``psi`` and ``f`` run.
        batch_s: Labelled batch: ``image (B, 3, H, W)``, ``heatmap (B, K, H/4, W/4)``, ``weight (B, K)``.
        batch_t: Ignored (ERM does not see the target domain).
        optimizers: From :func:`make_optimizers`.
        cfg: The recipe.
        it: Iteration (unused: ERM has no warm-up; kept for the shared interface).

    Returns:
        ``{"A/source": loss}``.
    """
    return supervised_update(model, batch_s, optimizers, cfg.loss)
