"""benchmarks/comparison_v2_curves.py on hand-written run logs."""

import json

import pytest

from tests._repo import benchmark_script


@pytest.fixture(scope="module")
def curves():
    with benchmark_script("comparison_v2_curves") as module:
        yield module


def _run(folder, name, evals, finished=True, extra=""):
    """A run folder whose metrics.jsonl has a training line and one line per (iteration, target, source)."""
    run = folder / name
    run.mkdir()
    lines = [json.dumps({"phase": "adapt", "iteration": 1, "train": {"A/source": 0.5}})]
    lines += [json.dumps({"phase": "pretrain", "iteration": 0, "eval": {}})]  # not adaptation: left out
    for iteration, target, source in evals:
        pck = lambda v: {"pck@0.05/all": v, "pck@0.1/all": 1.0}  # noqa: E731
        lines.append(json.dumps({"phase": "adapt", "iteration": iteration,
                                 "eval": {"target_test": pck(target), "source_val": pck(source)}}))  # fmt: skip
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n" + extra)
    if finished:
        (run / "final.json").write_text("{}")
    return run


def test_curves_per_seed_and_their_mean(curves, tmp_path):
    _run(tmp_path, "reported-hands-regda-seed1", [(10, 0.20, 0.70), (20, 0.30, 0.71)])
    _run(tmp_path, "reported-hands-regda-seed2", [(10, 0.10, 0.60), (20, 0.40, 0.69)])
    _run(tmp_path, "reported-hands-control-seed1", [(10, 0.5, 0.5)], finished=False)  # still running: left out
    _run(tmp_path, "tuning-hands-regda-seed6-t1", [(10, 0.9, 0.9)])  # tuning: never reported, left out
    out = curves.collect(tmp_path)
    assert set(out) == {"hands"} and set(out["hands"]) == {"regda"}
    regda = out["hands"]["regda"]
    assert regda["seeds"][1] == {"iterations": [10, 20], "target": [20.0, 30.0], "source": [70.0, 71.0]}
    assert regda["mean"] == {"iterations": [10, 20], "target": [15.0, 35.0], "source": [65.0, 70.0]}


def test_bad_logs_are_named(curves, tmp_path):
    run = _run(tmp_path, "reported-hands-regda-seed1", [(10, 0.2, 0.7)], extra="{not json\n")
    with pytest.raises(ValueError, match=r"metrics.jsonl, line 4: not JSON"):
        curves.read_curve(run)
    with pytest.raises(ValueError, match="no adaptation evaluation"):
        curves.read_curve(_run(tmp_path, "reported-hands-regda-seed2", []))
    with pytest.raises(FileNotFoundError, match="metrics.jsonl does not exist"):
        curves.read_curve(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    _run(other, "reported-bodies-dan-seed1", [(10, 0.2, 0.7)])
    _run(other, "reported-bodies-dan-seed2", [(20, 0.2, 0.7)])
    with pytest.raises(ValueError, match="bodies dan: the seeds were evaluated at different iterations"):
        curves.collect(other)
    with pytest.raises(SystemExit):
        curves.main(["--runs", str(tmp_path / "absent")])
