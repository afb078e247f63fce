import pytest
import torch

import regdakit.toy as toy
from regdakit.disparity import pseudo_labels
from regdakit.losses import normalize_heatmaps
from regdakit.methods import dd_unbounded, mcd, regda


def test_adversary_gradient_is_q_minus_p():
    # d/dz KL(p || softmax z) = softmax(z) - p: the one line notebook 03 builds on
    main = torch.randn(1, 2, 1, 16, dtype=torch.float64)
    adv = torch.randn(1, 2, 1, 16, dtype=torch.float64, requires_grad=True)
    toy.adversary_loss("min_truth", adv, main).backward()
    truth, _ = pseudo_labels(main)
    p = truth / truth.sum(-1, keepdim=True)
    q = torch.softmax(adv.detach(), -1)
    torch.testing.assert_close(adv.grad, (q - p) / 2)  # mean over K = 2


#: Notebook 03's adversary objectives -> the trainer's function (method, 0 for step B or 1 for step C).
TRAINER = {"min_false": ("regda", 0), "min_truth": ("regda", 1), "max_kl": ("dd_unbounded", 0)}
PAIRS = {"regda": regda.OBJECTIVES["regda"], "dd_unbounded": dd_unbounded.OBJECTIVES}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_toys_objectives_are_the_trainers_on_the_same_logits(dtype):
    """Notebook 03 teaches what the trainer optimises: same values, same gradients, bit for bit."""
    main = torch.randn(2, 3, 8, 8, dtype=dtype)
    adv = torch.randn(2, 3, 8, 8, dtype=dtype, requires_grad=True)
    truth, false = pseudo_labels(main)
    assert set(TRAINER) | {"max_l1"} == set(toy.OBJECTIVES)
    for name, (variant, step) in TRAINER.items():
        toy_value = toy.adversary_loss(name, adv, main)
        trainer_value = PAIRS[variant][step](adv, truth, false)
        torch.testing.assert_close(toy_value, trainer_value, rtol=0, atol=0, msg=name)
        (toy_grad,) = torch.autograd.grad(toy_value, adv)
        (trainer_grad,) = torch.autograd.grad(trainer_value, adv)
        torch.testing.assert_close(toy_grad, trainer_grad, rtol=0, atol=0, msg=name)
    # max_l1 is MCD's discrepancy taken to H(ŷ): against a head f whose softmax is the normalised H(ŷ)
    # (log of it, -inf where it has no mass) the two agree up to the rounding of exp(log p).
    head_f = torch.log(normalize_heatmaps(truth))
    torch.testing.assert_close(toy.adversary_loss("max_l1", adv, main), -mcd.heatmap_discrepancy(adv, head_f))


def test_maximising_disparity_moves_variance_not_mean():
    for objective in ("max_kl", "max_l1"):
        t = toy.adversary_trajectory(objective, steps=300)
        assert abs(float(t.mean[-1] - t.mean[0])) < 1.5, objective
        assert float(t.std[-1]) < 0.5 * float(t.std[0]), objective  # variance collapses
        assert float(t.mass_near_other[-1]) < 0.01, objective


def test_regda_minimisations_move_the_mean_there_and_back():
    t = toy.adversary_trajectory([("min_false", 150), ("min_truth", 150)])
    assert len(t.steps) == 301
    assert abs(float(t.mean[150]) - t.other) < 2 and float(t.mass_near_other[150]) > 0.8
    assert abs(float(t.mean[-1]) - t.own) < 1 and float(t.mass_near_own[-1]) > 0.8


def test_trajectory_is_deterministic_and_distributions_sum_to_one():
    a = toy.adversary_trajectory("max_kl", steps=20)
    b = toy.adversary_trajectory("max_kl", steps=20)
    assert torch.equal(a.probs, b.probs)
    torch.testing.assert_close(a.probs.sum(-1), torch.ones(21, dtype=torch.float64))


def test_trajectory_bad_input():
    with pytest.raises(ValueError, match="objective must be one of"):
        toy.adversary_trajectory("maximise")
    with pytest.raises(ValueError, match="distinct cells"):
        toy.adversary_trajectory("max_kl", own=3, other=3)
    with pytest.raises(ValueError, match="steps must be >= 0"):
        toy.adversary_trajectory("max_kl", steps=-1)


def test_spatial_spread_hand_case():
    logits = torch.full((1, 2, 3, 3), -1e4)
    logits[0, 0, 1, 1] = 0.0  # a point mass: spread 0
    logits[0, 1, 0, 0] = logits[0, 1, 0, 2] = 0.0  # two cells 2 apart: std 1
    torch.testing.assert_close(toy.spatial_spread(logits), torch.tensor([[0.0, 1.0]]))


def test_feature_toy_heads_small():
    data = toy.make_feature_toy(n=8, num_keypoints=3, size=24, channels=8, seed=1)
    assert data.features.shape == (8, 8, 24, 24) and data.keypoints.shape == (8, 3, 2)
    cos = data.embeddings @ data.embeddings.T
    torch.testing.assert_close(
        cos, 0.6 * torch.ones(3, 3) + 0.4 * torch.eye(3), atol=1e-5, rtol=0
    )  # default similarity 0.6
    main = toy.train_main_head(data, steps=60)
    agree = toy.adversary_landing(data, main, main)
    assert agree.n_wrong == 0
    adv = toy.train_adversary_head(data, main, "min_false", steps=60)
    moved = toy.adversary_landing(data, main, adv)
    assert moved.n_wrong >= 20 and moved.on_other > 3 * moved.chance


def test_trajectory_figure_updates_in_place():
    t = toy.adversary_trajectory("min_false", steps=10)
    fig = toy.plot_trajectory(t, 0)
    line = [ln for ln in fig.axes[0].lines if ln.get_gid() == "adversary"][0]
    toy.update_trajectory_plot(fig, t, 10)
    torch.testing.assert_close(torch.as_tensor(line.get_ydata()), t.probs[10])
    assert "step 10" in fig.axes[0].get_title()


def test_trajectory_explorer_slider_changes_image():
    from regdakit.widgets import TrajectoryExplorer

    trajs = {
        "max_kl": toy.adversary_trajectory("max_kl", steps=5),
        "min_false": toy.adversary_trajectory("min_false", steps=8),
    }
    ex = TrajectoryExplorer(trajs)
    before = ex.view.image.value
    ex.step.value = 5
    after_step = ex.view.image.value
    assert after_step != before
    ex.objective.value = "min_false"
    assert ex.step.max == 8 and ex.view.image.value != after_step
    with pytest.raises(ValueError, match="at least one"):
        TrajectoryExplorer({})
