"""The methods' schedules scale with the adaptation run: RegDA's warm start and DANN's reversal weight."""

import dataclasses
import math

import pytest

from regdakit import train as T
from regdakit.methods import METHODS, contract, dann, recipe, regda
from regdakit.training import resume, settings

pytestmark = pytest.mark.usefixtures("one_thread")


def test_horizon_is_a_share_of_the_run_rounded_and_at_least_one():
    assert recipe.horizon(1000 / 15000, 15000) == 1000  # the reference: N = 1000 for 15000 iterations
    assert recipe.horizon(1000 / 15000, 200) == 13  # 13.33 -> 13
    assert recipe.horizon(1000 / 15000, 2000) == 133
    assert recipe.horizon(1000 / 15000, 0) == 1  # a horizon is never 0 (it divides)
    assert recipe.horizon(1.0, 200) == 200
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="adapt_iterations must be an int >= 0"):
            recipe.horizon(1.0, bad)
    with pytest.raises(ValueError, match="share"):
        recipe.horizon(0.0, 200)


def test_regdas_warm_start_scales_with_the_run_unless_fixed():
    cfg = regda.Config()
    assert cfg.warmup_iterations is None
    assert [regda.warmup_horizon(cfg, n) for n in (15000, 2000, 200, 30)] == [1000, 133, 13, 2]
    # lambda = 0.1 tanh(it / 2N): at it = N it is 0.1 tanh(1/2) whatever the run's length.
    for n, horizon in ((15000, 1000), (200, 13)):
        assert regda.warm_start(cfg, horizon, adapt_iterations=n) == pytest.approx(0.1 * math.tanh(0.5))
    assert regda.warm_start(cfg, 1000) == pytest.approx(0.1 * math.tanh(0.5))  # without a run: the reference's
    fixed = regda.Config(warmup_iterations=7)
    assert regda.warmup_horizon(fixed, 200) == regda.warmup_horizon(fixed, 15000) == 7
    with pytest.raises(ValueError, match=r"warmup_iterations must be >= 1 \(or None"):
        regda.Config(warmup_iterations=0)


def test_danns_reversal_weight_spans_the_run_unless_fixed():
    cfg = dann.Config()
    assert cfg.reversal_iterations is None and cfg.trade_off == 0.1
    # p = it / adapt_iterations: lambda = tanh(5 p) is 0.9051 at 30 % of any run.
    for n in (200, 800, 15000):
        assert dann.reversal_horizon(cfg, n) == n
        assert dann.reversal_lambda(round(0.3 * n), cfg, n) == pytest.approx(math.tanh(1.5))
    assert dann.reversal_lambda(0, cfg, 200) == 0.0
    fixed = dann.Config(reversal_iterations=50)
    assert dann.reversal_lambda(10, fixed, 200) == dann.reversal_lambda(10, fixed, 15000) == pytest.approx(math.tanh(1))
    with pytest.raises(ValueError, match=r"reversal_iterations must be >= 1 \(or None"):
        dann.Config(reversal_iterations=0)


def test_the_trainer_passes_the_runs_length_to_the_steps_that_take_it(tmp_path, monkeypatch):
    assert "adapt_iterations" in contract.run_settings(regda)
    assert "adapt_iterations" in contract.run_settings(dann)
    seen = []
    for name in ("regda", "dann"):
        module = METHODS[name]
        real = module.step

        def spy(*args, _real=real, **kwargs):
            seen.append(kwargs.get("adapt_iterations"))
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "step", spy)
    for name in ("regda", "dann"):
        cfg = T.make_config(
            "ci", method=name, out=str(tmp_path), pretrain_iterations=2, adapt_iterations=3, batch_size=2,
            eval_every=3, checkpoint_every=3, eval_size=4, device="cpu",
        )  # fmt: skip
        T.train(cfg, progress=False)
    assert seen == [3] * 6


def test_a_saved_horizon_equal_to_the_derived_one_reads_as_scaled():
    # The cpu-bench preset of earlier versions wrote its horizons by hand: 13 (= 200 / 15) and 200.
    saved = {
        "sigma": 1.0,
        "adapt_iterations": 200,
        "regda": {"warmup_iterations": 13},
        "dann": {"reversal_iterations": 200},
    }
    cfg = settings.config_from_dict(saved)
    assert cfg.regda.warmup_iterations is None and cfg.dann.reversal_iterations is None
    # Any other number was a choice: it stays, fixed.
    other = settings.config_from_dict(dict(saved, regda={"warmup_iterations": 7}, dann={"reversal_iterations": 1000}))
    assert other.regda.warmup_iterations == 7 and other.dann.reversal_iterations == 1000
    # A config from before DANN has no dann section: the horizon of then (the first shipped models' recipe).
    assert settings.config_from_dict({"sigma": 1.0}).dann.reversal_iterations == 1000
    # The round trip of this version is exact.
    cfg = T.make_config("cpu-bench", method="dann")
    assert settings.config_from_dict(dataclasses.asdict(cfg)) == cfg


def test_a_resume_may_not_stretch_a_schedule_that_scales_with_the_run():
    for name in ("regda", "dd", "dann"):
        with pytest.raises(ValueError, match=r"resume_allow: adapt_iterations cannot change"):
            resume.check_resume_allow(T.make_config("ci", method=name), ("adapt_iterations",))
    for name in ("control", "dan", "mcd"):  # no schedule of theirs depends on the run's length
        resume.check_resume_allow(T.make_config("ci", method=name), ("adapt_iterations",))
