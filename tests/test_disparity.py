import pytest
import torch

from regdakit import disparity
from regdakit.disparity import (
    ground_false_disparity,
    ground_false_distribution,
    ground_false_from_truth,
    ground_false_loss,
    ground_truth_disparity,
    ground_truth_loss,
    pseudo_labels,
)
from regdakit.heatmaps import encode
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps


def test_ground_truth_is_encode_at_the_argmax():
    logits = torch.randn(3, 5, 16, 16)
    truth, _ = pseudo_labels(logits, sigma=2.0)
    idx = logits.flatten(2).argmax(-1)
    cells = torch.stack([idx % 16, idx // 16], -1).float()
    expected, _ = encode(cells, torch.ones(3, 5), 16, stride=1, sigma=2.0)
    torch.testing.assert_close(truth, expected)


def test_ground_false_is_clipped_sum_of_the_others_plain_loop():
    logits = torch.randn(2, 6, 12, 12)
    truth, false = pseudo_labels(logits)
    for b in range(2):
        for k in range(6):
            others = sum(truth[b, j] for j in range(6) if j != k)
            torch.testing.assert_close(false[b, k], others.clamp(0, 1), atol=1e-6, rtol=0)


def test_ground_false_clips_overlaps_hand_case():
    truth = torch.zeros(1, 3, 1, 3)
    truth[0, 0, 0] = torch.tensor([1.0, 0.5, 0.0])
    truth[0, 1, 0] = torch.tensor([0.8, 0.7, 0.0])
    truth[0, 2, 0] = torch.tensor([0.0, 0.0, 1.0])
    false = ground_false_from_truth(truth)
    torch.testing.assert_close(false[0, 0, 0], torch.tensor([0.8, 0.7, 1.0]))
    torch.testing.assert_close(false[0, 2, 0], torch.tensor([1.0, 1.0, 0.0]))  # 1.8 and 1.2 clip to 1


def test_ground_false_excludes_own_keypoint_when_apart():
    logits = torch.full((1, 3, 32, 32), -1.0)
    logits[0, 0, 8, 8] = logits[0, 1, 8, 24] = logits[0, 2, 24, 15] = 1.0
    truth, false = pseudo_labels(logits)
    assert false[0, 0, 8, 8] == 0 and false[0, 0, 8, 24] == 1 and false[0, 0, 24, 15] == 1
    p_f = ground_false_distribution(false)
    torch.testing.assert_close(p_f.sum(dim=(-2, -1)), torch.ones(1, 3))
    # P_F splits its mass equally between the two other keypoints (equal discs)
    assert p_f[0, 0, :16].sum().item() == pytest.approx(p_f[0, 0, 16:].sum().item(), abs=1e-6)


def test_p_f_sums_to_one_where_defined_and_zero_for_single_keypoint():
    _, false = pseudo_labels(torch.randn(4, 7, 10, 10))
    torch.testing.assert_close(ground_false_distribution(false).sum(dim=(-2, -1)), torch.ones(4, 7))
    _, single = pseudo_labels(torch.randn(2, 1, 10, 10))
    assert ground_false_distribution(single).abs().sum() == 0


def test_pseudo_labels_carry_no_gradient_and_ignore_level():
    logits = torch.randn(2, 3, 8, 8, requires_grad=True)
    truth, false = pseudo_labels(logits)
    assert not truth.requires_grad and not false.requires_grad
    # all logits <= 0: the reference would send the label to (0, 0); we keep the argmax
    shifted, _ = pseudo_labels(logits.detach() - 100.0)
    torch.testing.assert_close(shifted, truth)


def test_losses_are_kl_against_detached_pseudo_labels():
    main = torch.randn(2, 4, 8, 8, requires_grad=True)
    adv = torch.randn(2, 4, 8, 8, requires_grad=True)
    truth, false = pseudo_labels(main)
    torch.testing.assert_close(ground_truth_loss(adv, main), kl_heatmap_loss(adv, truth))
    torch.testing.assert_close(ground_false_loss(adv, main), kl_heatmap_loss(adv, false))
    (ground_truth_loss(adv, main) + ground_false_loss(adv, main)).backward()
    assert main.grad is None  # the main head is never trained by L_T or L_F
    assert adv.grad is not None and adv.grad.abs().sum() > 0


def test_the_losses_of_main_logits_are_the_disparities_of_its_pseudo_labels():
    main = torch.randn(3, 4, 8, 8)
    adv = torch.randn(3, 4, 8, 8)
    weight = torch.rand(3, 4)
    truth, false = pseudo_labels(main, sigma=1.5)
    for w in (None, weight):
        assert torch.equal(ground_truth_loss(adv, main, 1.5, w), ground_truth_disparity(adv, truth, w))
        assert torch.equal(ground_false_loss(adv, main, 1.5, w), ground_false_disparity(adv, false, w))


def test_disparities_weight_each_keypoint_and_average_over_b_times_k():
    adv = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    truth, false = pseudo_labels(torch.randn(2, 3, 8, 8, dtype=torch.float64))
    weight = torch.tensor([[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]], dtype=torch.float64)
    for loss, label in ((ground_truth_disparity, truth), (ground_false_disparity, false)):
        per_map = [
            float(kl_heatmap_loss(adv[b : b + 1, k : k + 1], label[b : b + 1, k : k + 1]))
            for b in range(2)
            for k in range(3)
        ]
        expected = sum(w * kl for w, kl in zip(weight.flatten().tolist(), per_map, strict=True)) / 6
        assert loss(adv, label, weight).item() == pytest.approx(expected, rel=1e-12)


def test_l_f_of_a_single_keypoint_is_exactly_zero_with_zero_gradient():
    # One keypoint has no other keypoint to be confused with: H_F is all zero.
    adv = torch.randn(2, 1, 8, 8, requires_grad=True)
    _, false = pseudo_labels(torch.randn(2, 1, 8, 8))
    loss = ground_false_disparity(adv, false)
    loss.backward()
    assert loss.item() == 0.0 and adv.grad.abs().max() == 0


#: Table 2's objectives: (function, disparity it negates or not, the label it reads).
TABLE2 = {
    "minimise_false": (disparity.minimise_false, +1, "false"),
    "minimise_truth": (disparity.minimise_truth, +1, "truth"),
    "maximise_truth": (disparity.maximise_truth, -1, "truth"),
    "maximise_false": (disparity.maximise_false, -1, "false"),
}


@pytest.mark.parametrize("name", sorted(TABLE2))
def test_table2_objectives_are_plus_or_minus_one_disparity_of_one_label(name):
    objective, sign, reads = TABLE2[name]
    adv = torch.randn(2, 4, 8, 8)
    truth, false = pseudo_labels(torch.randn(2, 4, 8, 8))
    disparity_of = {"truth": ground_truth_disparity(adv, truth), "false": ground_false_disparity(adv, false)}
    assert torch.equal(objective(adv, truth, false), sign * disparity_of[reads])
    # The other label is not read: replacing it by anything changes nothing.
    junk = torch.rand(2, 4, 8, 8)
    args = (adv, truth, junk) if reads == "truth" else (adv, junk, false)
    assert torch.equal(objective(*args), objective(adv, truth, false))


def test_maximise_truth_l1_is_minus_the_l1_distance_to_the_normalised_ground_truth_plain_loop():
    adv = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    truth, false = pseudo_labels(torch.randn(2, 3, 6, 6, dtype=torch.float64))
    p = normalize_heatmaps(truth)
    per_map = [
        float((torch.softmax(adv[b, k].flatten(), 0) - p[b, k].flatten()).abs().sum())
        for b in range(2)
        for k in range(3)
    ]
    assert disparity.maximise_truth_l1(adv, truth, false).item() == pytest.approx(-sum(per_map) / 6, rel=1e-12)
    assert torch.equal(
        disparity.maximise_truth_l1(adv, truth, torch.rand(2, 3, 6, 6)), disparity.maximise_truth_l1(adv, truth, false)
    )


def test_minimising_l_f_moves_adversary_onto_other_keypoints():
    main = torch.full((1, 2, 16, 16), -1.0)
    main[0, 0, 3, 3] = main[0, 1, 12, 12] = 1.0
    adv = torch.zeros(1, 2, 16, 16, requires_grad=True)
    opt = torch.optim.SGD([adv], lr=50.0)
    for _ in range(50):
        opt.zero_grad()
        ground_false_loss(adv, main).backward()
        opt.step()
    idx = adv.detach().flatten(2).argmax(-1)[0]
    assert divmod(idx[0].item(), 16) == (12, 12) and divmod(idx[1].item(), 16) == (3, 3)


def test_bad_input():
    with pytest.raises(ValueError, match=r"adv_logits \(1, 2, 8, 8\) and main_logits \(1, 3, 8, 8\)"):
        ground_truth_loss(torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8))
    with pytest.raises(ValueError, match="sigma"):
        pseudo_labels(torch.zeros(1, 2, 8, 8), sigma=0.0)
    with pytest.raises(ValueError, match=r"logits must have shape \(B, K, H, W\), got \(2, 8, 8\)"):
        pseudo_labels(torch.zeros(2, 8, 8))


@pytest.mark.parametrize(
    "shape, empty", [((0, 2, 8, 8), "B = 0"), ((1, 0, 8, 8), "K = 0"), ((1, 2, 0, 0), "H = 0, W = 0")]
)
def test_an_empty_batch_or_map_is_a_clear_error(shape, empty):
    x = torch.zeros(shape)
    for call in (pseudo_labels, ground_truth_loss, ground_false_loss):
        args = (x,) if call is pseudo_labels else (x, x)
        with pytest.raises(ValueError, match=rf"logits has shape .*: {empty}; pseudo-labels need"):
            call(*args)
