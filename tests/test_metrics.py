import math

import pytest
import torch

from regdakit.keypoints import BODY16, HAND21
from regdakit.metrics import error_landing, inside_keypoint_box, landing_chance, pck, pck_threshold


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


# --- chance models of where errors land (landing_chance) -------------------------------------------------


def test_landing_chance_box_hand_computed():
    # Two keypoints on a line: the box is the 5 cells (0..4, 0). Keypoint 0's wrong cells are the 3 at
    # x >= 2 (radius 1.5), 2 of which (x = 3, 4) lie within 1.5 of keypoint 1; the same by symmetry for 1.
    gt = torch.tensor([[[0.0, 0.0], [4.0, 0.0]]])
    pred = torch.tensor([[[0.0, 9.0], [4.0, 9.0]]])
    r = landing_chance(pred, gt, torch.ones(1, 2), radius=1.5, map_size=10)
    assert r.n_wrong == 2 and r.on_other == 0.0
    assert r.uniform_box == pytest.approx(2 / 3)
    # the whole map: 4 cells lie within 1.5 of (0, 0) (the corner), 6 within 1.5 of (4, 0) (the edge);
    # keypoint 0 hits 6 of its 96 wrong cells, keypoint 1 hits 4 of its 94
    assert r.uniform_image == pytest.approx((6 / 96 + 4 / 94) / 2)
    assert r.strongest == r.uniform_box and r.ratio == 0.0


def test_landing_chance_rotation_hand_computed():
    # Error of length 10 around (0, 0); keypoint 1 at (10, 0) is hit when the turned error is within
    # 2 asin(3 / 20) = 17.26 degrees of it: 35 of 360 whole-degree directions.
    gt = torch.tensor([[[0.0, 0.0], [10.0, 0.0]]])
    pred = torch.tensor([[[0.0, -10.0], [10.0, 0.0]]])
    assert landing_chance(pred, gt, torch.ones(1, 2), radius=3.0, map_size=16).rotated_errors == pytest.approx(35 / 360)
    # a fine quadrature tends to the exact probability
    fine = landing_chance(pred, gt, torch.ones(1, 2), radius=3.0, map_size=16, angles=36000).rotated_errors
    assert fine == pytest.approx(2 * math.asin(0.15) / math.pi, abs=1e-4)


def _scattered(g: torch.Generator, b: int, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(gt, pred)``, each ``(b, k, 2)``: about half the predictions on another keypoint, half anywhere."""
    gt = torch.rand(b, k, 2, generator=g) * 12 + 4
    pred = torch.where(
        torch.rand(b, k, 1, generator=g) < 0.5,
        gt[:, torch.randperm(k, generator=g)],
        torch.rand(b, k, 2, generator=g) * 20,
    )
    return gt, pred


def test_landing_chance_equals_plain_loops():
    g = torch.Generator().manual_seed(5)
    gt, pred = _scattered(g, 5, 6)
    vis = torch.rand(5, 6, generator=g) > 0.2
    radius, size, angles = 2.0, 20, 72
    r = landing_chance(pred, gt, vis, radius, map_size=size, angles=angles)
    box_shares, turned_shares = [], []
    for i in range(5):
        seen = [gt[i, j].tolist() for j in range(6) if vis[i, j]]
        xs, ys = [p[0] for p in seen], [p[1] for p in seen]
        box = [(x, y) for y in range(size) for x in range(size) if min(xs) <= x <= max(xs) and min(ys) <= y <= max(ys)]
        for k in range(6):
            own = gt[i, k].tolist()
            if not vis[i, k] or math.dist(pred[i, k].tolist(), own) < radius:
                continue
            others = [gt[i, j].tolist() for j in range(6) if j != k and vis[i, j]]
            allowed = [c for c in box if math.dist(c, own) >= radius]
            if allowed:
                box_shares.append(sum(any(math.dist(c, o) < radius for o in others) for c in allowed) / len(allowed))
            ex, ey = pred[i, k, 0].item() - own[0], pred[i, k, 1].item() - own[1]
            hits = 0
            for a in range(angles):
                t = 2 * math.pi * a / angles
                moved = (own[0] + math.cos(t) * ex - math.sin(t) * ey, own[1] + math.sin(t) * ex + math.cos(t) * ey)
                hits += any(math.dist(moved, o) < radius for o in others)
            turned_shares.append(hits / angles)
    assert r.n_wrong == len(turned_shares) > 0
    assert r.uniform_box == pytest.approx(sum(box_shares) / len(box_shares), rel=1e-6)
    assert r.rotated_errors == pytest.approx(sum(turned_shares) / len(turned_shares), rel=1e-6)
    assert r.uniform_image == error_landing(pred, gt, vis, radius, map_size=size).chance


def test_landing_chance_nothing_wrong_and_bad_angles():
    gt = torch.tensor([[[1.0, 1.0], [5.0, 5.0]]])
    r = landing_chance(gt.clone(), gt, torch.ones(1, 2), radius=1.0, map_size=8)
    assert r.n_wrong == 0 and all(math.isnan(v) for v in (r.on_other, r.uniform_box, r.rotated_errors, r.strongest))
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="angles must be a positive int"):
            landing_chance(gt, gt, torch.ones(1, 2), map_size=8, angles=bad)


def test_inside_keypoint_box_hand_computed():
    # box of the visible keypoints (0, 0)..(4, 2); keypoint 2 is invisible and does not widen it
    gt = torch.tensor([[[0.0, 0.0], [4.0, 2.0], [float("nan"), float("nan")]]])
    vis = torch.tensor([[True, True, False]])
    pred = torch.tensor([[[4.0, 2.0], [4.5, 1.0], [9.0, 9.0]]])
    assert inside_keypoint_box(pred, gt, vis).tolist() == [[True, False, False]]  # edges count as inside
    assert inside_keypoint_box(pred, gt, vis, margin=0.5).tolist() == [[True, True, False]]
    assert not inside_keypoint_box(pred, gt, torch.zeros(1, 3, dtype=torch.bool)).any()  # no visible keypoint
    with pytest.raises(ValueError, match="margin"):
        inside_keypoint_box(pred, gt, vis, margin=-1.0)


def test_landing_chance_among_a_subset_equals_the_subset_alone():
    # Restricting to some wrong predictions gives the measured share and the chance levels of those only:
    # the same numbers as marking the others correct (they then drop out of every mean).
    g = torch.Generator().manual_seed(7)
    gt, pred = _scattered(g, 6, 5)
    vis = torch.ones(6, 5, dtype=torch.bool)
    among = torch.rand(6, 5, generator=g) < 0.5
    sub = landing_chance(pred, gt, vis, 2.0, map_size=20, angles=72, among=among)
    only = landing_chance(torch.where(among.unsqueeze(-1), pred, gt), gt, vis, 2.0, map_size=20, angles=72)
    assert sub.n_wrong == only.n_wrong > 0
    for field in ("on_other", "uniform_image", "uniform_box", "rotated_errors"):
        assert getattr(sub, field) == pytest.approx(getattr(only, field), rel=1e-9)
    whole = landing_chance(pred, gt, vis, 2.0, map_size=20, angles=72, among=torch.ones(6, 5, dtype=torch.bool))
    assert whole == landing_chance(pred, gt, vis, 2.0, map_size=20, angles=72)
    with pytest.raises(ValueError, match=r"among must be a bool tensor of shape \(6, 5\) \(B, K\), got torch.int64"):
        landing_chance(pred, gt, vis, 2.0, map_size=20, among=among.long())
