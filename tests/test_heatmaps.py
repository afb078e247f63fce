import math

import pytest
import torch

from regdakit.heatmaps import CUTOFF, decode, encode, gaussian_heatmaps


def plain_encode(keypoints, visible, size, stride, sigma):
    """Loop version of encode, written from the definition."""
    b, k, _ = keypoints.shape
    h, w = size
    maps = torch.zeros(b, k, h, w, dtype=torch.float64)
    weights = torch.zeros(b, k, dtype=torch.float64)
    for i in range(b):
        for j in range(k):
            if not visible[i, j]:
                continue
            cx, cy = (keypoints[i, j] / stride).tolist()
            if not (0 <= math.floor(cx + 0.5) < w and 0 <= math.floor(cy + 0.5) < h):
                continue
            weights[i, j] = 1
            for r in range(h):
                for c in range(w):
                    v = math.exp(-((c - cx) ** 2 + (r - cy) ** 2) / (2 * sigma**2))
                    maps[i, j, r, c] = v if v >= CUTOFF else 0.0
    return maps, weights


def test_encode_hand_computed_values():
    maps, weights = encode(torch.tensor([[[8.0, 4.0]]]), torch.tensor([[True]]), (5, 6), stride=4, sigma=1.0)
    hm = maps[0, 0]
    assert weights.tolist() == [[1.0]]
    assert hm[1, 2] == 1.0  # (x=2, y=1) is the centre
    assert hm[1, 3] == pytest.approx(math.exp(-0.5))
    assert hm[2, 3] == pytest.approx(math.exp(-1.0))
    assert hm[1, 0] == pytest.approx(math.exp(-2.0))
    assert hm[3, 4] == pytest.approx(math.exp(-4.0))
    # three rows down: exp(-4.5) = 0.011 stays; three down and two across: exp(-6.5) is cut
    assert hm[4, 2] == pytest.approx(math.exp(-4.5)) and hm[4, 4] == 0.0


def test_encode_matches_plain_loop():
    kp = torch.rand(3, 5, 2, dtype=torch.float64) * 80 - 8  # some outside the 64x64 image
    vis = torch.rand(3, 5) > 0.3
    fast = encode(kp, vis, (16, 16), stride=4, sigma=1.5)
    slow = plain_encode(kp, vis, (16, 16), 4, 1.5)
    torch.testing.assert_close(fast[0], slow[0])
    torch.testing.assert_close(fast[1], slow[1])


def test_encode_invisible_and_out_of_map_are_zero():
    kp = torch.tensor([[[10.0, 10.0], [-3.0, 10.0], [10.0, 66.0], [float("nan"), 0.0]]])
    vis = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    maps, weights = encode(kp, vis, 16, stride=4)
    assert weights.tolist() == [[1.0, 0.0, 0.0, 0.0]]
    assert maps[0, 1:].abs().sum() == 0
    # -1.9 cells rounds to -2 (outside), -1.5 + 0.5 floors to -1: also outside; -0.4 rounds to 0: inside
    _, w = encode(torch.tensor([[[-1.6, 0.0], [-2.0, 0.0], [-2.1, 0.0]]]), torch.ones(1, 3), 16, stride=4)
    assert w.tolist() == [[1.0, 1.0, 0.0]]


@pytest.mark.parametrize("sigma", [1.5, 2.0, 3.0])
def test_decode_encode_round_trip_subpixel(sigma):
    g = torch.Generator().manual_seed(1)
    kp = torch.rand(4, 21, 2, generator=g) * 200 + 20  # stay off the border of 256
    maps, _ = encode(kp, torch.ones(4, 21), 64, stride=4, sigma=sigma)
    positions, scores = decode(maps)
    err = (positions - kp / 4).abs().max()
    assert err < 0.1, f"max error {err:.3f} cells"
    assert (scores > 0.9).all()
    coarse, _ = decode(maps, subpixel=False)
    assert torch.equal(coarse, torch.floor(coarse))  # integer cells
    assert (coarse - kp / 4).abs().max() <= 0.5 + 1e-5


def test_decode_integer_argmax_hand_case():
    hm = torch.zeros(2, 1, 3, 4)
    hm[0, 0, 2, 1] = 5.0
    hm[1, 0, 0, 3] = 1.0
    positions, scores = decode(hm, subpixel=False)
    assert positions.tolist() == [[[1.0, 2.0]], [[3.0, 0.0]]]
    assert scores.tolist() == [[5.0], [1.0]]
    # a single spike is refined by 0: the parabola through (0, 5, 0) peaks at the spike
    refined, _ = decode(hm)
    assert refined.tolist() == positions.tolist()


def test_decode_parabola_offset_hand_case():
    hm = torch.zeros(1, 1, 3, 5)
    hm[0, 0, 1, 1:4] = torch.tensor([1.0, 3.0, 2.0])  # vertex at x = 2 + 1 / (2 * 3)
    positions, _ = decode(hm)
    assert positions[0, 0, 0].item() == pytest.approx(2 + 1 / 6)
    assert positions[0, 0, 1].item() == 1.0  # flat in y: neighbours are 0 and 0 -> no offset


def test_decode_on_log_probabilities_is_exact():
    # logits of a Gaussian are a quadratic: the parabola recovers the centre exactly
    centers = torch.tensor([[[10.3, 20.7]]])
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    logits = -((xs - 10.3) ** 2 + (ys - 20.7) ** 2) / 8
    positions, _ = decode(logits[None, None])
    torch.testing.assert_close(positions, centers, atol=1e-4, rtol=0)


def test_gaussian_heatmaps_outer_product_equals_direct():
    centers = torch.tensor([[[3.3, 7.9], [0.0, 0.0]]], dtype=torch.float64)
    maps = gaussian_heatmaps(centers, (12, 10), sigma=2.0)
    ys, xs = torch.meshgrid(
        torch.arange(12.0, dtype=torch.float64), torch.arange(10.0, dtype=torch.float64), indexing="ij"
    )
    direct = torch.exp(-((xs - 3.3) ** 2 + (ys - 7.9) ** 2) / 8)
    direct[direct < CUTOFF] = 0
    torch.testing.assert_close(maps[0, 0], direct)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: encode(torch.zeros(3, 2), torch.ones(3), 8), r"keypoints must have shape \(B, K, 2\), got \(3, 2\)"),
        (lambda: encode(torch.zeros(1, 3, 3), torch.ones(1, 3), 8), r"keypoints .*got \(1, 3, 3\)"),
        (lambda: encode(torch.zeros(1, 3, 2), torch.ones(1, 4), 8), r"visible must have shape \(1, 3\)"),
        (lambda: encode(torch.full((1, 1, 2), float("nan")), torch.ones(1, 1), 8), "NaN"),
        (lambda: encode(torch.zeros(1, 1, 2), torch.ones(1, 1), 8, sigma=-1.0), "sigma must be finite and > 0"),
        (lambda: encode(torch.zeros(1, 1, 2), torch.ones(1, 1), 8, stride=0), "stride"),
        (lambda: encode(torch.zeros(1, 1, 2), torch.ones(1, 1), (0, 8)), "heatmap_size must be positive"),
        (lambda: decode(torch.zeros(4, 4)), r"heatmaps must have shape \(B, K, H, W\), got \(4, 4\)"),
        (lambda: decode(torch.full((1, 1, 4, 4), float("inf"))), "heatmaps contains NaN or Inf"),
    ],
)
def test_bad_input_value_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bad_input_type_errors():
    with pytest.raises(TypeError, match="keypoints must be a torch.Tensor"):
        encode([[[1.0, 2.0]]], torch.ones(1, 1), 8)
    with pytest.raises(TypeError, match="floating-point"):
        decode(torch.zeros(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="sigma must be a number"):
        encode(torch.zeros(1, 1, 2), torch.ones(1, 1), 8, sigma="2")


def test_decode_rejects_maps_without_cells_and_accepts_an_empty_batch():
    with pytest.raises(ValueError, match=r"heatmaps has shape \(2, 3, 0, 0\): H = 0, W = 0; a map needs"):
        decode(torch.zeros(2, 3, 0, 0))
    positions, scores = decode(torch.zeros(0, 3, 4, 4))  # no samples: no positions, no error
    assert positions.shape == (0, 3, 2) and scores.shape == (0, 3)
