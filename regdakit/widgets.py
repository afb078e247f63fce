"""Interactive explorers: ipywidgets wired to the pure figure functions.

Each explorer draws its figure once and, on every slider move, updates the
figure's artists and re-renders it into the same ``ipywidgets.Image``: no
figure is re-created, and the explorer works in plain JupyterLab without a
Matplotlib widget backend. Tests drive the sliders by setting ``.value``.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure

from regdakit import density, toy, viz
from regdakit.disparity import ground_false_distribution, pseudo_labels
from regdakit.keypoints import Skeleton

__all__ = ["FigureView", "TrajectoryExplorer", "ErrorDensityExplorer", "GroundFalseExplorer"]


class FigureView:
    """A Matplotlib figure shown as a PNG in an ``ipywidgets.Image``.

    Attributes:
        figure: The one figure, changed in place by the explorers.
        image: The widget showing it; ``image.value`` holds the PNG bytes.
        renders: How many times the figure was rendered into ``image``.
    """

    def __init__(self, figure: Figure, dpi: int = 90) -> None:
        self.figure = figure
        self.dpi = dpi
        self.renders = 0
        self.image = widgets.Image(format="png")
        plt.close(figure)  # shown through the widget only, not again by the inline backend
        self.refresh()

    def refresh(self) -> None:
        """Render the figure's current state into the image widget."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        self.image.value = buffer.getvalue()
        self.renders += 1


class TrajectoryExplorer(widgets.VBox):
    """Step through the mean-versus-variance trajectories of notebook 03.

    Attributes:
        objective: Dropdown over the trajectories' names.
        step: Slider over optimisation steps.
        view: The :class:`FigureView` holding the figure.
    """

    def __init__(self, trajectories: Mapping[str, toy.Trajectory]) -> None:
        if not trajectories:
            raise ValueError("trajectories must hold at least one trajectory")
        self.trajectories = dict(trajectories)
        names = list(self.trajectories)
        first = self.trajectories[names[0]]
        self.objective = widgets.Dropdown(options=names, value=names[0], description="objective")
        self.step = widgets.IntSlider(
            value=0, min=0, max=len(first.steps) - 1, description="step", continuous_update=False
        )
        self.view = FigureView(toy.plot_trajectory(first, 0))
        self.objective.observe(self._changed, names="value")
        self.step.observe(self._changed, names="value")
        super().__init__([widgets.HBox([self.objective, self.step]), self.view.image])

    def _changed(self, _change: object = None) -> None:
        trajectory = self.trajectories[self.objective.value]
        self.step.max = len(trajectory.steps) - 1
        toy.update_trajectory_plot(self.view.figure, trajectory, min(self.step.value, self.step.max))
        self.view.refresh()


def _keypoint_options(skeleton: Skeleton) -> list[tuple[str, int]]:
    return [(f"{i}: {name}", i) for i, name in enumerate(skeleton.names)]


class ErrorDensityExplorer(widgets.VBox):
    """Pick a keypoint and see where its wrong predictions land (notebook 01, the paper's Fig. 3).

    Wires a keypoint dropdown to :func:`regdakit.density.error_density` and
    :func:`regdakit.viz.update_error_density`.

    Args:
        pred: ``(B, K, 2)`` predicted positions in heatmap cells.
        wrong: ``(B, K)`` bool, which predictions are wrong.
        image: ``(3, S, S)`` backdrop, e.g. the mean target image.
        skeleton: Names the keypoints.
        map_size: Heatmap ``H`` or ``(H, W)``.
        sigma: Smoothing of the density in cells.
        keypoint: The keypoint shown first.

    Attributes:
        keypoint: The dropdown.
        density: The ``(H, W)`` density shown now.
        view: The :class:`FigureView`.
    """

    def __init__(
        self,
        pred: torch.Tensor,
        wrong: torch.Tensor,
        image: torch.Tensor,
        skeleton: Skeleton,
        map_size: int | tuple[int, int],
        sigma: float = 1.0,
        keypoint: int = 0,
    ) -> None:
        if pred.shape[1] != skeleton.num_keypoints:
            k = skeleton.num_keypoints
            raise ValueError(f"pred has K={pred.shape[1]} keypoints, skeleton {skeleton.name!r} has {k}")
        self.pred, self.wrong, self.skeleton = pred, wrong.bool(), skeleton
        self.map_size, self.sigma = map_size, sigma
        self.keypoint = widgets.Dropdown(options=_keypoint_options(skeleton), value=keypoint, description="keypoint")
        self.density = density.error_density(pred, self.wrong, keypoint, map_size, sigma)
        self.view = FigureView(viz.plot_error_density(self.density, image, title=self._title(keypoint)))
        self.keypoint.observe(self._changed, names="value")
        super().__init__([self.keypoint, self.view.image])

    def _title(self, k: int) -> str:
        n = int(self.wrong[:, k].sum())
        return f"wrong predictions of {self.skeleton.names[k]} (n = {n})"

    def _changed(self, _change: object = None) -> None:
        k = self.keypoint.value
        self.density = density.error_density(self.pred, self.wrong, k, self.map_size, self.sigma)
        viz.update_error_density(self.view.figure, self.density, self._title(k))
        self.view.refresh()


class GroundFalseExplorer(widgets.VBox):
    """Sliders over sample, keypoint and sigma above ``H``, ``H_F`` and ``P_F`` (notebook 02, Eq. 1-2).

    Wires the sliders to :func:`regdakit.disparity.pseudo_labels`,
    :func:`regdakit.disparity.ground_false_distribution` and
    :func:`regdakit.viz.update_ground_false`.

    Args:
        images: ``(N, 3, S, S)`` images.
        logits: ``(N, K, H, W)`` main-head logits for them.
        skeleton: Names and colours the keypoints.
        sample: First sample shown.
        keypoint: First keypoint shown.
        sigma: First Gaussian width in cells.

    Attributes:
        sample: Slider over the images.
        keypoint: Dropdown over the keypoints.
        sigma: Slider over the pseudo-labels' Gaussian width.
        maps: The ``(H, W)`` maps shown now: ``{"truth", "false", "distribution"}``.
        view: The :class:`FigureView`.
    """

    def __init__(
        self,
        images: torch.Tensor,
        logits: torch.Tensor,
        skeleton: Skeleton,
        sample: int = 0,
        keypoint: int = 0,
        sigma: float = 2.0,
    ) -> None:
        if images.shape[0] != logits.shape[0] or logits.shape[1] != skeleton.num_keypoints:
            raise ValueError(
                f"images {tuple(images.shape)} and logits {tuple(logits.shape)} must agree on N, "
                f"and logits must have K={skeleton.num_keypoints} channels for {skeleton.name!r}"
            )
        self.images, self.logits, self.skeleton = images, logits, skeleton
        self.sample = widgets.IntSlider(
            value=sample, min=0, max=images.shape[0] - 1, description="sample", continuous_update=False
        )
        self.keypoint = widgets.Dropdown(options=_keypoint_options(skeleton), value=keypoint, description="keypoint")
        self.sigma = widgets.FloatSlider(
            value=sigma, min=0.5, max=5.0, step=0.25, description="sigma", continuous_update=False
        )
        predictions, self.maps = self._compute()
        figure = viz.plot_ground_false(images[sample], predictions, keypoint, **self.maps, skeleton=skeleton)
        self.view = FigureView(figure)
        for control in (self.sample, self.keypoint, self.sigma):
            control.observe(self._changed, names="value")
        super().__init__([widgets.HBox([self.sample, self.keypoint, self.sigma]), self.view.image])

    def _compute(self) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        s, k = self.sample.value, self.keypoint.value
        logits = self.logits[s : s + 1]  # (1, K, H, W)
        truth, false = pseudo_labels(logits, self.sigma.value)
        distribution = ground_false_distribution(false)
        width = logits.shape[-1]
        index = logits.reshape(logits.shape[1], -1).argmax(dim=-1)  # (K,): ŷ, the cells the pseudo-labels use
        predictions = torch.stack([index % width, torch.div(index, width, rounding_mode="floor")], dim=-1)
        maps = {"truth": truth[0, k], "false": false[0, k], "distribution": distribution[0, k]}
        return predictions.double(), maps

    def _changed(self, _change: object = None) -> None:
        predictions, self.maps = self._compute()
        viz.update_ground_false(
            self.view.figure,
            self.images[self.sample.value],
            predictions,
            self.keypoint.value,
            **self.maps,
            skeleton=self.skeleton,
        )
        self.view.refresh()
