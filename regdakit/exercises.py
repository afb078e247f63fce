"""Checkers for course exercises: students write the function, a checker says what is wrong.

Each ``check_*(student_fn)`` runs the student's function on fixed and random
cases (inputs are cloned, so a function that modifies its arguments cannot
break the reference), compares with the library, and returns a
:class:`Feedback` with one of three outcomes:

* ``"correct"``;
* ``"incorrect"``, with a specific hint (for example "x and y are swapped");
* ``"not attempted"``: the function raises ``NotImplementedError`` (the
  blank exercise notebooks use such stubs, so they run under nbval).

The feedback prints as one line and is truthy only when correct.

>>> def my_pck(pred, gt, visible, threshold):
...     raise NotImplementedError
>>> print(check_pck(my_pck))
pck: not attempted yet (your function raises NotImplementedError)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from regdakit.disparity import ground_false_loss, pseudo_labels
from regdakit.heatmaps import encode
from regdakit.losses import normalize_heatmaps
from regdakit.metrics import pck

__all__ = ["Feedback", "check_encode", "check_ground_false", "check_pck", "check_ground_false_loss"]


@dataclass(frozen=True)
class Feedback:
    """The outcome of a check: ``status`` in {"correct", "incorrect", "not attempted"} and a message."""

    exercise: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "correct"

    def __str__(self) -> str:
        return f"{self.exercise}: {self.message}"

    def _repr_markdown_(self) -> str:
        mark = {"correct": "✅", "incorrect": "❌", "not attempted": "✏️"}[self.status]
        return f"{mark} **{self.exercise}**: {self.message}"


def _run(exercise: str, fn: Callable, *args: object) -> tuple[object, Feedback | None]:
    """Call the student's function on cloned inputs; turn stubs and crashes into feedback."""
    cloned = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
    try:
        return fn(*cloned), None
    except NotImplementedError:
        return None, Feedback(exercise, "not attempted", "not attempted yet (your function raises NotImplementedError)")
    except Exception as err:  # noqa: BLE001 - any crash is feedback for a student
        return None, Feedback(exercise, "incorrect", f"your function raised {type(err).__name__}: {err}")


def _shape_feedback(exercise: str, name: str, got: object, want: torch.Tensor) -> Feedback | None:
    if not isinstance(got, torch.Tensor):
        return Feedback(exercise, "incorrect", f"{name} should be a torch.Tensor, got {type(got).__name__}")
    if got.shape != want.shape:
        return Feedback(exercise, "incorrect", f"{name} should have shape {tuple(want.shape)}, got {tuple(got.shape)}")
    return None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> bool:
    return bool(torch.allclose(a.float(), b.float(), atol=atol, rtol=1e-4))


def _cases(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    keypoints = torch.rand(3, 5, 2, generator=g) * torch.tensor([60.0, 44.0]) + 2  # (x, y) inside a 64 x 48 image
    visible = torch.rand(3, 5, generator=g) > 0.2
    return keypoints, visible


def check_encode(fn: Callable) -> Feedback:
    """Check ``fn(keypoints (B, K, 2), visible (B, K), heatmap_size (H, W), stride, sigma) -> heatmaps (B, K, H, W)``.

    The expected heatmaps are :func:`regdakit.heatmaps.encode`'s: peak-1
    Gaussians at ``keypoint / stride``, values below 0.01 set to 0, all-zero
    maps for invisible keypoints.
    """
    name = "encode"
    keypoints, visible = _cases()
    size, stride, sigma = (12, 16), 4.0, 1.5
    want, _ = encode(keypoints, visible, size, stride, sigma)
    got, fb = _run(name, fn, keypoints, visible, size, stride, sigma)
    if fb is not None or (fb := _shape_feedback(name, "the heatmaps", got, want)) is not None:
        return fb
    assert isinstance(got, torch.Tensor)
    if _close(got, want, 1e-3):
        return Feedback(name, "correct", "correct: Gaussians at keypoint / stride, cut below 0.01, zero when invisible")
    swapped, _ = encode(keypoints.flip(-1), visible, size, stride, sigma)
    if _close(got, swapped, 1e-3):
        return Feedback(name, "incorrect", "x and y are swapped: keypoints are (x, y), x is the column, y the row")
    if _close(got, encode(keypoints, torch.ones_like(visible), size, stride, sigma)[0], 1e-3):
        return Feedback(name, "incorrect", "invisible keypoints must get an all-zero heatmap")
    if _close(got, encode(keypoints * stride, visible, size, stride, sigma)[0], 1e-3) or _close(
        got, encode(keypoints, visible, size, 1.0, sigma)[0], 1e-3
    ):
        return Feedback(name, "incorrect", "divide the image position by the stride to get heatmap cells")
    uncut = _uncut(keypoints, visible, size, stride, sigma)
    if _close(got, uncut, 1e-3):
        return Feedback(name, "incorrect", "set the values below 0.01 to zero")
    if _close(got.amax(dim=(-2, -1))[visible], torch.ones(int(visible.sum())), 0.02) is False:
        return Feedback(name, "incorrect", "each visible keypoint's map should peak at 1 (an unnormalised Gaussian)")
    return Feedback(name, "incorrect", "the heatmaps differ from the expected Gaussians (check sigma and centres)")


def _uncut(keypoints, visible, size, stride, sigma):
    h, w = size
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    c = keypoints / stride
    maps = torch.exp(-((xs - c[..., 0, None, None]) ** 2 + (ys - c[..., 1, None, None]) ** 2) / (2 * sigma**2))
    return maps * visible[..., None, None]


def check_ground_false(fn: Callable) -> Feedback:
    """Check ``fn(ground_truth (B, K, H, W)) -> ground_false (B, K, H, W)`` (Eq. 1)."""
    name = "ground_false"
    g = torch.Generator().manual_seed(1)
    truth, want = pseudo_labels(torch.randn(2, 6, 16, 16, generator=g))
    truth[:, 1] = truth[:, 2]  # two keypoints on top of each other: the sum must be clipped
    want = (truth.sum(1, keepdim=True) - truth).clamp(0, 1)
    got, fb = _run(name, fn, truth)
    if fb is not None or (fb := _shape_feedback(name, "the ground false", got, want)) is not None:
        return fb
    assert isinstance(got, torch.Tensor)
    if _close(got, want):
        return Feedback(name, "correct", "correct: the clipped sum of the other keypoints' heatmaps")
    if _close(got, truth.sum(1, keepdim=True).expand_as(truth).clamp(0, 1)):
        return Feedback(
            name, "incorrect", "your ground-false for keypoint k includes keypoint k itself: sum over k' != k"
        )
    if _close(got, truth.sum(1, keepdim=True) - truth):
        return Feedback(name, "incorrect", "clip the sum to [0, 1]: overlapping keypoints add up above 1")
    if _close(got, normalize_heatmaps(want)):
        return Feedback(name, "incorrect", "that is P_F (Eq. 2): H_F itself is not normalised")
    for k in range(truth.shape[1]):
        if not _close(got[:, k], want[:, k]):
            return Feedback(
                name, "incorrect", f"keypoint {k}'s ground false is wrong: it should be the clipped sum of the others"
            )
    return Feedback(name, "incorrect", "the ground false differs from the expected one")


def check_pck(fn: Callable) -> Feedback:
    """Check ``fn(pred (B, K, 2), gt (B, K, 2), visible (B, K), threshold) -> float`` (PCK over valid pairs)."""
    name = "pck"
    gt, visible = _cases(2)
    g = torch.Generator().manual_seed(3)
    pred = gt + torch.randn(gt.shape, generator=g) * 3
    pred[0, 0] = gt[0, 0] + torch.tensor([3.0, 0.0])
    visible[0, 0] = True
    threshold = float(torch.linalg.vector_norm(pred[0, 0] - gt[0, 0]))  # exactly at the threshold: not correct
    want = pck(pred, gt, visible, threshold).all
    got, fb = _run(name, fn, pred, gt, visible, threshold)
    if fb is not None:
        return fb
    try:
        value = float(got)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return Feedback(name, "incorrect", f"return one number (a fraction in [0, 1]), got {type(got).__name__}")
    if abs(value - want) < 1e-6:
        return Feedback(name, "correct", f"correct: {want:.3f} of the visible keypoints are within the threshold")
    dist = torch.linalg.vector_norm(pred - gt, dim=-1)
    if abs(value - float((dist < threshold).float().mean())) < 1e-6:
        return Feedback(name, "incorrect", "ignore invisible keypoints: count only pairs with visible = True")
    if abs(value - float((dist <= threshold)[visible].float().mean())) < 1e-6:
        return Feedback(name, "incorrect", "a keypoint is correct when its distance is strictly below the threshold")
    if abs(value - 100 * want) < 1e-4:
        return Feedback(name, "incorrect", "return a fraction in [0, 1], not a percentage")
    per_kp = [(dist[:, k] < threshold)[visible[:, k]].float().mean() for k in range(gt.shape[1]) if visible[:, k].any()]
    if abs(value - float(torch.stack(per_kp).mean())) < 1e-6:
        return Feedback(name, "incorrect", "pool all valid (sample, keypoint) pairs instead of averaging per keypoint")
    return Feedback(name, "incorrect", f"expected {want:.4f}, got {value:.4f}")


def check_ground_false_loss(fn: Callable) -> Feedback:
    """Check ``fn(adv_logits, main_logits) -> L_F``: KL(P_F(ŷ) || softmax(adv)), mean over B·K."""
    name = "ground_false_loss"
    g = torch.Generator().manual_seed(4)
    main = torch.randn(2, 4, 12, 12, generator=g)
    adv = torch.randn(2, 4, 12, 12, generator=g, requires_grad=True)
    want = ground_false_loss(adv, main)
    got, fb = _run(name, fn, adv, main)
    if fb is not None:
        return fb
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        return Feedback(name, "incorrect", "return a scalar tensor (so that .backward() works)")
    if _close(got.detach(), want.detach(), 1e-4):
        main_grad = main.clone().requires_grad_()
        try:
            out = fn(adv.detach().clone().requires_grad_(), main_grad)
            out.backward()
        except Exception:  # noqa: BLE001 - reported below
            return Feedback(name, "incorrect", "the value is right but the loss cannot be back-propagated")
        if main_grad.grad is not None and main_grad.grad.abs().sum() > 0:
            return Feedback(name, "incorrect", "the value is right, but detach the main head: L_F must not train f")
        return Feedback(name, "correct", "correct: KL of the normalised ground false against the adversary's softmax")
    _, false = pseudo_labels(main)
    b, k = main.shape[:2]
    p = torch.softmax(adv.detach().reshape(b, k, -1), -1)
    q = normalize_heatmaps(false).reshape(b, k, -1)
    reverse = (torch.special.xlogy(p, p) - p * torch.log(q + 1e-12)).sum(-1).mean()
    if _close(got.detach(), reverse, 1e-2):
        return Feedback(name, "incorrect", "the KL is the wrong way round: KL(P_F || softmax(f')), target first")
    truth, _ = pseudo_labels(main)
    from regdakit.losses import kl_heatmap_loss

    if _close(got.detach(), kl_heatmap_loss(adv.detach(), truth), 1e-4):
        return Feedback(name, "incorrect", "that is L_T (towards the ground truth): use the ground false")
    unnorm = -(false.reshape(b, k, -1) * torch.log_softmax(adv.detach().reshape(b, k, -1), -1)).sum(-1).mean()
    if _close(got.detach(), unnorm, 1e-3):
        return Feedback(name, "incorrect", "the target is not normalised: divide H_F by its sum to get P_F (Eq. 2)")
    return Feedback(name, "incorrect", f"expected {float(want):.4f}, got {float(got):.4f}")
