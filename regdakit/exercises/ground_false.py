"""The ground-false exercises: ``H_F`` (Eq. 1) and its distribution ``P_F`` (Eq. 2).

:func:`check_ground_false` and :func:`check_ground_false_distribution`
compare a student's functions with
:func:`regdakit.disparity.ground_false_from_truth` and
:func:`regdakit.disparity.ground_false_distribution` (exercise notebook 02,
sections 3 and 4) and name the usual mistake: keypoint ``k`` left in its own
ground false, no clipping, the wrong axis, a softmax, NaN for an empty map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from regdakit.disparity import ground_false_distribution, ground_false_from_truth, pseudo_labels
from regdakit.exercises.checking import (
    Feedback,
    checker,
    close_enough,
    first_match,
    incorrect,
    run_student,
    tensor_result,
)
from regdakit.heatmaps import encode
from regdakit.losses import normalize_heatmaps

__all__ = ["check_ground_false", "check_ground_false_distribution"]


def _truth_case() -> torch.Tensor:
    """Ground-truth heatmaps ``(3, 6, 16, 16)``: a fixed sample with overlapping keypoints, two random ones."""
    centres = torch.tensor([[[3.0, 3.0], [8.0, 8.0], [8.0, 8.0], [10.0, 9.0], [13.0, 3.0], [3.0, 13.0]]])
    fixed, _ = encode(centres, torch.ones(1, 6), 16, stride=1)  # keypoints 1 and 2 on top of each other
    g = torch.Generator().manual_seed(1)
    rand, _ = pseudo_labels(torch.randn(2, 6, 16, 16, generator=g))
    return torch.cat([fixed, rand])


@checker
def check_ground_false(fn: Callable) -> Feedback:
    """Check ``fn(ground_truth (B, K, H, W)) -> ground_false (B, K, H, W)`` (Eq. 1).

    ``H_F[k] = clip(Σ_{k' != k} H[k'], 0, 1)``: for each keypoint, the
    clipped sum of the *other* keypoints' heatmaps. The fixed case has two
    keypoints on top of each other, so an unclipped sum shows.

    Diagnoses: not a tensor / ``None``; shape (one map for all keypoints);
    keypoint ``k`` itself included (naming the keypoint); not clipped;
    clipped before leaving ``k`` out; a maximum instead of a sum; the sum over
    the wrong axis (batch, rows, columns); already normalised (that is
    ``P_F``); the ground truth or ``1 - H`` returned; a keypoint ``m`` left out
    of ``k``'s sum (naming both).
    """
    name = "ground_false"
    truth = _truth_case()
    want = ground_false_from_truth(truth).double()
    raw, fb = run_student(name, fn, truth)
    if fb is not None:
        return fb
    b, k, h, w = truth.shape
    hints = {(b, 1, h, w): "one ground-false map per keypoint k, each leaving out k itself"}
    got, fb = tensor_result(name, "the ground false", raw, tuple(want.shape), hints)
    if fb is not None:
        return fb
    assert got is not None
    if close_enough(got, want):
        return Feedback(name, "correct", "correct: the clipped sum of the other keypoints' heatmaps")
    t = truth.double()
    total = t.sum(1, keepdim=True)
    others = total - t
    message = first_match(
        got,
        [
            (
                lambda: total.clamp(0, 1).expand_as(t),
                "your ground-false for keypoint 0 includes keypoint 0 itself (and so on for every keypoint k): "
                "sum over k' != k only",
            ),
            (lambda: others, "clip the sum to [0, 1]: overlapping keypoints add up above 1"),
            (
                lambda: total.clamp(0, 1) - t,
                "clip after leaving keypoint k out: clip(Σ_{k'≠k} H[k']), not clip(Σ H) - H[k]",
            ),
            (lambda: _max_of_others(t), "use the clipped sum of the other keypoints, not their maximum"),
            (
                lambda: (t.sum(0, keepdim=True) - t).clamp(0, 1),
                "you summed over the batch (dim 0): sum over the keypoints, dim 1",
            ),
            (
                lambda: (t.sum(2, keepdim=True) - t).clamp(0, 1),
                "you summed over the rows (dim 2): sum over the keypoints, dim 1",
            ),
            (
                lambda: (t.sum(3, keepdim=True) - t).clamp(0, 1),
                "you summed over the columns (dim 3): sum over the keypoints, dim 1",
            ),
            (lambda: normalize_heatmaps(want), "that is P_F (Eq. 2): H_F itself is not normalised"),
            (lambda: t, "that is the ground truth H(ŷ) itself: H_F[k] is made of the *other* keypoints' heatmaps"),
            (lambda: 1 - t, "H_F is not 1 - H: it is the sum of the other keypoints' Gaussians"),
        ],
    )
    if message is not None:
        return incorrect(name, message)
    for kk in range(k):
        if close_enough(got[:, kk], want[:, kk]):
            continue
        if close_enough(got[:, kk], total[:, 0].clamp(0, 1)):
            return incorrect(
                name, f"your ground-false for keypoint {kk} includes keypoint {kk} itself: sum over k' != {kk}"
            )
        for m in range(k):
            if m != kk and close_enough(got[:, kk], (others[:, kk] - t[:, m]).clamp(0, 1)):
                return incorrect(
                    name, f"your ground-false for keypoint {kk} misses keypoint {m}: sum over every k' != {kk}"
                )
        return incorrect(name, f"keypoint {kk}'s ground false is wrong: it should be the clipped sum of the others")
    return incorrect(name, "the ground false differs from the expected one")  # pragma: no cover - some keypoint differs


def _max_of_others(t: torch.Tensor) -> torch.Tensor:
    k = t.shape[1]
    eye = torch.eye(k, dtype=torch.bool)[None, :, :, None, None]  # (1, K, K, 1, 1)
    return t[:, None].expand(-1, k, -1, -1, -1).masked_fill(eye, 0).amax(dim=2)


def _false_case() -> torch.Tensor:
    """Ground-false maps ``(3, 6, 16, 16)``; sample 2's keypoint 5 has no other keypoint (all zero)."""
    false = ground_false_from_truth(_truth_case())
    false[2, 5] = 0
    return false


@checker
def check_ground_false_distribution(fn: Callable) -> Feedback:
    """Check ``fn(ground_false (B, K, H, W)) -> P_F (B, K, H, W)`` (Eq. 2).

    ``P_F[b, k] = H_F[b, k] / Σ_{h,w} H_F[b, k]``: each map normalised to sum 1;
    a map that is all zero (no other keypoint) stays all zero.

    Diagnoses: not a tensor / ``None``; shape; not normalised; normalised over
    the whole sample or batch, over the keypoints, or over one spatial axis
    only; a softmax; NaN for an all-zero map; Eq. 1
    applied again to its input.
    """
    name = "ground_false_distribution"
    false = _false_case()
    want = ground_false_distribution(false).double()
    raw, fb = run_student(name, fn, false)
    if fb is not None:
        return fb
    got, fb = tensor_result(name, "P_F", raw, tuple(want.shape))
    if fb is not None:
        return fb
    assert got is not None
    if close_enough(got, want, atol=1e-6, rtol=1e-4):
        return Feedback(name, "correct", "correct: each H_F map divided by its sum over the H·W cells")
    f = false.double()

    def divide(denominator: torch.Tensor) -> torch.Tensor:
        return f / torch.where(denominator > 0, denominator, torch.ones_like(denominator))

    nan = torch.isnan(got)
    zero_map = torch.zeros_like(nan)
    zero_map[2, 5] = True
    if bool(nan.any()):
        if bool((nan == zero_map).all()) and close_enough(got[~nan], want[~nan], atol=1e-6):
            return incorrect(
                name,
                "an all-zero H_F (no other keypoint) gives NaN: leave such maps at zero, e.g. divide by "
                "torch.where(total > 0, total, 1)",
            )
        return incorrect(name, "your P_F contains NaN")
    message = first_match(
        got,
        [
            (lambda: f, "not normalised: divide each H_F map by its sum over H and W (Eq. 2)"),
            (
                lambda: divide(f.sum((1, 2, 3), keepdim=True)),
                "normalise each keypoint's map on its own: sum over "
                "the H·W cells (dims -2, -1), not over the keypoints too",
            ),
            (lambda: divide(f.sum()), "normalise each (sample, keypoint) map on its own, not the whole batch at once"),
            (
                lambda: divide(f.sum(1, keepdim=True)),
                "wrong axis: sum over the H·W cells of each map (dims -2, -1), not over the keypoints (dim 1)",
            ),
            (
                lambda: divide(f.sum(-1, keepdim=True)),
                "sum over both spatial axes (H and W), not over the columns only",
            ),
            (lambda: divide(f.sum(-2, keepdim=True)), "sum over both spatial axes (H and W), not over the rows only"),
            (
                lambda: torch.softmax(f.flatten(2), -1).reshape(f.shape),
                "P_F = H_F / Σ H_F, not a softmax (that would exponentiate H_F)",
            ),
            (lambda: normalize_heatmaps(ground_false_from_truth(f)), "the input is already H_F: only normalise it"),
        ],
        atol=1e-6,
    )
    return incorrect(name, message or "P_F differs from H_F / Σ_{h,w} H_F")
