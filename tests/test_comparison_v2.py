"""The v2 comparison's statistics on hand-made numbers: gap closed per seed and as a ratio of means, against
the stronger of the oracle and the target fine-tune, and each pair's agreement with the paper's order."""

import pytest

from regdakit import comparison


def test_gap_closed_seeds_by_hand():
    row, source = {1: 20.0, 2: 30.0, 3: 25.0}, {1: 10.0, 2: 20.0, 3: 20.0}
    oracle = {1: 30.0, 2: 60.0, 3: 20.0}  # seed 3: the oracle is not above source only, its gap is undefined
    g = comparison.gap_closed_seeds(row, source, oracle)
    assert g["seeds"] == [1, 2] and g["undefined"] == [3]
    assert g["per_seed"] == {1: 0.5, 2: 0.25}
    # Mean 0.375, sd 0.25 / sqrt 2, half-width t(1) * sd / sqrt 2 = 12.7062047 * 0.125 = 1.5882756.
    assert g["summary"]["mean"] == 0.375 and g["summary"]["ci95"] == [-1.2133, 1.9633]
    assert g["ratio_of_means"] == pytest.approx((25 - 15) / (45 - 15), abs=1e-4)
    with pytest.raises(ValueError, match="no seed with the row, source only and a reference above"):
        comparison.gap_closed_seeds(row, source, {3: 20.0})


def test_the_stronger_reference_is_the_gap_and_both_are_reported():
    per_row = {
        "source_only": {1: 10.0, 2: 20.0},
        "regda": {1: 20.0, 2: 30.0},
        "oracle": {1: 30.0, 2: 50.0},  # mean 40
        "finetune": {1: 50.0, 2: 40.0},  # mean 45: the stronger
    }
    assert comparison.stronger_reference(per_row) == "finetune"
    assert comparison.stronger_reference({"oracle": {1: 5.0}, "finetune": {1: 5.0}}) == "oracle"  # first on ties
    report = comparison.gap_report(per_row, ["regda", "missing"])
    assert report["reference"] == "finetune" and report["means"] == {"oracle": 40.0, "finetune": 45.0}
    assert set(report["rows"]) == {"regda"} and set(report["rows"]["regda"]) == {"oracle", "finetune"}
    assert report["rows"]["regda"]["oracle"]["per_seed"] == {1: 0.5, 2: 0.3333}
    assert report["rows"]["regda"]["finetune"]["per_seed"] == {1: 0.25, 2: 0.5}
    assert report["rows"]["regda"]["finetune"]["ratio_of_means"] == pytest.approx(10 / 30, abs=1e-4)
    with pytest.raises(ValueError, match="no reference row with values"):
        comparison.stronger_reference({"regda": {1: 1.0}})
    assert comparison.gap_report({"regda": {1: 1.0}}, ["regda"])["reference"] is None


def test_ordering_agreement_uses_the_paired_interval():
    per_row = {
        "source_only": {1: 25.0, 2: 20.0, 3: 30.0},
        "dd": {1: 20.0, 2: 21.0, 3: 22.0},
        "regda": {1: 30.0, 2: 32.0, 3: 31.0},
    }
    out = {tuple(p["pair"]): p for p in comparison.ordering_agreement(per_row, comparison.PAPER)}
    assert set(out) == {("dd", "source_only"), ("regda", "source_only"), ("regda", "dd")}
    # regda - dd = 10, 11, 9: mean 10, sd 1, half-width 4.3026527 / sqrt 3 = 2.4841.
    assert out[("regda", "dd")]["difference"]["ci95"] == [7.5159, 12.4841]
    assert out[("regda", "dd")]["verdict"] == "agrees" and out[("regda", "dd")]["paper"] == [72.5, 65.2]
    assert out[("dd", "source_only")]["difference"]["mean"] == -4.0
    assert out[("dd", "source_only")]["verdict"] == "undecided"  # -5, 1, -8: the interval holds 0
    flipped = comparison.ordering_agreement({"a": {1: 5.0, 2: 6.0, 3: 5.5}, "b": {1: 1.0, 2: 1.0, 3: 1.2}},
                                            {"a": 1.0, "b": 2.0})  # fmt: skip
    assert flipped[0]["pair"] == ["b", "a"] and flipped[0]["verdict"] == "disagrees"
    one = comparison.ordering_agreement({"a": {1: 5.0}, "b": {1: 1.0}}, {"a": 2.0, "b": 1.0})
    assert one[0]["verdict"] == "no interval"
    # Rows the paper's benchmark lacks are not paired: SURREAL -> Human3.6M has no DD.
    bodies = comparison.ordering_agreement(per_row, comparison.PAPER_BENCHMARKS["SURREAL -> Human3.6M"])
    assert [p["pair"] for p in bodies] == [["regda", "source_only"]]


def test_the_paper_numbers_are_held_by_their_own_benchmark():
    assert comparison.PAPER_BENCHMARKS["RHD -> H3D"] is comparison.PAPER
    assert comparison.PAPER_BENCHMARK_OF[("hands", "studio")] == "RHD -> H3D"
    assert comparison.PAPER_BENCHMARK_OF[("bodies", "lab")] == "SURREAL -> Human3.6M"
    assert "oracle" not in comparison.PAPER_BENCHMARKS["SURREAL -> LSP"]  # the README's copy is left out
