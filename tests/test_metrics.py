import math

import pytest
import torch

from regdakit.keypoints import BODY16, HAND21
from regdakit.metrics import error_landing, pck, pck_threshold


def test_pck_hand_case_with_invisible_and_threshold_strict():
    gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]], [[0.0, 0.0], [10.0, 0.0], [float("nan"), 0.0]]])
    pred = torch.tensor([[[3.0, 0.0], [10.0, 3.2], [20.0, 9.0]], [[0.0, 1.0], [30.0, 0.0], [0.0, 0.0]]])
    vis = torch.tensor([[1, 1, 1], [1, 1, 0]])
    r = pck(pred, gt, vis, threshold=3.2)
    # keypoint 0: both correct; keypoint 1: 3.2 is not < 3.2, and 20 off; keypoint 2: one valid, wrong
    assert r.per_keypoint.tolist() == [1.0, 0.0, 0.0]
    assert r.all == pytest.approx(2 / 5)
    assert r.valid.sum() == 5 and r.per_group == {}


def test_pck_nan_for_keypoint_without_valid_pair():
    r = pck(torch.zeros(2, 2, 2), torch.zeros(2, 2, 2), torch.tensor([[1, 0], [1, 0]]))
    assert r.per_keypoint[0] == 1.0 and math.isnan(r.per_keypoint[1].item())
    assert r.all == 1.0


def test_pck_groups_pool_pairs_and_all_uses_skeleton_set():
    b = 4
    gt = torch.rand(b, 16, 2) * 60
    pred = gt.clone()
    pred[:, BODY16.index("head_top")] += 20  # head is not in "all" for bodies
    pred[:2, BODY16.index("l_knee")] += 20
    vis = torch.ones(b, 16)
    r = pck(pred, gt, vis, skeleton=BODY16)
    assert r.per_group["Knee"] == pytest.approx(6 / 8)
    assert r.per_group["Shoulder"] == 1.0
    assert r.all == pytest.approx(1 - 2 / 48)


def test_pck_equals_plain_loop():
    gt = torch.rand(5, 21, 2) * 64
    pred = gt + torch.randn(5, 21, 2) * 3
    vis = torch.rand(5, 21) > 0.2
    r = pck(pred, gt, vis, skeleton=HAND21)
    for group, members in HAND21.groups.items():
        hits = total = 0
        for i in range(5):
            for k in members:
                if vis[i, k]:
                    total += 1
                    hits += math.dist(pred[i, k].tolist(), gt[i, k].tolist()) < 3.2
        assert r.per_group[group] == pytest.approx(hits / total)


def test_pck_threshold_default_is_reference_pck_005():
    assert pck_threshold(64) == 3.2 and pck_threshold(256) == 12.8 and pck_threshold(64, 0.1) == 6.4
    with pytest.raises(ValueError, match="alpha"):
        pck_threshold(64, -0.05)


def test_error_landing_hand_case():
    gt = torch.tensor([[[10.0, 10.0], [30.0, 10.0], [50.0, 50.0]]])
    pred = torch.tensor([[[30.5, 11.0], [30.0, 12.0], [5.0, 60.0]]])
    r = error_landing(pred, gt, torch.ones(1, 3), radius=3.2, map_size=64)
    assert r.landing.tolist() == [[1, -1, 3]]
    assert r.n_wrong == 2 and r.on_other == 0.5 and r.on_background == 0.5
    expected = torch.zeros(3, 4, dtype=torch.long)
    expected[0, 1] = expected[2, 3] = 1
    assert torch.equal(r.confusion, expected)


def test_error_landing_ignores_invisible_targets_and_picks_nearest():
    gt = torch.tensor([[[10.0, 10.0], [20.0, 10.0], [22.0, 10.0], [21.0, 30.0]]])
    pred = torch.tensor([[[21.5, 10.0], [20.0, 10.0], [22.0, 10.0], [21.0, 10.0]]])
    vis = torch.tensor([[1, 1, 0, 1]])
    r = error_landing(pred, gt, vis, radius=3.0)
    # kp 0 is near kp 1 (1.5) and kp 2 (0.5), but kp 2 is invisible -> lands on 1
    # kp 3 is 1.0 from kp 1 and 1.0 from kp 2 (invisible) -> lands on 1
    assert r.landing.tolist() == [[1, -1, -2, 1]]


def test_error_landing_chance_hand_computed():
    # one wrong prediction of keypoint 0 on a 10 x 10 map; keypoint 1 at the centre.
    gt = torch.tensor([[[0.0, 0.0], [5.0, 5.0]]])
    pred = torch.tensor([[[9.0, 9.0], [5.0, 5.0]]])
    r = error_landing(pred, gt, torch.ones(1, 2), radius=1.5, map_size=10)
    # cells within 1.5 of (5, 5): the 3x3 block = 9; within 1.5 of (0, 0): 4 cells (corner)
    assert r.chance == pytest.approx(9 / (100 - 4))
    assert r.on_other == 0.0 and r.ratio_to_chance == 0.0


def test_error_landing_equals_plain_loop():
    g = torch.Generator().manual_seed(3)
    gt = torch.rand(6, 8, 2, generator=g) * 32
    pred = torch.where(
        torch.rand(6, 8, 1, generator=g) < 0.5,
        gt[:, torch.randperm(8, generator=g)],
        torch.rand(6, 8, 2, generator=g) * 32,
    )
    vis = torch.rand(6, 8, generator=g) > 0.2
    r = error_landing(pred, gt, vis, radius=2.5, map_size=32)
    cells = [(x, y) for y in range(32) for x in range(32)]
    chance_sum = wrong = 0
    for i in range(6):
        for k in range(8):
            if not vis[i, k]:
                assert r.landing[i, k] == -2
                continue
            if math.dist(pred[i, k].tolist(), gt[i, k].tolist()) < 2.5:
                assert r.landing[i, k] == -1
                continue
            wrong += 1
            others = [(math.dist(pred[i, k].tolist(), gt[i, j].tolist()), j) for j in range(8) if j != k and vis[i, j]]
            near = min((o for o in others if o[0] < 2.5), default=None)
            assert r.landing[i, k] == (near[1] if near else 8)
            allowed = [c for c in cells if math.dist(c, gt[i, k].tolist()) >= 2.5]
            hit = [
                c
                for c in allowed
                if any(math.dist(c, gt[i, j].tolist()) < 2.5 for j in range(8) if j != k and vis[i, j])
            ]
            chance_sum += len(hit) / len(allowed)
    assert r.n_wrong == wrong
    assert r.chance == pytest.approx(chance_sum / wrong, rel=1e-9)
    assert r.confusion.sum() == wrong


@pytest.mark.parametrize(
    "call, err, match",
    [
        (
            lambda: pck(torch.zeros(2, 3, 2), torch.zeros(2, 4, 2), torch.ones(2, 3)),
            ValueError,
            r"gt \(2, 4, 2\) and pred \(2, 3, 2\)",
        ),
        (
            lambda: pck(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 3), threshold=-1),
            ValueError,
            "threshold must be finite and > 0",
        ),
        (lambda: pck(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 3), skeleton=HAND21), ValueError, "K=3"),
        (
            lambda: pck(torch.full((1, 1, 2), float("nan")), torch.zeros(1, 1, 2), torch.ones(1, 1)),
            ValueError,
            "pred contains NaN",
        ),
        (
            lambda: pck(torch.zeros(1, 1, 2), torch.full((1, 1, 2), float("nan")), torch.ones(1, 1)),
            ValueError,
            "gt contains NaN",
        ),
        (
            lambda: error_landing(torch.zeros(1, 2, 3), torch.zeros(1, 2, 3), torch.ones(1, 2)),
            ValueError,
            r"pred must have shape \(B, K, 2\)",
        ),
        (
            lambda: error_landing(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), torch.ones(1, 2), radius=float("inf")),
            ValueError,
            "radius",
        ),
        (
            lambda: pck(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), [[1, 1]]),
            TypeError,
            "visible must be a torch.Tensor",
        ),
    ],
)
def test_bad_input(call, err, match):
    with pytest.raises(err, match=match):
        call()
