"""Label-free validators on constructed models, and the selection rules."""

import math

import pytest
import torch
from torch import nn

from regdakit import selection
from regdakit.keypoints import HAND21


class FixedHeads(nn.Module):
    """A stand-in detector with PoseResNet's prediction calls: each head returns fixed logits.

    ``heatmaps(x)`` is ``f`` and ``model(x)`` is ``(f, f')``, as on :class:`regdakit.models.PoseResNet`.
    """

    def __init__(self, logits: torch.Tensor, logits_adv: torch.Tensor | None = None):
        super().__init__()
        self.head = _Constant(logits)
        self.head_adv = None if logits_adv is None else _Constant(logits_adv)

    def heatmaps(self, x):
        return self.head(x)

    def forward(self, x):
        return self.head(x), None if self.head_adv is None else self.head_adv(x)


class _Constant(nn.Module):
    def __init__(self, logits):
        super().__init__()
        self.register_buffer("logits", logits)

    def forward(self, x):
        return self.logits[: len(x)]


def _peaks(cells, size=16, height=10.0):
    """``(N, K, size, size)`` logits with a peak of ``height`` at ``cells[n][k] = (x, y)``."""
    logits = torch.zeros(len(cells), len(cells[0]), size, size)
    for n, row in enumerate(cells):
        for k, (x, y) in enumerate(row):
            logits[n, k, y, x] = height
    return logits


def _images(n):
    return [torch.zeros(n, 3, 64, 64)]


def test_heatmap_entropy_by_hand():
    assert selection.heatmap_entropy(torch.zeros(1, 1, 4, 4)).item() == pytest.approx(math.log(16))
    two = torch.full((1, 1, 1, 4), -1e4)
    two[..., :2] = 0.0  # half and half on two cells
    assert selection.heatmap_entropy(two).item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="logits"):
        selection.heatmap_entropy(torch.zeros(4, 4))


def test_neg_entropy_prefers_the_confident_model():
    cells = [[(3, 4), (10, 2)], [(7, 7), (1, 1)]]
    sharp = FixedHeads(_peaks(cells, height=20.0))
    blurry = FixedHeads(_peaks(cells, height=2.0))
    assert selection.neg_entropy(sharp, _images(2)) > selection.neg_entropy(blurry, _images(2))
    flat = FixedHeads(torch.zeros(2, 2, 16, 16))
    assert selection.neg_entropy(flat, _images(2)) == pytest.approx(-math.log(256))


def test_head_agreement_counts_keypoints_within_the_pck_distance():
    # 16 x 16 heatmaps: the PCK@0.05 distance is 0.8 cells, so only coinciding peaks agree.
    main = _peaks([[(3, 4), (10, 2)], [(7, 7), (1, 1)]])
    adv = _peaks([[(3, 4), (12, 2)], [(7, 7), (1, 9)]])
    assert selection.head_agreement(FixedHeads(main, adv), _images(2)) == pytest.approx(2 / 4)
    assert selection.head_agreement(FixedHeads(main, main), _images(2)) == 1.0
    assert selection.head_agreement(FixedHeads(main, adv), _images(2), alpha=0.2) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="f'"):
        selection.head_agreement(FixedHeads(main), _images(2))


def test_source_pck_scores_against_the_source_labels():
    k = HAND21.num_keypoints
    cells = [[(4 + i % 8, 4 + i // 8) for i in range(k)]]
    model = FixedHeads(_peaks(cells))
    truth_px = torch.tensor(cells, dtype=torch.float32) * 4  # 16-cell heatmap of a 64-px image: 4 px per cell
    visible = torch.ones(1, k, dtype=torch.bool)
    assert selection.source_pck(model, [(torch.zeros(1, 3, 64, 64), truth_px, visible)], HAND21) == 1.0
    shifted = truth_px + 12.0  # 3 cells away on both axes
    assert selection.source_pck(model, [(torch.zeros(1, 3, 64, 64), shifted, visible)], HAND21) == 0.0


def test_validators_take_the_shared_data_mapping():
    k = HAND21.num_keypoints
    main = _peaks([[(3, 4)] * k], height=10.0)  # every keypoint decodes to cell (3, 4): pixel (12, 16)
    model = FixedHeads(main, main)
    truth_px = torch.tensor([[12.0, 16.0]]).repeat(1, k, 1)
    truth_px[:, 10:] += 12.0  # keypoints 10..20 are 3 cells away on both axes: wrong at PCK@0.05
    data = {
        "source_val": [(torch.zeros(1, 3, 64, 64), truth_px, torch.ones(1, k))],
        "target_images": _images(1),
        "skeleton": HAND21,
    }
    scores = {name: fn(model, data) for name, fn in selection.VALIDATORS.items()}
    assert set(scores) == {"source_pck", "neg_entropy", "head_agreement"}
    assert scores["source_pck"] == pytest.approx(10 / k)
    # One cell at logit 10, 255 at 0: the entropy of that softmax, the same for every keypoint.
    z = math.exp(10.0) + 255
    p_peak, p_rest = math.exp(10.0) / z, 1 / z
    # The model computes in float32 (relative error up to about 1e-5 here, depending on the summation order
    # of the CPU's kernels); the reference is float64.
    exact = p_peak * math.log(p_peak) + 255 * p_rest * math.log(p_rest)
    assert scores["neg_entropy"] == pytest.approx(exact, rel=2e-5)
    assert scores["head_agreement"] == 1.0


def test_select_takes_the_best_finite_score_and_the_earliest_on_ties():
    cands = [
        {"iteration": 50, "s": 0.1, "target_pck": 9.0},
        {"iteration": 100, "s": float("nan"), "target_pck": 20.0},
        {"iteration": 150, "s": 0.3, "target_pck": 11.0},
        {"iteration": 200, "s": 0.3, "target_pck": 10.0},
        {"iteration": 250, "s": None, "target_pck": 12.0},
    ]
    assert selection.select(cands, "s")["iteration"] == 150
    assert selection.oracle_select(cands)["iteration"] == 100
    with pytest.raises(ValueError, match="no candidate has a finite 'missing'"):
        selection.select(cands, "missing")
