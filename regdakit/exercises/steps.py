"""The training-step exercises: RegDA's steps B and C, checked against the library's steps on a tiny model.

A student writes ::

    step_b(model, x_t, optimizers, trade_off, sigma) -> L_F     # f' minimises trade_off * L_F
    step_c(model, x_t, optimizers, trade_off, sigma, lam) -> L_T  # psi minimises trade_off * L_T

on a :class:`~regdakit.models.PoseResNet` with both heads, a target batch
``x_t (B, 3, H, W)`` and the optimisers ``{"psi", "head", "head_adv"}``
(plain SGD here). :func:`check_step_b` and :func:`check_step_c` run the
student's step and the library's (:func:`regdakit.methods.regda.step_b` /
:func:`~regdakit.methods.regda.step_c` after
:func:`~regdakit.methods.regda.target_pass`) on two copies of the same tiny
model and compare what changed: which parameters (``psi`` = backbone +
upsampling, ``f`` = ``head``, ``f'`` = ``head_adv``) moved, and whether they
moved as RegDA moves them (the loss the step minimises went down, by the same
update). Before the student's step, every parameter holds a stale gradient
(as after an earlier step), so a missing ``zero_grad`` shows.

With plain SGD (no momentum, no weight decay) one update is ``-lr * gradient``,
so the usual mistakes are exact multiples or variants of the right update:
the other sign, no ``trade_off``, no gradient scaling ``λ``, ``L_T`` for
``L_F`` and so on; :func:`update` computes each of them.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from regdakit import disparity
from regdakit.exercises.checking import Feedback, checker, incorrect, run_student
from regdakit.methods import regda
from regdakit.models import PoseResNet, pose_resnet, scale_gradient

__all__ = ["check_step_b", "check_step_c", "StepCase", "step_case", "make_sgd", "update", "step_outcome"]

#: The parts of the model a step may change, as (name in messages, attribute prefixes of its parameters).
PARTS = {
    "ψ (the features)": ("backbone.", "upsampling."),
    "f (the main head)": ("head.",),
    "f′ (the adversary)": ("head_adv.",),
}
PSI, F, F_ADV = PARTS


@dataclass(frozen=True)
class StepCase:
    """A seeded tiny problem: a model with ``f'``, a target batch and the step's settings.

    Attributes:
        model: Tiny :class:`PoseResNet`, train mode; ``f'`` differs from ``f`` (as after step A).
        x_t: ``(B, 3, 32, 32)`` target images.
        trade_off: Weight of the step's objective.
        sigma: Width of the pseudo-labels, heatmap cells.
        lam: ``λ`` of the gradient-scaling layer (step C).
        it: The iteration whose warm start gives ``lam`` with ``cfg`` (the library's step C takes it).
        cfg: The library's :class:`regdakit.methods.regda.Config` for these settings.
        lr: SGD learning rate.
    """

    model: PoseResNet
    x_t: torch.Tensor
    trade_off: float
    sigma: float
    lam: float
    it: int
    cfg: regda.Config
    lr: float


def step_case(seed: int = 4) -> StepCase:
    """The case of seed ``seed``: keypoints, batch size, ``trade_off``, ``sigma`` and ``λ`` vary with it.

    The visible checks use seeds below 100 (``trade_off`` 0.25), the hidden tests seeds from 100 on.
    """
    g = torch.Generator().manual_seed(seed)
    k, b = 3 + seed % 3, 2 + seed % 2
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = pose_resnet("tiny", k, upsampling_channels=8)
        with torch.no_grad():  # f' != f, as after some adaptation
            for p in model.head_adv.parameters():
                p.add_(torch.randn(p.shape, generator=g) * 0.05)
    model.train()
    trade_off = 0.25 if seed < 100 else (0.5, 2.0, 0.75)[seed % 3]  # hidden tests (seed >= 100): another
    cfg = regda.Config(trade_off=trade_off, warmup_iterations=10 + seed % 7)
    it = 5 + seed % 11
    lam = regda.warm_start(cfg, it)
    x_t = torch.rand(b, 3, 32, 32, generator=g)
    return StepCase(model, x_t, trade_off, (1.0, 1.5, 2.0)[seed % 3], lam, it, cfg, lr=0.5)


def make_sgd(model: PoseResNet, lr: float) -> dict[str, torch.optim.Optimizer]:
    """Plain SGD per player: ``{"psi": backbone + upsampling, "head": f, "head_adv": f'}``."""
    psi = [*model.backbone.parameters(), *model.upsampling.parameters()]
    return {
        "psi": torch.optim.SGD(psi, lr=lr),
        "head": torch.optim.SGD(model.head.parameters(), lr=lr),
        "head_adv": torch.optim.SGD(model.head_adv.parameters(), lr=lr),
    }


def _flat(model: PoseResNet) -> dict[str, torch.Tensor]:
    """Part -> its parameters, detached and flattened into one float64 vector."""
    named = dict(model.named_parameters())
    return {
        part: torch.cat([p.detach().double().flatten() for n, p in named.items() if n.startswith(prefixes)])
        for part, prefixes in PARTS.items()
    }


def _stale(model: PoseResNet, seed: int) -> None:
    """Fill every parameter's ``.grad`` with a seeded stale gradient, as an earlier step leaves it."""
    g = torch.Generator().manual_seed(1000 + seed)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g) * 0.1


def update(
    case: StepCase,
    players: tuple[str, ...],
    objective: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    scale: float | None = None,
    lam: float | None = 1.0,
    detach: bool = True,
    labels_from_adv: bool = False,
    stale: bool = False,
) -> dict[str, torch.Tensor]:
    """How one update changes each part: a step written out plainly, every choice a switch (the variants).

    ``psi = features(x_t)``; pseudo-labels ``H(ŷ), H_F(ŷ)`` of ``f(psi)`` (or of
    ``f'`` with ``labels_from_adv``); ``f'`` on ``psi`` (detached, or through
    ``scale_gradient(psi, lam)``, or plain with ``lam=None``); the optimisers
    of ``players`` step on ``scale * objective`` (default ``case.trade_off``),
    after ``zero_grad`` unless ``stale``.

    Returns:
        Part -> ``(n,)`` float64 change of its parameters.
    """
    model = copy.deepcopy(case.model)
    optimizers = make_sgd(model, case.lr)
    if stale:
        _stale(model, 0)
    before = _flat(model)
    psi = model.features(case.x_t)  # (B, C, H, W)
    with torch.no_grad():
        labels_of = model.head_adv(psi) if labels_from_adv else model.head(psi)
    truth, false = disparity.pseudo_labels(labels_of, case.sigma)
    if detach:
        psi_adv = psi.detach()
    else:
        psi_adv = psi if lam is None else scale_gradient(psi, lam)
    loss = (case.trade_off if scale is None else scale) * objective(model.head_adv(psi_adv), truth, false)
    if not stale:
        for name in players:
            optimizers[name].zero_grad()
    loss.backward()
    for name in players:
        optimizers[name].step()
    after = _flat(model)
    return {part: after[part] - before[part] for part in PARTS}


def _library(case: StepCase, which: str) -> tuple[dict[str, torch.Tensor], float]:
    """The library's step ``which`` ("b" or "c") on a copy of the case's model: changes per part, and its loss."""
    model = copy.deepcopy(case.model)
    optimizers = make_sgd(model, case.lr)
    before = _flat(model)
    target = regda.target_pass(model, case.x_t, case.sigma)
    if which == "b":
        loss = regda.step_b(model, target, optimizers, case.cfg, disparity.minimise_false)
    else:
        loss = regda.step_c(model, target, optimizers, case.cfg, case.it, disparity.minimise_truth)
    after = _flat(model)
    return {part: after[part] - before[part] for part in PARTS}, float(loss)


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Every part changed by the same amount, to float32 accuracy relative to the change."""
    for part in PARTS:
        scale = max(float(b[part].abs().max()), float(a[part].abs().max()), 1e-12)
        if float((a[part] - b[part]).abs().max()) > 1e-3 * scale + 1e-9:
            return False
    return True


def _changed(delta: dict[str, torch.Tensor]) -> list[str]:
    return [part for part in PARTS if float(delta[part].abs().max()) > 0]


def _loss_value(raw: object) -> float | None:
    if isinstance(raw, torch.Tensor) and raw.numel() == 1:
        return float(raw.detach())
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return float(raw)
    return None


def step_outcome(name: str, fn: Callable, seed: int) -> Feedback:
    """Run the student's step ``name`` ("step_b" or "step_c") on the case of ``seed`` and say what is wrong.

    Args:
        name: "step_b" or "step_c".
        fn: The student's step.
        seed: The case (:func:`step_case`).

    Returns:
        The feedback.
    """
    which = name[-1]
    case = step_case(seed)
    want, want_loss = _library(case, which)
    model = copy.deepcopy(case.model)
    optimizers = make_sgd(model, case.lr)
    _stale(model, 0)
    before = _flat(model)
    args = (model, case.x_t, optimizers, case.trade_off, case.sigma) + ((case.lam,) if which == "c" else ())
    raw, fb = run_student(name, fn, *args)
    if fb is not None:
        return fb
    after = _flat(model)
    got = {part: after[part] - before[part] for part in PARTS}
    if not model.training:
        return incorrect(name, "your step left the model in eval mode: training steps run in train mode")
    trains = F_ADV if which == "b" else PSI
    fixed = [part for part in _changed(got) if part != trains]
    step = "B" if which == "b" else "C"
    if fixed:
        key = "head_adv" if which == "b" else "psi"
        return incorrect(
            name,
            f"your step {step} changed {' and '.join(fixed)}: in step {step} only {trains} trains "
            f"(step only optimizers[{key!r}])",
        )
    if trains not in _changed(got):
        return incorrect(
            name, f"{trains} did not change: back-propagate the loss and step its optimizer (it was fixed, not trained)"
        )
    if _same(got, want):
        value = _loss_value(raw)
        loss = "L_F" if which == "b" else "L_T"
        if value is None:
            return incorrect(name, f"the update is right; now return {loss} (one number), got {type(raw).__name__}")
        if math.isclose(value, case.trade_off * want_loss, rel_tol=1e-4) and case.trade_off != 1:
            return incorrect(name, f"the update is right; return {loss} itself, not trade_off · {loss}")
        if not math.isclose(value, want_loss, rel_tol=1e-4, abs_tol=1e-6):
            return incorrect(
                name, f"the update is right; return {loss} before the update ({want_loss:.4f}), got {value:.4f}"
            )
        return Feedback(name, "correct", f"correct: only {trains} changed, as RegDA's step {step} changes it")
    message = _diagnose(case, which, got, want)
    return incorrect(name, message)


def _diagnose(case: StepCase, which: str, got: dict[str, torch.Tensor], want: dict[str, torch.Tensor]) -> str:
    """Compare the student's update with the typical wrong ones of step B or C."""
    minus = {part: -d for part, d in want.items()}
    if which == "b":
        players = ("head_adv",)
        variants = [
            (lambda: minus, "f′ moved away from the ground false: L_F went up. Step B *minimises* L_F (no minus sign)"),
            (
                lambda: update(case, players, disparity.minimise_false, stale=True),
                "old gradients were added to this step's: call optimizers['head_adv'].zero_grad() before backward",
            ),
            (
                lambda: update(case, players, disparity.minimise_false, scale=1.0),
                f"the step ignores trade_off ({case.trade_off:g}): minimise trade_off · L_F",
            ),
            (
                lambda: update(case, players, disparity.minimise_truth),
                "f′ moved towards f's own prediction H(ŷ): that is L_T. Step B minimises L_F, towards the "
                "ground false P_F (the other keypoints)",
            ),
            (
                lambda: update(case, players, disparity.maximise_truth),
                "f′ maximised L_T, the adversary of Disparity Discrepancy (Table 2's DD row): RegDA's f′ "
                "minimises L_F instead",
            ),
            (
                lambda: update(case, players, disparity.minimise_false, labels_from_adv=True),
                "your pseudo-labels come from f′: H(ŷ) and P_F(ŷ) are built from the main head f's prediction",
            ),
        ]
        return (
            _first(got, variants)
            or "f′ changed, but not as RegDA's step B changes it: compare your L_F with rk.disparity.ground_false_loss"
        )
    players = ("psi",)
    lam = case.lam

    def c(objective, **kw):
        return lambda: update(case, players, objective, detach=False, lam=kw.pop("lam", lam), **kw)

    variants = [
        (
            lambda: minus,
            "ψ moved so that f′ disagrees more with f: L_T went up. Step C *minimises* L_T (a minus sign or a "
            "gradient reversal turns the step around)",
        ),
        (
            c(disparity.minimise_truth, lam=None),
            "the gradient from f′ into ψ is not scaled: pass ψ through rk.models.scale_gradient(psi, lam) before f′",
        ),
        (
            c(disparity.minimise_truth, stale=True),
            "old gradients were added to this step's: call optimizers['psi'].zero_grad() before backward",
        ),
        (
            c(disparity.minimise_truth, scale=1.0),
            f"the step ignores trade_off ({case.trade_off:g}): minimise trade_off · L_T",
        ),
        (
            c(disparity.minimise_false),
            "ψ minimised L_F, helping f′ onto the ground false: step C minimises L_T, so that f′ must agree with f",
        ),
        (
            c(disparity.maximise_false),
            "ψ maximised L_F: that is Table 2's variant 'ψ max L_F' (66.5 on RHD → H3D); RegDA's ψ minimises L_T",
        ),
        (
            c(disparity.minimise_truth, labels_from_adv=True),
            "your pseudo-labels come from f′: H(ŷ) is built from the main head f's prediction",
        ),
    ]
    return (
        _first(got, variants)
        or "ψ changed, but not as RegDA's step C changes it: compare your L_T with rk.disparity.ground_truth_loss"
    )


def _first(got: dict[str, torch.Tensor], variants: list) -> str | None:
    for make, message in variants:
        if _same(got, make()):
            return message
    return None


@checker
def check_step_b(fn: Callable) -> Feedback:
    """Check ``fn(model, x_t (B, 3, H, W), optimizers, trade_off, sigma) -> L_F``: RegDA's step B.

    Right: only ``f'`` changes, by the library's update (``f'`` minimises
    ``trade_off * L_F`` with ``psi`` and ``f`` fixed), and the function
    returns ``L_F`` before the update.

    Diagnoses: ``psi`` or ``f`` changed; ``f'`` unchanged; ``L_F`` maximised;
    ``zero_grad`` missing; ``trade_off`` ignored; ``L_T`` instead of ``L_F``;
    DD's adversary (``L_T`` maximised); pseudo-labels from ``f'``; eval mode
    left on; the loss not returned or scaled.
    """
    return step_outcome("step_b", fn, seed=4)


@checker
def check_step_c(fn: Callable) -> Feedback:
    """Check ``fn(model, x_t (B, 3, H, W), optimizers, trade_off, sigma, lam) -> L_T``: RegDA's step C.

    Right: only ``psi`` changes, by the library's update (``psi`` minimises
    ``trade_off * L_T`` through the gradient-scaling layer with ``λ = lam``,
    ``f`` and ``f'`` fixed), and the function returns ``L_T`` before it.

    Diagnoses: ``f`` or ``f'`` changed; ``psi`` unchanged; ``L_T`` maximised
    (or the gradient reversed); no gradient scaling; ``zero_grad`` missing;
    ``trade_off`` ignored; ``L_F`` minimised or maximised (Table 2's
    variant); pseudo-labels from ``f'``; eval mode left on; the loss not
    returned or scaled.
    """
    return step_outcome("step_c", fn, seed=4)
