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

from regdakit.exercises.solutions import (
    EXERCISES,
    ReferenceUsed,
    _blank_message,
    _calls,
    _checking,
    _Exercise,
    reference_blocked,
)

__all__ = [
    "Feedback",
    "incorrect",
    "verify",
    "CheckFailed",
    "call_student",
    "run_student",
    "reference_feedback",
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


class CheckFailed(AssertionError):
    """A check that did not pass: its message is the feedback line, shown once, without a traceback."""

    def __init__(self, feedback: Feedback) -> None:
        super().__init__(f"{feedback.mark} {feedback}")
        self.feedback = feedback

    def _render_traceback_(self) -> list[str]:
        # IPython (so Jupyter and nbgrader's autograder) shows these lines instead of a traceback.
        return [str(self)]


def verify(feedback: Feedback) -> None:
    """Print a correct feedback in one line, or raise :class:`CheckFailed` with it.

    The check cells of the exercise notebooks call this: the feedback line
    appears exactly once (no value is returned for Jupyter to display a second
    time), and a cell whose answer is not correct fails, so nbgrader's
    autograder gives its points only for a correct answer.

    Args:
        feedback: What a ``check_*`` function returned.

    Raises:
        CheckFailed: The feedback is not "correct" (an ``AssertionError``).
    """
    if not feedback:
        raise CheckFailed(feedback)
    print(f"{feedback.mark} {feedback}")


def _clone(x: object) -> object:
    return x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x


def reference_feedback(exercise: str, what: str) -> Feedback:
    """The feedback for an answer that calls the library's own implementation of the exercise."""
    return incorrect(
        exercise,
        f"your function calls the library's own `{what}`, the function this exercise asks you to write: "
        "that answer earns no credit; write it yourself with torch operations",
    )


#: The other exercises' @exercise wrappers called during the last call_student, per exercise.
_last_calls: dict[str, list[_Exercise]] = {}


def call_student(exercise: str, fn: Callable, *args: object, **kwargs: object) -> object:
    """Call the student's function with the library's reference blocked; raises what the function raises.

    Raises:
        ReferenceUsed: The function called the reference (even if it caught the error itself).
    """
    log: list[_Exercise] = []
    _calls.append(log)
    _checking[0] += 1
    try:
        with reference_blocked(exercise) as used:
            result = fn(*args, **kwargs)
        if used:
            raise ReferenceUsed(exercise, used[0])
        return result
    finally:
        _checking[0] -= 1
        _calls.remove(log)
        _last_calls[exercise] = [f for f in dict.fromkeys(log) if f.exercise_name != exercise]


def run_student(exercise: str, fn: Callable, *args: object) -> tuple[object, Feedback | None]:
    """Call the student's function on cloned inputs; turn blanks, crashes and reference calls into feedback."""
    try:
        return call_student(exercise, fn, *(_clone(a) for a in args)), None
    except ReferenceUsed as err:
        return None, reference_feedback(exercise, err.what)
    except NotImplementedError as err:
        if str(err) == _blank_message(exercise):
            return None, Feedback(
                exercise,
                "not attempted",
                f"not attempted yet: write the body of `{exercise}` in place of `raise NotImplementedError()`, "
                "run its cell, then this one",
            )
        why = f": {err}" if str(err) else ""  # e.g. a blank exercise that this one calls
        return None, Feedback(
            exercise, "not attempted", f"not attempted yet (your function raises NotImplementedError{why})"
        )
    except Exception as err:  # noqa: BLE001 - any crash is feedback for a student
        text = f"your function raised {type(err).__name__}: {err}"
        if isinstance(err, TypeError) and ("argument" in str(err) or "positional" in str(err)):
            text += f" (the checker calls {EXERCISES[exercise][1]})"
        return None, incorrect(exercise, text)


#: Exercise name -> its checker (filled by :func:`checker`), for tracing a mistake upstream.
CHECKERS: dict[str, Callable[[Callable], Feedback]] = {}
_tracing: set[str] = set()


def _trace_upstream(fb: Feedback) -> Feedback:
    """If the student's function called another exercise's function that is itself wrong, say that this is why."""
    if fb.status != "incorrect" or "library's own" in fb.message:
        return fb
    for upstream in _last_calls.get(fb.exercise, []):
        name = upstream.exercise_name
        if name in _tracing or name not in CHECKERS:
            continue
        _tracing.add(name)
        try:
            up = CHECKERS[name](upstream)
        finally:
            _tracing.discard(name)
        if up.status == "incorrect":
            return incorrect(
                fb.exercise,
                f"your `{name}` is wrong, and your `{fb.exercise}` uses it: fix `{name}` first "
                f"(its check says: {up.message}); here: {fb.message}",
            )
    return fb


def checker(check: Callable[[Callable], Feedback]) -> Callable[[Callable], Feedback]:
    """Decorate a ``check_*`` function: never let an odd result crash it, report it as feedback instead.

    An "incorrect" result of a function that calls another exercise's
    function (through its ``@exercise`` wrapper) which is itself incorrect is
    traced to it: "your `ground_false` is wrong, and your
    `ground_false_loss` uses it: fix `ground_false` first ...".
    """
    name = check.__name__.removeprefix("check_")

    @functools.wraps(check)
    def wrapper(fn: Callable) -> Feedback:
        _last_calls.pop(name, None)
        try:
            fb = check(fn)
        except ReferenceUsed as err:  # e.g. only on the gradient check's call
            fb = reference_feedback(name, err.what)
        except Exception as err:  # noqa: BLE001 - a checker answers, it does not crash
            fb = incorrect(
                name,
                f"the checker could not compare your result ({type(err).__name__}: {err}); "
                f"return what {EXERCISES[name][1]} is documented to return",
            )
        return _trace_upstream(fb)

    CHECKERS[name] = wrapper
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
