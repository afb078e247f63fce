"""Hidden tests: the exercise's function on inputs the visible checks never show, for graded assignments.

The graded cells of the course notebooks (``notebooks/exercises/``, built
into nbgrader assignments by :mod:`regdakit.exercises.course`) first run the
visible check (``verify(check_*(fn))``), then, between nbgrader's hidden-test
markers, :func:`hidden_check` with a seed only the instructor's copy shows:
other batch sizes, keypoint counts, map sizes, strides, sigmas and radii (for
the training steps: another tiny model, batch, ``trade_off``, ``sigma`` and
``λ``), so that an answer fitted to the visible case fails. Like the checkers, it runs
the student's function with the library's reference blocked.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from regdakit.exercises.checking import (
    CheckFailed,
    Feedback,
    call_student,
    close_enough,
    incorrect,
    reference_feedback,
)
from regdakit.exercises.encoding import _close_heatmaps
from regdakit.exercises.solutions import EXERCISES, ReferenceUsed, _check_name

__all__ = ["hidden_check"]


def _inputs(name: str, seed: int) -> tuple[tuple[object, ...], str]:
    """Random inputs for exercise ``name`` (sizes that differ from the visible checks) and their description."""
    from regdakit.disparity import ground_false_from_truth, pseudo_labels

    g = torch.Generator().manual_seed(seed)
    b, k = 2 + seed % 3, 4 + seed % 5
    h, w = 9 + seed % 4, 11 + seed % 6
    if name == "encode":
        stride, sigma = 2.0 + seed % 3, 1.0 + 0.25 * (seed % 4)
        keypoints = torch.rand(b, k, 2, generator=g) * torch.tensor([(w - 2) * stride, (h - 2) * stride]) + stride
        visible = torch.rand(b, k, generator=g) > 0.25
        what = f"B={b}, K={k}, {h} x {w} maps, stride {stride}, sigma {sigma}"
        return (keypoints, visible, (h, w), stride, sigma), what
    if name == "pck":
        gt = torch.rand(8 * b, k, 2, generator=g) * 50
        pred = gt + torch.randn(8 * b, k, 2, generator=g) * 3
        visible = torch.rand(8 * b, k, generator=g) > 0.3
        return (pred, gt, visible, 3.5), f"B={8 * b}, K={k}, threshold 3.5"
    if name in ("error_landing", "rotated_chance"):
        from regdakit.exercises.landing import landing_case

        pred, gt, visible, _ = landing_case(seed=100 + seed, b=8 * b, k=k + 3)  # K >= 7: no hand-made sample
        radius = 1.5 + 0.25 * (seed % 3)
        what = f"B={8 * b}, K={k + 3}, radius {radius}"
        if name == "error_landing":
            return (pred, gt, visible, radius), what
        angles = 36 + 12 * (seed % 4)
        return (pred, gt, visible, radius, angles), f"{what}, {angles} angles"
    truth, false = pseudo_labels(torch.randn(b, k, h, w, generator=g))
    if name == "ground_false":
        return (truth,), f"B={b}, K={k}, {h} x {w} maps"
    if name == "ground_false_distribution":
        false = ground_false_from_truth(truth)
        false[0, 0] = 0
        return (false,), f"B={b}, K={k}, {h} x {w} maps, one all zero"
    logits = torch.randn(b, k, h, w, generator=g) * 2
    if name == "kl_loss":
        return (logits, truth), f"B={b}, K={k}, {h} x {w} maps, Gaussian targets"
    return (logits, torch.randn(b, k, h, w, generator=g)), f"B={b}, K={k}, {h} x {w} maps"


def _agrees(name: str, got: object, want: object) -> bool:
    if name in ("pck", "rotated_chance"):
        try:
            return abs(float(got) - float(want)) < 1e-5  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(want.shape):  # type: ignore[union-attr]
        return False
    got, want = got.detach().double(), want.detach().double()  # type: ignore[union-attr]
    if name == "encode":
        return _close_heatmaps(got, want)
    return close_enough(got, want, atol=1e-5, rtol=1e-4)


def hidden_check(name: str, fn: Callable, seed: int) -> None:
    """Run the student's ``fn`` for exercise ``name`` on seeded inputs of other sizes; raise unless it agrees.

    Args:
        name: One of :data:`~regdakit.exercises.EXERCISES`.
        fn: The student's function.
        seed: Picks the sizes and the values.

    Raises:
        CheckFailed: The function is blank, raises, calls the library's reference or disagrees with it.
    """
    _check_name(name)
    if name in ("step_b", "step_c"):
        from regdakit.exercises.steps import step_outcome

        fb = step_outcome(name, fn, 100 + seed)  # another model, batch, trade_off, sigma and λ
        if fb.status == "incorrect" and "library's own" not in fb.message:
            fb = incorrect(name, f"a hidden test with another tiny model and settings fails: {fb.message}")
        if not fb:
            raise CheckFailed(fb)
        return
    args, what = _inputs(name, seed)
    want = EXERCISES[name][0](*args)
    prefix = f"a hidden test with other inputs ({what})"
    try:
        got = call_student(name, fn, *(a.clone() if isinstance(a, torch.Tensor) else a for a in args))
    except ReferenceUsed as err:
        raise CheckFailed(reference_feedback(name, err.what)) from None
    except NotImplementedError:
        raise CheckFailed(Feedback(name, "not attempted", "not attempted yet")) from None
    except Exception as err:  # noqa: BLE001 - reported as feedback
        raise CheckFailed(incorrect(name, f"{prefix}: your function raised {type(err).__name__}: {err}")) from None
    if not _agrees(name, got, want):
        raise CheckFailed(
            incorrect(
                name,
                f"{prefix} fails: your result differs from the expected one; does your function depend on the "
                "sizes of the visible check's inputs?",
            )
        )
