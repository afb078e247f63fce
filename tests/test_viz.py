import numpy as np
import pytest
import torch

from regdakit import viz
from regdakit.keypoints import BODY16, HAND21
from regdakit.metrics import error_landing


def test_plot_heatmap_over_image_stretches_heatmap():
    image = torch.rand(3, 64, 48)
    heatmap = torch.zeros(16, 12)
    heatmap[4, 3] = 1.0
    fig = viz.plot_heatmap(heatmap, image, title="h")
    ax = fig.axes[0]
    shown = ax.images[1].get_array()
    assert shown.shape == (64, 48)
    assert shown[16:20, 12:16].min() == 1.0 and shown.sum() == 16  # one cell = 4 x 4 pixels
    assert ax.get_title() == "h"


def test_to_image_array_layouts():
    assert viz.to_image_array(torch.rand(3, 5, 7)).shape == (5, 7, 3)
    assert viz.to_image_array(np.ones((5, 7, 3)) * 2).max() == 1.0  # clipped
    assert viz.to_image_array(torch.rand(1, 5, 7)).shape == (5, 7)
    with pytest.raises(ValueError, match=r"image must have shape"):
        viz.to_image_array(torch.rand(2, 3, 4, 5))


def test_plot_skeleton_draws_visible_bones_only():
    kp = torch.rand(16, 2) * 60
    vis = torch.ones(16, dtype=torch.bool)
    vis[BODY16.index("l_knee")] = False
    fig = viz.plot_skeleton(kp, BODY16, image=torch.rand(3, 64, 64), visible=vis)
    ax = fig.axes[0]
    assert len(ax.lines) == len(BODY16.edges) - 2  # the two bones at the left knee are hidden
    assert ax.collections[0].get_offsets().shape == (15, 2)
    with pytest.raises(ValueError, match=r"\(21, 2\) for hand21"):
        viz.plot_skeleton(kp, HAND21)


def test_plot_confusion_rows_normalised_with_names():
    gt = torch.tensor([[[10.0, 10.0], [30.0, 10.0], [50.0, 50.0]]])
    pred = torch.tensor([[[30.5, 11.0], [10.0, 10.0], [5.0, 60.0]]])
    result = error_landing(pred, gt, torch.ones(1, 3))
    fig = viz.plot_confusion(result.confusion)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1] == "background" and ax.get_xlabel() == "landed on"
    values = ax.collections[0].get_array().reshape(3, 4)
    np.testing.assert_allclose(values, [[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
    with pytest.raises(ValueError, match=r"\(K, K \+ 1\)"):
        viz.plot_confusion(torch.zeros(3, 3))
