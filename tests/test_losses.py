import math

import pytest
import torch

from regdakit.losses import (
    heatmap_discrepancy,
    kl_heatmap_loss,
    kl_per_keypoint,
    l1_heatmap_distance,
    mse_heatmap_loss,
    normalize_heatmaps,
    spatial_softmax,
)


def test_mse_hand_case_and_weight():
    pred = torch.zeros(1, 2, 1, 2)
    target = torch.tensor([[[[1.0, 0.0]], [[2.0, 2.0]]]])
    # 0.5 * (1 + 0 + 4 + 4) / 4 entries
    assert mse_heatmap_loss(pred, target).item() == pytest.approx(9 / 8)
    assert mse_heatmap_loss(pred, target, torch.tensor([[1.0, 0.0]])).item() == pytest.approx(1 / 8)


def test_kl_hand_computed_two_cells():
    logits = torch.log(torch.tensor([0.25, 0.75])).reshape(1, 1, 1, 2)
    target = torch.tensor([3.0, 1.0]).reshape(1, 1, 1, 2)  # normalises to (0.75, 0.25)
    expected = 0.75 * math.log(0.75 / 0.25) + 0.25 * math.log(0.25 / 0.75)
    assert kl_heatmap_loss(logits, target).item() == pytest.approx(expected, rel=1e-6)


def test_kl_is_zero_exactly_when_softmax_equals_normalised_target():
    target = torch.rand(2, 3, 5, 5) + 0.1
    q = normalize_heatmaps(target)
    logits = torch.log(q) + 7.0  # shift invariance of softmax
    assert kl_per_keypoint(logits, target).abs().max() < 1e-5
    other = logits.clone()
    other[0, 0, 0, 0] += 1.0
    kl = kl_per_keypoint(other, target)
    assert kl[0, 0] > 1e-4 and kl[1:].abs().max() < 1e-5 and (kl >= -1e-6).all()


def test_kl_matches_torch_kl_div_where_target_positive():
    logits = torch.randn(3, 4, 6, 6, dtype=torch.float64)
    target = torch.rand(3, 4, 6, 6, dtype=torch.float64) + 0.01
    q = target / target.sum(dim=(-2, -1), keepdim=True)
    log_p = torch.log_softmax(logits.flatten(2), -1)
    ref = torch.nn.functional.kl_div(log_p, q.flatten(2), reduction="none").sum(-1).mean()
    torch.testing.assert_close(kl_heatmap_loss(logits, target), ref)


def test_kl_all_zero_target_is_finite_with_zero_gradient():
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.rand(2, 3, 4, 4)
    target[1, 2] = 0.0  # an invisible keypoint
    weight = torch.ones(2, 3)
    weight[1, 2] = 0.0
    loss = kl_heatmap_loss(logits, target, weight)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert logits.grad[1, 2].abs().max() == 0
    # also without a weight: the all-zero map contributes exactly 0
    assert kl_per_keypoint(logits, target)[1, 2].item() == 0.0


def test_kl_weight_scales_and_mean_is_over_b_times_k():
    logits = torch.randn(2, 2, 3, 3)
    target = torch.rand(2, 2, 3, 3)
    per = kl_per_keypoint(logits, target)
    w = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    expected = (per[0, 0] + 2 * per[1, 0]) / 4
    torch.testing.assert_close(kl_heatmap_loss(logits, target, w), expected)


def test_kl_epsilon_smooths_target():
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.zeros(1, 1, 2, 2)
    assert kl_heatmap_loss(logits, target, epsilon=1e-7).item() == pytest.approx(0.0, abs=1e-6)


def test_kl_bf16_logits_computed_in_fp32():
    logits = torch.randn(1, 2, 8, 8)
    target = torch.rand(1, 2, 8, 8)
    low = kl_per_keypoint(logits.bfloat16(), target)
    assert low.dtype == torch.float32
    torch.testing.assert_close(low, kl_per_keypoint(logits.bfloat16().float(), target))


def test_spatial_softmax_is_a_distribution_per_map_over_its_cells():
    logits = torch.randn(2, 3, 4, 5)
    probs = spatial_softmax(logits)
    assert probs.shape == logits.shape and probs.dtype == logits.dtype
    torch.testing.assert_close(probs.sum(dim=(-2, -1)), torch.ones(2, 3))
    # Softmax over the 20 cells of a map, not over a row or over the keypoints.
    torch.testing.assert_close(probs[1, 2], torch.softmax(logits[1, 2].flatten(), 0).reshape(4, 5))


def test_l1_distance_sums_cells_and_averages_maps_plain_loop():
    p = normalize_heatmaps(torch.rand(2, 3, 4, 4, dtype=torch.float64))
    q = normalize_heatmaps(torch.rand(2, 3, 4, 4, dtype=torch.float64))
    per_map = [float((p[b, k] - q[b, k]).abs().sum()) for b in range(2) for k in range(3)]
    assert l1_heatmap_distance(p, q).item() == pytest.approx(sum(per_map) / 6, rel=1e-12)
    assert l1_heatmap_distance(p, p).item() == 0.0
    disjoint = torch.zeros(1, 1, 1, 2, dtype=torch.float64)
    other = disjoint.clone()
    disjoint[..., 0] = other[..., 1] = 1.0
    assert l1_heatmap_distance(disjoint, other).item() == 2.0  # no overlap: the maximum


def test_heatmap_discrepancy_is_the_l1_distance_of_both_spatial_softmaxes():
    a, b = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert torch.equal(heatmap_discrepancy(a, b), l1_heatmap_distance(spatial_softmax(a), spatial_softmax(b)))
    # -inf logits are allowed: a cell with no mass (value checks would otherwise reject them).
    peak = torch.full((1, 1, 1, 2), -float("inf"))
    peak[..., 0] = 0.0
    assert heatmap_discrepancy(peak, torch.zeros(1, 1, 1, 2)).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "call, match",
    [
        (
            lambda: kl_heatmap_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5)),
            r"logits \(1, 2, 4, 4\) and target \(1, 2, 4, 5\)",
        ),
        (lambda: kl_heatmap_loss(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)), r"logits must have shape \(B, K, H, W\)"),
        (
            lambda: kl_heatmap_loss(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 3)),
            r"weight \(1, 3\) and pred \(1, 2, 4, 4\)",
        ),
        (
            lambda: mse_heatmap_loss(torch.zeros(1, 2, 4, 4), torch.full((1, 2, 4, 4), float("nan"))),
            "target contains NaN",
        ),
        (
            lambda: kl_heatmap_loss(torch.full((1, 1, 2, 2), float("nan")), torch.zeros(1, 1, 2, 2)),
            "logits contains NaN",
        ),
        (
            lambda: l1_heatmap_distance(torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 4, 4)),
            r"p \(1, 2, 4, 4\) and q \(1, 3, 4, 4\) must have the same shape",
        ),
        (lambda: l1_heatmap_distance(torch.zeros(2, 4, 4), torch.zeros(2, 4, 4)), r"p must have shape \(B, K, H, W\)"),
        (
            lambda: heatmap_discrepancy(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5)),
            r"logits_1 \(1, 2, 4, 4\) and logits_2 \(1, 2, 4, 5\) must match",
        ),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("loss", [mse_heatmap_loss, kl_heatmap_loss, kl_per_keypoint])
@pytest.mark.parametrize(
    "shape, empty",
    [((0, 3, 8, 8), "B = 0"), ((2, 0, 8, 8), "K = 0"), ((2, 3, 0, 0), "H = 0, W = 0"), ((2, 3, 4, 0), "W = 0")],
)
def test_an_empty_batch_or_map_is_a_clear_error_not_nan(loss, shape, empty):
    # A mean over no entries would be NaN (MSE) and the KL's reshape would fail with a raw message.
    x = torch.zeros(shape)
    name = "pred" if loss is mse_heatmap_loss else "logits"
    with pytest.raises(ValueError, match=rf"{name} has shape \({', '.join(map(str, shape))}\): {empty}; "):
        loss(x, x)
