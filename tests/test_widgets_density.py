"""The figures and explorers of notebooks 01 and 02: drawn once, changed in place by the sliders."""

import numpy as np
import pytest
import torch
from _maps import peaked_logits

from regdakit import density, viz
from regdakit.disparity import ground_false_distribution, pseudo_labels
from regdakit.heatmaps import encode
from regdakit.keypoints import HAND21, Skeleton
from regdakit.widgets import ErrorDensityExplorer, GroundFalseExplorer

TRIO = Skeleton(name="trio", names=("a", "b", "c"), groups={}, edges=((0, 1), (1, 2)))


def _images(n: int = 3, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, size, size, generator=g)


def _peaked_logits(cells):
    return peaked_logits(cells, size=8)


# --- viz ------------------------------------------------------------------------


def test_image_extent_puts_pixel_centres_on_cell_coordinates():
    left, right, bottom, top = viz.image_extent_in_cells((128, 64), (32, 16))
    # Pixel p sits at p / 4 cells: pixel 0's centre at 0, so the image starts half a pixel (1/8 cell) before.
    assert (left, right, bottom, top) == (-0.125, 63.5 / 4, 127.5 / 4, -0.125)


def test_plot_error_density_and_update_in_place():
    d = torch.zeros(8, 8, dtype=torch.float64)
    d[2, 5] = 1.0
    fig = viz.plot_error_density(d, torch.rand(3, 32, 32), title="first")
    ax = fig.axes[0]
    shown = [a for a in ax.images if a.get_gid() == "density"][0]
    assert shown.get_array()[2, 5] == 1.0 and ax.get_xlabel() == "x (heatmap cells)"
    assert ax.get_xlim() == (-0.5, 7.5) and ax.get_ylim() == (7.5, -0.5)  # y grows downwards
    e = torch.zeros(8, 8, dtype=torch.float64)
    e[6, 1] = 0.5
    n_axes = len(fig.axes)
    viz.update_error_density(fig, e, title="second")
    assert shown.get_array()[6, 1] == 0.5 and shown.get_array()[2, 5] == 0.0
    assert shown.get_clim() == (0, 0.5) and ax.get_title() == "second" and len(fig.axes) == n_axes
    with pytest.raises(ValueError, match=r"density must have shape \(h, w\)"):
        viz.update_error_density(fig, torch.zeros(1, 8, 8))


def test_plot_ground_false_panels_and_update():
    cells = [[(1, 1), (6, 2), (3, 6)]]
    logits = _peaked_logits(cells)
    truth, false = pseudo_labels(logits)
    dist = ground_false_distribution(false)
    preds = torch.tensor(cells[0], dtype=torch.float64)
    fig = viz.plot_ground_false(_images(1)[0], preds, 0, truth[0, 0], false[0, 0], dist[0, 0], skeleton=TRIO)
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert "(Eq. 1)" in titles[2] and "(Eq. 2)" in titles[3] and "k = a" in titles[0]
    ring = [a for a in fig.axes[3].collections if a.get_gid() == "ring"][0]
    np.testing.assert_array_equal(ring.get_offsets(), [[1, 1]])
    viz.update_ground_false(fig, _images(2)[1], preds, 2, truth[0, 2], false[0, 2], dist[0, 2], skeleton=TRIO)
    np.testing.assert_array_equal(ring.get_offsets(), [[3, 6]])
    shown = [a for a in fig.axes[3].images if a.get_gid() == "distribution"][0]
    np.testing.assert_allclose(shown.get_array(), dist[0, 2].double().numpy())
    assert "k = c" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match="keypoint must be in 0..2"):
        viz.update_ground_false(fig, _images(1)[0], preds, 3, truth[0, 0], false[0, 0], dist[0, 0])


def test_plot_mistake_zooms_on_the_hand():
    kp = torch.tensor([[40.0, 50.0]] * 21) + torch.arange(21.0)[:, None]
    fig = viz.plot_mistake(torch.rand(3, 128, 128), kp, torch.ones(21), kp[3] + 10, 8, HAND21, zoom=0.1)
    ax = fig.axes[0]
    left, right = ax.get_xlim()
    assert right - left < 128 and left < 40 and right > 60
    assert "index_tip" in ax.get_title()


def test_plot_coverage_share_against_area_with_mass_labels():
    results = [
        density.Coverage(0.6, 0.1, 10, 0.25),
        density.Coverage(0.6, 0.1, 10, 0.5),
        density.Coverage(0.95, 0.3, 10, 0.9),
    ]
    fig = viz.plot_coverage({"from f": results})
    ax = fig.axes[0]
    diagonal, curve = ax.lines
    np.testing.assert_allclose(diagonal.get_xydata(), [[0, 0], [1, 1]])
    np.testing.assert_allclose(curve.get_xydata(), [[0.1, 0.6], [0.1, 0.6], [0.3, 0.95]])
    assert "from f (25%, 50%, 90%)" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert ax.get_xlim() == (0, pytest.approx(1.4 * 0.3 + 0.05))  # zoomed on the regions' areas
    assert ax.get_xlabel().startswith("fraction of the map")
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_coverage({})


# --- ErrorDensityExplorer -----------------------------------------------------


def test_error_density_explorer_dropdown_changes_the_picture():
    pred = torch.tensor([[[1.0, 1.0], [6.0, 6.0], [2.0, 5.0]], [[1.0, 2.0], [6.0, 5.0], [2.0, 5.0]]])
    wrong = torch.tensor([[True, True, False], [True, True, False]])
    explorer = ErrorDensityExplorer(pred, wrong, _images(1)[0], TRIO, map_size=8, sigma=0.0)
    assert explorer.keypoint.options[0] == ("0: a", 0)
    torch.testing.assert_close(explorer.density, density.error_density(pred, wrong, 0, 8, 0.0))
    first_png, renders = explorer.view.image.value, explorer.view.renders
    figure = explorer.view.figure

    explorer.keypoint.value = 1
    assert explorer.view.figure is figure  # updated in place, not re-created
    assert explorer.view.renders == renders + 1 and explorer.view.image.value != first_png
    expected = torch.zeros(8, 8, dtype=torch.float64)
    expected[6, 6] = expected[5, 6] = 0.5
    torch.testing.assert_close(explorer.density, expected)
    assert "b (n = 2)" in figure.axes[0].get_title()

    explorer.keypoint.value = 2  # no wrong predictions: an empty map, not an error
    assert explorer.density.sum().item() == 0 and "(n = 0)" in figure.axes[0].get_title()


def test_error_density_explorer_checks_skeleton():
    with pytest.raises(ValueError, match="K=3 keypoints"):
        ErrorDensityExplorer(torch.zeros(1, 3, 2), torch.ones(1, 3, dtype=torch.bool), _images(1)[0], HAND21, 8)


# --- GroundFalseExplorer -------------------------------------------------------


def _explorer():
    cells = [[(1, 1), (6, 2), (3, 6)], [(5, 5), (1, 6), (6, 1)], [(2, 2), (2, 3), (6, 6)]]
    return GroundFalseExplorer(_images(3), _peaked_logits(cells), TRIO), cells


def _expected_maps(cells_of_sample, k: int, sigma: float) -> dict[str, torch.Tensor]:
    """Eq. 1-2 by hand, from encode: H of each prediction, H_F = clip(sum of the others), P_F = H_F / sum."""
    positions = torch.tensor([cells_of_sample], dtype=torch.float32)
    truth, _ = encode(positions, torch.ones(1, 3), 8, stride=1, sigma=sigma)
    others = [j for j in range(3) if j != k]
    false = truth[0, others].sum(dim=0).clamp(0, 1)
    return {"truth": truth[0, k], "false": false, "distribution": false / false.sum()}


def test_ground_false_explorer_shows_eq_1_and_2():
    explorer, cells = _explorer()
    for name, value in _expected_maps(cells[0], 0, 2.0).items():
        torch.testing.assert_close(explorer.maps[name], value)
    assert explorer.maps["distribution"].sum().item() == pytest.approx(1.0)
    assert explorer.maps["false"].max().item() <= 1.0
    # The keypoint itself is excluded from its ground false: nothing at its own cell (1, 1)
    # beyond what the others' Gaussians put there.
    assert explorer.maps["false"][1, 1].item() == pytest.approx(_expected_maps(cells[0], 0, 2.0)["false"][1, 1].item())
    assert explorer.maps["truth"][1, 1].item() == 1.0 and explorer.maps["false"][1, 1].item() < 0.1


@pytest.mark.parametrize(("control", "value", "sample", "k", "sigma"), [
    ("sample", 2, 2, 0, 2.0),
    ("keypoint", 1, 0, 1, 2.0),
    ("sigma", 1.0, 0, 0, 1.0),
])  # fmt: skip
def test_ground_false_explorer_each_slider_changes_the_picture(control, value, sample, k, sigma):
    explorer, cells = _explorer()
    figure, before, renders = explorer.view.figure, explorer.view.image.value, explorer.view.renders
    getattr(explorer, control).value = value
    assert explorer.view.figure is figure and explorer.view.renders == renders + 1
    assert explorer.view.image.value != before
    for name, expected in _expected_maps(cells[sample], k, sigma).items():
        torch.testing.assert_close(explorer.maps[name], expected)


def test_ground_false_explorer_checks_shapes():
    with pytest.raises(ValueError, match="must agree on N"):
        GroundFalseExplorer(_images(2), torch.zeros(3, 3, 8, 8), TRIO)
    with pytest.raises(ValueError, match="K=21 channels"):
        GroundFalseExplorer(_images(3), torch.zeros(3, 3, 8, 8), HAND21)


def test_plot_landing_shares_bars_and_labels():
    from regdakit.metrics import error_landing

    gt = torch.tensor([[[2.0, 2.0], [12.0, 2.0], [2.0, 12.0]]])
    pred = torch.tensor([[[12.0, 2.5], [12.0, 2.0], [14.0, 14.0]]])  # 0 lands on 1, 2 on the background
    result = error_landing(pred, gt, torch.ones(1, 3), radius=1.6, map_size=16)
    fig = viz.plot_landing_shares({"toy": result})
    ax = fig.axes[0]
    heights = [patch.get_height() for patch in ax.patches]
    assert heights == [pytest.approx(0.5), pytest.approx(result.chance)]
    assert "2 wrong" in ax.get_xticklabels()[0].get_text()
    with pytest.raises(ValueError, match="at least one"):
        viz.plot_landing_shares({})
