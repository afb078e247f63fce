"""The contract of a training method, written once, and the names of what its step returns.

A method is a module; :class:`Method` is what the trainer
(:mod:`regdakit.training.loop`) calls on it. Required:

* ``Config``: a frozen dataclass of the method's hyper-parameters;
* ``STEPS``: ``{"A": "who updates on what", ...}``, one entry per update of an iteration, in order;
* ``PARTS``: the modules the method adds to the detector beyond ``psi`` and ``f``
  (``("head_adv",)`` for ``f'``, ``("domain_discriminator",)`` for DANN's ``D``, or ``()``);
* ``make_optimizers(model, cfg) -> {player: optimizer}``;
* ``step(model, batch_s, batch_t, optimizers, cfg, it) -> {key: float}``: one iteration, the algorithm only
  (no logging, devices or meters).

Optional, with the defaults of this module's functions:

* ``make_schedulers(optimizers, cfg)``: the learning-rate schedules the trainer steps once per
  iteration; default :func:`regdakit.methods.recipe.make_schedulers` (the shared SGD decay, for a
  ``Config`` that is a :class:`~regdakit.methods.recipe.SGDRecipe`) (:func:`make_schedulers`);
* ``prepare(model, cfg)``: attach the ``PARTS`` that the detector does not build itself (DANN's
  discriminator) before optimisers or weights are loaded; default: nothing (:func:`prepare`);
* ``CONFIG_SECTION``: the :class:`~regdakit.training.TrainConfig` field that holds the method's ``Config``
  (``--<section>.KEY`` on the command line); default: the method's name in ``METHODS``. A method whose
  section the run config lacks runs with ``Config()`` (:func:`config_section`);
* ``RUN_SETTINGS``: names of run-level settings (fields of ``TrainConfig``) that ``step`` takes as keyword
  arguments, e.g. ``("sigma",)`` for a method that makes pseudo-labels of the run's heatmap width;
  default ``()``;
* ``check_config(cfg)``: refuse (``ValueError``) a section that is valid for its class but not for this
  method (DD shares RegDA's section but not its ``objective``); default: nothing;
* ``LABELLED_DOMAIN``: the domain of the labelled batches ``batch_s`` of an adaptation run,
  ``"source"`` (default) or ``"target"`` (the target fine-tune, an upper bound that reads target labels
  by definition) (:func:`labelled_domain`);
* ``TARGET_IMAGES``: whether the step takes an unlabelled target batch ``batch_t`` (default ``True``);
  ``False``: the trainer opens no target stream and passes ``None`` (:func:`target_images`).

Loss keys
---------
``step`` returns ``{"<step>/<name>": value}``: ``<step>`` is a key of the method's ``STEPS`` (the update
that computed the value: its players and data), ``<name>`` what the value is. ``"A/source"`` is the
supervised loss of step A in every method. A value that is not a loss (DANN's discriminator accuracy) is
a metric: ``"metric/<name>"``. The trainer logs all of them under ``"train"`` in ``metrics.jsonl`` and,
when a loss becomes NaN/Inf, names the step from the key (:func:`step_of`).

>>> step_of("C/features"), step_of("metric/domain_accuracy")
('C', None)
>>> upgrade_key("B_false"), upgrade_key("source"), upgrade_key("A/source")
('B/adversary', 'A/source', 'A/source')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Protocol, runtime_checkable

import torch
from torch import nn

from regdakit.methods import recipe
from regdakit.models import PoseResNet

__all__ = [
    "LEGACY_KEYS",
    "METRIC",
    "Method",
    "check_config",
    "config_section",
    "labelled_domain",
    "loss_key",
    "make_schedulers",
    "parts_of",
    "prepare",
    "run_settings",
    "step_of",
    "target_images",
    "upgrade_key",
]

#: The step part of a metric's key (a value that is not a loss).
METRIC = "metric"

_KEY = re.compile(r"^(?:([A-Z])|" + METRIC + r")/(\w+)$")

#: The detector's own modules; any other child with parameters is a part a method added.
_DETECTOR = ("backbone", "upsampling", "head")

#: Loss keys of regdakit before the vocabulary -> their name now (to read old logs and resume old runs).
LEGACY_KEYS = {
    "source": "A/source",
    "A_source": "A/source",
    "A_truth": "A/truth",
    "B_false": "B/adversary",
    "C_truth": "C/features",
    "B_source": "B/source",
    "B_discrepancy": "B/discrepancy",
    "C_discrepancy": "C/discrepancy",
    "mmd": "A/mmd",
    "domain": "A/domain",
    "domain_accuracy": "metric/domain_accuracy",
}


@runtime_checkable
class Method(Protocol):
    """What every module of :data:`regdakit.methods.METHODS` provides (the optional members: module docstring)."""

    Config: type
    STEPS: Mapping[str, str]
    PARTS: tuple[str, ...]

    def make_optimizers(self, model: PoseResNet, cfg: Any, /) -> dict[str, torch.optim.Optimizer]:
        """One optimiser per player (a part of the model that some update of the iteration moves on its own)."""

    def step(
        self,
        model: PoseResNet,
        batch_s: Mapping[str, Any],
        batch_t: Mapping[str, Any] | None,
        optimizers: Mapping[str, torch.optim.Optimizer],
        cfg: Any,
        it: int,
        /,
    ) -> dict[str, float]:
        """One iteration on a labelled source batch and (adaptation) an unlabelled target batch; keys as above."""


def loss_key(step: str, name: str) -> str:
    """``"<step>/<name>"``, checked against the vocabulary.

    >>> loss_key("A", "mmd")
    'A/mmd'
    """
    key = f"{step}/{name}"
    if not _KEY.match(key):
        raise ValueError(f"{key!r} is not a loss key: '<step letter A-Z>/<name>' or '{METRIC}/<name>'")
    return key


def step_of(key: str) -> str | None:
    """The step letter of a loss key; ``None`` for a metric or a key outside the vocabulary."""
    match = _KEY.match(key)
    return match.group(1) if match else None


def upgrade_key(key: str) -> str:
    """A key as this version names it (:data:`LEGACY_KEYS`); keys of the vocabulary are returned as they are."""
    return LEGACY_KEYS.get(key, key)


def make_schedulers(
    method: ModuleType,
    optimizers: Mapping[str, torch.optim.Optimizer],
    cfg: Any,
    adapt_iterations: int = recipe.REFERENCE_ADAPT_ITERATIONS,
) -> dict[str, Any]:
    """The method's ``make_schedulers``, or the shared schedule of :mod:`regdakit.methods.recipe`.

    ``adapt_iterations`` (the run's) sets the length of the shared schedule's warm-up, if its ``lr_warmup``
    asks for one.
    """
    own = getattr(method, "make_schedulers", None)
    if own is not None:
        return own(optimizers, cfg)
    if not isinstance(cfg, recipe.SGDRecipe):
        raise TypeError(
            f"{method.__name__} has no make_schedulers and its Config is not an SGDRecipe: "
            "define make_schedulers(optimizers, cfg) (return {} for constant rates)"
        )
    return recipe.make_schedulers(optimizers, cfg, adapt_iterations)


def prepare(method: ModuleType, model: PoseResNet, cfg: Any) -> PoseResNet:
    """Let the method attach the parts the detector does not build (its ``prepare``, if any); returns ``model``."""
    own = getattr(method, "prepare", None)
    if own is not None:
        own(model, cfg)
    return model


def check_config(method: ModuleType, cfg: Any) -> None:
    """The method's ``check_config`` of its section, if it has one."""
    own = getattr(method, "check_config", None)
    if own is not None:
        own(cfg)


def config_section(name: str, method: ModuleType) -> str:
    """The run-config field holding the ``Config`` of the method registered as ``name``."""
    return getattr(method, "CONFIG_SECTION", name)


def run_settings(method: ModuleType) -> tuple[str, ...]:
    """The run-level settings the method's ``step`` takes as keyword arguments."""
    return tuple(getattr(method, "RUN_SETTINGS", ()))


def labelled_domain(method: ModuleType) -> str:
    """``"source"`` or ``"target"``: the domain of the labelled batches the method's adaptation step receives.

    Raises:
        ValueError: The method declares another ``LABELLED_DOMAIN``.
    """
    domain = getattr(method, "LABELLED_DOMAIN", "source")
    if domain not in ("source", "target"):
        raise ValueError(f"{method.__name__}.LABELLED_DOMAIN must be 'source' or 'target', got {domain!r}")
    return domain


def target_images(method: ModuleType) -> bool:
    """Whether the method's adaptation step takes an unlabelled target batch (else ``batch_t`` is ``None``)."""
    return bool(getattr(method, "TARGET_IMAGES", True))


def parts_of(model: nn.Module) -> list[str]:
    """The parts of ``model`` beyond ``psi`` and ``f``: its other children with parameters, in order.

    What a checkpoint records (``"parts"``), so that loading it builds the same model.

    >>> from regdakit.models import pose_resnet
    >>> parts_of(pose_resnet("tiny", 3)), parts_of(pose_resnet("tiny", 3, adversarial=False))
    (['head_adv'], [])
    """
    return [
        name
        for name, child in model.named_children()
        if name not in _DETECTOR and any(True for _ in child.parameters())
    ]
