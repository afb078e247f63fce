"""final.json: the last evaluation and, beside it, the mean of the last few (issue 18: one snapshot is noisy)."""

import json

import pytest

from regdakit import train as T
from regdakit.training.evaluation import mean_of_last

pytestmark = pytest.mark.usefixtures("one_thread")


def _eval(source, target):
    return {"source_val": {"pck@0.05/all": source}, "target_test": {"pck@0.05/all": target}}


def test_mean_of_last_by_hand():
    evaluations = [(30, _eval(0.6, 0.3)), (10, _eval(0.2, 0.1)), (20, _eval(0.4, 0.2)), (20, _eval(0.5, 0.5))]
    # Iteration 20 was evaluated twice (a resumed run): the later value counts, once.
    summary = mean_of_last(evaluations, 2)
    assert summary["evaluations"] == 2 and summary["iterations"] == [20, 30]
    assert summary["metrics"]["source_val"]["pck@0.05/all"] == pytest.approx((0.5 + 0.6) / 2)
    assert summary["metrics"]["target_test"]["pck@0.05/all"] == pytest.approx((0.5 + 0.3) / 2)
    everything = mean_of_last(evaluations, 10)  # fewer evaluations than asked: all of them, and it says so
    assert everything["evaluations"] == 3 and everything["iterations"] == [10, 20, 30]
    assert everything["metrics"]["target_test"]["pck@0.05/all"] == pytest.approx((0.1 + 0.5 + 0.3) / 3)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="last must be an int >= 1"):
            mean_of_last(evaluations, bad)
    with pytest.raises(ValueError, match="no evaluation"):
        mean_of_last([], 3)
    with pytest.raises(ValueError, match="summary_evals must be >= 1"):
        T.make_config("ci", summary_evals=0)


@pytest.mark.parametrize(("method", "summary_evals"), [("regda", 3), ("erm", 2)])
def test_final_json_holds_the_last_snapshot_and_the_mean_of_the_last_evaluations(tmp_path, method, summary_evals):
    cfg = T.make_config(
        "ci", method=method, out=str(tmp_path), batch_size=2, pretrain_iterations=6, adapt_iterations=6,
        eval_every=2, checkpoint_every=3, log_every=3, eval_size=8, device="cpu", summary_evals=summary_evals,
    )  # fmt: skip
    result = T.train(cfg, progress=False)
    final = json.loads((cfg.run_dir / "final.json").read_text())
    assert final == json.loads(json.dumps(result))
    assert {"run_dir", "iteration", "metrics", "summary"} == set(final)  # the keys of before, and the summary
    records = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = {r["iteration"]: r["eval"] for r in records if "eval" in r}
    assert sorted(evals) == [2, 4, 6]
    assert final["metrics"] == evals[6]  # metrics: the last snapshot, as before
    summary = final["summary"]
    kept = [4, 6] if summary_evals == 2 else [2, 4, 6]
    assert summary["statistic"] == "mean" and summary["iterations"] == kept and summary["evaluations"] == len(kept)
    for split, values in summary["metrics"].items():
        for key, value in values.items():
            assert value == pytest.approx(sum(evals[i][split][key] for i in kept) / len(kept))


def test_a_stopped_run_has_no_summary_and_a_resumed_one_counts_each_evaluation_once(tmp_path):
    cfg = T.make_config(
        "ci", method="erm", out=str(tmp_path), batch_size=2, pretrain_iterations=4, eval_every=2,
        checkpoint_every=2, log_every=2, eval_size=8, device="cpu",
    )  # fmt: skip
    stopped = T.train(cfg, stop_after=2, progress=False)
    assert stopped["metrics"] is None and "summary" not in stopped
    resumed = T.train(cfg, resume=True, progress=False)
    assert resumed["summary"]["iterations"] == [2, 4]
    # Resumed again from its final checkpoint, it reports the same.
    again = T.train(cfg, resume=True, resume_allow=("summary_evals",), progress=False)
    assert again["summary"] == resumed["summary"]
