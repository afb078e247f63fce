"""Argument checks shared by the public functions.

Every public entry point validates its tensors here so that a wrong shape, a
NaN or a negative width fails early with a message that names the argument,
the expected shape and the shape that arrived.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence

import torch

# Value checks (NaN/Inf) read a scalar back from the device: a sync per call.
# Shape checks are free. The trainer turns value checks off in its hot loop,
# where it checks the loss itself.
_CHECK_VALUES = True


@contextlib.contextmanager
def value_checks(enabled: bool) -> Iterator[None]:
    """Context manager that turns NaN/Inf checks of public functions on or off.

    >>> with value_checks(False):
    ...     pass
    """
    global _CHECK_VALUES
    previous, _CHECK_VALUES = _CHECK_VALUES, bool(enabled)
    try:
        yield
    finally:
        _CHECK_VALUES = previous


def _shape(x: torch.Tensor) -> str:
    return "(" + ", ".join(str(s) for s in x.shape) + ")"


def check_tensor(
    name: str,
    x: object,
    shape: Sequence[str | int],
    *,
    finite: bool = True,
    floating: bool = True,
) -> torch.Tensor:
    """Check that ``x`` is a tensor whose shape matches a legend.

    Args:
        name: Argument name used in error messages.
        x: The value to check.
        shape: One entry per dimension: an ``int`` that must match exactly or
            a letter such as ``"B"`` that matches any size.
        finite: Reject NaN and infinite values.
        floating: Require a floating-point dtype.

    Returns:
        ``x`` unchanged.

    Raises:
        TypeError: ``x`` is not a tensor, or not floating when required.
        ValueError: Wrong number of dimensions, wrong fixed size, or
            non-finite values.
    """
    legend = "(" + ", ".join(str(s) for s in shape) + ")"
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {legend}, got {type(x).__name__}")
    if x.ndim != len(shape):
        raise ValueError(f"{name} must have shape {legend}, got {_shape(x)}")
    for size, want in zip(x.shape, shape, strict=True):
        if isinstance(want, int) and size != want:
            raise ValueError(f"{name} must have shape {legend}, got {_shape(x)}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if finite and _CHECK_VALUES and x.is_floating_point() and not all_finite(x):
        raise ValueError(f"{name} contains NaN or Inf values (shape {_shape(x)})")
    return x


def check_nonempty(name: str, x: torch.Tensor, legend: str, needs: str) -> torch.Tensor:
    """Reject a zero size in the dimensions ``legend`` names (e.g. ``"BKHW"``; ``"HW"`` checks the last two).

    An empty batch has no mean and an empty map no maximum: without this the
    caller would fail with a raw reshape or index error, or return NaN.

    Args:
        name: Argument name used in the message.
        x: A tensor already checked by :func:`check_tensor`.
        legend: One letter per checked dimension, aligned to the end of ``x.shape``.
        needs: Why the sizes must be positive, appended to the message.

    Raises:
        ValueError: Naming the empty dimensions and the shape, e.g.
            ``pred has shape (0, 3, 8, 8): B = 0; ...``.
    """
    empty = [f"{letter} = 0" for letter, size in zip(legend, x.shape[x.ndim - len(legend) :], strict=True) if size == 0]
    if empty:
        raise ValueError(f"{name} has shape {_shape(x)}: {', '.join(empty)}; {needs}")
    return x


def all_finite(x: torch.Tensor) -> bool:
    """Whether every value is finite; one reduction plus one scalar read.

    A sum is NaN/Inf when any entry is, so a finite sum proves the tensor
    finite in one fast pass (10-20x faster than ``isfinite(x).all()`` on the
    CPU). A non-finite sum may also be an overflow of finite values, so that
    case is confirmed element-wise.
    """
    if x.numel() == 0:
        return True
    if bool(torch.isfinite(x.sum())):
        return True
    return bool(torch.isfinite(x).all())


def check_same_leading(names: Sequence[str], tensors: Sequence[torch.Tensor], ndim: int) -> None:
    """Check that tensors agree on their first ``ndim`` sizes (e.g. B and K).

    Raises:
        ValueError: naming both arguments and their shapes.
    """
    ref_name, ref = names[0], tensors[0]
    for name, t in zip(names[1:], tensors[1:], strict=True):
        if t.shape[:ndim] != ref.shape[:ndim]:
            raise ValueError(
                f"{name} {_shape(t)} and {ref_name} {_shape(ref)} must agree on their first "
                f"{ndim} dimensions (batch and keypoints)"
            )


def check_positive(name: str, value: object, *, allow_zero: bool = False) -> float:
    """Check a scalar is a finite number > 0 (or >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    bad = value < 0 if allow_zero else value <= 0
    if bad or not math.isfinite(value):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return value


def as_size(name: str, size: int | Sequence[int]) -> tuple[int, int]:
    """Turn ``64`` or ``(64, 48)`` into ``(H, W)`` with both sizes >= 1."""
    if isinstance(size, int) and not isinstance(size, bool):
        size = (size, size)
    try:
        height, width = (int(s) for s in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be an int or a pair (H, W), got {size!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name} must be positive, got {(height, width)}")
    return height, width


def as_visibility(name: str, visible: object, batch_keypoints: torch.Size) -> torch.Tensor:
    """Return a boolean ``(B, K)`` mask; floats count as visible above 0.5.

    The 0.5 cut is the reference's rule for its float visibility flags.
    """
    if not isinstance(visible, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (B, K), got {type(visible).__name__}")
    if tuple(visible.shape) != tuple(batch_keypoints):
        want = "(" + ", ".join(str(s) for s in batch_keypoints) + ")"
        raise ValueError(f"{name} must have shape {want} (B, K), got {_shape(visible)}")
    if visible.dtype == torch.bool:
        return visible
    if _CHECK_VALUES and visible.is_floating_point() and not bool(torch.isfinite(visible).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return visible > 0.5
