"""The loss exercises: the spatial KL loss and RegDA's ground-false loss ``L_F``.

:func:`check_kl_loss` compares a student's ``kl_loss`` with
:func:`regdakit.losses.kl_heatmap_loss` (exercise notebook 03, section 1);
:func:`check_ground_false_loss` compares ``L_F`` with
:func:`regdakit.disparity.ground_false_loss` (notebook 02, section 5, and
notebook 03, section 2). Both name the usual KL mistakes (direction, sign,
softmax axis, normalisation, reduction, ``0 · log 0``) and check the
gradient; ``L_F`` adds the mix-ups of the two heads.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from regdakit.disparity import ground_false_loss, pseudo_labels
from regdakit.exercises.checking import (
    Feedback,
    call_student,
    checker,
    close_enough,
    first_match,
    incorrect,
    run_student,
)
from regdakit.heatmaps import encode
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps

__all__ = ["check_kl_loss", "check_ground_false_loss"]


def _kl_variants(logits: torch.Tensor, target: torch.Tensor) -> list[tuple[Callable[[], torch.Tensor], str]]:
    """Typical wrong KL losses of ``logits`` against ``target`` and their diagnoses."""
    b, k = logits.shape[:2]
    z = logits.detach().double()
    t = target.double().reshape(b, k, -1)
    q = normalize_heatmaps(target.double()).reshape(b, k, -1)
    log_p = torch.log_softmax(z.reshape(b, k, -1), -1)
    p = log_p.exp()
    neg_entropy = torch.special.xlogy(q, q).sum(-1)  # (B, K)

    def kl_with(log_probs: torch.Tensor) -> torch.Tensor:
        return neg_entropy - (q * log_probs.reshape(b, k, -1)).sum(-1)

    kl = kl_with(log_p)  # (B, K), the right one
    return [
        (lambda: -kl.mean(), "the KL is >= 0 and this loss is minimised: return it, not its negative"),
        (
            lambda: (p * (log_p - torch.log(q + 1e-12))).sum(-1).mean(),
            "the KL is the wrong way round: KL(target || softmax(logits)), the target first",
        ),
        (
            lambda: (torch.special.xlogy(t, t) - t * log_p).sum(-1).mean(),
            "the target is not normalised: divide it by its sum over the H·W cells first",
        ),
        (
            lambda: -(t * log_p).sum(-1).mean(),
            "the target is not normalised (divide it by its sum over H·W), and the KL also has the Σ q log q term",
        ),
        (
            lambda: -(q * log_p).sum(-1).mean(),
            "that is the cross-entropy -Σ q log p: the KL adds Σ q log q (same gradient, a different value)",
        ),
        (
            lambda: kl_with(z).mean(),
            "softmax missing: the logits are not log-probabilities, use log_softmax over the H·W cells",
        ),
        (lambda: kl_with(p).mean(), "take the log of the softmax (log_softmax), not the softmax itself"),
        (
            lambda: kl_with(torch.log_softmax(z, 1)).mean(),
            "softmax over the wrong axis: over the H·W cells of each map, not over the keypoints (dim 1)",
        ),
        (
            lambda: kl_with(torch.log_softmax(z, -1)).mean(),
            "softmax over the wrong axis: flatten (H, W) and take it over all H·W cells, not over each row",
        ),
        (
            lambda: kl_with(torch.log_softmax(z.reshape(b, -1), -1)).mean(),
            "softmax over the wrong axis: one distribution per keypoint map, not one over all keypoints of a sample",
        ),
        *_reductions(kl, b, z.shape[-1] * z.shape[-2], ""),
        *_mse_variants(z.reshape(b, k, -1), t, q),
        # Two mistakes at once: the log-probabilities and the reduction.
        *_reductions(kl_with(z), b, z.shape[-1] * z.shape[-2], "softmax missing: use log_softmax over the H·W cells"),
        *_reductions(kl_with(p), b, z.shape[-1] * z.shape[-2], "take the log of the softmax (log_softmax)"),
    ]


def _reductions(kl: torch.Tensor, b: int, cells: int, first: str) -> list[tuple[Callable[[], torch.Tensor], str]]:
    """Wrong reductions of the per-map KL ``(B, K)``; with ``first``, that mistake comes before them."""
    wrong = [
        (lambda: kl.sum(), "average over the B·K maps instead of summing"),
        (
            lambda: kl.sum() / b,
            "divide by B·K (the number of maps), not by the batch size B (F.kl_div's 'batchmean' divides by B only)",
        ),
        (
            lambda: kl.sum(0).mean(),
            "you summed over the batch B only (then averaged over the keypoints): average over all B·K maps",
        ),
        (
            lambda: kl.mean() / cells,
            "sum over the H·W cells of a map, then average over the B·K maps (yours also averages over the cells)",
        ),
    ]
    if not first:
        return wrong
    return [(make, f"{first}; and {msg}") for make, msg in wrong]


def _mse_variants(z: torch.Tensor, t: torch.Tensor, q: torch.Tensor) -> list[tuple[Callable[[], torch.Tensor], str]]:
    """Squared errors in place of the KL (``z`` logits, ``t`` raw and ``q`` normalised targets, all ``(B, K, H·W)``)."""
    message = (
        "that is a mean squared error: this loss is the KL divergence Σ q (log q − log p) with p the softmax of "
        "the logits, not a squared difference"
    )
    p = torch.softmax(z, -1)
    return [
        (lambda: ((z - t) ** 2).mean(), message),
        (lambda: ((p - q) ** 2).mean(), message),
        (lambda: ((p - q) ** 2).sum(-1).mean(), message),
        (lambda: ((p - t) ** 2).mean(), message),
        (lambda: ((z - q) ** 2).mean(), message),
        (lambda: 0.5 * ((z - t) ** 2).mean(), message),
    ]


def _reverse_with_eps(got: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``got`` is ``KL(softmax || target)`` with a small epsilon in the log of the target."""
    b, k = logits.shape[:2]
    log_p = torch.log_softmax(logits.detach().double().reshape(b, k, -1), -1)
    q = normalize_heatmaps(target.double()).reshape(b, k, -1)
    for eps in (1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5):
        for log_q in (torch.log(q + eps), torch.log(q.clamp_min(eps))):
            if close_enough(got, (log_p.exp() * (log_p - log_q)).sum(-1).mean(), atol=1e-3, rtol=1e-3):
                return True
    return False


def _scalar_result(exercise: str, raw: object, per_map: torch.Tensor) -> tuple[torch.Tensor | None, Feedback | None]:
    """The student's loss as a 0-d float64 tensor, or feedback (``per_map`` is the right ``(B, K)`` KL)."""
    if raw is None:
        return None, incorrect(exercise, "your function returned None: did you forget `return`?")
    if not isinstance(raw, torch.Tensor):
        return None, incorrect(
            exercise, f"return a scalar tensor (so that .backward() works), got {type(raw).__name__}"
        )
    if raw.numel() != 1:
        if tuple(raw.shape) == tuple(per_map.shape) and close_enough(raw, per_map, atol=1e-4):
            return None, incorrect(exercise, "that is the KL per keypoint map (B, K): return its mean, a scalar")
        return None, incorrect(
            exercise, f"return a scalar tensor (the mean over the B·K maps), got shape {tuple(raw.shape)}"
        )
    return raw.detach().cpu().double().reshape(()), None


def _gradient_feedback(
    exercise: str, fn: Callable, args: tuple[torch.Tensor, ...], wrt: int, want_grad: torch.Tensor, what: str
) -> Feedback | None:
    """Check that the loss back-propagates into ``args[wrt]`` with the right gradient."""
    inputs = [a.detach().clone() for a in args]
    inputs[wrt].requires_grad_()
    try:
        out = call_student(exercise, fn, *inputs)
        out.backward()
    except Exception as err:  # noqa: BLE001 - reported as feedback
        return incorrect(
            exercise,
            f"the value is right, but there is no gradient with respect to {what} ({type(err).__name__}: {err}): "
            "don't detach, .item() or .numpy() the logits",
        )
    grad = inputs[wrt].grad
    if grad is None or not close_enough(grad, want_grad, atol=1e-5, rtol=1e-3):
        return incorrect(
            exercise,
            f"the value is right but the gradient with respect to {what} is not: don't detach, "
            ".item() or .numpy() the logits",
        )
    return None


def _grad(loss: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """The gradient of a scalar ``loss(x)`` with respect to ``x``."""
    x = x.detach().clone().requires_grad_()
    (grad,) = torch.autograd.grad(loss(x), x)
    return grad


def _kl_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits ``(2, 3, 8, 8)``, a strictly positive target of any scale, and a target with zeros (Gaussians)."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(2, 3, 8, 8, generator=g) * 2
    positive = (torch.rand(2, 3, 8, 8, generator=g) + 0.2) * torch.tensor([1.0, 3.0, 0.5]).view(1, 3, 1, 1)
    centres = torch.rand(2, 3, 2, generator=g) * 6 + 1
    gaussians, _ = encode(centres, torch.ones(2, 3), 8, stride=1)
    return logits, positive, gaussians


@checker
def check_kl_loss(fn: Callable) -> Feedback:
    """Check ``fn(logits (B, K, H, W), target (B, K, H, W)) -> scalar``, the spatial KL loss.

    As :func:`regdakit.losses.kl_heatmap_loss`: for each keypoint map,
    ``KL(q || p) = Σ_{h,w} q log q - q log p`` with ``q`` the target
    normalised to sum 1 over the ``H·W`` cells and ``p = softmax`` of the
    logits over the same cells; averaged over the ``B·K`` maps. Checked on a
    strictly positive target and on Gaussian targets with zeros (where
    ``0 · log 0`` must count as 0).

    Diagnoses: not a scalar tensor / ``None``; per-map KL not averaged; the
    sign; the direction; target not normalised; cross-entropy instead of KL;
    softmax missing, log missing, or over the wrong axis; sum instead of
    mean, ``batchmean``, mean over cells; NaN from ``0 · log 0`` or from the
    log of raw logits; a wrong gradient.
    """
    name = "kl_loss"
    logits, positive, gaussians = _kl_case()
    for target in (positive, gaussians):
        fb = _check_kl_value(name, fn, logits, target)
        if fb is not None:
            return fb
    want_grad = _grad(lambda z: kl_heatmap_loss(z, gaussians), logits)
    fb = _gradient_feedback(name, fn, (logits, gaussians), 0, want_grad, "the logits")
    if fb is not None:
        return fb
    return Feedback(name, "correct", "correct: KL(target / Σ target || softmax over H·W), mean over B·K")


def _check_kl_value(name: str, fn: Callable, logits: torch.Tensor, target: torch.Tensor) -> Feedback | None:
    from regdakit.losses import kl_per_keypoint

    want = kl_heatmap_loss(logits, target)
    raw, fb = run_student(name, fn, logits, target)
    if fb is not None:
        return fb
    got, fb = _scalar_result(name, raw, kl_per_keypoint(logits, target))
    if fb is not None:
        return fb
    assert got is not None
    if close_enough(got, want, atol=1e-5, rtol=1e-4):
        return None
    has_zeros = bool((target == 0).any())
    if bool(torch.isnan(got)):
        if has_zeros:
            return incorrect(
                name,
                "NaN where the target is 0: 0 · log 0 counts as 0 (use torch.special.xlogy(q, q), or "
                "mask the zero cells)",
            )
        return incorrect(
            name,
            "NaN although the target has no zeros: logits can be negative, so don't take their log; "
            "use log_softmax over the H·W cells",
        )
    if bool(torch.isinf(got)):
        return incorrect(
            name,
            "your loss is infinite: is the KL the wrong way round? log of the target's zeros is -inf; "
            "the target goes first, KL(target || softmax(logits))",
        )
    message = first_match(got, _kl_variants(logits, target), atol=1e-5, rtol=1e-4)
    if message is None and has_zeros and _reverse_with_eps(got, logits, target):
        message = "the KL is the wrong way round: KL(target || softmax(logits)), the target first"
    if message is None and has_zeros:
        message = (
            f"right on a strictly positive target but not on Gaussian targets with zeros: expected "
            f"{float(want):.4f}, got {float(got):.4f}"
        )
    return incorrect(name, message or f"expected {float(want):.4f}, got {float(got):.4f}")


@checker
def check_ground_false_loss(fn: Callable) -> Feedback:
    """Check ``fn(adv_logits (B, K, H, W), main_logits (B, K, H, W)) -> L_F`` (a scalar).

    ``L_F = KL(P_F(ŷ) || softmax(f'))``, averaged over the ``B·K`` maps, where
    ``ŷ`` is the argmax of ``main_logits`` and ``P_F`` the ground-false
    distribution (Eq. 1-2, :func:`regdakit.disparity.pseudo_labels` with sigma
    2 gives ``H(ŷ)`` and ``H_F``); ``L_F`` trains only ``f'``.

    Diagnoses: those of :func:`check_kl_loss` (direction, sign, softmax,
    normalisation, reduction, NaN), plus: the ground truth used (that is
    ``L_T``); pseudo-labels taken from ``f'`` instead of ``f``; the heads
    swapped; the main head not detached.
    """
    name = "ground_false_loss"
    g = torch.Generator().manual_seed(4)
    main = torch.randn(2, 4, 12, 12, generator=g)
    adv = torch.randn(2, 4, 12, 12, generator=g)
    want = ground_false_loss(adv, main)
    truth, false = pseudo_labels(main)
    raw, fb = run_student(name, fn, adv, main)
    if fb is not None:
        return fb
    from regdakit.losses import kl_per_keypoint

    got, fb = _scalar_result(name, raw, kl_per_keypoint(adv, false))
    if fb is not None:
        return fb
    assert got is not None
    if close_enough(got, want, atol=1e-5, rtol=1e-4):
        want_grad = _grad(lambda z: ground_false_loss(z, main), adv)
        fb = _gradient_feedback(name, fn, (adv, main), 0, want_grad, "adv_logits (f′)")
        if fb is not None:
            return fb
        main_grad = main.clone().requires_grad_()
        try:
            call_student(name, fn, adv.clone().requires_grad_(), main_grad).backward()
        except Exception:  # noqa: BLE001 - it back-propagated into adv above; only the main head is asked here
            main_grad.grad = None
        if main_grad.grad is not None and bool(main_grad.grad.abs().sum() > 0):
            return incorrect(name, "the value is right, but detach the main head: L_F must not train f")
        return Feedback(name, "correct", "correct: KL of the normalised ground false against the adversary's softmax")
    if bool(torch.isnan(got)):
        return incorrect(
            name,
            "NaN: P_F is 0 away from the other keypoints, and 0 · log 0 counts as 0 (use "
            "torch.special.xlogy(q, q), or mask the zero cells)",
        )
    if bool(torch.isinf(got)) or _reverse_with_eps(got, adv, false):
        return incorrect(
            name,
            "the KL is the wrong way round: KL(P_F || softmax(f′)), the target P_F first (log P_F is "
            "-inf where P_F is 0)",
        )
    adv_truth, adv_false = pseudo_labels(adv)
    message = first_match(
        got,
        [
            (lambda: kl_heatmap_loss(adv, truth), "that is L_T (towards the ground truth H(ŷ)): use the ground false"),
            (
                lambda: kl_heatmap_loss(adv, adv_false),
                "build P_F from the main head's prediction ŷ (main_logits), not from f′'s",
            ),
            (
                lambda: kl_heatmap_loss(main, adv_false),
                "the heads are swapped: the arguments are (adv_logits, "
                "main_logits); P_F comes from main_logits and the softmax from adv_logits",
            ),
            *_kl_variants(adv, false),
        ],
        atol=1e-5,
        rtol=1e-4,
    )
    if message is not None and message.startswith("the KL is >= 0"):
        message = "L_F is minimised (RegDA minimises twice instead of maximising a disparity): return the KL, not -KL"
    return incorrect(name, message or f"expected {float(want):.4f}, got {float(got):.4f}")
