"""The math runs on any device without reading values back to the host.

On the ``meta`` device tensors have shapes but no values: any hidden
``.item()``, ``.cpu()`` or numpy round trip raises. Value checks (NaN/Inf),
which do read a scalar back, are switched off as the trainer does.
"""

import torch

import regdakit as rk
from regdakit.disparity import ground_false_loss, ground_truth_loss, pseudo_labels
from regdakit.heatmaps import decode, encode
from regdakit.losses import kl_heatmap_loss, mse_heatmap_loss


def test_core_math_has_no_host_round_trip():
    meta = torch.device("meta")
    logits = torch.randn(2, 21, 64, 64, device=meta)
    adv = torch.randn(2, 21, 64, 64, device=meta, requires_grad=True)
    with rk.value_checks(False):
        truth, false = pseudo_labels(logits)
        assert truth.device == meta and false.shape == (2, 21, 64, 64)
        loss = ground_truth_loss(adv, logits) + ground_false_loss(adv, logits)
        loss = loss + kl_heatmap_loss(adv, truth) + mse_heatmap_loss(adv, truth)
        loss.backward()
        assert adv.grad.shape == adv.shape
        positions, scores = decode(logits)
        assert positions.shape == (2, 21, 2) and positions.device == meta
        maps, weights = encode(torch.rand(2, 21, 2, device=meta), torch.ones(2, 21, device=meta), 64)
        assert maps.shape == (2, 21, 64, 64) and weights.device == meta


def test_value_checks_context_restores():
    import pytest

    with rk.value_checks(False):
        decode(torch.full((1, 1, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="NaN"):
        decode(torch.full((1, 1, 2, 2), float("nan")))
