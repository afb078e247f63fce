import math

import pytest
import torch
from _maps import peaked_logits

from regdakit import density
from regdakit.disparity import ground_false_distribution, ground_false_from_truth, pseudo_labels
from regdakit.heatmaps import encode
from regdakit.keypoints import BODY16
from regdakit.metrics import error_landing
from regdakit.models import PoseResNet, resnet_tiny

# --- position_histogram and smooth ------------------------------------------


def test_histogram_rounds_to_nearest_cell_and_drops_off_map():
    positions = torch.tensor([[0.4, 0.0], [0.5, 0.0], [2.0, 1.2], [2.4, 0.6], [-0.6, 0.0], [3.5, 0.0], [0.0, 2.5]])
    counts = density.position_histogram(positions, (2, 4))  # H=2 rows, W=4 columns
    # (0.4, 0) -> col 0; (0.5, 0) rounds up to col 1; (2, 1.2) and (2.4, 0.6) -> row 1, col 2;
    # (-0.6, 0) -> col -1, (3.5, 0) -> col 4 and (0, 2.5) -> row 3 are off the map.
    assert counts.tolist() == [[1, 1, 0, 0], [0, 0, 2, 0]]
    assert counts.dtype == torch.float64


def test_histogram_bad_input():
    with pytest.raises(ValueError, match=r"positions must have shape \(N, 2\), got \(3\)"):
        density.position_histogram(torch.zeros(3), 4)
    with pytest.raises(ValueError, match="NaN"):
        density.position_histogram(torch.tensor([[float("nan"), 0.0]]), 4)
    with pytest.raises(ValueError, match="map_size must be positive"):
        density.position_histogram(torch.zeros(1, 2), 0)


def test_smooth_keeps_mass_and_symmetry_away_from_the_border():
    grid = torch.zeros(15, 15, dtype=torch.float64)
    grid[7, 7] = 1.0
    out = density.smooth(grid, 1.5)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert out.argmax().item() == 7 * 15 + 7
    torch.testing.assert_close(out, out.T)
    torch.testing.assert_close(out, out.flip(0))
    # Hand value: the kernel is a normalised 1-D Gaussian g truncated at 3 sigma; the centre is g(0)^2.
    g = torch.exp(-(torch.arange(-5, 6, dtype=torch.float64) ** 2) / (2 * 1.5**2))
    assert out[7, 7].item() == pytest.approx((1 / g.sum()).item() ** 2)


def test_smooth_zero_sigma_is_a_copy_and_rejects_negative():
    grid = torch.rand(3, 4)
    out = density.smooth(grid, 0)
    assert torch.equal(out, grid) and out is not grid
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):
        density.smooth(grid, -1.0)
    with pytest.raises(ValueError, match=r"grid must have shape \(H, W\)"):
        density.smooth(torch.zeros(1, 3, 4), 1.0)


# --- error_density and mean_image ------------------------------------------


def _two_keypoints():
    pred = torch.tensor([[[1.0, 1.0], [3.0, 0.0]], [[2.0, 2.0], [3.0, 0.0]], [[0.0, 3.0], [1.0, 3.0]]])  # (B=3, K=2, 2)
    wrong = torch.tensor([[True, True], [True, False], [False, True]])
    return pred, wrong


def test_error_density_hand_case():
    pred, wrong = _two_keypoints()
    d0 = density.error_density(pred, wrong, 0, 4, sigma=0)
    expected = torch.zeros(4, 4, dtype=torch.float64)
    expected[1, 1] = expected[2, 2] = 0.5  # the two wrong predictions of keypoint 0; (0, 3) was right
    torch.testing.assert_close(d0, expected)
    d1 = density.error_density(pred, wrong, 1, 4, sigma=0)
    assert d1[0, 3].item() == 0.5 and d1[3, 1].item() == 0.5
    pooled = density.error_density(pred, wrong, None, 4, sigma=0)
    assert pooled[1, 1].item() == 0.25 and pooled.sum().item() == pytest.approx(1.0)


def test_error_density_is_normalised_after_smoothing_and_zero_without_errors():
    pred, wrong = _two_keypoints()
    smoothed = density.error_density(pred, wrong, 0, (8, 6), sigma=1.0)
    assert smoothed.shape == (8, 6) and smoothed.sum().item() == pytest.approx(1.0)
    assert torch.equal(
        density.error_density(pred, torch.zeros_like(wrong), 0, 4), torch.zeros(4, 4, dtype=torch.float64)
    )


def test_error_density_bad_input():
    pred, wrong = _two_keypoints()
    with pytest.raises(ValueError, match=r"keypoint must be in 0..1 or None, got 2"):
        density.error_density(pred, wrong, 2, 4)
    with pytest.raises(ValueError, match=r"wrong must have shape \(3, 2\)"):
        density.error_density(pred, wrong[:2], 0, 4)
    with pytest.raises(ValueError, match=r"pred must have shape \(B, K, 2\)"):
        density.error_density(pred[0], wrong, 0, 4)
    bad = pred.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="pred contains NaN"):
        density.error_density(bad, wrong, 0, 4)


def test_mean_image():
    images = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    assert torch.equal(density.mean_image(images), torch.full((3, 4, 4), 0.5))
    with pytest.raises(ValueError, match="at least one image"):
        density.mean_image(torch.zeros(0, 3, 4, 4))
    with pytest.raises(ValueError, match=r"images must have shape \(N, C, H, W\)"):
        density.mean_image(torch.zeros(3, 4, 4))


def test_predict_batches_like_one_pass(one_thread):
    torch.manual_seed(0)
    model = PoseResNet(resnet_tiny(), num_keypoints=3, upsampling_channels=16, adversarial=False)
    images = torch.rand(5, 3, 64, 64)
    running = {k: v.clone() for k, v in model.state_dict().items()}
    logits = density.predict(model, images, batch_size=2)
    assert logits.shape == (5, 3, 16, 16) and logits.dtype == torch.float32
    assert model.training  # the mode it came in with
    assert all(torch.equal(v, running[k]) for k, v in model.state_dict().items())  # eval mode: BN stats untouched
    with torch.no_grad():
        torch.testing.assert_close(logits, model.eval().heatmaps(images))
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        density.predict(model, images, batch_size=0)


# --- highest_density_region and coverage -----------------------------------


@pytest.mark.parametrize(
    ("mass", "cells"),
    [
        (0.5, {(0, 0)}),
        (0.6, {(0, 0), (0, 1)}),
        (0.8, {(0, 0), (0, 1)}),
        (0.81, {(0, 0), (0, 1), (1, 0)}),
        (1.0, {(0, 0), (0, 1), (1, 0)}),
    ],
)
def test_region_hand_cases(mass, cells):
    p = torch.tensor([[0.5, 0.3], [0.2, 0.0]])  # float32 on purpose: 0.5 / 1.0000000149 still reaches mass 0.5
    region = density.highest_density_region(p, mass)
    assert {tuple(ij) for ij in region.nonzero().tolist()} == cells


def test_region_ties_are_all_included_and_scale_does_not_matter():
    p = torch.tensor([[1.0, 1.0, 1.0, 1.0], [2.0, 0.0, 0.0, 0.0]], dtype=torch.float64)  # total 6
    region = density.highest_density_region(p, 0.5)
    # 2/6 < 0.5, so the region needs a tied 1-cell: all four come in (it holds 6/6).
    assert region.tolist() == [[True] * 4, [True, False, False, False]]
    assert torch.equal(density.highest_density_region(p, 0.3), p == 2)
    torch.testing.assert_close(density.highest_density_region(p * 7, 0.5), region, rtol=0, atol=0)


def test_region_batched_maps_are_independent():
    maps = torch.full((2, 2, 3, 3), 0.01)
    maps[0, 1, 0, 0] = maps[1, 0, 2, 2] = 1.0
    maps[1, 1, 1, 1] = 3.0
    region = density.highest_density_region(maps, 0.5)
    assert region.shape == (2, 2, 3, 3)
    for b in range(2):
        for k in range(2):
            torch.testing.assert_close(region[b, k], density.highest_density_region(maps[b, k], 0.5), rtol=0, atol=0)
    assert region[0, 0].all()  # a flat map: every cell ties
    assert region[1, 1].sum().item() == 1 and region[1, 1, 1, 1]


def test_region_bad_input():
    with pytest.raises(ValueError, match="positive sum"):
        density.highest_density_region(torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="non-negative"):
        density.highest_density_region(torch.tensor([[1.0, -0.5]]), 0.5)
    with pytest.raises(ValueError, match=r"mass must be in \(0, 1\]"):
        density.highest_density_region(torch.ones(2, 2), 1.5)
    with pytest.raises(ValueError, match="mass must be finite and > 0"):
        density.highest_density_region(torch.ones(2, 2), 0.0)
    with pytest.raises(ValueError, match="NaN"):
        density.highest_density_region(torch.tensor([[1.0, float("nan")]]), 0.5)
    with pytest.raises(ValueError, match=r"\(\.\.\., H, W\)"):
        density.highest_density_region(torch.ones(4), 0.5)


def test_coverage_hand_case():
    maps = torch.zeros(3, 2, 4, dtype=torch.float64)  # N=3 maps of 2 x 4 = 8 cells
    maps[0, 0, 0], maps[0, 1, 3] = 0.9, 0.1  # region at 0.5: {(row 0, col 0)}, 1 cell
    maps[1, 0, :] = 0.25  # region: the 4 tied cells of row 0
    maps[2, 1, 1] = 1.0  # region: {(row 1, col 1)}
    positions = torch.tensor([[0.2, -0.3], [2.6, 1.0], [1.0, 1.4]])  # in, out (row 1), in
    result = density.coverage(maps, positions, mass=0.5)
    assert result.share == pytest.approx(2 / 3)
    assert result.uniform == pytest.approx((1 / 8 + 4 / 8 + 1 / 8) / 3)
    assert result.ratio == pytest.approx((2 / 3) / (6 / 24))
    assert (result.n, result.mass) == (3, 0.5)


def test_coverage_off_map_points_are_not_covered():
    maps = torch.ones(1, 2, 2)
    result = density.coverage(maps, torch.tensor([[2.0, 0.0]]), mass=1.0)
    assert result.share == 0.0 and result.uniform == 1.0


def test_coverage_empty_and_bad_input():
    empty = density.coverage(torch.zeros(0, 3, 3), torch.zeros(0, 2))
    assert empty.n == 0 and math.isnan(empty.share) and math.isnan(empty.uniform) and math.isnan(empty.ratio)
    with pytest.raises(ValueError, match="same N"):
        density.coverage(torch.ones(2, 3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match=r"distributions must have shape \(N, H, W\)"):
        density.coverage(torch.ones(3, 3), torch.zeros(3, 2))


# --- ground_false_coverage ---------------------------------------------------


def _peaked_logits(cells):
    return peaked_logits(cells, size=16)


def test_ground_false_coverage_collapsed_prediction_is_covered_far_one_is_not():
    # Keypoint 0 of sample 0 is predicted on keypoint 1 (a confusion); of sample 1, far from everything.
    cells = [[(10, 3), (10, 3), (5, 12)], [(14, 14), (10, 3), (5, 12)]]
    logits = _peaked_logits(cells)
    pred = torch.tensor(cells, dtype=torch.float32)
    wrong = torch.tensor([[True, False, False], [True, False, False]])
    _, false = pseudo_labels(logits)
    result = density.ground_false_coverage(false, pred, wrong, mass=0.5)
    assert result.n == 2 and result.share == 0.5
    # P_F (Eq. 2) gives the same regions as H_F, and sums to 1.
    p_f = ground_false_distribution(false)
    torch.testing.assert_close(p_f.sum(dim=(-2, -1)), torch.ones(2, 3))
    assert density.ground_false_coverage(p_f, pred, wrong, mass=0.5) == result
    region = density.highest_density_region(p_f[:, 0], 0.5)
    assert result.uniform == pytest.approx(region.double().mean().item())
    # Half the mass of a Gaussian of sigma 2 lies in a disc of radius 2 sqrt(2 ln 2) = 2.35 cells (17 cells);
    # P_F is two such Gaussians, so about 35 of the 256 cells, up to the discretisation.
    assert 0.11 < result.uniform < 0.2


def test_ground_false_coverage_excludes_the_keypoint_itself():
    # One keypoint alone far from the others: its own Gaussian is not in its P_F, so it is not covered.
    cells = [[(2, 2), (12, 12), (13, 12)]]
    _, false = pseudo_labels(_peaked_logits(cells))
    pred = torch.tensor(cells, dtype=torch.float32)
    only_0 = torch.tensor([[True, False, False]])
    assert density.ground_false_coverage(false, pred, only_0, mass=0.9).share == 0.0
    only_1 = torch.tensor([[False, True, False]])  # keypoint 1 sits next to keypoint 2: covered
    assert density.ground_false_coverage(false, pred, only_1, mass=0.5).share == 1.0
    both = only_0 | only_1
    assert density.ground_false_coverage(false, pred, both, mass=0.5, keypoint=1).n == 1


def test_ground_false_discrimination_separates_confusions_from_correct_predictions():
    # Sample 0: keypoint 0 predicted on keypoint 1 (wrong, covered); sample 1: keypoint 0 correct, far from
    # the others (not covered). Keypoints 1 and 2 are correct and far apart, except that sample 0's
    # keypoint 1 shares its cell with the misplaced keypoint 0, so its P_F covers it: 1 of 5 correct.
    cells = [[(10, 3), (10, 3), (5, 12)], [(1, 14), (10, 3), (5, 12)]]
    _, false = pseudo_labels(_peaked_logits(cells))
    pred = torch.tensor(cells, dtype=torch.float32)
    wrong = torch.tensor([[True, False, False], [False, False, False]])
    visible = torch.ones(2, 3, dtype=torch.bool)
    result = density.ground_false_discrimination(false, pred, wrong, visible, mass=0.5)
    assert (result.wrong.n, result.wrong.share) == (1, 1.0)
    assert (result.correct.n, result.correct.share) == (5, 0.2)
    assert result.gap == pytest.approx(0.8)
    # each part is ground_false_coverage of its own set
    assert result.correct == density.ground_false_coverage(false, pred, visible & ~wrong, mass=0.5)


def test_ground_false_discrimination_of_a_plateau_is_zero():
    # A P_F that is flat over the whole map covers every prediction, right or wrong: no discrimination.
    flat = torch.ones(3, 4, 8, 8)
    pred = torch.rand(3, 4, 2, generator=torch.Generator().manual_seed(0)) * 7
    wrong = torch.tensor([[True, False, True, False]] * 3)
    result = density.ground_false_discrimination(flat, pred, wrong, torch.ones(3, 4, dtype=torch.bool), mass=1.0)
    assert result.wrong.share == result.correct.share == 1.0 and result.gap == 0.0


def test_ground_false_discrimination_ignores_invisible_and_checks_shapes():
    maps = torch.ones(1, 2, 4, 4)
    pred = torch.zeros(1, 2, 2)
    visible = torch.tensor([[True, False]])
    result = density.ground_false_discrimination(maps, pred, torch.tensor([[False, True]]), visible, mass=1.0)
    assert result.wrong.n == 0 and result.correct.n == 1
    with pytest.raises(ValueError, match="visible"):
        density.ground_false_discrimination(
            maps, pred, torch.tensor([[False, True]]), torch.ones(1, 3, dtype=torch.bool)
        )


def test_ground_false_coverage_from_labels_skips_empty_maps():
    # Maps built from true positions: keypoint 2 is invisible in sample 1, keypoints 1 and 2 in sample 0.
    gt = torch.tensor([[[2.0, 2.0], [9.0, 9.0], [4.0, 12.0]], [[3.0, 3.0], [12.0, 4.0], [0.0, 0.0]]])
    visible = torch.tensor([[True, False, False], [True, True, False]])
    heatmaps, _ = encode(gt, visible, 16, stride=1)
    false = ground_false_from_truth(heatmaps)
    pred = torch.tensor([[[9.0, 9.0], [0.0, 0.0], [0.0, 0.0]], [[12.0, 4.0], [0.0, 0.0], [0.0, 0.0]]])
    wrong = torch.tensor([[True, False, False], [True, False, False]])
    result = density.ground_false_coverage(false, pred, wrong, mass=0.5)
    # Sample 0 has no other visible keypoint for keypoint 0 (an all-zero map): left out.
    # Sample 1's keypoint 0 was predicted on keypoint 1's truth: covered.
    assert result.n == 1 and result.share == 1.0


def test_ground_false_coverage_grows_with_mass_and_sigma():
    torch.manual_seed(0)
    logits = torch.randn(8, 5, 16, 16)
    pred = torch.rand(8, 5, 2) * 15
    wrong = torch.ones(8, 5, dtype=torch.bool)
    narrow, wide = (pseudo_labels(logits, sigma)[1] for sigma in (2.0, 3.0))
    small, large = (density.ground_false_coverage(narrow, pred, wrong, mass=m) for m in (0.5, 0.9))
    assert large.uniform > small.uniform and large.share >= small.share
    assert density.ground_false_coverage(wide, pred, wrong, mass=0.5).uniform > small.uniform


def test_ground_false_coverage_bad_input():
    maps = torch.ones(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"must agree on \(B, K\)"):
        density.ground_false_coverage(maps, torch.zeros(2, 2, 2), torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="keypoint must be in 0..2"):
        density.ground_false_coverage(maps, torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool), keypoint=3)
    bad = maps.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="ground_false contains NaN or Inf"):
        density.ground_false_coverage(bad, torch.zeros(2, 3, 2), torch.ones(2, 3, dtype=torch.bool))


# --- twin_share ---------------------------------------------------------------


def test_twin_share_from_error_landing_on_bodies():
    k = BODY16.num_keypoints
    gt = torch.stack([torch.arange(k, dtype=torch.float32) * 4, torch.full((k,), 10.0)], dim=-1)[None]  # 4 cells apart
    pred = gt.clone()
    l_wrist, r_wrist, l_knee = BODY16.index("l_wrist"), BODY16.index("r_wrist"), BODY16.index("l_knee")
    pred[0, l_wrist] = gt[0, r_wrist]  # left wrist on its twin
    pred[0, r_wrist] = gt[0, l_knee]  # right wrist on another keypoint, not its twin
    pred[0, l_knee] = torch.tensor([30.0, 40.0])  # left knee on the background
    landing = error_landing(pred, gt, torch.ones(1, k), radius=1.6, map_size=64)
    result = density.twin_share(landing.confusion, BODY16.flip_pairs)
    assert result.n_wrong == 3
    assert result.overall == pytest.approx(1 / 3)
    assert result.among_on_other == pytest.approx(1 / 2)
    assert result.per_keypoint[l_wrist].item() == 1.0 and result.per_keypoint[r_wrist].item() == 0.0
    unpaired = BODY16.index("pelvis")
    assert math.isnan(result.per_keypoint[unpaired].item())  # no twin
    assert math.isnan(result.per_keypoint[BODY16.index("r_ankle")].item())  # a twin, but no errors


def test_twin_share_bad_input():
    with pytest.raises(ValueError, match=r"confusion must have shape \(K, K \+ 1\)"):
        density.twin_share(torch.zeros(3, 3, dtype=torch.long), [(0, 1)])
    with pytest.raises(ValueError, match="flip pair"):
        density.twin_share(torch.zeros(2, 3, dtype=torch.long), [(0, 2)])
    with pytest.raises(ValueError, match="non-negative"):
        density.twin_share(torch.tensor([[0, -1, 0], [0, 0, 0]]), [(0, 1)])
    none = density.twin_share(torch.zeros(2, 3, dtype=torch.long), [(0, 1)])
    assert none.n_wrong == 0 and math.isnan(none.overall) and math.isnan(none.among_on_other)


def test_twin_chance_hand_case_and_nearest_rule():
    gt = torch.tensor([[[2.0, 2.0], [10.0, 2.0], [10.0, 3.0]]])
    wrong = torch.tensor([[True, False, False]])
    # Keypoint 2 is a third, unpaired keypoint one cell below the twin: with radius 1 only the twin's own
    # cell is nearest to the twin; with radius 1.5 the cells around are shared out by nearness.
    chance = density.twin_chance(gt, torch.ones(1, 3), wrong, [(0, 1)], 1.0, 16)
    assert chance == pytest.approx(1 / 255)
    chance = density.twin_chance(gt, torch.ones(1, 3), wrong, [(0, 1)], 1.5, 16)
    # Cells within 1.5 of (10, 2): the 3 x 3 block around it (9 cells). The row y=3 (3 cells) is nearer
    # keypoint 2 at (10, 3), so 6 are the twin's. Cells wrong for keypoint 0: all but the 3 x 3 block
    # around (2, 2): 247.
    assert chance == pytest.approx(6 / 247)


def test_twin_chance_invisible_twin_counts_zero_and_bad_input():
    gt = torch.tensor([[[2.0, 2.0], [float("nan"), float("nan")]], [[2.0, 2.0], [10.0, 2.0]]])
    visible = torch.tensor([[True, False], [True, True]])
    wrong = torch.tensor([[True, False], [True, False]])
    chance = density.twin_chance(gt, visible, wrong, [(0, 1)], 1.0, 16)
    assert chance == pytest.approx((0 + 1 / 255) / 2)
    assert math.isnan(density.twin_chance(gt, visible, torch.zeros_like(wrong), [(0, 1)], 1.0, 16))
    with pytest.raises(ValueError, match="like gt"):
        density.twin_chance(gt, visible[:1], wrong, [(0, 1)], 1.0, 16)
    with pytest.raises(ValueError, match="radius must be finite and > 0"):
        density.twin_chance(gt, visible, wrong, [(0, 1)], 0.0, 16)


def test_position_density_of_true_positions():
    gt = torch.tensor([[[1.0, 1.0], [2.0, 2.0]], [[1.0, 1.0], [3.0, 0.0]]])
    visible = torch.tensor([[True, True], [True, False]])
    where = density.position_density(gt, visible, None, 4, sigma=0)
    assert where[1, 1].item() == pytest.approx(2 / 3) and where[2, 2].item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match=r"mask must have shape \(2, 2\)"):
        density.position_density(gt, visible[:1], None, 4)
