"""benchmarks/comparison_v2.py end to end at the ``ci`` preset with stand-in checkpoints (seconds), and its parts."""

import dataclasses
import json
import time

import pytest
import torch

from tests._repo import benchmark_script


@pytest.fixture(scope="module")
def v2():
    with benchmark_script("comparison_v2") as module:
        yield module


def _stand_in(path, task, seed, method="erm"):
    """A freshly initialised ``ci`` detector saved as a trainer checkpoint: stands in for a shipped model."""
    from regdakit import training as T

    cfg = T.make_config("ci", task=task, method=method, seed=seed % 100)
    model = T.build_model(cfg, adversarial=False, seed=seed)
    torch.save({"config": dataclasses.asdict(cfg), "model": model.state_dict()}, path)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from regdakit import pretrained

    folder = tmp_path_factory.mktemp("checkpoints")
    for seed in (1, 2, 3):
        _stand_in(folder / pretrained.checkpoint_path("hands", seed).name, "hands", seed)
    # Seed 2's oracle is missing; seed 1's has other weights than the source-only model of seed 1.
    _stand_in(folder / pretrained.oracle_path("hands", None, 1).name, "hands", 101, "oracle")
    return folder


def _rows():
    from regdakit.training.config import run_methods

    return ["source_only", *(r for r in ("continue", "finetune") if r in run_methods()), "control", "dan", "regda",
            "oracle"]  # fmt: skip


def _argv(tmp, checkpoints, *extra):
    return ["--tasks", "hands", "--seeds", "1", "2", "--baseline_seeds", "1", "2", "--tuning_seed", "3",
            "--rows", *_rows(), "--grid", "0.1", "1", "--preset", "ci", "--adapt_iterations", "4", "--evals", "2",
            "--last_evals", "2", "--workers", "0", "--out", str(tmp / "runs"), "--results", str(tmp / "results"),
            "--checkpoints", str(checkpoints), *extra]  # fmt: skip


def test_the_whole_pipeline_at_the_ci_preset(v2, checkpoints, tmp_path, capsys, one_thread):
    v2.main(_argv(tmp_path, checkpoints))
    result = json.loads((tmp_path / "results" / "comparison_v2.json").read_text())
    hands = result["tasks"]["hands"]
    assert result["not_available"] == ["oracle of hands seed 2"]
    assert result["jobs_done"] == result["jobs_planned"]
    # The tuning: both tuned rows chose a grid value on seed 3, and the reported runs used it.
    for row in ("dan", "regda"):
        choice = hands["tuning"][row]
        assert choice["chosen_trade_off"] in (0.1, 1.0) and choice["status"] in ("chosen", "tie", "none_within_margin")
        assert hands["rows"][row]["trade_off"] == [choice["chosen_trade_off"]]
    jobs = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results" / "jobs").glob("*.json")}
    assert {"tuning-hands-regda-seed3-t0.1", "tuning-hands-regda-seed3-t1", "tuning-hands-source_only-seed3"} <= set(
        jobs
    )
    assert not any(j["seed"] == 3 for j in jobs.values() if j["stage"] == "reported")  # the tuning seed never reported
    # Every adaptation started from its seed's (stand-in) source-only model, for the one budget.
    for job in jobs.values():
        if job.get("kind") == "adaptation":
            assert job["init_checkpoint"].endswith(f"hands_source_only_seed{job['seed']}.pt")
            assert job["settings"]["adapt_iterations"] == 4 and job["iterations"] == [2, 4]
            assert job["settings"]["summary_evals"] == 2 and job["settings"]["warm_start_horizon"] >= 1
            assert job["wall_s"] >= 0 and "neg_entropy" in job["label_free"]
    # Rows over seeds, paired differences, gap closed against the oracle, the paper's order.
    regda = hands["rows"]["regda"]
    assert regda["seeds"] == [1, 2] and regda["target"]["pck@0.05/all"]["n"] == 2
    assert regda["minus"]["source_only"]["seeds"] == [1, 2] and regda["minus"]["control"]["seeds"] == [1, 2]
    assert hands["rows"]["oracle"]["seeds"] == [1]
    assert hands["gap_closed"]["reference"] in ("oracle", "finetune")
    assert "CPU hours by stage" not in capsys.readouterr().out
    assert hands["paper_benchmark"] == "RHD -> H3D" and set(hands["ordering"]) == {"RHD -> H3D"}
    assert hands["flags"]["limit_points"] == 10.0
    text = (tmp_path / "results" / "comparison_v2.md").read_text()
    assert "paper, RHD -> H3D" in text and "tuning (seed 3, never reported)" in text
    assert "Partial:" not in text  # every job done
    # Resumable: a second invocation trains nothing and finds every job done.
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "jobs").glob("*.json")}
    start = time.perf_counter()
    v2.main(_argv(tmp_path, checkpoints))
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "results" / "jobs").glob("*.json")} == stamps
    again = json.loads((tmp_path / "results" / "comparison_v2.json").read_text())
    assert len(again["invocations"]) == 2 and time.perf_counter() - start < 30
    assert again["tasks"]["hands"]["rows"]["regda"] == regda
    # Another budget on the same results is refused, naming the file; the time it took is still recorded
    # (the ledger is written after every job, so that an interrupted invocation counts too).
    with pytest.raises(ValueError, match="was run with adapt_iterations=4, this invocation 6"):
        v2.main([*_argv(tmp_path, checkpoints), "--adapt_iterations", "6"])
    ledger = json.loads((tmp_path / "results" / "invocations.json").read_text())
    assert len(ledger) == 3 and ledger[:2] == again["invocations"] and 0 <= ledger[2]["wall_s"] < 30
    # --summarise-only trains nothing and adds no invocation; the tables are the same.
    v2.main(_argv(tmp_path, checkpoints, "--summarise-only"))
    summarised = json.loads((tmp_path / "results" / "comparison_v2.json").read_text())
    assert summarised["invocations"] == ledger and summarised["tasks"] == again["tasks"]
    # A job still to run: the tables say they are partial.
    (tmp_path / "results" / "jobs" / "reported-hands-regda-seed2.json").unlink()
    v2.main(_argv(tmp_path, checkpoints, "--summarise-only"))
    text = (tmp_path / "results" / "comparison_v2.md").read_text()
    n = summarised["jobs_planned"]
    assert f"**Partial: {n - 1} of {n} jobs done.**" in text


def test_dry_run_lists_the_jobs_and_their_cost(v2, checkpoints, tmp_path, capsys):
    rates = {"preset": "ci", "evaluation_s": 2.0, "eval_sets_s": 1.0,
             "methods": {m: {"iteration_s": 0.5, "fixed_s": 10.0} for m in ("erm", "control", "dan", "regda")}}  # fmt: skip
    (tmp_path / "rates.json").write_text(json.dumps(rates))
    v2.main(_argv(tmp_path, checkpoints, "--dry-run", "--rates", str(tmp_path / "rates.json")))
    out = capsys.readouterr().out
    assert "tuning-hands-regda-seed3-t0.1" in out and "reported-hands-regda-seed2" in out
    assert "rates read from" in out and "the largest adapt_iterations" in out and "CPU hours by stage" in out
    assert not (tmp_path / "results").exists()  # nothing run, nothing written
    # An adaptation job: fixed 10 s + 4 iterations x 0.5 s + 2 evaluations x 2 s = 16 s; an evaluation 3 s.
    jobs, _ = v2.plan(["hands"], [1, 2], [1, 2], 3, ["source_only", "regda"], (0.1, 1.0),
                      {**_settings(tmp_path, checkpoints)})  # fmt: skip
    est = v2.estimate(jobs, rates, _settings(tmp_path, checkpoints))
    assert est["per_job_s"]["reported-hands-regda-seed1"] == 16.0
    assert est["per_job_s"]["reported-hands-source_only-seed1"] == 3.0
    assert est["total_cpu_hours"] == round((3 * 3.0 + 4 * 16.0) / 3600, 2)  # 3 evaluations, 2 tuning + 2 reported


def _settings(tmp, checkpoints):
    return {"preset": "ci", "adapt_iterations": 4, "evals": 2, "last_evals": 2, "out": str(tmp / "runs"),
            "results": str(tmp / "results"), "checkpoints": str(checkpoints), "validator": "neg_entropy",
            "margin": 5.0, "workers": 2}  # fmt: skip


def test_the_plan_refuses_a_reported_tuning_seed_and_trains_missing_models(v2, checkpoints, tmp_path):
    s = _settings(tmp_path, checkpoints)
    with pytest.raises(ValueError, match="tuning seed 2 is among the reported seeds"):
        v2.plan(["hands"], [1, 2], [1], 2, ["regda"], (1.0,), s)
    with pytest.raises(ValueError, match="--baseline_seeds"):
        v2.plan(["hands"], [1, 2], [4], 3, ["regda"], (1.0,), s)
    jobs, missing = v2.plan(["hands"], [1, 2], [1], 7, ["source_only", "dan", "oracle"], (0.1, 1.0), s)
    assert [j.id for j in jobs["pretrain"]] == ["pretrain-hands-source_only-seed7"]  # no stand-in of seed 7
    assert [j.id for j in jobs["tuned"]] == ["reported-hands-dan-seed1"]  # DAN is not core: baseline seeds only
    assert missing == ["oracle of hands seed 2"]
    # Once every job of seed 7 has its result, its model is not trained again (a fresh checkout lacks runs/).
    for job in (j for stage in ("tuning", "tuned") for j in jobs[stage] if j.seed == 7):
        v2.result_path(job, s).parent.mkdir(parents=True, exist_ok=True)
        v2.result_path(job, s).write_text("{}")
    assert v2.plan(["hands"], [1, 2], [1], 7, ["source_only", "dan", "oracle"], (0.1, 1.0), s)[0]["pretrain"] == []
    # RegDA (a core row) comes first among the tuned jobs, so an interrupted run has what the goals are about.
    jobs, _ = v2.plan(["hands", "bodies"], [1, 2], [1], 7, ["dan", "regda"], (1.0,), s)
    assert [j.id for j in jobs["tuned"]] == [
        "reported-hands-regda-seed1", "reported-hands-regda-seed2", "reported-bodies-regda-seed1",
        "reported-bodies-regda-seed2", "reported-hands-dan-seed1", "reported-bodies-dan-seed1"]  # fmt: skip


def test_a_pretraining_whose_model_is_lost_runs_again(v2, checkpoints, tmp_path, monkeypatch):
    # Its result JSON is committed, its run folder (under the ignored runs/) is not: a fresh checkout has
    # the one without the other, and every job that starts from the model would fail to load it.
    s = _settings(tmp_path, checkpoints)
    job = v2.Job("pretrain", "hands", "source_only", 7)  # no stand-in of seed 7
    model = v2.source_checkpoint("hands", 7, s)[0]
    trained = []

    def fake_pretrain(job, s):  # the real one trains the shipped recipe for an hour
        trained.append(job.id)
        model.parent.mkdir(parents=True, exist_ok=True)
        model.write_bytes(b"model")
        (model.parent / "final.json").write_text("{}")
        return {"checkpoint": str(model), "kind": "pretrain"}

    monkeypatch.setattr(v2, "_pretrain", fake_pretrain)
    v2.run_job(job, s)
    v2.run_job(job, s)  # the model is there: read back
    assert trained == [job.id] and v2.source_checkpoint("hands", 7, s)[1]
    (model.parent / "final.json").unlink()
    model.unlink()
    assert v2.result_path(job, s).is_file() and not v2.source_checkpoint("hands", 7, s)[1]
    v2.run_job(job, s)
    assert trained == [job.id, job.id] and v2.source_checkpoint("hands", 7, s)[1]


def test_oracles_that_do_not_ship_are_trained_last_with_the_shipped_recipe(v2, tmp_path):
    from regdakit import pretrained

    s = {**_settings(tmp_path, tmp_path), "checkpoints": None, "train_oracles": True}
    shipped = pretrained.ORACLE_SEEDS["hands", "studio"]
    absent = max(pretrained.SEEDS["hands"]) + 50  # a seed no oracle ships for
    jobs, missing = v2.plan(["hands"], [shipped[0], absent], [], 7, ["oracle"], (1.0,), s)
    assert missing == []
    assert [j.id for j in jobs["oracles"]] == [f"pretrain-hands-oracle-seed{absent}"]
    assert [j.id for j in jobs["oracle_eval"]] == [f"reported-hands-oracle-seed{absent}"]
    assert f"reported-hands-oracle-seed{shipped[0]}" in [j.id for j in jobs["tuning"]]
    assert list(jobs)[-2:] == ["oracles", "oracle_eval"]  # after the adaptation stages: nothing there needs them
    cfg = v2.run_config(jobs["oracles"][0], s, None)
    assert cfg.method == "oracle" and cfg.run_dir == pretrained.oracle_config("hands", None, absent, s["out"]).run_dir
    # Until its run has finished the oracle is not available; then the evaluation reads its last checkpoint.
    assert v2.oracle_checkpoint("hands", absent, s) is None
    (cfg.run_dir).mkdir(parents=True)
    (cfg.run_dir / "final.json").write_text("{}")
    assert v2.oracle_checkpoint("hands", absent, s) == cfg.run_dir / "last.pt"
    # Trained, it stays a job of the plan (read back when run), so that the report counts its time.
    jobs, _ = v2.plan(["hands"], [shipped[0], absent], [], 7, ["oracle"], (1.0,), s)
    assert [j.id for j in jobs["oracles"]] == [f"pretrain-hands-oracle-seed{absent}"]
    assert [j.id for j in jobs["oracle_eval"]] == [f"reported-hands-oracle-seed{absent}"]
    # Without training, the absent oracle is named as missing.
    _, missing = v2.plan(["hands"], [absent], [], 7, ["oracle"], (1.0,), {**s, "train_oracles": False})
    assert missing == [f"oracle of hands seed {absent}"]


def test_reported_metrics_are_the_mean_of_the_last_evaluations(v2, tmp_path):
    def ev(phase, it, src, tgt):
        e = {"source_val": {"pck@0.05/all": src, "pck@0.1/all": src}, "target_test": {"pck@0.05/all": tgt,
             "pck@0.1/all": 2 * tgt}}  # fmt: skip
        return json.dumps({"phase": phase, "iteration": it, "eval": e})

    # A log without final.json's summary (a run of an earlier version): the mean computed from the log.
    log = tmp_path / "metrics.jsonl"
    lines = [
        ev("pretrain", 10, 0.9, 0.9),
        ev("adapt", 2, 0.5, 0.1),
        ev("adapt", 4, 0.6, 0.2),
        json.dumps({"phase": "adapt", "iteration": 5, "train": {"A/source": 1.0}}),
        ev("adapt", 6, 0.7, 0.3),
        ev("adapt", 6, 0.7, 0.3),
    ]  # fmt: skip  (6 logged twice: a resume)
    log.write_text("\n".join(lines) + "\n")
    out = v2.reported_metrics(tmp_path, 2)
    assert out["iterations"] == [4, 6]
    assert out["target_test"] == {"pck@0.05/all": 25.0, "pck@0.1/all": 50.0}
    assert out["source_val"]["pck@0.05/all"] == 65.0 and out["last_iteration"]["target_test"]["pck@0.05/all"] == 30.0
    # With final.json's summary (the trainer's own mean), that is read.
    summary = {
        "evaluations": 2,
        "iterations": [4, 6],
        "metrics": {
            "source_val": {"pck@0.05/all": 0.5, "pck@0.1/all": 0.6},
            "target_test": {"pck@0.05/all": 0.1, "pck@0.1/all": 0.2},
        },
    }
    last = {
        "source_val": {"pck@0.05/all": 0.4, "pck@0.1/all": 0.4},
        "target_test": {"pck@0.05/all": 0.3, "pck@0.1/all": 0.3},
    }
    (tmp_path / "final.json").write_text(json.dumps({"summary": summary, "metrics": last}))  # fmt: skip
    out = v2.reported_metrics(tmp_path, 2)
    assert out["target_test"] == {"pck@0.05/all": 10.0, "pck@0.1/all": 20.0}
    assert out["last_iteration"]["target_test"]["pck@0.05/all"] == 30.0
    (tmp_path / "final.json").unlink()
    log.write_text(json.dumps({"phase": "adapt", "iteration": 1, "train": {}}) + "\n")
    with pytest.raises(ValueError, match="no evaluation"):
        v2.reported_metrics(tmp_path, 3)


def test_one_budget_for_every_method_with_horizons_that_scale(v2):
    from regdakit.training import make_config, replace_values

    cfg = v2.budget_config(make_config("cpu-bench"), 1500, 10, 3)
    assert (cfg.adapt_iterations, cfg.eval_every, cfg.checkpoint_every, cfg.summary_evals) == (1500, 150, 150, 3)
    assert cfg.regda.warmup_iterations is None and cfg.dann.reversal_iterations is None  # scaled by the methods
    with pytest.raises(ValueError, match="need adapt_iterations >= 1"):
        v2.budget_config(cfg, 0, 10)
    with pytest.raises(ValueError, match="1 <= last_evals <= evals"):
        v2.budget_config(cfg, 100, 2, 3)
    with pytest.raises(ValueError, match="scale with adapt_iterations"):
        v2.budget_config(replace_values(cfg, {"regda.warmup_iterations": 13}), 100, 10)


def test_choices_read_no_target_number(v2):
    def job(row, t, src, score):  # no target_test at all: reading it would raise KeyError
        return {"stage": "tuning", "task": "hands", "row": row, "trade_off": t, "source_val": {"pck@0.05/all": src},
                "label_free": {"neg_entropy": score}}  # fmt: skip

    results = [job("source_only", None, 60.0, None), job("regda", 0.1, 58.0, -2.0), job("regda", 1.0, 40.0, -1.0),
               {**job("dan", 0.1, 0.0, None), "failed": "NaN"}, job("dan", 1.0, 59.0, -3.0)]  # fmt: skip
    out = v2.choices(results, {"validator": "neg_entropy", "margin": 5.0})
    assert out["hands"]["regda"]["chosen_trade_off"] == 0.1 and out["hands"]["regda"]["kept"] == [0.1]
    assert out["hands"]["dan"]["chosen_trade_off"] == 1.0 and out["hands"]["dan"]["failed"] == [0.1]


def test_measured_rates_separate_the_iterations_from_the_fixed_cost(v2, tmp_path, monkeypatch):
    import regdakit.training as T

    def fake_train(cfg, progress=True):  # burns 0.05 s of CPU per job and 0.01 s per iteration
        n = cfg.pretrain_iterations if cfg.method == "erm" else cfg.adapt_iterations
        start = time.process_time()
        while time.process_time() - start < 0.05 + 0.01 * n:
            pass

    monkeypatch.setattr(T, "train", fake_train)
    rates = v2.measure_rates(_settings(tmp_path, tmp_path), ["erm", "regda"], iterations=20)
    for method in ("erm", "regda"):
        assert rates["methods"][method]["iteration_s"] == pytest.approx(0.01, abs=0.003)
        assert rates["methods"][method]["fixed_s"] == pytest.approx(0.05, abs=0.05)
    assert rates["preset"] == "ci" and rates["threads"] == 1 and rates["evaluation_s"] > 0


def test_summarise_hand_made_results(v2, tmp_path):
    def run(stage, row, seed, target, source, trade_off=None, **extra):
        pck = lambda v: {"pck@0.05/all": v, "pck@0.1/all": v + 10}  # noqa: E731
        return {"stage": stage, "task": "hands", "row": row, "seed": seed, "trade_off": trade_off,
                "target_test": pck(target), "source_val": pck(source), "wall_s": 1.0, **extra}  # fmt: skip

    results = [
        run("tuning", "source_only", 3, 0.0, 60.0),
        run("tuning", "regda", 3, 99.0, 58.0, 0.1, label_free={"neg_entropy": -2.0}),
        run("tuning", "regda", 3, 0.0, 59.0, 1.0, label_free={"neg_entropy": -1.0}),
        run("reported", "source_only", 1, 10.0, 60.0), run("reported", "source_only", 2, 20.0, 60.0),
        run("reported", "regda", 1, 15.0, 55.0, 1.0), run("reported", "regda", 2, 30.0, 45.0, 1.0),  # seed 2 lost 15
        run("reported", "control", 1, 12.0, 60.0), {**run("reported", "control", 2, 0.0, 0.0), "failed": "NaN"},
        run("reported", "oracle", 1, 50.0, 5.0), run("reported", "oracle", 2, 60.0, 5.0),
    ]  # fmt: skip
    s = {**_settings(tmp_path, tmp_path), "tuning_seed": 3}
    hands = v2.summarise(results, ["source_only", "control", "regda", "oracle"], s)["tasks"]["hands"]
    assert hands["tuning"]["regda"]["chosen_trade_off"] == 1.0  # the target numbers (99 at 0.1) are never read
    # ... until the audit grades the choice with them: the target labels would have picked 0.1, 99 points more.
    audit = {"target_by_trade_off": {"0.1": 99.0, "1.0": 0.0}, "chosen": 1.0, "label_pick": 0.1, "points_lost": 99.0}
    assert hands["tuning_audit"] == {"source_only": 0.0, "rows": {"regda": audit}}
    regda = hands["rows"]["regda"]
    assert regda["trade_off"] == [1.0] and regda["target"]["pck@0.05/all"]["mean"] == 22.5
    assert regda["minus"]["source_only"]["values"] == [5.0, 10.0]  # 7.5 ± 12.7062 * 3.5355 / sqrt 2
    assert regda["minus"]["source_only"]["ci95"] == pytest.approx([7.5 - 31.7655, 7.5 + 31.7655], abs=2e-3)
    assert regda["minus"]["control"]["seeds"] == [1] and "ci95" not in regda["minus"]["control"]
    assert hands["rows"]["control"]["seeds"] == [1] and hands["failed"] == {"control seed 2": "NaN"}
    assert hands["flags"]["runs"] == [{"row": "regda", "seed": 2, "source_drop_points": 15.0}]
    gap = hands["gap_closed"]
    assert gap["reference"] == "oracle" and gap["rows"]["regda"]["oracle"]["per_seed"] == {1: 0.125, 2: 0.25}
    assert gap["rows"]["regda"]["oracle"]["ratio_of_means"] == pytest.approx(7.5 / 40, abs=1e-4)
    goals = hands["goals"]
    assert goals["regda_above_control"] == {"value": None, "met": None}  # one paired seed: no interval
    assert goals["regda_above_continue"]["met"] is None  # no continue-ERM row here
    assert goals["gap_closed_at_least_0.30"]["met"] is False
    assert goals["no_source_collapse"] == {"value": ["regda seed 2"], "met": False}
    # The target fine-tune forgets the source by design: flagged in the tables, not a collapse of a method.
    tuned_on_target = results + [run("reported", "finetune", 1, 40.0, 30.0), run("reported", "finetune", 2, 40.0, 30.0)]
    both = v2.summarise(tuned_on_target, ["source_only", "finetune"], s)["tasks"]["hands"]
    assert [f["row"] for f in both["flags"]["runs"]] == ["finetune", "finetune"]
    assert both["goals"]["no_source_collapse"] == {"value": [], "met": True}
    verdicts = {tuple(p["pair"]): p["verdict"] for p in hands["ordering"]["RHD -> H3D"]}
    assert verdicts[("oracle", "source_only")] == "agrees"  # 40, 40: no spread, above 0
    assert verdicts[("regda", "source_only")] == "undecided"
    result = {"provenance": {"command": "c", "commit": "0" * 40, "device": "cpu", "torch": "t"},
              "settings": {**s, "seeds": [1, 2], "baseline_seeds": [1, 2]}, "wall_hours": 0.1, "invocations": [{}],
              "job_cpu_hours": 0.1, "tasks": {"hands": hands}}  # fmt: skip
    text = v2.markdown(result)
    assert "control seed 2: NaN" in text and "regda seed 2 (15.0)" in text and "ratio of means" in text
    assert "- gap_closed_at_least_0.30: not met (0.1875)" in text
    assert f"| {v2.ROWS['regda'].label} | 0.1: 99.0, 1: 0.0 | 1 | 0.1 | 99.0 |" in text
    assert "The source-only model of the tuning seed: 0.0." in text
    assert "provisional" not in text  # no grid in these settings: nothing to compare with
    partial = v2.markdown({**result, "settings": {**result["settings"], "grid": [0.1, 0.3, 1.0]}})
    assert "**provisional: 2 of 3 trade-offs run**" in partial  # the tuning seed ran 0.1 and 1 only


def test_a_narrower_selection_is_named(v2):
    both = ["hands", "bodies"]
    assert v2.narrower_than_default(both, list(v2.DEFAULT_ROWS), both) == ""
    assert v2.narrower_than_default(["bodies", "hands"], [*v2.DEFAULT_ROWS, "dd_unbounded"], both) == ""
    assert v2.narrower_than_default(["hands"], list(v2.DEFAULT_ROWS), both) == "--tasks hands"
    rows = [r for r in v2.DEFAULT_ROWS if r not in ("mcd", "oracle")]
    assert v2.narrower_than_default(both, rows, both) == "--rows without mcd oracle"


def test_the_tuning_audit_grades_only_among_the_kept_trade_offs(v2):
    def job(row, trade_off, target, **extra):
        return {"stage": "tuning", "row": row, "trade_off": trade_off, "target_test": {v2.MAIN: target}, **extra}

    results = [job("source_only", None, 5.0), job("dan", 0.1, 10.0), job("dan", 1.0, 50.0), job("dan", 0.3, 20.0),
               job("mcd", 0.1, 1.0), {**job("mcd", 1.0, 0.0), "failed": "NaN"}]  # fmt: skip
    tuning = {"dan": {"chosen_trade_off": 0.1, "kept": [0.1, 0.3]}, "mcd": {"chosen_trade_off": None, "kept": []}}
    audit = v2.tuning_audit(results, tuning)
    # 1.0 reached 50 but lost the source (not kept): the labels' pick among the kept is 0.3, 10 points up.
    assert audit == {
        "source_only": 5.0,
        "rows": {
            "dan": {
                "target_by_trade_off": {"0.1": 10.0, "0.3": 20.0, "1.0": 50.0},
                "chosen": 0.1,
                "label_pick": 0.3,
                "points_lost": 10.0,
            }
        },
    }
