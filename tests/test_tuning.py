"""The label-free tuning rule on hand-made results and stand-in models: keep, decide, ties, none kept, flags."""

from collections.abc import Mapping

import pytest
import torch
from torch import nn

from regdakit import tuning
from regdakit.keypoints import HAND21


def _cands(*rows):
    return [{"trade_off": t, "source_pck": s, "neg_entropy": e} for t, s, e in rows]


def test_the_validator_decides_among_candidates_within_the_margin():
    # Pre-trained at 60 %: 1.0 lost 12 points (dropped, though its entropy is the best), 0.3 lost 5 (kept: inclusive).
    cands = _cands((0.03, 61.0, -3.0), (0.1, 59.0, -2.5), (0.3, 55.0, -2.0), (1.0, 48.0, -0.5))
    choice = tuning.choose(cands, 60.0)
    assert choice["chosen_trade_off"] == 0.3 and choice["status"] == "chosen"
    assert choice["kept"] == [0.03, 0.1, 0.3] and choice["tied"] == []
    assert [c["source_drop"] for c in choice["candidates"]] == [-1.0, 1.0, 5.0, 12.0]
    assert [c["flag_source_drop"] for c in choice["candidates"]] == [False, False, False, True]
    assert choice["margin_points"] == tuning.SOURCE_MARGIN == 5.0
    # A narrower margin drops 0.3 too; a wider one lets 1.0 win.
    assert tuning.choose(cands, 60.0, margin=2.0)["chosen_trade_off"] == 0.1
    assert tuning.choose(cands, 60.0, margin=15.0)["chosen_trade_off"] == 1.0


def test_ties_go_to_the_smallest_trade_off_and_are_reported():
    cands = _cands((1.0, 60.0, -2.0), (0.1, 60.0, -2.0), (0.3, 60.0, -2.2))  # unsorted on purpose
    choice = tuning.choose(cands, 60.0)
    assert choice["chosen_trade_off"] == 0.1 and choice["status"] == "tie" and choice["tied"] == [0.1, 1.0]
    assert "tie between [0.1, 1.0]" in choice["note"]
    # Within a tolerance, 0.3's -2.2 ties too.
    assert tuning.choose(cands, 60.0, tolerance=0.25)["tied"] == [0.1, 0.3, 1.0]


def test_no_candidate_within_the_margin_takes_the_least_damaged_and_says_so():
    cands = _cands((0.03, 40.0, None), (0.1, 45.0, float("nan")), (0.3, 45.0, -1.0), (1.0, 20.0, -0.1))
    choice = tuning.choose(cands, 60.0)
    assert choice["status"] == "none_within_margin" and choice["kept"] == []
    assert choice["chosen_trade_off"] == 0.1 and choice["tied"] == [0.1, 0.3]  # both lost 15: the smaller
    assert "no candidate within 5 points" in choice["note"]
    assert all(c["flag_source_drop"] for c in choice["candidates"])


def test_the_choice_reads_no_target_number():
    class NoTarget(Mapping):
        """A candidate that fails the test when a key with "target" in it is read, or when it is copied whole."""

        def __init__(self, data):
            self.data = data

        def __getitem__(self, key):
            assert "target" not in key, f"the tuning rule read {key!r}"
            return self.data[key]

        def __iter__(self):
            raise AssertionError("the tuning rule iterated over a candidate's keys")

        def __len__(self):
            return len(self.data)

    rows = [(0.03, 60.0, -3.0, 90.0), (0.1, 59.0, -2.0, 10.0), (0.3, 58.0, -2.5, 50.0), (1.0, 30.0, -1.0, 99.0)]
    cands = [
        NoTarget({"trade_off": t, "source_pck": s, "neg_entropy": e, "target_pck": p, "target_test": {"x": p}})
        for t, s, e, p in rows
    ]
    assert tuning.choose(cands, 60.0)["chosen_trade_off"] == 0.1
    # Any target numbers give the same choice.
    flipped = [{"trade_off": t, "source_pck": s, "neg_entropy": e, "target_pck": 100 - p} for t, s, e, p in rows]
    assert tuning.choose(flipped, 60.0)["chosen_trade_off"] == 0.1
    with pytest.raises(ValueError, match="validator must be one of"):
        tuning.choose(cands, 60.0, validator="target_pck")


def test_choose_refuses_bad_input_with_the_reason():
    good = _cands((0.1, 60.0, -1.0))
    with pytest.raises(ValueError, match="no candidates"):
        tuning.choose([], 60.0)
    with pytest.raises(ValueError, match="each trade-off once"):
        tuning.choose(_cands((0.1, 60.0, -1.0), (0.1, 50.0, -2.0)), 60.0)
    with pytest.raises(ValueError, match="trade_off must be a finite number > 0"):
        tuning.choose(_cands((0.0, 60.0, -1.0)), 60.0)
    with pytest.raises(ValueError, match=r"PCK in percent.*0.6"):
        tuning.choose(good, 0.6 + 100)  # a pre-trained PCK beyond 100
    with pytest.raises(ValueError, match="source_pck of trade-off 0.1 must be a PCK in percent"):
        tuning.choose(_cands((0.1, -1.0, -1.0)), 60.0)
    with pytest.raises(ValueError, match="kept candidate of trade-off 0.1 has no finite 'neg_entropy'"):
        tuning.choose(_cands((0.1, 60.0, None)), 60.0)
    with pytest.raises(ValueError, match="margin must be a finite number"):
        tuning.choose(good, 60.0, margin=-1.0)


def test_source_drop_flag_is_more_than_ten_points():
    assert tuning.source_drop(50.0, 60.0) == 10.0
    assert not tuning.source_drop_flag(50.0, 60.0) and tuning.source_drop_flag(49.0, 60.0)
    assert not tuning.source_drop_flag(70.0, 60.0)  # a gain is no flag
    assert tuning.source_drop_flag(55.0, 60.0, limit=4.0)


def test_the_tuning_seed_is_never_a_reported_one():
    tuning.check_seeds(6, [1, 2, 3, 4, 5])
    with pytest.raises(ValueError, match="tuning seed 3 is among the reported seeds"):
        tuning.check_seeds(3, [1, 2, 3])
    with pytest.raises(ValueError, match="ints >= 0"):
        tuning.check_seeds(-1, [1])


def test_every_tuned_method_has_a_trade_off_setting():
    assert tuning.GRID == (0.03, 0.1, 0.3, 1.0)
    assert tuning.trade_off_setting("regda") == "regda.trade_off"
    assert {tuning.trade_off_setting(m) for m in ("dan", "dann", "mcd")} == {"dan.trade_off", "dann.trade_off",
                                                                              "mcd.trade_off"}  # fmt: skip
    with pytest.raises(ValueError, match="no trade_off to tune"):
        tuning.trade_off_setting("erm")
    with pytest.raises(ValueError, match="method must be one of"):
        tuning.trade_off_setting("nope")


class _Peaks(nn.Module):
    """A stand-in detector: ``f`` puts every keypoint's peak, of a given height, at one cell of a 16 x 16 map."""

    def __init__(self, cell, height):
        super().__init__()
        logits = torch.zeros(1, HAND21.num_keypoints, 16, 16)
        logits[..., cell[1], cell[0]] = height
        self.register_buffer("logits", logits)
        self.head_adv = None

    def heatmaps(self, x):
        return self.logits.expand(len(x), -1, -1, -1)

    def forward(self, x):
        return self.heatmaps(x), None


def test_stand_in_models_scored_and_chosen_without_target_labels():
    k = HAND21.num_keypoints
    truth = torch.tensor([[12.0, 16.0]]).repeat(1, k, 1)  # pixel (12, 16) = cell (3, 4) of a 64-px image
    data = {  # no target labels: only unlabelled target images
        "source_val": [(torch.zeros(1, 3, 64, 64), truth, torch.ones(1, k))],
        "target_images": [torch.zeros(2, 3, 64, 64)],
        "skeleton": HAND21,
    }
    models = {0.03: _Peaks((3, 4), 2.0), 0.1: _Peaks((3, 4), 8.0), 0.3: _Peaks((9, 9), 20.0), 1.0: _Peaks((3, 4), 5.0)}
    cands = [{"trade_off": t, **tuning.score_model(m, data)} for t, m in models.items()]
    assert [c["source_pck"] for c in cands] == [100.0, 100.0, 0.0, 100.0]
    # 0.3 is the most confident but lost the source; among the rest the sharpest peak (0.1) wins.
    choice = tuning.choose(cands, pretrained_source_pck=100.0)
    assert choice["chosen_trade_off"] == 0.1 and choice["kept"] == [0.03, 0.1, 1.0]
    assert tuning.score_model(models[0.1], data, "source_pck") == {"source_pck": 100.0}
    with pytest.raises(ValueError, match="validator must be one of"):
        tuning.score_model(models[0.1], data, "target_pck")


# --- the adaptation rate scale (choose_rate_scale) ----------------------------------------------------------


def test_choose_rate_scale_keeps_a_scale_only_if_every_run_stays_within_the_margin():
    runs = [
        {"scale": 1.0, "start_source_pck": 72.0, "source_pcks": [71.0, 70.5]},  # hands: 1.5 points, kept alone
        {"scale": 1.0, "start_source_pck": 90.0, "source_pcks": [87.0, 89.9]},  # bodies: 3.0 points, not kept
        {"scale": 0.3, "start_source_pck": 72.0, "source_pcks": [72.5, 71.0]},
        {"scale": 0.3, "start_source_pck": 90.0, "source_pcks": [89.0, 90.5]},
    ]
    choice = tuning.choose_rate_scale(runs)
    assert choice["chosen_scale"] == 0.3 and choice["status"] == "chosen" and choice["kept"] == [0.3]
    assert choice["worst_drop"] == {"1.0": 3.0, "0.3": 1.0}
    assert tuning.choose_rate_scale(runs, margin=3.0)["chosen_scale"] == 1.0  # the margin is inclusive


def test_choose_rate_scale_with_no_scale_kept_takes_the_smallest_and_says_so():
    runs = [{"scale": s, "start_source_pck": 70.0, "source_pcks": [60.0]} for s in (1.0, 0.1, 0.3)]
    choice = tuning.choose_rate_scale(runs)
    assert choice["chosen_scale"] == 0.1 and choice["status"] == "none_within_margin" and choice["kept"] == []
    assert "no scale kept" in choice["note"]


@pytest.mark.parametrize(
    ("runs", "match"),
    [
        ([], "no runs"),
        ([{"scale": 0, "start_source_pck": 70.0, "source_pcks": [70.0]}], "scale must be a finite number > 0"),
        ([{"scale": 1.0, "start_source_pck": 70.0, "source_pcks": []}], "has no evaluations"),
        ([{"scale": 1.0, "start_source_pck": 0.7, "source_pcks": [170.0]}], r"source_pcks at scale 1.0 must be a PCK"),
    ],
)
def test_choose_rate_scale_refuses_bad_runs(runs, match):
    with pytest.raises(ValueError, match=match):
        tuning.choose_rate_scale(runs)
