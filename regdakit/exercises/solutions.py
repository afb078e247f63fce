"""The catalogue of exercises and the solutions switch.

:data:`EXERCISES` names each exercise, the library function that answers it
(with the exercise's signature) and that signature as text, which the
checkers quote when a student's function is called the wrong way.
:func:`exercise` wraps a student's function so that, while its body is still
blank and ``REGDAKIT_SOLUTIONS=1``, calls are answered by :func:`solution`;
code a student has written is never replaced.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from regdakit.disparity import ground_false_distribution, ground_false_from_truth, ground_false_loss
from regdakit.heatmaps import encode
from regdakit.losses import kl_heatmap_loss
from regdakit.metrics import pck

__all__ = ["SOLUTIONS_VARIABLE", "EXERCISES", "solutions_on", "solution", "exercise"]

#: The environment variable that fills blank exercises with the reference (``1`` = on).
SOLUTIONS_VARIABLE = "REGDAKIT_SOLUTIONS"
_TRUE = {"1", "true", "yes", "on"}


def solutions_on() -> bool:
    """Whether ``REGDAKIT_SOLUTIONS`` is set to a true value (``1``, ``true``, ``yes``, ``on``).

    Read at every call, so setting ``os.environ`` at run time takes effect.
    """
    return os.environ.get(SOLUTIONS_VARIABLE, "").strip().lower() in _TRUE


def _ref_encode(keypoints, visible, heatmap_size, stride=4.0, sigma=2.0):
    return encode(keypoints, visible, heatmap_size, stride, sigma)[0]


def _ref_pck(pred, gt, visible, threshold=3.2):
    return pck(pred, gt, visible, threshold).all


def _ref_ground_false_loss(adv_logits, main_logits):
    return ground_false_loss(adv_logits, main_logits)


#: Exercise name -> (reference implementation with the exercise's signature, the signature as text).
EXERCISES: dict[str, tuple[Callable[..., Any], str]] = {
    "encode": (_ref_encode, "encode(keypoints, visible, heatmap_size, stride, sigma)"),
    "pck": (_ref_pck, "pck(pred, gt, visible, threshold)"),
    "ground_false": (ground_false_from_truth, "ground_false(ground_truth)"),
    "ground_false_distribution": (ground_false_distribution, "ground_false_distribution(ground_false)"),
    "kl_loss": (kl_heatmap_loss, "kl_loss(logits, target)"),
    "ground_false_loss": (_ref_ground_false_loss, "ground_false_loss(adv_logits, main_logits)"),
}


def _check_name(name: str) -> None:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are {sorted(EXERCISES)}")


def solution(name: str) -> Callable[..., Any]:
    """The library's reference implementation of an exercise, with the exercise's signature.

    For instructors and tests; the notebooks reach it only through :func:`exercise`.

    >>> solution("ground_false").__name__
    'ground_false_from_truth'
    """
    _check_name(name)
    return EXERCISES[name][0]


class _Exercise:
    """A student's function; a blank body is answered by the reference when the switch is on."""

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.name = name
        self.fn = fn
        #: True once a call was answered by the reference.
        self.filled = False
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return self.fn(*args, **kwargs)
        except NotImplementedError as err:
            if not _raised_by(err, self.fn):
                raise  # from deeper code the student calls: not the blank
            if solutions_on():
                self.filled = True
                return EXERCISES[self.name][0](*args, **kwargs)
            raise NotImplementedError(
                f"`{self.name}` is still blank: write its body between the ✏️ lines and run that cell again "
                f"(instructors and CI fill blanks with the reference by setting {SOLUTIONS_VARIABLE}=1)"
            ) from None


def _raised_by(err: BaseException, fn: Callable[..., Any]) -> bool:
    """Whether ``err`` was raised in ``fn``'s own body (not in a function it called)."""
    tb = err.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code is getattr(fn, "__code__", None)


def exercise(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for a student's function in an exercise notebook.

    The decorated function behaves exactly like the undecorated one, with one
    exception: while its body still raises ``NotImplementedError`` itself (a
    blank) and ``REGDAKIT_SOLUTIONS=1``, calls are answered by
    :func:`solution` ``(name)``. A function the student has written is never
    replaced.

    Args:
        name: One of :data:`EXERCISES`.

    Returns:
        The decorator.
    """
    _check_name(name)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _Exercise(name, fn)

    return decorate
