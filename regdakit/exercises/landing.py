"""The landing exercises: where wrong predictions land, and how often chance would land them there.

:func:`check_error_landing` compares a student's ``error_landing`` with
``regdakit.metrics.error_landing(...).landing`` and :func:`check_rotated_chance`
a student's ``rotated_chance`` with ``regdakit.metrics.landing_chance(...).rotated_errors``
(exercise notebook 01), and name the usual mistakes.

Shapes: ``pred``, ``gt`` ``(B, K, 2)`` positions ``(x, y)`` in one unit (heatmap
cells in the notebook), ``visible`` ``(B, K)`` bool; landing codes ``(B, K)``:
``-2`` invisible (not evaluated), ``-1`` correct, ``j`` the other keypoint it
landed on, ``K`` the background.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regdakit.exercises.checking import Feedback, checker, incorrect, run_student, tensor_result
from regdakit.metrics import error_landing, landing_chance

__all__ = ["check_error_landing", "check_rotated_chance", "landing_codes", "rotated_share"]


def landing_case(seed: int = 3, b: int = 24, k: int = 6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``pred, gt (B, K, 2)``, ``visible (B, K)`` and a radius: sample 0 by hand (if ``K = 6``), the rest seeded.

    Random samples put keypoints on a 16 x 16 map and move each prediction to
    near its own keypoint, near another one, or anywhere, so that every
    outcome occurs.
    """
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, k, 2, generator=g) * 16
    pick = torch.randint(0, 3, (b, k), generator=g)  # 0 near its own, 1 near another keypoint, 2 anywhere
    other = torch.randint(0, k, (b, k), generator=g)
    near_other = torch.gather(gt, 1, other[..., None].expand(-1, -1, 2))
    jitter = torch.randn(b, k, 2, generator=g) * 0.8
    anywhere = torch.rand(b, k, 2, generator=g) * 16
    pred = torch.where(
        (pick == 0)[..., None], gt + jitter, torch.where((pick == 1)[..., None], near_other + jitter, anywhere)
    )
    visible = torch.rand(b, k, generator=g) > 0.2
    if k == 6:
        # Sample 0, radius 2: keypoint 0 correct; 1 exactly at the radius (wrong) and on the background;
        # 2 within the radius of keypoints 3 (0.98 away) and 4 (0.61 away): lands on 4, the nearest;
        # 3 near keypoint 5, which is invisible: background; 4 far from everything: background; 5 invisible.
        gt[0] = torch.tensor([[2.0, 2.0], [8.0, 2.0], [2.0, 14.0], [9.0, 9.0], [10.5, 8.5], [14.0, 14.0]])
        pred[0] = torch.tensor([[2.5, 2.0], [10.0, 2.0], [9.9, 8.6], [14.0, 13.5], [2.0, 8.0], [3.0, 3.0]])
        visible[0] = torch.tensor([True, True, True, True, True, False])
    return pred, gt, visible, 2.0


def landing_codes(
    pred: torch.Tensor,
    gt: torch.Tensor,
    visible: torch.Tensor,
    radius: float,
    *,
    strict: bool = True,
    visible_targets: bool = True,
    nearest: bool = True,
    to_truth: bool = True,
) -> torch.Tensor:
    """Landing codes ``(B, K)`` long, by a plain loop, with each rule switchable (the checker's variants).

    Args:
        pred: ``(B, K, 2)`` predicted positions.
        gt: ``(B, K, 2)`` true positions.
        visible: ``(B, K)`` bool.
        radius: Correctness and landing radius.
        strict: Correct means closer than ``radius`` (else: at most ``radius``).
        visible_targets: Only visible keypoints can be landed on.
        nearest: Land on the nearest keypoint within ``radius`` (else: the first by index).
        to_truth: Land near the other keypoint's true position (else: near its prediction).
    """
    b, k = visible.shape
    codes = torch.full((b, k), -2, dtype=torch.long)
    for i in range(b):
        for kk in range(k):
            if not visible[i, kk]:
                continue
            own = float(torch.linalg.vector_norm(pred[i, kk] - gt[i, kk]))
            if (own < radius) if strict else (own <= radius):
                codes[i, kk] = -1
                continue
            targets = gt[i] if to_truth else pred[i]
            best, code = math.inf, k
            for j in range(k):
                if j == kk or (visible_targets and not visible[i, j]):
                    continue
                d = float(torch.linalg.vector_norm(pred[i, kk] - targets[j]))
                if d < radius and (d < best if nearest else code == k):
                    best, code = d, j
            codes[i, kk] = code
    return codes


@checker
def check_error_landing(fn: Callable) -> Feedback:
    """Check ``fn(pred (B, K, 2), gt (B, K, 2), visible (B, K) bool, radius) -> (B, K)`` landing codes.

    A visible prediction is correct (``-1``) when it is strictly closer than
    ``radius`` to its own truth; a wrong one lands on the *nearest* other
    *visible* keypoint whose *true* position is closer than ``radius``
    (its index ``j``), else on the background (``K``); invisible keypoints
    are not evaluated (``-2``).

    Diagnoses: not a tensor, wrong shape; ``<=`` for ``<``; invisible
    keypoints landed on; the first keypoint within the radius instead of the
    nearest; other keypoints' predictions instead of their true positions;
    the codes for invisible keypoints or for the background.
    """
    name = "error_landing"
    pred, gt, visible, radius = landing_case()
    want = error_landing(pred, gt, visible, radius, map_size=1).landing
    raw, fb = run_student(name, fn, pred, gt, visible, radius)
    if fb is not None:
        return fb
    b, k = visible.shape
    hints = {(b, k, 2): "one code per (image, keypoint), not a position", (b * k,): "keep the (B, K) layout"}
    got, fb = tensor_result(name, "the landing codes", raw, (b, k), hints)
    if fb is not None:
        return fb
    assert got is not None
    if torch.equal(got, want.double()):
        shares = {c: int((want == c).sum()) for c in (-1, k)}
        on_other = int(((want >= 0) & (want < k)).sum())
        return Feedback(
            name,
            "correct",
            f"correct: {shares[-1]} correct, {on_other} on another keypoint, {shares[k]} on the background",
        )
    variants = [
        (
            dict(strict=False),
            f"a prediction exactly `radius` from its own keypoint is wrong (radius {radius:g} here): correct means "
            "strictly closer (distance < radius), as in PCK",
        ),
        (
            dict(visible_targets=False),
            "a wrong prediction landed on a keypoint that is invisible in that image: only visible keypoints "
            "can be landed on",
        ),
        (
            dict(nearest=False),
            "when several keypoints lie within the radius, the prediction lands on the nearest one, not the first",
        ),
        (
            dict(to_truth=False),
            "a prediction lands on keypoint j when it is near j's true position `gt`, not near j's prediction",
        ),
    ]
    for options, message in variants:
        if torch.equal(got, landing_codes(pred, gt, visible, radius, **options).double()):
            return incorrect(name, message)
    return incorrect(name, _code_mismatch(got, want.double(), k))


def _code_mismatch(got: torch.Tensor, want: torch.Tensor, k: int) -> str:
    """Name the kind of code that differs first: invisible, correct, background or another keypoint."""
    for code, what in ((-2, "an invisible keypoint"), (-1, "a correct prediction"), (k, "a background landing")):
        here = want == code
        if here.any() and not torch.equal(got[here], want[here]):
            wrong_as = int(got[here][got[here] != code][0])
            return (
                f"{what} should get code {code} (got {wrong_as}); the codes are -2 invisible, -1 correct, "
                f"j another keypoint, K = {k} background"
            )
    here = (want >= 0) & (want < k)
    i, kk = (here & (got != want)).nonzero()[0].tolist()
    return (
        f"image {i}, keypoint {kk}: its wrong prediction lands on keypoint {int(want[i, kk])} (the nearest visible "
        f"one within the radius), you say {int(got[i, kk])}"
    )


def rotated_share(
    pred: torch.Tensor,
    gt: torch.Tensor,
    visible: torch.Tensor,
    radius: float,
    angles: int,
    *,
    around_truth: bool = True,
    endpoint: bool = False,
    degrees: bool = False,
    visible_targets: bool = True,
    only_wrong: bool = True,
) -> float:
    """Chance model (c), written plainly with each rule switchable (the checker's variants)."""
    b, k = visible.shape
    if endpoint:
        theta = torch.linspace(0, 2 * math.pi, angles, dtype=torch.float64)
    else:
        theta = torch.arange(angles, dtype=torch.float64) * (2 * math.pi / angles)
    if degrees:
        theta = torch.arange(angles, dtype=torch.float64) * (360 / angles)
    cos, sin = theta.cos(), theta.sin()
    shares = []
    p, t = pred.double(), gt.double()
    for i in range(b):
        for kk in range(k):
            if not visible[i, kk]:
                continue
            wrong = float(torch.linalg.vector_norm(p[i, kk] - t[i, kk])) >= radius
            if not wrong:
                if not only_wrong:
                    shares.append(0.0)
                continue
            centre = t[i, kk] if around_truth else torch.zeros(2, dtype=torch.float64)
            e = p[i, kk] - centre
            moved = centre + torch.stack([cos * e[0] - sin * e[1], sin * e[0] + cos * e[1]], dim=-1)  # (A, 2)
            others = [j for j in range(k) if j != kk and (visible[i, j] or not visible_targets)]
            if not others:
                shares.append(0.0)
                continue
            near = (torch.cdist(moved, t[i, others]) < radius).any(dim=-1)
            shares.append(float(near.double().mean()))
    return sum(shares) / len(shares) if shares else math.nan


@checker
def check_rotated_chance(fn: Callable) -> Feedback:
    """Check ``fn(pred (B, K, 2), gt (B, K, 2), visible (B, K) bool, radius, angles) -> float``.

    Chance model (c): every *wrong* visible prediction keeps the length of its
    error vector ``e = pred_k - gt_k`` and turns it around its own true
    keypoint, ``gt_k + R(θ) e`` for ``θ = 2π j / angles``, ``j = 0 .. angles - 1``;
    its share is the fraction of those directions that land closer than
    ``radius`` to another *visible* keypoint; the result is the mean share
    over the wrong predictions.

    Diagnoses: not one number; averaged over every prediction instead of the
    wrong ones; turned around the origin instead of the true keypoint;
    ``linspace`` that repeats ``θ = 0`` at ``2π``; degrees for radians;
    invisible keypoints hit.
    """
    name = "rotated_chance"
    pred, gt, visible, radius = landing_case()
    angles = 90
    want = landing_chance(pred, gt, visible, radius, map_size=1, angles=angles).rotated_errors
    raw, fb = run_student(name, fn, pred, gt, visible, radius, angles)
    if fb is not None:
        return fb
    if isinstance(raw, torch.Tensor) and raw.numel() == 1:
        raw = raw.item()
    if not isinstance(raw, (int, float)) or isinstance(raw, bool):
        what = f"a tensor of shape {tuple(raw.shape)}" if isinstance(raw, torch.Tensor) else type(raw).__name__
        return incorrect(name, f"return one number (the mean share over the wrong predictions), got {what}")
    got = float(raw)
    if abs(got - want) < 1e-6:
        return Feedback(
            name, "correct", f"correct: {want:.3f} of the turned errors land on another keypoint ({angles} angles)"
        )
    if got > 1 + 1e-9 and abs(got / 100 - want) < 1e-6:
        return incorrect(name, "return a share between 0 and 1, not a percentage")
    variants = [
        (dict(only_wrong=False), "average over the wrong predictions only: correct ones are not turned"),
        (
            dict(around_truth=False),
            "turn the error vector pred - gt around the true keypoint gt (gt + R(θ)(pred - gt)), not the "
            "prediction around the origin",
        ),
        (
            dict(endpoint=True),
            "use `angles` directions evenly spaced over [0, 2π) (θ = 2π j / angles); linspace(0, 2π, angles) "
            "repeats θ = 0 at 2π",
        ),
        (dict(degrees=True), "cos and sin take radians: θ = 2π j / angles, not 360 j / angles"),
        (dict(visible_targets=False), "only visible keypoints can be hit: leave out invisible ones"),
    ]
    for options, message in variants:
        if abs(got - rotated_share(pred, gt, visible, radius, angles, **options)) < 1e-6:
            return incorrect(name, message)
    return incorrect(name, f"expected {want:.4f}, got {got:.4f}")
