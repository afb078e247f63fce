"""Normalising and plotting method comparisons on a hand-made benchmark table."""

import json

import matplotlib.pyplot as plt
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


def _v2_result():
    from regdakit.stats import paired_differences

    seeds = {"source_only": {1: 10.0, 2: 12.0, 3: 11.0}, "control": {1: 12.0, 2: 13.0, 3: 12.5},
             "regda": {1: 15.0, 2: 16.0, 3: 14.0}}  # fmt: skip
    rows = {}
    for row, values in seeds.items():
        minus = {b: paired_differences(values, seeds[b], digits=3) for b in ("source_only", "control") if b != row}
        rows[row] = {"label": row.replace("_", " "), "minus": minus}
    return {"tasks": {"hands": {"rows": rows}}}


def test_paired_differences_are_drawn_as_the_result_holds_them():
    result = _v2_result()
    fig = comparison.plot_paired_differences(result, "hands", "control")
    ax = fig.axes[0]
    # One row per difference with the control: the source-only model and RegDA, in the result's order.
    assert [t.get_text() for t in ax.get_yticklabels()] == ["source only", "regda"]
    regda = result["tasks"]["hands"]["rows"]["regda"]["minus"]["control"]
    assert regda["values"] == [3.0, 3.0, 1.5] and regda["mean"] == 2.5
    intervals = [line.get_xdata() for line in ax.lines if len(line.get_xdata()) == 2 and line.get_linewidth() == 2.5]
    assert [list(x) for x in intervals][1] == regda["ci95"]
    seeds = [line for line in ax.lines if line.get_marker() == "." and list(line.get_xdata()) == regda["values"]]
    assert len(seeds) == 1
    plt.close(fig)


def test_paired_differences_show_the_rows_asked_for_in_their_order():
    fig = comparison.plot_paired_differences(_v2_result(), "hands", "source_only", rows=["regda", "oracle", "control"])
    # The oracle is not in the result: left out; the others in the order asked for.
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["regda", "control"]
    plt.close(fig)


def test_paired_differences_name_a_missing_task_or_baseline():
    result = _v2_result()
    with pytest.raises(ValueError, match="no task 'bodies'; it has \\['hands'\\]"):
        comparison.plot_paired_differences(result, "bodies", "control")
    with pytest.raises(ValueError, match="with 'continue'; the baselines are \\['control', 'source_only'\\]"):
        comparison.plot_paired_differences(result, "hands", "continue")


def test_markdown_sections_split_a_report_at_every_heading_level():
    text = (
        "# Title\nCommand: x\n\n## hands: Table 1\n\n| a |\n|---|\n| 1 |\n### hands: tuning\nrule\n## bodies: Table 1\n"
    )
    parts = comparison.markdown_sections(text)
    assert list(parts) == ["", "Title", "hands: Table 1", "hands: tuning", "bodies: Table 1"]
    assert parts[""] == "" and parts["Title"] == "# Title\nCommand: x"
    assert parts["hands: Table 1"] == "## hands: Table 1\n\n| a |\n|---|\n| 1 |"
    assert parts["bodies: Table 1"] == "## bodies: Table 1"
    assert comparison.markdown_sections("#hashtag, not a heading")[""] == "#hashtag, not a heading"
    with pytest.raises(ValueError, match="the heading 'A' occurs twice"):
        comparison.markdown_sections("## A\n## A\n")


def _curves():
    seed = lambda *target: {"iterations": [10, 20], "target": list(target), "source": [70.0, 70.0]}  # noqa: E731
    return {"tasks": {"hands": {
        "regda": {"seeds": {"1": seed(20.0, 30.0), "2": seed(10.0, 40.0)},
                  "mean": {"iterations": [10, 20], "target": [15.0, 35.0], "source": [70.0, 70.0]}},
        "control": {"seeds": {"1": seed(5.0, 6.0)},
                    "mean": {"iterations": [10, 20], "target": [5.0, 6.0], "source": [70.0, 70.0]}},
    }}}  # fmt: skip


def test_learning_curves_draw_each_seed_and_the_mean():
    fig = comparison.plot_learning_curves(_curves(), "hands", rows=["control", "oracle", "regda"])
    ax = fig.axes[0]
    # The oracle has no curve: left out; the others in the order asked for, with their number of seeds.
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["control (1 seed)", "RegDA (2 seeds)"]
    thick = [line for line in ax.lines if line.get_linewidth() == 2]
    assert [list(line.get_ydata()) for line in thick] == [[5.0, 6.0], [15.0, 35.0]]
    thin = [list(line.get_ydata()) for line in ax.lines if line.get_linewidth() == 0.6]
    assert thin == [[5.0, 6.0], [20.0, 30.0], [10.0, 40.0]]
    # Colours follow the rows asked for, so a row has the same colour in every task.
    assert thick[1].get_color() == plt.get_cmap("tab10")(2)
    plt.close(fig)


def test_learning_curves_minus_each_seeds_start():
    fig = comparison.plot_learning_curves(_curves(), "hands", rows=["regda"], start={1: 20.0, 2: 0.0, 3: 99.0})
    ax = fig.axes[0]
    # Seed 1 from 20 (0, 10), seed 2 from 0 (10, 40): the mean of the gains, (5, 25), with 0 dashed.
    assert [list(line.get_ydata()) for line in ax.lines if line.get_linewidth() == 0.6] == [[0.0, 10.0], [10.0, 40.0]]
    assert [list(line.get_ydata()) for line in ax.lines if line.get_linewidth() == 2] == [[5.0, 25.0]]
    assert [list(line.get_ydata()) for line in ax.lines if line.get_linestyle() == "--"] == [[0.0, 0.0]]
    plt.close(fig)
    with pytest.raises(ValueError, match="start has no value for seed 2 of hands regda"):
        comparison.plot_learning_curves(_curves(), "hands", rows=["regda"], start={1: 20.0})


def test_learning_curves_name_a_missing_task_or_rows():
    with pytest.raises(ValueError, match="no task 'bodies'; they have \\['hands'\\]"):
        comparison.plot_learning_curves(_curves(), "bodies")
    with pytest.raises(ValueError, match="none of the rows \\['dan'\\] has a curve for hands"):
        comparison.plot_learning_curves(_curves(), "hands", rows=["dan"])
