"""The evaluation exercise: PCK, the fraction of visible keypoints found within a threshold.

:func:`check_pck` compares a student's ``pck`` with
:func:`regdakit.metrics.pck` (exercise notebook 02, section 2) and names the
usual mistake: invisible keypoints counted, ``<=`` for ``<``, averaged per
keypoint or per image instead of pooled, another distance, a percentage.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regdakit.exercises.checking import Feedback, checker, close_enough, incorrect, run_student
from regdakit.metrics import pck

__all__ = ["check_pck"]


def _pck_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """``pred, gt (40, 6, 2)``, ``visible (40, 6)`` and a threshold: fixed sample 0, random samples 1-39.

    Large enough that every typical mistake changes the answer (checked by the tests).
    """
    g = torch.Generator().manual_seed(2)
    gt = torch.rand(40, 6, 2, generator=g) * 56 + 4
    pred = gt + torch.randn(40, 6, 2, generator=g) * 2.5
    visible = torch.rand(40, 6, generator=g) > 0.3
    # Sample 0, by hand: exactly at the threshold (not correct: distance < threshold is), between 3 and 3.2
    # (the usual PCK@0.05 on 64 cells), an invisible prediction that is right, an invisible one far away.
    gt[0] = torch.tensor([[20.0, 30.0], [40.0, 10.0], [10.0, 50.0], [50.0, 50.0], [30.0, 30.0], [5.0, 60.0]])
    pred[0] = torch.tensor([[23.0, 30.0], [40.0, 13.1], [10.0, 50.0], [5.0, 5.0], [31.0, 31.0], [5.0, 50.0]])
    visible[0] = torch.tensor([True, True, False, False, True, True])
    visible[1] = True  # uneven counts per sample and per keypoint
    visible[2, 1:] = False
    return pred, gt, visible, 3.0


@checker
def check_pck(fn: Callable) -> Feedback:
    """Check ``fn(pred (B, K, 2), gt (B, K, 2), visible (B, K) bool, threshold) -> float``.

    PCK as :func:`regdakit.metrics.pck` defines it: the fraction of the
    *visible* (sample, keypoint) pairs whose Euclidean distance is strictly
    below ``threshold``, pooled over the whole batch.

    Diagnoses: not one number (``None``, a per-keypoint tensor); NaN; a
    percentage; a count; the fraction wrong; invisible keypoints counted (in
    both or only in the denominator); ``<=`` instead of ``<``; averaged per
    keypoint or per image instead of pooled; squared, L1 or max distance; a
    fixed threshold of 3.2 instead of the argument.
    """
    name = "pck"
    pred, gt, visible, threshold = _pck_case()
    result = pck(pred, gt, visible, threshold)
    want = result.all
    got, fb = run_student(name, fn, pred, gt, visible, threshold)
    if fb is not None:
        return fb
    if got is None:
        return incorrect(name, "your function returned None: did you forget `return`?")
    if isinstance(got, torch.Tensor) and got.numel() != 1:
        shape = tuple(got.shape)
        if shape == tuple(result.per_keypoint.shape) and close_enough(got, result.per_keypoint):
            return incorrect(name, "that is PCK per keypoint: return one number, pooled over all visible pairs")
        return incorrect(name, f"return one number (a fraction in [0, 1]), got a tensor of shape {shape}")
    if isinstance(got, (str, bytes)) or not hasattr(got, "__float__"):
        return incorrect(name, f"return one number (a fraction in [0, 1]), got {type(got).__name__}")
    value = float(got)  # type: ignore[arg-type]
    if math.isnan(value):
        return incorrect(name, "your PCK is NaN (a division by zero, or NaN distances?)")
    if abs(value - want) < 1e-5:
        return Feedback(name, "correct", f"correct: {want:.3f} of the visible keypoints are within the threshold")

    diff = pred - gt
    dist = torch.linalg.vector_norm(diff, dim=-1)
    vis = visible

    def pooled(correct: torch.Tensor) -> float:
        return float(correct[vis].double().mean())

    n_correct = int((dist < threshold)[vis].sum())
    per_image = torch.stack([(dist[i] < threshold)[vis[i]].double().mean() for i in range(len(vis)) if vis[i].any()])
    per_kp = torch.stack(
        [(dist[:, j] < threshold)[vis[:, j]].double().mean() for j in range(vis.shape[1]) if vis[:, j].any()]
    )
    candidates = [
        (100 * want, "return a fraction in [0, 1], not a percentage"),
        (n_correct, "return the fraction of visible keypoints that are correct, not their count"),
        (1 - want, "that is the fraction of *wrong* keypoints: a keypoint is correct when distance < threshold"),
        (float((dist < threshold).double().mean()), "ignore invisible keypoints: count only pairs with visible = True"),
        (
            float(((dist < threshold) & vis).double().mean()),
            "divide by the number of visible keypoints, not by all B·K of them",
        ),
        (pooled(dist <= threshold), "a keypoint is correct when its distance is strictly below the threshold (<)"),
        (
            float(per_kp.mean()),
            "pool all visible (sample, keypoint) pairs instead of averaging the per-keypoint fractions",
        ),
        (
            float(per_image.mean()),
            "pool all visible pairs instead of averaging per image (or per batch): images have different numbers "
            "of visible keypoints",
        ),
        (pooled(dist**2 < threshold), "compare the distance itself with the threshold, not the squared distance"),
        (pooled(diff.abs().sum(-1) < threshold), "use the Euclidean distance, not |dx| + |dy|"),
        (pooled(diff.abs().amax(-1) < threshold), "use the Euclidean distance, not max(|dx|, |dy|)"),
        (pooled(dist < 3.2), "use the threshold argument, not a fixed 3.2"),
    ]
    for candidate, message in candidates:
        if abs(value - float(candidate)) < 1e-5:
            return incorrect(name, message)
    return incorrect(name, f"expected {want:.4f}, got {value:.4f}")
