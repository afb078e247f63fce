"""Figures: heatmaps over images, skeletons, landing confusion matrices, error densities, ground false.

Every function draws on a given Matplotlib ``Axes`` (or makes a figure) and
returns the ``Figure``, so notebooks display it and tests inspect it. Images
are ``(3, H, W)`` or ``(H, W, 3)`` tensors/arrays with values in [0, 1], or
``(H, W)`` grey; keypoints are ``(K, 2)`` as ``(x, y)`` in image pixels.

The map figures of notebooks 01 and 02 (:func:`plot_error_density`,
:func:`plot_ground_false`) work in heatmap cells instead: the image is
stretched onto the heatmap grid (:func:`image_extent_in_cells`), so decoded
positions and densities are drawn as they are. Their artists carry a ``gid``
and an ``update_*`` twin changes them in place, for the explorers of
:mod:`regdakit.widgets`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from regdakit.keypoints import Skeleton
from regdakit.metrics import LandingResult

__all__ = [
    "to_image_array",
    "plot_heatmap",
    "plot_skeleton",
    "plot_confusion",
    "heatmap_overlay",
    "image_extent_in_cells",
    "plot_error_density",
    "update_error_density",
    "plot_ground_false",
    "update_ground_false",
    "plot_mistake",
    "plot_coverage",
    "plot_landing_shares",
]


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


# --- maps in heatmap cells: error densities and ground-false panels (notebooks 01 and 02) --------


def image_extent_in_cells(image_size: tuple[int, int], map_size: tuple[int, int]) -> tuple[float, float, float, float]:
    """``imshow`` extent that places an ``(H, W)`` image in the coordinates of an ``(h, w)`` heatmap.

    A heatmap cell ``(row i, col j)`` is centred at ``(x=j, y=i)`` and image
    pixel ``p`` maps to ``p / stride`` (:mod:`regdakit.heatmaps`), so the
    image spans ``[-0.5 / stride, (W - 0.5) / stride]`` in x (likewise y).
    Drawing the image there lets heatmaps, decoded positions and labels
    converted by ``/ stride`` all share one axis, with no half-cell offset.

    Returns:
        ``(left, right, bottom, top)`` for ``imshow(..., extent=...)``.
    """
    height, width = image_size
    h, w = map_size
    sx, sy = width / w, height / h
    return (-0.5 / sx, (width - 0.5) / sx, (height - 0.5) / sy, -0.5 / sy)


def _grey(image: torch.Tensor | np.ndarray) -> np.ndarray:
    img = to_image_array(image)
    return img.mean(axis=-1) if img.ndim == 3 else img


def _as_map(name: str, grid: torch.Tensor | np.ndarray) -> np.ndarray:
    array = grid.detach().cpu().double().numpy() if isinstance(grid, torch.Tensor) else np.asarray(grid, dtype=float)
    if array.ndim != 2:
        raise ValueError(f"{name} must have shape (h, w), got {array.shape}")
    return array


def _overlay_alpha(array: np.ndarray, strength: float = 0.9) -> np.ndarray:
    # Opacity grows with the value: empty cells leave the image visible, dense ones hide it.
    peak = array.max()
    return strength * np.sqrt(np.clip(array / peak, 0.0, 1.0)) if peak > 0 else np.zeros_like(array)


def _draw_backdrop(
    ax: Axes, image: torch.Tensor | np.ndarray | None, map_size: tuple[int, int], colour: bool = False
) -> None:
    # Grey under an overlay, so that the colour map alone carries the values.
    h, w = map_size
    if image is not None:
        shown = to_image_array(image) if colour else _grey(image)
        extent = image_extent_in_cells(shown.shape[:2], map_size)
        # Nearest: pixels drawn as pixels, and a noisy image stays a small PNG (a third of the smoothed size).
        ax.imshow(shown, cmap="gray", extent=extent, interpolation="nearest", gid="backdrop")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_xlabel("x (heatmap cells)")
    ax.set_ylabel("y (heatmap cells)")


def plot_error_density(
    density: torch.Tensor | np.ndarray,
    image: torch.Tensor | np.ndarray | None = None,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    cmap: str = "inferno",
    colorbar: bool = True,
    label: str = "share of wrong predictions per cell",
) -> Figure:
    """Draw an ``(h, w)`` density in heatmap cells over an image (the paper's Fig. 3).

    The image (e.g. :func:`regdakit.density.mean_image`) is shown in grey,
    stretched to the heatmap's coordinates (:func:`image_extent_in_cells`);
    the density is drawn cell by cell with an opacity that grows with its
    value. The density artist carries ``gid="density"`` so that
    :func:`update_error_density` can replace it in place.

    Returns:
        The ``Figure``.
    """
    array = _as_map("density", density)
    fig, ax = _axes(ax, (4.6, 4))
    _draw_backdrop(ax, image, array.shape)
    shown = ax.imshow(
        array, cmap=cmap, alpha=_overlay_alpha(array), interpolation="nearest", vmin=0, vmax=max(array.max(), 1e-12)
    )
    shown.set_gid("density")
    if colorbar:
        fig.colorbar(shown, ax=ax, shrink=0.8, label=label)
    if title:
        ax.set_title(title)
    return fig


def _artist(ax: Axes, gid: str):
    found = [artist for artist in ax.get_children() if artist.get_gid() == gid]
    if len(found) != 1:
        raise ValueError(f"the axes hold {len(found)} artists with gid {gid!r}; draw them with regdakit.viz first")
    return found[0]


def update_error_density(fig: Figure, density: torch.Tensor | np.ndarray, title: str | None = None) -> None:
    """Replace the density of a :func:`plot_error_density` figure (first axes), keeping the figure."""
    array = _as_map("density", density)
    ax = fig.axes[0]
    shown = _artist(ax, "density")
    shown.set_data(array)
    shown.set_alpha(_overlay_alpha(array))
    shown.set_clim(0, max(array.max(), 1e-12))
    if title is not None:
        ax.set_title(title)


#: Panels of :func:`plot_ground_false`, in order: (gid, title).
GROUND_FALSE_PANELS = (
    ("prediction", "prediction ŷ of f"),
    ("truth", "H(ŷ_k): ground truth"),
    ("false", "H_F(ŷ_k): the others' H, summed, clipped (Eq. 1)"),
    ("distribution", "P_F(ŷ_k) = H_F / sum of H_F (Eq. 2)"),
)


def plot_ground_false(
    image: torch.Tensor | np.ndarray,
    predictions: torch.Tensor | np.ndarray,
    keypoint: int,
    truth: torch.Tensor | np.ndarray,
    false: torch.Tensor | np.ndarray,
    distribution: torch.Tensor | np.ndarray,
    *,
    skeleton: Skeleton | None = None,
    axes: Sequence[Axes] | None = None,
) -> Figure:
    """Four panels: the prediction, ``H(ŷ_k)``, ``H_F(ŷ_k)`` and ``P_F(ŷ_k)`` (Eq. 1-2) over one image.

    Args:
        image: ``(3, S, S)`` image.
        predictions: ``(K, 2)`` predicted positions ``ŷ`` in heatmap cells.
        keypoint: ``k``, ringed in every panel.
        truth: ``(h, w)`` ``H(ŷ_k)``.
        false: ``(h, w)`` ``H_F(ŷ_k)``.
        distribution: ``(h, w)`` ``P_F(ŷ_k)``.
        skeleton: Colours the predictions and names the keypoint.
        axes: Four axes to draw on; ``None`` makes a figure.

    Returns:
        The ``Figure``; :func:`update_ground_false` changes it in place.
    """
    maps = {"truth": _as_map("truth", truth), "false": _as_map("false", false)}
    maps["distribution"] = _as_map("distribution", distribution)
    map_size = maps["truth"].shape
    if axes is None:
        fig, axes = plt.subplots(1, 4, figsize=(16, 4.2), layout="constrained")
    fig = axes[0].figure
    for ax, (gid, title) in zip(axes, GROUND_FALSE_PANELS, strict=True):
        _draw_backdrop(ax, image, map_size, colour=gid == "prediction")
        ax.set_title(title, fontsize=10)
        if gid != "prediction":
            array = maps[gid]
            vmax = 1.0 if gid != "distribution" else max(array.max(), 1e-12)
            shown = ax.imshow(
                array, cmap="viridis", alpha=_overlay_alpha(array), interpolation="nearest", vmin=0, vmax=vmax
            )
            shown.set_gid(gid)
            if gid == "distribution":
                fig.colorbar(shown, ax=ax, shrink=0.8, label="probability per cell")
        if ax is not axes[0]:
            ax.set_ylabel("")
    pts = _as_points(predictions)
    colors = np.array(skeleton.colors) if skeleton is not None else np.full((len(pts), 3), 0.9)
    axes[0].scatter(pts[:, 0], pts[:, 1], c=colors, s=28, edgecolors="white", linewidths=0.6, zorder=3, gid="points")
    for ax in axes:
        ax.scatter([], [], s=160, facecolors="none", edgecolors="red", linewidths=2, zorder=4, gid="ring")
    _update_ground_false_points(fig, pts, keypoint, skeleton)
    return fig


def _as_points(predictions: torch.Tensor | np.ndarray) -> np.ndarray:
    pts = (
        predictions.detach().cpu().double().numpy()
        if isinstance(predictions, torch.Tensor)
        else np.asarray(predictions)
    )
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"predictions must have shape (K, 2), got {pts.shape}")
    return pts


def _update_ground_false_points(fig: Figure, pts: np.ndarray, keypoint: int, skeleton: Skeleton | None) -> None:
    if not 0 <= keypoint < len(pts):
        raise ValueError(f"keypoint must be in 0..{len(pts) - 1}, got {keypoint}")
    _artist(fig.axes[0], "points").set_offsets(pts)
    for ax in fig.axes[:4]:
        _artist(ax, "ring").set_offsets(pts[keypoint : keypoint + 1])
    name = skeleton.names[keypoint] if skeleton is not None else str(keypoint)
    fig.axes[0].set_title(f"prediction ŷ of f; k = {name} (ringed)", fontsize=10)


def update_ground_false(
    fig: Figure,
    image: torch.Tensor | np.ndarray,
    predictions: torch.Tensor | np.ndarray,
    keypoint: int,
    truth: torch.Tensor | np.ndarray,
    false: torch.Tensor | np.ndarray,
    distribution: torch.Tensor | np.ndarray,
    *,
    skeleton: Skeleton | None = None,
) -> None:
    """Redraw a :func:`plot_ground_false` figure for another image, keypoint or sigma, in place."""
    maps = {"truth": _as_map("truth", truth), "false": _as_map("false", false)}
    maps["distribution"] = _as_map("distribution", distribution)
    for ax, (gid, _) in zip(fig.axes[:4], GROUND_FALSE_PANELS, strict=True):
        _artist(ax, "backdrop").set_data(to_image_array(image) if gid == "prediction" else _grey(image))
        if gid != "prediction":
            shown = _artist(ax, gid)
            shown.set_data(maps[gid])
            shown.set_alpha(_overlay_alpha(maps[gid]))
            if gid == "distribution":
                shown.set_clim(0, max(maps[gid].max(), 1e-12))
    _update_ground_false_points(fig, _as_points(predictions), keypoint, skeleton)


def plot_mistake(
    image: torch.Tensor | np.ndarray,
    keypoints: torch.Tensor | np.ndarray,
    visible: torch.Tensor | np.ndarray,
    prediction: torch.Tensor | np.ndarray,
    keypoint: int,
    skeleton: Skeleton,
    *,
    ax: Axes | None = None,
    title: str | None = None,
    zoom: float | None = 0.1,
) -> Figure:
    """One wrong prediction: the true skeleton, and an arrow from keypoint ``k``'s truth to where it was predicted.

    Args:
        image: ``(3, S, S)`` image.
        keypoints: ``(K, 2)`` true positions in image pixels.
        visible: ``(K,)`` visibility.
        prediction: ``(2,)`` predicted position of keypoint ``k`` in image pixels.
        keypoint: ``k``.
        skeleton: The keypoint layout.
        ax: Axes to draw on.
        title: Defaults to the keypoint's name.
        zoom: Show only the box around the visible keypoints and the prediction, widened by this
            fraction of the image side on each side; ``None`` shows the whole image.

    Returns:
        The ``Figure``.
    """
    fig = plot_skeleton(keypoints, skeleton, image, visible, ax=ax, marker_size=18, line_width=1.5)
    ax = fig.axes[0] if ax is None else ax
    ax.images[0].set_interpolation("nearest")  # zoomed in: show pixels as pixels
    kp = keypoints.detach().cpu().numpy() if isinstance(keypoints, torch.Tensor) else np.asarray(keypoints)
    guess = prediction.detach().cpu().numpy() if isinstance(prediction, torch.Tensor) else np.asarray(prediction)
    start = kp[keypoint]
    ax.annotate(
        "", xy=guess, xytext=start, arrowprops={"arrowstyle": "->", "color": "white", "lw": 1.8}, annotation_clip=False
    )
    ax.scatter([start[0]], [start[1]], s=90, facecolors="none", edgecolors="white", linewidths=1.5, zorder=4)
    ax.scatter([guess[0]], [guess[1]], s=70, marker="x", color="red", linewidths=2, zorder=5)
    ax.set_title(title or f"{skeleton.names[keypoint]}: truth ○ → prediction ×", fontsize=9)
    if zoom is not None:
        vis = np.asarray(visible.detach().cpu() if isinstance(visible, torch.Tensor) else visible).astype(bool)
        shown = np.concatenate([kp[vis], guess[None]])
        side = max(to_image_array(image).shape[:2])
        low, high = shown.min(axis=0) - zoom * side, shown.max(axis=0) + zoom * side
        half = (high - low).max() / 2  # a square box keeps the image's aspect
        centre = (low + high) / 2
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] + half, centre[1] - half)
    return fig


def plot_coverage(
    curves: Mapping[str, Sequence[Any]],
    *,
    ax: Axes | None = None,
    title: str = "Wrong predictions inside the P_F region",
) -> Figure:
    """Share of wrong predictions inside ``P_F``'s highest-density regions against the area of the regions.

    One point per region mass: x is the mean fraction of the map the regions
    cover (:attr:`regdakit.density.Coverage.uniform`), y the share of wrong
    predictions inside them (``share``). A uniform distribution of the same
    area lies on the diagonal; the further above it, the better ``P_F``
    anticipates where the mistakes go. Points run from the smallest mass to
    the largest, left to right; several masses give one region (and one
    point) when ``P_F``'s clipped top ties.

    Args:
        curves: Label -> :class:`regdakit.density.Coverage` results, one per mass.
        ax: Axes to draw on; ``None`` makes a figure.
        title: Axes title.

    Returns:
        The ``Figure``.
    """
    if not curves:
        raise ValueError("curves must hold at least one list of Coverage results")
    fig, ax = _axes(ax, (5.2, 4.2))
    ax.plot([0, 1], [0, 1], ":", color="k", lw=1, label="uniform region of the same area")
    widest = 0.0
    for label, results in curves.items():
        ordered = sorted(results, key=lambda r: r.mass)  # a larger mass never gives a smaller region
        masses = ", ".join(f"{r.mass:.0%}" for r in ordered)
        ax.plot([r.uniform for r in ordered], [r.share for r in ordered], "o-", label=f"{label} ({masses})")
        widest = max([widest] + [r.uniform for r in ordered])
    # The regions are small: zoom on them, keeping the diagonal as the reference.
    ax.set(xlim=(0, min(1.0, 1.4 * widest + 0.05)), ylim=(0, 1.02), xlabel="fraction of the map the region covers")
    ax.set_ylabel("share of wrong predictions inside")
    ax.legend(fontsize=7, loc="lower right", title="points, left to right: regions holding … of P_F", title_fontsize=7)
    ax.set_title(title)
    return fig


def plot_landing_shares(
    results: Mapping[str, LandingResult],
    *,
    ax: Axes | None = None,
    title: str = "Where wrong predictions land",
) -> Figure:
    """Bars: the share of wrong predictions on another keypoint, beside the share chance would give (Fig. 1).

    Args:
        results: Label (e.g. ``"hands: rendered → studio"``) -> :func:`regdakit.metrics.error_landing` result.
        ax: Axes to draw on; ``None`` makes a figure.
        title: Axes title.

    Returns:
        The ``Figure``; each bar is labelled with its value.
    """
    if not results:
        raise ValueError("results must hold at least one LandingResult")
    fig, ax = _axes(ax, (1.8 + 1.6 * len(results), 3.6))
    x = np.arange(len(results))
    measured = [r.on_other for r in results.values()]
    chance = [r.chance for r in results.values()]
    bars = ax.bar(x - 0.2, measured, width=0.4, color="tab:red", label="measured: on another keypoint")
    ghost = ax.bar(x + 0.2, chance, width=0.4, color="tab:gray", label="chance: uniform over the map")
    ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.bar_label(ghost, fmt="%.2f", fontsize=8)
    ax.set_xticks(x, [f"{label}\n({r.n_wrong} wrong)" for label, r in results.items()], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share of the wrong predictions")
    ax.legend(fontsize=8, loc="upper right")
    ax.set_title(title)
    return fig
