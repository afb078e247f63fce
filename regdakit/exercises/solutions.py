"""The catalogue of exercises, the student's-function wrapper and the guard on the library's reference.

:data:`EXERCISES` names each exercise, the library function that answers it
(with the exercise's signature) and that signature as text, which the
checkers quote when a student's function is called the wrong way.

:func:`exercise` wraps a student's function. It never changes what written
code does; it only

* records which exercise functions another exercise's function calls, so that
  a checker can trace a wrong result to a wrong function upstream;
* turns a *blank* (a body that still raises ``NotImplementedError`` itself)
  into a :class:`Blank` value that names the function to write wherever the
  notebook uses it, instead of a ``NameError`` cells later.

:func:`reference_blocked` makes the library's own implementation of an
exercise unavailable while a checker runs the student's function: an answer
that merely calls it is reported as such (:class:`ReferenceUsed`).
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Callable, Iterator
from typing import Any

from regdakit import disparity, heatmaps, losses, metrics
from regdakit.methods import regda

__all__ = [
    "EXERCISES",
    "BLOCKED",
    "solution",
    "exercise",
    "Blank",
    "StillBlank",
    "ReferenceUsed",
    "reference_blocked",
]


def _ref_encode(keypoints, visible, heatmap_size, stride=4.0, sigma=2.0):
    return _original("encode")(keypoints, visible, heatmap_size, stride, sigma)[0]


def _ref_pck(pred, gt, visible, threshold=3.2):
    return _original("pck")(pred, gt, visible, threshold).all


def _ref_ground_false(ground_truth):
    return _original("ground_false")(ground_truth)


def _ref_ground_false_distribution(ground_false):
    return _original("ground_false_distribution")(ground_false)


def _ref_kl_loss(logits, target):
    return _original("kl_loss")(logits, target)


def _ref_ground_false_loss(adv_logits, main_logits):
    return _original("ground_false_loss")(adv_logits, main_logits)


def _ref_error_landing(pred, gt, visible, radius=3.2):
    return _original("error_landing")(pred, gt, visible, radius, map_size=1).landing


def _ref_rotated_chance(pred, gt, visible, radius=3.2, angles=360):
    return _original("rotated_chance")(pred, gt, visible, radius, map_size=1, angles=angles).rotated_errors


def _ref_step_b(model, x_t, optimizers, trade_off=1.0, sigma=2.0):
    target = regda.target_pass(model, x_t, sigma)
    cfg = regda.Config(trade_off=trade_off)
    return _original("step_b")(model, target, optimizers, cfg, disparity.minimise_false)


def _ref_step_c(model, x_t, optimizers, trade_off=1.0, sigma=2.0, lam=0.05):
    # The library's step C takes the iteration `it` and applies λ = 0.1·tanh(it / (2N)); with N = 10^6 an
    # iteration gives any 0 <= λ < 0.1 to 1e-6.
    if not 0 <= lam < 0.1:
        raise ValueError(f"RegDA's warm start gives 0 <= lam < 0.1, got {lam}")
    horizon = 10**6
    it = round(2 * horizon * math.atanh(lam / 0.1))
    cfg = regda.Config(trade_off=trade_off, warmup_iterations=horizon)
    target = regda.target_pass(model, x_t, sigma)
    return _original("step_c")(model, target, optimizers, cfg, it, disparity.minimise_truth)


#: Exercise name -> the library functions that answer it, as (module, attribute); the first is the reference.
#: While a checker runs a student's function for that exercise, each of them is unavailable, the private
#: helpers that hold the actual computation included (``heatmaps._gaussians``, ``disparity._ground_false``).
BLOCKED: dict[str, tuple[tuple[Any, str], ...]] = {
    "encode": ((heatmaps, "encode"), (heatmaps, "gaussian_heatmaps"), (heatmaps, "_gaussians")),
    "pck": ((metrics, "pck"),),
    "ground_false": ((disparity, "ground_false_from_truth"), (disparity, "_ground_false")),
    "ground_false_distribution": ((disparity, "ground_false_distribution"), (losses, "normalize_heatmaps")),
    "kl_loss": ((losses, "kl_heatmap_loss"), (losses, "kl_per_keypoint")),
    "ground_false_loss": ((disparity, "ground_false_loss"),),
    "error_landing": ((metrics, "error_landing"), (metrics, "landing_chance")),
    "rotated_chance": ((metrics, "landing_chance"), (metrics, "_rotated_error_chance")),
    "step_b": ((regda, "step_b"), (regda, "step_b_plain"), (regda, "iteration"), (regda, "step")),
    "step_c": ((regda, "step_c"), (regda, "step_c_plain"), (regda, "iteration"), (regda, "step")),
}

#: The library's functions as imported, before any blocking.
_ORIGINALS: dict[tuple[str, str], Callable[..., Any]] = {
    (module.__name__, attr): getattr(module, attr) for pairs in BLOCKED.values() for module, attr in pairs
}


def _original(name: str) -> Callable[..., Any]:
    module, attr = BLOCKED[name][0]
    return _ORIGINALS[(module.__name__, attr)]


#: Exercise name -> (reference implementation with the exercise's signature, the signature as text).
EXERCISES: dict[str, tuple[Callable[..., Any], str]] = {
    "encode": (_ref_encode, "encode(keypoints, visible, heatmap_size, stride, sigma)"),
    "pck": (_ref_pck, "pck(pred, gt, visible, threshold)"),
    "ground_false": (_ref_ground_false, "ground_false(ground_truth)"),
    "ground_false_distribution": (_ref_ground_false_distribution, "ground_false_distribution(ground_false)"),
    "kl_loss": (_ref_kl_loss, "kl_loss(logits, target)"),
    "ground_false_loss": (_ref_ground_false_loss, "ground_false_loss(adv_logits, main_logits)"),
    "error_landing": (_ref_error_landing, "error_landing(pred, gt, visible, radius)"),
    "rotated_chance": (_ref_rotated_chance, "rotated_chance(pred, gt, visible, radius, angles)"),
    "step_b": (_ref_step_b, "step_b(model, x_t, optimizers, trade_off, sigma)"),
    "step_c": (_ref_step_c, "step_c(model, x_t, optimizers, trade_off, sigma, lam)"),
}


def _check_name(name: str) -> None:
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}; the exercises are {sorted(EXERCISES)}")


class ReferenceUsed(BaseException):  # noqa: N818 - BaseException: a student's `except Exception` cannot hide it
    """Raised when a student's function calls the library's implementation of the exercise it should write."""

    def __init__(self, exercise: str, what: str) -> None:
        super().__init__(f"{exercise}: calls {what}")
        self.exercise = exercise
        self.what = what


#: The exercises whose reference is blocked right now, and whether a blocked function was called.
_blocked: dict[str, list[str]] = {}


def _guarded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, unavailable while a checker runs a student's function for ``name``."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if name in _blocked:
            _blocked[name].append(f"regdakit.exercises.solution({name!r})")
            raise ReferenceUsed(name, f"regdakit.exercises.solution({name!r})")
        return fn(*args, **kwargs)

    return call


_GUARDED = {name: _guarded(name, ref) for name, (ref, _) in EXERCISES.items()}


def solution(name: str) -> Callable[..., Any]:
    """The library's reference implementation of an exercise, with the exercise's signature.

    For instructors and tests. While a checker runs a student's function, the
    reference of that exercise raises :class:`ReferenceUsed` instead.

    >>> solution("ground_false").__name__
    '_ref_ground_false'
    """
    _check_name(name)
    return _GUARDED[name]


_HOOK = "__regdakit_reference_blocked__"


def _blocked_body(*args: Any, **kwargs: Any) -> Any:  # pragma: no cover - only ever runs as another function's code
    # While an exercise is checked, this code replaces the reference's code object (renamed after it); it runs
    # with the reference's module globals, where reference_blocked() put a hook per blocked function name.
    return globals()["__regdakit_reference_blocked__"][__import__("sys")._getframe(0).f_code.co_name]()


@contextlib.contextmanager
def reference_blocked(name: str) -> Iterator[list[str]]:
    """Make the library's implementation of exercise ``name`` unavailable inside the block.

    Each function of :data:`BLOCKED` ``[name]`` has its code object swapped
    for one that raises :class:`ReferenceUsed`, so every way of reaching it
    fails: ``rk.disparity.ground_false_from_truth``, a name imported into the
    notebook, a default argument, a closure, :func:`solution`. Yields the list
    of the blocked functions called, so that a student's code that catches
    the exception still counts as having called the reference.
    """
    _check_name(name)
    called: list[str] = []
    swapped: list[tuple[Any, Any]] = []
    spaces: list[dict[str, Any]] = []
    _blocked[name] = called
    try:
        for module, attr in BLOCKED[name]:
            fn = _ORIGINALS[(module.__name__, attr)]
            what = f"{module.__name__}.{attr}"

            def hook(_what: str = what) -> Any:
                called.append(_what)
                raise ReferenceUsed(name, _what)

            hooks = fn.__globals__.setdefault(_HOOK, {})
            if not any(hooks is s for s in spaces):
                spaces.append(hooks)
            hooks[fn.__code__.co_name] = hook
            swapped.append((fn, fn.__code__))
            fn.__code__ = _blocked_body.__code__.replace(co_name=fn.__code__.co_name)
        yield called
    finally:
        for fn, code in reversed(swapped):
            fn.__code__ = code
            fn.__globals__.pop(_HOOK, None)
        _blocked.pop(name, None)


# --- the student's function -------------------------------------------------------------------------

#: The :func:`exercise` wrappers called while a checker runs a student's function (one list per running check).
_calls: list[list[Any]] = []
#: How deep inside checkers we are: a blank raises there (the checker reports it), elsewhere it returns a Blank.
_checking = [0]


class Blank:
    """What a still-blank exercise function returns in a notebook: any use of it names the function to write.

    ``truth = encode(...)`` with a blank ``encode`` gives a :class:`Blank`;
    the next cell that uses ``truth`` fails with "`encode` is still blank",
    where a plain ``NotImplementedError`` would have left ``truth`` undefined
    and a ``NameError`` cells later.
    """

    def __init__(self, name: str) -> None:
        object.__setattr__(self, "_name", name)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise StillBlank(_blank_message(object.__getattribute__(self, "_name"))) from None

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("_repr_") or attr in ("__array_interface__", "__array_struct__"):
            raise AttributeError(attr)  # IPython and NumPy probe these: let them fall back
        self._fail()

    def __repr__(self) -> str:
        return f"<nothing: `{object.__getattribute__(self, '_name')}` is still blank>"

    @classmethod
    def __torch_function__(cls, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        blank = next(a for a in _flatten(args, kwargs) if isinstance(a, Blank))
        blank._fail()


def _flatten(args: Any, kwargs: Any) -> Iterator[Any]:
    for a in list(args) + list((kwargs or {}).values()):
        if isinstance(a, (tuple, list)):
            yield from a
        else:
            yield a


for _dunder in (
    "__iter__ __len__ __bool__ __float__ __int__ __index__ __getitem__ __setattr__ __setitem__ __call__ __format__ "
    "__array__ __add__ __radd__ __sub__ __rsub__ __mul__ __rmul__ __truediv__ __rtruediv__ __pow__ __rpow__ __neg__ "
    "__matmul__ __rmatmul__ __lt__ __le__ __gt__ __ge__ __abs__ __floordiv__ __mod__"
).split():
    setattr(Blank, _dunder, Blank._fail)


class StillBlank(NotImplementedError):
    """A :class:`Blank` was used: the message names the function to write, shown as one line in a notebook."""

    def _render_traceback_(self) -> list[str]:
        # IPython (so Jupyter and nbgrader's feedback) shows this line instead of a traceback into this module.
        return [f"✏️ {self}"]


def _blank_message(name: str) -> str:
    return (
        f"`{name}` is still blank: write its body (in place of `raise NotImplementedError()`) in the exercise "
        f"cell that defines `{name}`, run that cell, then run the cells below it again"
    )


class _Exercise:
    """A student's function: records its calls for the checkers; a blank answers with a :class:`Blank`.

    Outside a checker, a function given a :class:`Blank` (the result of a blank exercise upstream) gives back
    that Blank without running: it could only fail on it, and the Blank names the function to write first
    wherever its result is used next.
    """

    def __init__(self, name: str, fn: Callable[..., Any]) -> None:
        self.exercise_name = name
        self.fn = fn
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for log in _calls:
            log.append(self)
        if not _checking[0]:
            given = next((a for a in _flatten(args, kwargs) if isinstance(a, Blank)), None)
            if given is not None:
                return given
        try:
            return self.fn(*args, **kwargs)
        except NotImplementedError as err:
            if not _raised_by(err, self.fn):
                raise  # from deeper code the student calls: not this blank
            if _checking[0]:
                raise NotImplementedError(_blank_message(self.exercise_name)) from None
            return Blank(self.exercise_name)


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

    The decorated function behaves exactly like the undecorated one, except
    that while its body is still blank (it raises ``NotImplementedError``
    itself) a call returns a :class:`Blank`, which names the function to write
    wherever the result is used; a decorated function given such a Blank
    returns it as it is. Inside a checker the blank raises, and the checker
    reports "not attempted".

    Args:
        name: One of :data:`EXERCISES`.

    Returns:
        The decorator.
    """
    _check_name(name)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return _Exercise(name, fn)

    return decorate
