"""Course exercises: students write the function, a checker says what is wrong.

**Checkers.** Each ``check_*(student_fn)`` runs the student's function on a
fixed, hand-made case and on seeded random cases (inputs are cloned, so a
function that modifies its arguments cannot break the reference), compares
with the library, and returns a :class:`Feedback` with one of three outcomes:

* ``"correct"``;
* ``"incorrect"``, with a specific diagnosis of the usual mistake (for example
  "x and y are swapped" or "your ground-false for keypoint 0 includes
  keypoint 0 itself"), never a traceback: a function that raises, returns
  ``None`` or a tensor of the wrong shape gets a message too;
* ``"not attempted"``: the function raises ``NotImplementedError`` (a blank).

The feedback prints as one line and is truthy only when correct.

The exercises (name: the student's function -> the library's reference):

* ``encode``: ``encode(keypoints, visible, heatmap_size, stride, sigma) -> (B, K, H, W)``
  -> :func:`regdakit.heatmaps.encode` (:func:`check_encode`);
* ``pck``: ``pck(pred, gt, visible, threshold) -> float`` -> :func:`regdakit.metrics.pck` (:func:`check_pck`);
* ``ground_false``: ``ground_false(ground_truth) -> (B, K, H, W)``, Eq. 1 (:func:`check_ground_false`);
* ``ground_false_distribution``: ``ground_false_distribution(ground_false) -> (B, K, H, W)``, Eq. 2
  (:func:`check_ground_false_distribution`);
* ``kl_loss``: ``kl_loss(logits, target) -> scalar`` -> :func:`regdakit.losses.kl_heatmap_loss`
  (:func:`check_kl_loss`);
* ``ground_false_loss``: ``ground_false_loss(adv_logits, main_logits) -> scalar``, ``L_F``
  (:func:`check_ground_false_loss`).

**The solutions switch.** The exercise notebooks (``notebooks/exercises/``)
leave each function's body blank: the student's cell reads ::

    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        # ✏️ your code here (replace the next line) ----
        raise NotImplementedError
        # ✏️ ----

:func:`exercise` never touches code a student has written. Only while the body
still raises ``NotImplementedError`` *itself*, and only when the environment
variable ``REGDAKIT_SOLUTIONS`` is ``1`` (CI and instructors), the call is
answered by the library's reference instead, and the checker's feedback says
so. Without the variable a blank stays a blank: the checker answers "not
attempted" and any later use raises a ``NotImplementedError`` that says what
to write. :func:`verify` prints a feedback and, with the switch on, fails when
it is not correct, so CI tests the notebooks and the checkers together.

>>> def my_pck(pred, gt, visible, threshold):
...     raise NotImplementedError
>>> print(check_pck(my_pck))
pck: not attempted yet (your function raises NotImplementedError)
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from regdakit.disparity import ground_false_distribution, ground_false_from_truth, ground_false_loss, pseudo_labels
from regdakit.heatmaps import CUTOFF, encode
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps
from regdakit.metrics import pck

__all__ = [
    "SOLUTIONS_VARIABLE",
    "EXERCISES",
    "Feedback",
    "solutions_on",
    "exercise",
    "solution",
    "verify",
    "check_encode",
    "check_pck",
    "check_ground_false",
    "check_ground_false_distribution",
    "check_kl_loss",
    "check_ground_false_loss",
]

#: The environment variable that fills blank exercises with the reference (``1`` = on).
SOLUTIONS_VARIABLE = "REGDAKIT_SOLUTIONS"
_TRUE = {"1", "true", "yes", "on"}


# --- feedback -------------------------------------------------------------------


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


def _bad(exercise: str, message: str) -> Feedback:
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


# --- the solutions switch -----------------------------------------------------------


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


# --- running a student's function ----------------------------------------------------


def _clone(x: object) -> object:
    return x.detach().clone().requires_grad_(x.requires_grad) if isinstance(x, torch.Tensor) else x


def _run(exercise: str, fn: Callable, *args: object) -> tuple[object, Feedback | None]:
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
        return None, _bad(exercise, text)


def _guarded(check: Callable[[Callable], Feedback]) -> Callable[[Callable], Feedback]:
    """Never let an odd result crash a checker: report it as feedback instead."""
    name = check.__name__.removeprefix("check_")

    @functools.wraps(check)
    def wrapper(fn: Callable) -> Feedback:
        try:
            fb = check(fn)
        except Exception as err:  # noqa: BLE001 - a checker answers, it does not crash
            fb = _bad(
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


def _tensor_result(
    exercise: str, what: str, got: object, want_shape: tuple[int, ...], hints: dict[tuple[int, ...], str] | None = None
) -> tuple[torch.Tensor | None, Feedback | None]:
    """The student's result as a float64 tensor of ``want_shape``, or feedback saying why not."""
    if got is None:
        return None, _bad(exercise, "your function returned None: did you forget `return`?")
    if isinstance(got, (tuple, list)):
        return None, _bad(exercise, f"return only {what} (one tensor), not a {type(got).__name__}")
    if not isinstance(got, torch.Tensor):
        kind = "a NumPy array" if type(got).__module__ == "numpy" else type(got).__name__
        return None, _bad(exercise, f"{what} should be a torch.Tensor, got {kind}")
    shape = tuple(got.shape)
    if shape != want_shape:
        hint = (hints or {}).get(shape, "")
        return None, _bad(
            exercise, f"{what} should have shape {want_shape}, got {shape}" + (f": {hint}" if hint else "")
        )
    if got.is_complex():
        return None, _bad(exercise, f"{what} should be real, got dtype {got.dtype}")
    return got.detach().cpu().to(torch.float64), None


def _close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4, rtol: float = 1e-4) -> bool:
    return bool(torch.allclose(a.detach().double(), b.detach().double(), atol=atol, rtol=rtol))


def _first_match(got: torch.Tensor, variants: list[tuple[Callable[[], torch.Tensor], str]], **tol: float) -> str | None:
    """The message of the first variant ``got`` equals (variants are built lazily)."""
    for make, message in variants:
        if _close(got, make(), **tol):
            return message
    return None


# --- encode -------------------------------------------------------------------------

_ENCODE_SIZE, _ENCODE_STRIDE, _ENCODE_SIGMA = (12, 16), 4.0, 1.5


def _encode_case() -> tuple[torch.Tensor, torch.Tensor]:
    """Keypoints ``(3, 5, 2)`` in a 64 x 48 image and visibility ``(3, 5)``: one fixed sample, two random."""
    fixed = torch.tensor([[[8.0, 4.0], [40.0, 28.0], [30.0, 22.0], [61.0, 45.0], [20.0, 20.0]]])
    fixed_visible = torch.tensor([[True, True, True, True, False]])
    g = torch.Generator().manual_seed(0)
    rand = torch.rand(2, 5, 2, generator=g) * torch.tensor([60.0, 44.0]) + 2  # cells stay inside 16 x 12
    rand_visible = torch.rand(2, 5, generator=g) > 0.2
    return torch.cat([fixed, rand]), torch.cat([fixed_visible, rand_visible])


def _render(centres: torch.Tensor, visible: torch.Tensor, sigma: float, cut: bool = True) -> torch.Tensor:
    """Peak-1 Gaussians at heatmap positions ``(B, K, 2)``, with no outside-the-map rule."""
    h, w = _ENCODE_SIZE
    ys = torch.arange(h, dtype=torch.float64)[:, None]
    xs = torch.arange(w, dtype=torch.float64)[None, :]
    c = centres.double()
    d2 = (xs - c[..., 0, None, None]) ** 2 + (ys - c[..., 1, None, None]) ** 2
    maps = torch.exp(-d2 / (2 * sigma**2))
    if cut:
        maps = torch.where(maps <= CUTOFF, torch.zeros_like(maps), maps)
    return maps * visible[..., None, None]


def _close_heatmaps(got: torch.Tensor, want: torch.Tensor) -> bool:
    """Equal up to float noise, where a value that sits right at the 0.01 cut may fall either side."""
    diff = (got - want).abs()
    at_cut = (torch.minimum(got, want).abs() < 1e-6) & ((torch.maximum(got, want) - CUTOFF).abs() < 1e-5)
    return bool(((diff <= 1e-4 + 1e-4 * want.abs()) | at_cut).all())


@_guarded
def check_encode(fn: Callable) -> Feedback:
    """Check ``fn(keypoints (B, K, 2), visible (B, K), heatmap_size (H, W), stride, sigma) -> (B, K, H, W)``.

    The expected heatmaps are :func:`regdakit.heatmaps.encode`'s: peak-1
    Gaussians ``exp(-d² / (2 sigma²))`` at ``keypoint / stride`` (``sigma`` in
    heatmap cells; cell ``(row i, col j)`` is centred at ``(x=j, y=i)``),
    values below 0.01 set to 0, all-zero maps for invisible keypoints. The
    checker uses a 16 x 12 heatmap (``heatmap_size=(12, 16)``), stride 4,
    sigma 1.5, and keypoints whose nearest cell lies inside the map.

    Diagnoses: not a tensor / a tuple / ``None``; shape (width and height
    swapped); x and y swapped; invisible keypoints not zeroed; the stride not
    divided (or multiplied); sigma in image pixels, multiplied by the stride,
    used as a variance or without the 2; the 0.01 cut missing; half-cell
    offsets (cell centres at ``j + 0.5``, pixel-centre convention); centres
    rounded to whole cells; peak not 1 (normalised); then where the peaks are.
    """
    name = "encode"
    keypoints, visible = _encode_case()
    size, stride, sigma = _ENCODE_SIZE, _ENCODE_STRIDE, _ENCODE_SIGMA
    want = encode(keypoints, visible, size, stride, sigma)[0].double()
    raw, fb = _run(name, fn, keypoints, visible, size, stride, sigma)
    if fb is not None:
        return fb
    b, k = visible.shape
    hints = {
        (b, k, size[1], size[0]): "heatmap_size is (H, W): rows (y) first, then columns (x)",
        (b, k, size[0] * size[1]): "return one 2-D map per keypoint, not a flattened one",
        (k, *size): "keep the batch dimension B",
    }
    got, fb = _tensor_result(name, "the heatmaps", raw, tuple(want.shape), hints)
    if fb is not None:
        return fb
    assert got is not None
    if _close_heatmaps(got, want):
        return Feedback(name, "correct", "correct: Gaussians at keypoint / stride, cut below 0.01, zero when invisible")
    if bool(torch.isnan(got).any()):
        return _bad(name, "your heatmaps contain NaN")
    c = keypoints.double() / stride
    everyone = torch.ones_like(visible)
    variants = [
        (lambda: _render(c.flip(-1), visible, sigma), "x and y are swapped: keypoints are (x, y), x is the column"),
        (lambda: _render(c, everyone, sigma), "invisible keypoints must get an all-zero heatmap"),
        (lambda: _render(c * stride, visible, sigma), "divide the image position by the stride to get heatmap cells"),
        (lambda: _render(c * stride**2, visible, sigma), "divide the image position by the stride, don't multiply"),
        (
            lambda: _render(c, visible, sigma / stride),
            "sigma is in heatmap cells, not image pixels: measure distances in cells (keypoint / stride)",
        ),
        (lambda: _render(c, visible, sigma * stride), "sigma is in heatmap cells already: don't multiply it by stride"),
        (lambda: _render(c, visible, math.sqrt(sigma)), "sigma is the standard deviation: divide d² by 2 sigma²"),
        (lambda: _render(c, visible, sigma / math.sqrt(2)), "the exponent is -d² / (2 sigma²): the 2 is missing"),
        (lambda: _render(c, visible, sigma, cut=False), "set the values below 0.01 to zero"),
        (
            lambda: _render(c - 0.5, visible, sigma),
            "off by half a cell: cell (row i, col j) is centred at (x=j, y=i), not at j + 0.5",
        ),
        (lambda: _render(c + 0.5, visible, sigma), "off by half a cell: don't add 0.5 to the keypoint's cell position"),
        (
            lambda: _render((keypoints.double() + 0.5) / stride - 0.5, visible, sigma),
            "off by half a pixel: the library maps image position x to cell x / stride (no pixel-centre +0.5 / -0.5)",
        ),
        (
            lambda: _render(torch.round(c), visible, sigma),
            "don't round the centre: the Gaussian sits at keypoint / stride",
        ),
        (lambda: _render(torch.floor(c + 0.5), visible, sigma), "don't round the centre: use keypoint / stride as is"),
        (
            lambda: _render(torch.floor(c), visible, sigma),
            "don't truncate the centre (int / floor): use keypoint / stride",
        ),
    ]
    message = next((m for make, m in variants if _close_heatmaps(got, make())), None)
    if message is not None:
        return _bad(name, message)
    peaks = got[0, :2].amax(dim=(-2, -1))  # the fixed sample's first two keypoints sit exactly on cells
    if not _close(peaks, torch.ones(2), atol=0.01):
        return _bad(
            name,
            f"a keypoint exactly on a cell should give 1 there (peak-1, unnormalised Gaussian); yours peaks at "
            f"{float(peaks[0]):.4g}: don't divide by 2πσ² or by the sum",
        )
    return _bad(name, _where_wrong(got, want, visible))


def _where_wrong(got: torch.Tensor, want: torch.Tensor, visible: torch.Tensor) -> str:
    """Name the first map whose Gaussian is in the wrong place, or say the shape of the bump is off."""
    for b, k in zip(*torch.nonzero(visible, as_tuple=True), strict=True):
        if float(got[b, k].max()) <= 0:
            return f"sample {int(b)}, keypoint {int(k)} is visible but its heatmap is all zero"
        pg, pw = _peak(got[b, k]), _peak(want[b, k])
        if float((pg - pw).norm()) > 0.25:
            return (
                f"sample {int(b)}, keypoint {int(k)}: your Gaussian is centred near (x={float(pg[0]):.1f}, "
                f"y={float(pg[1]):.1f}) cells, expected (x={float(pw[0]):.1f}, y={float(pw[1]):.1f})"
            )
    return "the Gaussians are in the right places but their values differ: check sigma and exp(-d² / (2 sigma²))"


def _peak(heatmap: torch.Tensor) -> torch.Tensor:
    """Sub-cell ``(x, y)`` of a bump's top: a parabola through the log of the maximum and its neighbours.

    Exact for any Gaussian (its log is a parabola), whatever its width; the
    whole cell where a neighbour is missing (border) or zero (cut).
    """
    h, w = heatmap.shape
    row, col = divmod(int(heatmap.argmax()), w)
    out = [float(col), float(row)]
    for axis, (i, n) in enumerate(((col, w), (row, h))):
        if 0 < i < n - 1:
            line = heatmap[row, i - 1 : i + 2] if axis == 0 else heatmap[i - 1 : i + 2, col]
            if bool((line > 0).all()):
                a, m, c = torch.log(line.double()).tolist()
                curvature = a - 2 * m + c
                if curvature < 0:
                    out[axis] += max(-0.5, min(0.5, (a - c) / (2 * curvature)))
    return torch.tensor(out, dtype=torch.float64)


# --- pck ----------------------------------------------------------------------------


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


@_guarded
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
    got, fb = _run(name, fn, pred, gt, visible, threshold)
    if fb is not None:
        return fb
    if got is None:
        return _bad(name, "your function returned None: did you forget `return`?")
    if isinstance(got, torch.Tensor) and got.numel() != 1:
        shape = tuple(got.shape)
        if shape == tuple(result.per_keypoint.shape) and _close(got, result.per_keypoint):
            return _bad(name, "that is PCK per keypoint: return one number, pooled over all visible pairs")
        return _bad(name, f"return one number (a fraction in [0, 1]), got a tensor of shape {shape}")
    if isinstance(got, (str, bytes)) or not hasattr(got, "__float__"):
        return _bad(name, f"return one number (a fraction in [0, 1]), got {type(got).__name__}")
    value = float(got)  # type: ignore[arg-type]
    if math.isnan(value):
        return _bad(name, "your PCK is NaN (a division by zero, or NaN distances?)")
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
            return _bad(name, message)
    return _bad(name, f"expected {want:.4f}, got {value:.4f}")


# --- ground false (Eq. 1) and its distribution (Eq. 2) ----------------------------------


def _truth_case() -> torch.Tensor:
    """Ground-truth heatmaps ``(3, 6, 16, 16)``: a fixed sample with overlapping keypoints, two random ones."""
    centres = torch.tensor([[[3.0, 3.0], [8.0, 8.0], [8.0, 8.0], [10.0, 9.0], [13.0, 3.0], [3.0, 13.0]]])
    fixed, _ = encode(centres, torch.ones(1, 6), 16, stride=1)  # keypoints 1 and 2 on top of each other
    g = torch.Generator().manual_seed(1)
    rand, _ = pseudo_labels(torch.randn(2, 6, 16, 16, generator=g))
    return torch.cat([fixed, rand])


@_guarded
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
    raw, fb = _run(name, fn, truth)
    if fb is not None:
        return fb
    b, k, h, w = truth.shape
    hints = {(b, 1, h, w): "one ground-false map per keypoint k, each leaving out k itself"}
    got, fb = _tensor_result(name, "the ground false", raw, tuple(want.shape), hints)
    if fb is not None:
        return fb
    assert got is not None
    if _close(got, want):
        return Feedback(name, "correct", "correct: the clipped sum of the other keypoints' heatmaps")
    t = truth.double()
    total = t.sum(1, keepdim=True)
    others = total - t
    message = _first_match(
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
        return _bad(name, message)
    for kk in range(k):
        if _close(got[:, kk], want[:, kk]):
            continue
        if _close(got[:, kk], total[:, 0].clamp(0, 1)):
            return _bad(name, f"your ground-false for keypoint {kk} includes keypoint {kk} itself: sum over k' != {kk}")
        for m in range(k):
            if m != kk and _close(got[:, kk], (others[:, kk] - t[:, m]).clamp(0, 1)):
                return _bad(name, f"your ground-false for keypoint {kk} misses keypoint {m}: sum over every k' != {kk}")
        return _bad(name, f"keypoint {kk}'s ground false is wrong: it should be the clipped sum of the others")
    return _bad(name, "the ground false differs from the expected one")  # pragma: no cover - some keypoint differs


def _max_of_others(t: torch.Tensor) -> torch.Tensor:
    k = t.shape[1]
    eye = torch.eye(k, dtype=torch.bool)[None, :, :, None, None]  # (1, K, K, 1, 1)
    return t[:, None].expand(-1, k, -1, -1, -1).masked_fill(eye, 0).amax(dim=2)


def _false_case() -> torch.Tensor:
    """Ground-false maps ``(3, 6, 16, 16)``; sample 2's keypoint 5 has no other keypoint (all zero)."""
    false = ground_false_from_truth(_truth_case())
    false[2, 5] = 0
    return false


@_guarded
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
    raw, fb = _run(name, fn, false)
    if fb is not None:
        return fb
    got, fb = _tensor_result(name, "P_F", raw, tuple(want.shape))
    if fb is not None:
        return fb
    assert got is not None
    if _close(got, want, atol=1e-6, rtol=1e-4):
        return Feedback(name, "correct", "correct: each H_F map divided by its sum over the H·W cells")
    f = false.double()

    def divide(denominator: torch.Tensor) -> torch.Tensor:
        return f / torch.where(denominator > 0, denominator, torch.ones_like(denominator))

    nan = torch.isnan(got)
    zero_map = torch.zeros_like(nan)
    zero_map[2, 5] = True
    if bool(nan.any()):
        if bool((nan == zero_map).all()) and _close(got[~nan], want[~nan], atol=1e-6):
            return _bad(
                name,
                "an all-zero H_F (no other keypoint) gives NaN: leave such maps at zero, e.g. divide by "
                "torch.where(total > 0, total, 1)",
            )
        return _bad(name, "your P_F contains NaN")
    message = _first_match(
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
    return _bad(name, message or "P_F differs from H_F / Σ_{h,w} H_F")


# --- KL loss and L_F -------------------------------------------------------------------


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
        (lambda: kl.sum(), "average over the B·K maps instead of summing"),
        (
            lambda: kl.sum() / b,
            "divide by B·K (the number of maps), not by the batch size B (F.kl_div's 'batchmean' divides by B only)",
        ),
        (
            lambda: kl.mean() / (z.shape[-1] * z.shape[-2]),
            "sum over the H·W cells of a map, then average over the B·K maps (yours also averages over the cells)",
        ),
    ]


def _reverse_with_eps(got: torch.Tensor, logits: torch.Tensor, target: torch.Tensor) -> bool:
    """Whether ``got`` is ``KL(softmax || target)`` with a small epsilon in the log of the target."""
    b, k = logits.shape[:2]
    log_p = torch.log_softmax(logits.detach().double().reshape(b, k, -1), -1)
    q = normalize_heatmaps(target.double()).reshape(b, k, -1)
    for eps in (1e-12, 1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5):
        for log_q in (torch.log(q + eps), torch.log(q.clamp_min(eps))):
            if _close(got, (log_p.exp() * (log_p - log_q)).sum(-1).mean(), atol=1e-3, rtol=1e-3):
                return True
    return False


def _scalar_result(exercise: str, raw: object, per_map: torch.Tensor) -> tuple[torch.Tensor | None, Feedback | None]:
    """The student's loss as a 0-d float64 tensor, or feedback (``per_map`` is the right ``(B, K)`` KL)."""
    if raw is None:
        return None, _bad(exercise, "your function returned None: did you forget `return`?")
    if not isinstance(raw, torch.Tensor):
        return None, _bad(exercise, f"return a scalar tensor (so that .backward() works), got {type(raw).__name__}")
    if raw.numel() != 1:
        if tuple(raw.shape) == tuple(per_map.shape) and _close(raw, per_map, atol=1e-4):
            return None, _bad(exercise, "that is the KL per keypoint map (B, K): return its mean, a scalar")
        return None, _bad(
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
        out = fn(*inputs)
        out.backward()
    except Exception as err:  # noqa: BLE001 - reported as feedback
        return _bad(
            exercise,
            f"the value is right, but there is no gradient with respect to {what} ({type(err).__name__}: {err}): "
            "don't detach, .item() or .numpy() the logits",
        )
    grad = inputs[wrt].grad
    if grad is None or not _close(grad, want_grad, atol=1e-5, rtol=1e-3):
        return _bad(
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


@_guarded
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
    raw, fb = _run(name, fn, logits, target)
    if fb is not None:
        return fb
    got, fb = _scalar_result(name, raw, kl_per_keypoint(logits, target))
    if fb is not None:
        return fb
    assert got is not None
    if _close(got, want, atol=1e-5, rtol=1e-4):
        return None
    has_zeros = bool((target == 0).any())
    if bool(torch.isnan(got)):
        if has_zeros:
            return _bad(
                name,
                "NaN where the target is 0: 0 · log 0 counts as 0 (use torch.special.xlogy(q, q), or "
                "mask the zero cells)",
            )
        return _bad(
            name,
            "NaN although the target has no zeros: logits can be negative, so don't take their log; "
            "use log_softmax over the H·W cells",
        )
    if bool(torch.isinf(got)):
        return _bad(
            name,
            "your loss is infinite: is the KL the wrong way round? log of the target's zeros is -inf; "
            "the target goes first, KL(target || softmax(logits))",
        )
    message = _first_match(got, _kl_variants(logits, target), atol=1e-5, rtol=1e-4)
    if message is None and has_zeros and _reverse_with_eps(got, logits, target):
        message = "the KL is the wrong way round: KL(target || softmax(logits)), the target first"
    if message is None and has_zeros:
        message = (
            f"right on a strictly positive target but not on Gaussian targets with zeros: expected "
            f"{float(want):.4f}, got {float(got):.4f}"
        )
    return _bad(name, message or f"expected {float(want):.4f}, got {float(got):.4f}")


@_guarded
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
    raw, fb = _run(name, fn, adv, main)
    if fb is not None:
        return fb
    from regdakit.losses import kl_per_keypoint

    got, fb = _scalar_result(name, raw, kl_per_keypoint(adv, false))
    if fb is not None:
        return fb
    assert got is not None
    if _close(got, want, atol=1e-5, rtol=1e-4):
        want_grad = _grad(lambda z: ground_false_loss(z, main), adv)
        fb = _gradient_feedback(name, fn, (adv, main), 0, want_grad, "adv_logits (f′)")
        if fb is not None:
            return fb
        main_grad = main.clone().requires_grad_()
        try:
            fn(adv.clone().requires_grad_(), main_grad).backward()
        except Exception:  # noqa: BLE001 - it back-propagated into adv above; only the main head is asked here
            main_grad.grad = None
        if main_grad.grad is not None and bool(main_grad.grad.abs().sum() > 0):
            return _bad(name, "the value is right, but detach the main head: L_F must not train f")
        return Feedback(name, "correct", "correct: KL of the normalised ground false against the adversary's softmax")
    if bool(torch.isnan(got)):
        return _bad(
            name,
            "NaN: P_F is 0 away from the other keypoints, and 0 · log 0 counts as 0 (use "
            "torch.special.xlogy(q, q), or mask the zero cells)",
        )
    if bool(torch.isinf(got)) or _reverse_with_eps(got, adv, false):
        return _bad(
            name,
            "the KL is the wrong way round: KL(P_F || softmax(f′)), the target P_F first (log P_F is "
            "-inf where P_F is 0)",
        )
    adv_truth, adv_false = pseudo_labels(adv)
    message = _first_match(
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
    return _bad(name, message or f"expected {float(want):.4f}, got {float(got):.4f}")
