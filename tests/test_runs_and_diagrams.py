"""Reading training logs back (regdakit.runs) and the architecture diagrams (regdakit.diagrams)."""

import json

import matplotlib
import pytest

from regdakit import diagrams, runs

matplotlib.use("Agg")


def _write_log(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


RECORDS = [
    {"phase": "adapt", "iteration": 5, "train": {"A_source": 1.0}},
    {"phase": "adapt", "iteration": 10, "eval": {"target_test": {"pck@0.05/all": 0.25}, "source_val": {}}},
    {"phase": "adapt", "iteration": 20, "eval": {"target_test": {"pck@0.05/all": 0.5}, "source_val": {}}},
]


def test_eval_curve_reads_evaluations_in_percent_with_an_offset(tmp_path):
    _write_log(tmp_path / "metrics.jsonl", RECORDS)
    records = runs.read_log(tmp_path)  # a run folder or the file itself
    assert records == runs.read_log(tmp_path / "metrics.jsonl") == RECORDS
    assert runs.eval_curve(records) == ([10, 20], [25.0, 50.0])
    assert runs.eval_curve(records, offset=600) == ([610, 620], [25.0, 50.0])


def test_loss_curve_reads_the_vocabulary_and_the_old_names():
    records = [
        {"phase": "pretrain", "iteration": 5, "train": {"A/source": 3.0}},
        *RECORDS,  # a log of an earlier version: "A_source"
        {"phase": "adapt", "iteration": 15, "train": {"A/source": 0.5, "B/adversary": 2.0}},
    ]
    assert runs.loss_curve(records, "A/source") == ([5, 5, 15], [3.0, 1.0, 0.5])
    assert runs.loss_curve(records, "A/source", phase="adapt") == ([5, 15], [1.0, 0.5])
    assert runs.loss_curve(records, "B/adversary") == ([15], [2.0])
    with pytest.raises(KeyError, match=r"no training value 'C/features' .*'A/source', 'B/adversary'"):
        runs.loss_curve(records, "C/features")


def test_log_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="no training log"):
        runs.read_log(tmp_path)
    (tmp_path / "metrics.jsonl").write_text(json.dumps(RECORDS[0]) + "\n{broken\n")
    with pytest.raises(ValueError, match="line 2 is not JSON"):
        runs.read_log(tmp_path)
    with pytest.raises(KeyError, match="no evaluation"):
        runs.eval_curve(RECORDS[:1])
    with pytest.raises(KeyError, match="pck@0.1/all"):
        runs.eval_curve(RECORDS, metric="pck@0.1/all")


def test_plot_curves_draws_one_labelled_line_per_curve():
    fig = runs.plot_curves({"ERM": ([0, 10], [1.0, 2.0]), "RegDA": ([10, 20], [2.0, 3.0])}, title="t")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["ERM", "RegDA"]
    assert ax.get_xlabel() == "iteration" and "PCK" in ax.get_ylabel() and ax.get_title() == "t"


def test_diagrams_name_every_player_and_step():
    arch = " ".join(diagrams.figure_texts(diagrams.plot_architecture()))
    for name in ("ψ", "f\n(main head)", "f′", "gradient\nscaling λ"):
        assert name in arch
    steps = " ".join(diagrams.figure_texts(diagrams.plot_steps()))
    for text in ("A · source", "B · target", "C · target", "L_F", "L_T", "P_F(ŷ)", "H(ŷ)"):
        assert text in steps
