"""Figures: heatmaps over images, skeletons, landing confusion matrices.

Every function draws on a given Matplotlib ``Axes`` (or makes a figure) and
returns the ``Figure``, so notebooks display it and tests inspect it. Images
are ``(3, H, W)`` or ``(H, W, 3)`` tensors/arrays with values in [0, 1], or
``(H, W)`` grey; keypoints are ``(K, 2)`` as ``(x, y)`` in image pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from regdakit.keypoints import Skeleton

__all__ = ["to_image_array", "plot_heatmap", "plot_skeleton", "plot_confusion", "heatmap_overlay"]


def _axes(ax: Axes | None, size: tuple[float, float] = (4, 4)) -> tuple[Figure, Axes]:
    if ax is None:
        fig, ax = plt.subplots(figsize=size, layout="constrained")
        return fig, ax
    return ax.figure, ax  # type: ignore[return-value]


def to_image_array(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """Convert a ``(3, H, W)``, ``(H, W, 3)`` or ``(H, W)`` image to a numpy array for ``imshow``."""
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().float().numpy()
    else:
        array = np.asarray(image, dtype=float)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3):
        raise ValueError(f"image must have shape (3, H, W), (H, W, 3) or (H, W), got {array.shape}")
    return np.clip(array, 0.0, 1.0)


def heatmap_overlay(heatmap: torch.Tensor | np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """Upsample an ``(h, w)`` heatmap to ``image_size`` ``(H, W)`` by nearest neighbour.

    Nearest neighbour keeps cells visible as cells, which is what a learner
    should see when comparing a 64 x 64 heatmap to a 256 x 256 image.
    """
    hm = torch.as_tensor(heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap, dtype=torch.float32)
    if hm.ndim != 2:
        raise ValueError(f"heatmap must have shape (h, w), got {tuple(hm.shape)}")
    up = torch.nn.functional.interpolate(hm[None, None], size=image_size, mode="nearest")[0, 0]
    return up.numpy()


def plot_heatmap(
    heatmap: torch.Tensor | np.ndarray,
    image: torch.Tensor | np.ndarray | None = None,
    *,
    ax: Axes | None = None,
    alpha: float = 0.6,
    cmap: str = "magma",
    title: str | None = None,
    colorbar: bool = False,
) -> Figure:
    """Show a heatmap ``(h, w)``, alone or over an image it is stretched to."""
    fig, ax = _axes(ax)
    if image is not None:
        img = to_image_array(image)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
        shown = ax.imshow(heatmap_overlay(heatmap, img.shape[:2]), cmap=cmap, alpha=alpha)
    else:
        hm = heatmap.detach().cpu().numpy() if isinstance(heatmap, torch.Tensor) else np.asarray(heatmap)
        shown = ax.imshow(hm, cmap=cmap)
    if colorbar:
        fig.colorbar(shown, ax=ax, shrink=0.8)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def plot_skeleton(
    keypoints: torch.Tensor | np.ndarray,
    skeleton: Skeleton,
    image: torch.Tensor | np.ndarray | None = None,
    visible: torch.Tensor | np.ndarray | Sequence[bool] | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    marker_size: float = 30,
    line_width: float = 2.0,
) -> Figure:
    """Draw keypoints ``(K, 2)`` and the skeleton's bones in its colours.

    Invisible keypoints (and bones touching them) are not drawn.
    """
    kp = keypoints.detach().cpu().numpy() if isinstance(keypoints, torch.Tensor) else np.asarray(keypoints, dtype=float)
    if kp.shape != (skeleton.num_keypoints, 2):
        raise ValueError(f"keypoints must have shape ({skeleton.num_keypoints}, 2) for {skeleton.name}, got {kp.shape}")
    vis = (
        np.ones(len(kp), dtype=bool)
        if visible is None
        else np.asarray(visible.detach().cpu() if isinstance(visible, torch.Tensor) else visible).astype(bool)
    )
    fig, ax = _axes(ax)
    if image is not None:
        img = to_image_array(image)
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None)
    for a, b in skeleton.edges:
        if vis[a] and vis[b]:
            ax.plot(kp[[a, b], 0], kp[[a, b], 1], color=skeleton.colors[b], linewidth=line_width, alpha=0.9)
    colors = np.array(skeleton.colors)
    ax.scatter(kp[vis, 0], kp[vis, 1], c=colors[vis], s=marker_size, edgecolors="white", linewidths=0.8, zorder=3)
    if image is None:
        ax.invert_yaxis()  # image convention: y grows downwards
        ax.set_aspect("equal")
    else:
        ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig


def plot_confusion(
    confusion: torch.Tensor | np.ndarray,
    skeleton: Skeleton | None = None,
    *,
    ax: Axes | None = None,
    normalize: bool = True,
    title: str = "Where wrong predictions land",
) -> Figure:
    """Heatmap of a ``(K, K + 1)`` landing matrix from :func:`regdakit.metrics.error_landing`.

    Rows are true keypoints; columns the keypoint a wrong prediction landed
    on, the last column the background. With ``normalize`` each row shows
    fractions of that keypoint's wrong predictions.
    """
    import seaborn as sns

    matrix = confusion.detach().cpu().numpy() if isinstance(confusion, torch.Tensor) else np.asarray(confusion)
    k = matrix.shape[0]
    if matrix.ndim != 2 or matrix.shape[1] != k + 1:
        raise ValueError(f"confusion must have shape (K, K + 1), got {matrix.shape}")
    if normalize:
        rows = matrix.sum(axis=1, keepdims=True)
        matrix = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    names = list(skeleton.names) if skeleton is not None else [str(i) for i in range(k)]
    fig, ax = _axes(ax, (0.35 * k + 3, 0.3 * k + 2))
    sns.heatmap(
        matrix,
        ax=ax,
        cmap="rocket_r",
        xticklabels=names + ["background"],
        yticklabels=names,
        cbar_kws={"label": "fraction of the row's errors" if normalize else "count"},
        square=False,
    )
    ax.set_xlabel("landed on")
    ax.set_ylabel("true keypoint")
    ax.set_title(title)
    return fig
