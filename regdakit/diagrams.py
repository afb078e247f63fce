"""Diagrams of RegDA's architecture and training steps (the paper's Fig. 2 and Fig. 5), drawn with matplotlib.

Notebook 04 opens with them. Each function returns the figure, so a test can
check what was drawn (its texts) without looking at pixels.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

__all__ = ["figure_texts", "plot_architecture", "plot_steps"]

_COLOURS = {"psi": "#9ecae1", "f": "#a1d99b", "f_adv": "#fdae6b", "grl": "#d9d9d9", "data": "#f0f0f0"}


def _box(ax, x: float, y: float, w: float, h: float, text: str, colour: str) -> tuple[float, float, float, float]:
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02", fc=colour, ec="black", lw=1))
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=10)
    return x, y, w, h


def _arrow(ax, start: tuple[float, float], end: tuple[float, float], text: str = "", dashed: bool = False) -> None:
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=12, lw=1.2, ls="--" if dashed else "-"))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.03, text, ha="center", fontsize=8)


def plot_architecture() -> Figure:
    """The detector: features ``psi``, main head ``f`` and adversarial head ``f'`` behind the gradient-scaling layer.

    ``psi`` is the backbone plus the SimpleBaseline upsampling (stride 4);
    ``f`` and ``f'`` map its features to ``K`` heatmap logits each. The
    gradient-scaling layer is the identity forward and multiplies the gradient
    flowing back from ``f'`` into ``psi`` by ``λ(i)`` (warm start from 0 to 0.1).
    """
    fig, ax = plt.subplots(figsize=(9, 3.2))
    ax.set(xlim=(0, 1), ylim=(0, 1), title="RegDA's detector (the paper's Fig. 2): one feature extractor, two heads")
    ax.axis("off")
    _box(ax, 0.01, 0.4, 0.1, 0.2, "image x\n(B,3,S,S)", _COLOURS["data"])
    _box(ax, 0.17, 0.3, 0.2, 0.4, "ψ\nbackbone +\nupsampling", _COLOURS["psi"])
    _box(ax, 0.47, 0.62, 0.14, 0.22, "f\n(main head)", _COLOURS["f"])
    _box(ax, 0.43, 0.12, 0.12, 0.22, "gradient\nscaling λ", _COLOURS["grl"])
    _box(ax, 0.6, 0.12, 0.14, 0.22, "f′\n(adversarial\nhead)", _COLOURS["f_adv"])
    _box(ax, 0.8, 0.62, 0.18, 0.22, "ŷ = f(ψ(x))\n(B,K,S/4,S/4)", _COLOURS["data"])
    _box(ax, 0.8, 0.12, 0.18, 0.22, "ŷ′ = f′(ψ(x))\n(B,K,S/4,S/4)", _COLOURS["data"])
    _arrow(ax, (0.11, 0.5), (0.17, 0.5))
    _arrow(ax, (0.37, 0.6), (0.47, 0.73))
    _arrow(ax, (0.37, 0.4), (0.43, 0.23))
    _arrow(ax, (0.55, 0.23), (0.6, 0.23))
    _arrow(ax, (0.61, 0.73), (0.8, 0.73))
    _arrow(ax, (0.74, 0.23), (0.8, 0.23))
    ax.text(0.49, 0.03, "backward: gradient × λ(i), λ = 0.1·tanh(i / 2000)", ha="center", fontsize=8, style="italic")
    fig.tight_layout()
    return fig


def plot_steps() -> Figure:
    """The three steps of one RegDA iteration (the paper's Fig. 5): who learns what, from which domain."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    steps = [
        (
            "A · source (labels)",
            "ψ, f, f′ minimise\nL_src(f) + η·L_T(f′)",
            "f learns the labels; f′ learns to\nagree with f where f is trained\n(η = margin = 4)",
            _COLOURS["f"],
        ),
        (
            "B · target (no labels)",
            "f′ minimises L_F =\nKL(P_F(ŷ) ‖ ŷ′)",
            "f′ points where f would\nconfuse a keypoint:\nthe other keypoints (Eq. 1-2)",
            _COLOURS["f_adv"],
        ),
        (
            "C · target (no labels)",
            "ψ minimises L_T =\nKL(H(ŷ) ‖ ŷ′)",
            "the features make f′ agree\nwith f again: they move\naway from the false places",
            _COLOURS["psi"],
        ),
    ]
    for ax, (title, objective, meaning, colour) in zip(axes, steps, strict=True):
        ax.set(xlim=(0, 1), ylim=(0, 1), title=title)
        ax.axis("off")
        _box(ax, 0.08, 0.52, 0.84, 0.36, objective, colour)
        ax.text(0.5, 0.25, meaning, ha="center", va="center", fontsize=9)
    fig.suptitle("One RegDA iteration: steps A, B, C (H = ground truth, P_F = ground false of f's prediction ŷ)")
    fig.tight_layout()
    return fig


def figure_texts(fig: Figure) -> list[str]:
    """Every text drawn in ``fig`` (titles, labels, box texts): what a test can check."""
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    texts += [ax.get_title() for ax in fig.axes]
    if fig._suptitle is not None:
        texts.append(fig._suptitle.get_text())
    return [t for t in texts if t]
