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
from matplotlib.figure import Figure

from regdakit import toy

__all__ = ["FigureView", "TrajectoryExplorer"]


class FigureView:
    """A Matplotlib figure shown as a PNG in an ``ipywidgets.Image``."""

    def __init__(self, figure: Figure, dpi: int = 90) -> None:
        self.figure = figure
        self.dpi = dpi
        self.image = widgets.Image(format="png")
        plt.close(figure)  # shown through the widget only, not again by the inline backend
        self.refresh()

    def refresh(self) -> None:
        """Render the figure's current state into the image widget."""
        buffer = io.BytesIO()
        self.figure.savefig(buffer, format="png", dpi=self.dpi)
        self.image.value = buffer.getvalue()


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
