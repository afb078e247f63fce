"""What every checker shares: the feedback it returns and the safe way to run a student's function.

A checker (``check_*`` in the topic modules of this package) is decorated
with :func:`checker`, calls the student's function through
:func:`run_student`, turns the result into a tensor with
:func:`tensor_result`, and compares it with the reference and with typical
mistakes through :func:`close_enough` and :func:`first_match`. Anything that
goes wrong on the way becomes a :class:`Feedback`, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from regdakit.exercises.solutions import EXERCISES, SOLUTIONS_VARIABLE, solutions_on

__all__ = [
    "Feedback",
    "incorrect",
    "verify",
    "run_student",
    "checker",
    "tensor_result",
    "close_enough",
    "first_match",
]


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

    @property
    def mark(self) -> str:
        """✅, ❌ or ✏️."""
        return {"correct": "✅", "incorrect": "❌", "not attempted": "✏️"}[self.status]

    def _repr_markdown_(self) -> str:
        return f"{self.mark} **{self.exercise}**: {self.message}"


def incorrect(exercise: str, message: str) -> Feedback:
    """An "incorrect" feedback: ``message`` says what is wrong."""
    return Feedback(exercise, "incorrect", message)


def verify(feedback: Feedback) -> Feedback:
    """Print a feedback line; with the solutions switch on, fail unless it is correct.

    The exercise notebooks call this after every checker. A student (switch
    off) just reads the line; under CI (``REGDAKIT_SOLUTIONS=1``) every blank
    is filled by the reference, so anything but "correct" means a broken
    notebook or checker, and the cell fails.

    Args:
        feedback: What a ``check_*`` function returned.

    Returns:
        The same feedback.

    Raises:
        AssertionError: The switch is on and the feedback is not "correct".
    """
    print(f"{feedback.mark} {feedback}")
    if solutions_on() and not feedback:
        raise AssertionError(f"{SOLUTIONS_VARIABLE}=1, so this check must pass: {feedback}")
    return feedback


def _clone(x: object) -> object:
    return x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x


def run_student(exercise: str, fn: Callable, *args: object) -> tuple[object, Feedback | None]:
    """Call the student's function on cloned inputs; turn blanks and crashes into feedback."""
    try:
        return fn(*(_clone(a) for a in args)), None
    except NotImplementedError as err:
        why = f": {err}" if str(err) else ""  # e.g. a blank exercise that this one calls
        return None, Feedback(
            exercise, "not attempted", f"not attempted yet (your function raises NotImplementedError{why})"
        )
    except Exception as err:  # noqa: BLE001 - any crash is feedback for a student
        text = f"your function raised {type(err).__name__}: {err}"
        if isinstance(err, TypeError) and ("argument" in str(err) or "positional" in str(err)):
            text += f" (the checker calls {EXERCISES[exercise][1]})"
        return None, incorrect(exercise, text)


def checker(check: Callable[[Callable], Feedback]) -> Callable[[Callable], Feedback]:
    """Decorate a ``check_*`` function: never let an odd result crash it, report it as feedback instead.

    A "correct" answer that came from the library's reference (a blank filled
    by the solutions switch) says so in its message.
    """
    name = check.__name__.removeprefix("check_")

    @functools.wraps(check)
    def wrapper(fn: Callable) -> Feedback:
        try:
            fb = check(fn)
        except Exception as err:  # noqa: BLE001 - a checker answers, it does not crash
            fb = incorrect(
                name,
                f"the checker could not compare your result ({type(err).__name__}: {err}); "
                f"return what {EXERCISES[name][1]} is documented to return",
            )
        if fb.status == "correct" and getattr(fn, "filled", False):
            fb = Feedback(
                fb.exercise,
                fb.status,
                fb.message + f" [blank filled by the library's reference: {SOLUTIONS_VARIABLE}=1]",
            )
        return fb

    return wrapper


def tensor_result(
    exercise: str, what: str, got: object, want_shape: tuple[int, ...], hints: dict[tuple[int, ...], str] | None = None
) -> tuple[torch.Tensor | None, Feedback | None]:
    """The student's result as a float64 tensor of ``want_shape``, or feedback saying why not."""
    if got is None:
        return None, incorrect(exercise, "your function returned None: did you forget `return`?")
    if isinstance(got, (tuple, list)):
        return None, incorrect(exercise, f"return only {what} (one tensor), not a {type(got).__name__}")
    if not isinstance(got, torch.Tensor):
        kind = "a NumPy array" if type(got).__module__ == "numpy" else type(got).__name__
        return None, incorrect(exercise, f"{what} should be a torch.Tensor, got {kind}")
    shape = tuple(got.shape)
    if shape != want_shape:
        hint = (hints or {}).get(shape, "")
        return None, incorrect(
            exercise, f"{what} should have shape {want_shape}, got {shape}" + (f": {hint}" if hint else "")
        )
    if got.is_complex():
        return None, incorrect(exercise, f"{what} should be real, got dtype {got.dtype}")
    return got.detach().cpu().to(torch.float64), None


def close_enough(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    """``torch.allclose`` in float64, whatever the dtypes and autograd state of ``a`` and ``b``."""
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))


def first_match(got: torch.Tensor, variants: list[tuple[Callable[[], torch.Tensor], str]], **tol: float) -> str | None:
    """The message of the first variant ``got`` equals (variants are built lazily)."""
    for make, message in variants:
        if close_enough(got, make(), **tol):
            return message
    return None
