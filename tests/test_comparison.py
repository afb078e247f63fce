"""Normalising and plotting method comparisons on a hand-made benchmark table."""

import json

import pytest

from regdakit import comparison


def _stats(per_seed):
    return {"mean": sum(per_seed) / len(per_seed), "std": 0.0, "per_seed": per_seed, "seeds": [0, 1]}


def _table():
    rows = {"source_only": [10.0, 20.0], "dd": [15.0, 20.0], "regda": [20.0, 30.0], "oracle": [30.0, 40.0]}
    pck = {row: {"pck@0.05/all": _stats(v), "pck@0.1/all": _stats(v)} for row, v in rows.items()}
    selection = {
        "regda": {
            "last": _stats([20.0, 30.0]),
            "neg_entropy": _stats([18.0, 31.0]),
            "oracle_selected (uses target labels, not valid UDA)": _stats([21.0, 33.0]),
        }
    }
    return {"tasks": {"hands": {"pck": pck, "selection": selection}}}


def test_gap_closed_per_seed_uses_each_seeds_own_source_and_oracle():
    per_seed = comparison.gap_closed_per_seed(_table()["tasks"]["hands"])
    assert per_seed["regda"] == [0.5, 0.5]  # (20-10)/(30-10), (30-20)/(40-20)
    assert per_seed["dd"] == [0.25, 0.0]
    assert per_seed["source_only"] == [0.0, 0.0] and per_seed["oracle"] == [1.0, 1.0]


def test_gap_closed_needs_an_oracle_above_source_only():
    with pytest.raises(ValueError, match="need 'source_only' and 'oracle'"):
        comparison.gap_closed({"regda": 1.0})
    with pytest.raises(ValueError, match="must be above"):
        comparison.gap_closed({"source_only": 5.0, "oracle": 5.0})
    paper = comparison.gap_closed(comparison.PAPER)
    assert paper["regda"] == pytest.approx((72.5 - 61.8) / (95.8 - 61.8))  # the paper's 31 %


def test_pairwise_agreement_counts_orderings():
    assert comparison.pairwise_agreement({"dd": 1.0, "regda": 2.0, "mcd": 0.5}) == (3, 3)
    assert comparison.pairwise_agreement({"dd": 2.0, "regda": 1.0, "unknown": 9.0}) == (0, 1)


def test_plots_draw_every_method_and_rule():
    table = _table()
    fig = comparison.plot_gap_closed(table, ["dd", "regda"])
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["DD", "RegDA"]
    assert len(ax.patches) == 2  # one task, two bars
    assert ax.patches[1].get_height() == pytest.approx(0.5)
    fig = comparison.plot_selection(table, "hands")
    assert len(fig.axes[0].collections) == 3  # last, neg_entropy, oracle pick
    with pytest.raises(ValueError, match="no checkpoint selection"):
        comparison.plot_selection({"tasks": {"hands": {"selection": {}}}}, "hands")


def test_load_table_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="comparison_benchmark.py"):
        comparison.load_table(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="not a comparison table"):
        comparison.load_table(tmp_path / "bad.json")
    (tmp_path / "good.json").write_text(json.dumps(_table()))
    assert comparison.load_table(tmp_path / "good.json")["tasks"]["hands"]["pck"]["regda"]
