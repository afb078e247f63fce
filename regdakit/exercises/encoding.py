"""The heatmap-encoding exercise: a keypoint becomes a peak-1 Gaussian heatmap.

:func:`check_encode` compares a student's ``encode`` with
:func:`regdakit.heatmaps.encode` (exercise notebook 02, section 1) and
names the usual mistake: x and y swapped, the stride, sigma's units, the
0.01 cut, half-cell offsets, or where a Gaussian sits when none of these fits.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from regdakit.exercises.checking import Feedback, checker, close_enough, incorrect, run_student, tensor_result
from regdakit.heatmaps import CUTOFF, encode

__all__ = ["check_encode"]


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


@checker
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
    raw, fb = run_student(name, fn, keypoints, visible, size, stride, sigma)
    if fb is not None:
        return fb
    b, k = visible.shape
    hints = {
        (b, k, size[1], size[0]): "heatmap_size is (H, W): rows (y) first, then columns (x)",
        (b, k, size[0] * size[1]): "return one 2-D map per keypoint, not a flattened one",
        (k, *size): "keep the batch dimension B",
    }
    got, fb = tensor_result(name, "the heatmaps", raw, tuple(want.shape), hints)
    if fb is not None:
        return fb
    assert got is not None
    if _close_heatmaps(got, want):
        return Feedback(name, "correct", "correct: Gaussians at keypoint / stride, cut below 0.01, zero when invisible")
    if bool(torch.isnan(got).any()):
        return incorrect(name, "your heatmaps contain NaN")
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
        return incorrect(name, message)
    peaks = got[0, :2].amax(dim=(-2, -1))  # the fixed sample's first two keypoints sit exactly on cells
    if not close_enough(peaks, torch.ones(2), atol=0.01):
        return incorrect(
            name,
            f"a keypoint exactly on a cell should give 1 there (peak-1, unnormalised Gaussian); yours peaks at "
            f"{float(peaks[0]):.4g}: don't divide by 2πσ² or by the sum",
        )
    return incorrect(name, _where_wrong(got, want, visible))


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
