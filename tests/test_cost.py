"""regdakit.training.cost: counted operations of an iteration and the time model built on them."""

import dataclasses

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from regdakit.training import cost, make_config
from regdakit.training.pretraining import build_model


@pytest.fixture(scope="module")
def cfg():
    return make_config("ci", task="hands", method="regda", batch_size=4)


def test_an_erm_iteration_counts_one_forward_and_backward_of_the_detector(cfg):
    # Counted independently: the detector's forward on a source batch and the backward of a loss on f's maps.
    model = build_model(dataclasses.replace(cfg, method="erm"), load_backbone_weights=False).train()
    images = torch.randn(4, 3, cfg.image_size, cfg.image_size)
    with FlopCounterMode(display=False) as counter:
        heatmaps, _ = model(images)
        heatmaps.square().mean().backward()
    assert cost.iteration_flops(cfg, "erm", batch=4) == counter.get_total_flops()


def test_counts_scale_linearly_with_the_batch(cfg):
    assert cost.iteration_flops(cfg, "regda", batch=2) == cost.iteration_flops(cfg, "regda", batch=4)
    assert cost.iteration_flops(cfg, "erm", batch=2) == cost.iteration_flops(cfg, "erm", batch=4)
    twice = dataclasses.replace(cfg, batch_size=8)
    assert cost.iteration_flops(twice, "regda") == 2 * cost.iteration_flops(cfg, "regda")


def test_regda_costs_more_than_erm_and_continue_erm_as_much_as_erm(cfg):
    # Steps A, B and C run psi on source and target batches and a second head: more than one ERM update
    # (benchmarks/results/step_time_cpu_resnet101.json measured 2.3 x at the paper's size).
    erm = cost.iteration_flops(cfg, "erm")
    assert 2 * erm < cost.iteration_flops(cfg, "regda") < 4 * erm
    assert cost.iteration_flops(cfg, "continue") == erm
    assert cost.iteration_flops(cfg, "oracle") == erm


@pytest.fixture(scope="module")
def counted(cfg):
    """Each count once: a count runs a real step."""
    return {
        "erm": cost.iteration_flops(cfg, "erm"),
        "regda": cost.iteration_flops(cfg),
        "evaluation": cost.evaluation_flops(cfg),
    }


def test_a_run_adds_its_iterations_and_evaluations(cfg, counted):
    erm, regda, evaluation = counted["erm"], counted["regda"], counted["evaluation"]
    # ci: 30 pre-training and 30 adaptation iterations, an evaluation every 15: 2 + 2 evaluations.
    estimate = cost.run_cost(cfg, also=("continue",))
    assert [(p.method, p.iterations, p.target_batches, p.evaluations) for p in estimate.phases] == [
        ("erm", 30, False, 2),
        ("regda", 30, True, 2),
        ("continue", 30, False, 2),  # continue-ERM draws source batches only
    ]
    parts = estimate.flops()
    assert parts["pretrain"] == 30 * erm and parts["adapt"] == 30 * regda + 30 * erm
    assert parts["evaluation"] == pytest.approx(6 * evaluation)
    assert parts["total"] == pytest.approx(60 * erm + 30 * regda + 6 * evaluation)
    assert cost.run_flops(cfg)["total"] == pytest.approx(30 * erm + 30 * regda + 4 * evaluation)
    alone = cost.run_flops(cfg, pretrain=False)
    assert alone["pretrain"] == 0 and alone["evaluation"] == pytest.approx(2 * evaluation)
    erm_run = cost.run_flops(dataclasses.replace(cfg, method="erm"), pretrain=False)  # ERM's run is its training
    assert erm_run["pretrain"] == 30 * erm and erm_run["adapt"] == 0


def test_each_method_is_counted_once(cfg, monkeypatch):
    calls = []
    monkeypatch.setattr(cost, "iteration_flops", lambda cfg, method=None, batch=2: calls.append(method) or 1.0)
    monkeypatch.setattr(cost, "evaluation_flops", lambda cfg, batch=2: calls.append("evaluation") or 1.0)
    cost.run_cost(cfg, also=("continue",))
    assert sorted(calls) == ["continue", "erm", "evaluation", "regda"]


def test_the_time_model_adds_rendering_to_compute():
    # By hand: 10 ERM iterations (source batches), 20 RegDA iterations (source and target), 3 evaluations.
    estimate = cost.RunCost(
        (cost.Phase("erm", 10, 2e12, False, 1), cost.Phase("regda", 20, 5e12, True, 2)), evaluation_flops=1e12
    )
    seconds = estimate.seconds(tflops=2.0, source_batch_s=0.5, target_batch_s=0.25)
    assert seconds["compute"] == pytest.approx((10 * 2 + 20 * 5 + 3 * 1) / 2)  # 61.5 s
    assert seconds["data"] == pytest.approx(10 * 0.5 + 20 * 0.75)  # 20 s
    assert seconds["total"] == pytest.approx(81.5)


def test_run_seconds_measures_the_batches_it_draws(cfg, monkeypatch):
    monkeypatch.setattr(cost, "batch_seconds", lambda cfg, domain, labels=True, repeats=3: 0.5 if labels else 0.25)
    seconds = cost.run_seconds(cfg, tflops=1.0, pretrain=False)
    assert seconds["data"] == pytest.approx(30 * 0.75)
    assert seconds["compute"] == pytest.approx(cost.run_flops(cfg, pretrain=False)["total"] / 1e12)


def test_bad_input_is_named(cfg):
    with pytest.raises(ValueError, match="tflops must be positive, got 0"):
        cost.RunCost((), 0.0).seconds(0, 0.1, 0.1)
    with pytest.raises(ValueError, match="tflops must be positive, got -1"):
        cost.run_seconds(cfg, tflops=-1)
    with pytest.raises(ValueError, match="method must be one of .* got 'regdaa'"):
        cost.iteration_flops(cfg, "regdaa")
    with pytest.raises(ValueError, match="batch must be at least 2"):
        cost.iteration_flops(cfg, "erm", batch=1)


def test_the_gpu_preset_is_the_cpu_bench_recipe_on_resnet18_at_batch_32():
    gpu, bench = make_config("gpu-student"), make_config("cpu-bench")
    assert (gpu.backbone, gpu.batch_size) == ("resnet18", 32)
    assert (gpu.image_size, gpu.heatmap_size, gpu.sigma) == (bench.image_size, bench.heatmap_size, bench.sigma)
    assert gpu.erm.optimizer == bench.erm.optimizer == "adam" and gpu.regda == bench.regda
    assert gpu.erm.milestones == (round(0.75 * gpu.pretrain_iterations),)
