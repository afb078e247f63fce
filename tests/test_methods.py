"""Method contracts over METHODS, RegDA's sub-steps, and the fused/plain equivalence."""

import dataclasses
import math

import pytest
import torch

from regdakit import disparity
from regdakit.heatmaps import encode
from regdakit.methods import METHODS, adabn, common, contract, control, dd, dd_unbounded, erm, regda
from regdakit.models import GradientScale, pose_resnet

K = 5
SIZE = 64  # the tiny backbone needs sides divisible by 32; heatmaps are 16 x 16


pytestmark = pytest.mark.usefixtures("one_thread")

#: Every method that adapts with unlabelled target batches (ERM ignores batch_t: it sees no target).
ADAPTATION = sorted(name for name in METHODS if name != "erm")


def _batches(n, seed=1, dtype=torch.float32, b=4):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        kp = torch.rand(b, K, 2, generator=g) * (SIZE - 8) + 4
        heat, weight = encode(kp, torch.ones(b, K, dtype=torch.bool), SIZE // 4, 4.0)
        batch_s = {
            "image": torch.rand(b, 3, SIZE, SIZE, generator=g, dtype=dtype),
            "heatmap": heat.to(dtype),
            "weight": weight.to(dtype),
        }
        batch_t = {"image": torch.rand(b, 3, SIZE, SIZE, generator=g, dtype=dtype)}
        out.append((batch_s, batch_t))
    return out


def _model(method, dtype=torch.float32, **kwargs):
    """The detector with the method's parts: f' from the constructor, the others from the method's prepare."""
    torch.manual_seed(0)
    model = pose_resnet("tiny", K, adversarial="head_adv" in method.PARTS, **kwargs)
    contract.prepare(method, model, method.Config())
    return model.to(dtype).train()


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed(model, before):
    """Top-level parts (backbone, upsampling, head, head_adv) whose parameters changed."""
    return {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}


# ------------------------------------------------------------- the contract, for every method


@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_fulfils_the_contract(name):
    method = METHODS[name]
    assert isinstance(method, contract.Method)
    cfg = method.Config()
    assert dataclasses.is_dataclass(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.__setattr__(dataclasses.fields(cfg)[0].name, 1)
    # STEPS: the updates of one iteration, lettered A, B, C... in order.
    assert list(method.STEPS) == [chr(ord("A") + i) for i in range(len(method.STEPS))]
    assert all(isinstance(text, str) and text for text in method.STEPS.values())
    model = _model(method)
    assert contract.parts_of(model) == list(method.PARTS)  # the model has exactly the parts the method declares
    optimizers = method.make_optimizers(model, cfg)
    schedulers = contract.make_schedulers(method, optimizers, cfg)
    assert set(schedulers) <= set(optimizers)
    assert set(contract.run_settings(method)) <= {"sigma", "adapt_iterations"}  # run-level settings the trainer passes


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_is_finite_names_its_values_and_trains_exactly_its_parts(name):
    method = METHODS[name]
    model = _model(method)
    cfg = method.Config()
    optimizers = method.make_optimizers(model, cfg)
    before = _snapshot(model)
    ((batch_s, batch_t),) = _batches(1)
    losses = method.step(model, batch_s, batch_t, optimizers, cfg, 100)
    assert losses and all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    # The vocabulary: "<step>/<name>" with a step of STEPS (each step reports something), or "metric/<name>".
    steps = {contract.step_of(key) for key in losses}
    assert steps - {None} == set(method.STEPS), losses
    assert all(contract.loss_key(*key.split("/")) == key for key in losses)
    assert "A/source" in losses
    assert _changed(model, before) == {"backbone", "upsampling", "head", *method.PARTS}
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_few_steps_lower_the_source_loss(name):
    method = METHODS[name]
    model = _model(method)
    cfg = method.Config()
    optimizers = method.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    first = method.step(model, batch_s, batch_t, optimizers, cfg, 0)["A/source"]
    for it in range(1, 6):
        last = method.step(model, batch_s, batch_t, optimizers, cfg, it)["A/source"]
    assert last < first


@pytest.mark.parametrize("key", common.LABEL_KEYS)
@pytest.mark.parametrize("name", ADAPTATION)
def test_every_adaptation_method_rejects_a_labelled_target_batch(name, key):
    method = METHODS[name]
    model = _model(method)
    cfg = method.Config()
    ((batch_s, batch_t),) = _batches(1)
    before = _snapshot(model)
    leaked = dict(batch_t, **{key: batch_s["weight"]})
    with pytest.raises(ValueError, match="target labels"):
        method.step(model, batch_s, leaked, method.make_optimizers(model, cfg), cfg, 0)
    assert _changed(model, before) == set()  # refused before any update


def test_the_loss_key_vocabulary():
    assert contract.loss_key("B", "adversary") == "B/adversary"
    assert contract.step_of("A/mmd") == "A" and contract.step_of("metric/domain_accuracy") is None
    assert contract.step_of("A_source") is None  # the old spelling is not a key of the vocabulary
    for bad in ("a/source", "AB/source", "A/", "source"):
        with pytest.raises(ValueError, match="not a loss key"):
            contract.loss_key(*bad.split("/", 1)) if "/" in bad else contract.loss_key(bad, "")
    # Every old name maps to a key of the vocabulary.
    assert all(contract.step_of(new) or new.startswith("metric/") for new in contract.LEGACY_KEYS.values())


def test_erm_mse_and_adam_recipe():
    model = _model(erm)
    optimizers = erm.make_optimizers(model, erm.ADAM_MSE)
    assert isinstance(optimizers["model"], torch.optim.Adam)
    ((batch_s, _),) = _batches(1)
    losses = erm.step(model, batch_s, None, optimizers, erm.ADAM_MSE, it=0)
    assert set(losses) == {"A/source"} and math.isfinite(losses["A/source"])


def test_erm_rejects_unlabelled_source():
    model = _model(erm)
    cfg = erm.Config()
    with pytest.raises(ValueError, match="heatmap"):
        erm.step(model, {"image": torch.rand(2, 3, SIZE, SIZE)}, None, erm.make_optimizers(model, cfg), cfg, 0)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_the_supervised_loss_is_checked_once_for_every_config(name):
    method = METHODS[name]
    field = "loss" if method is erm else "source_loss"
    with pytest.raises(ValueError, match=f"{field} must be one of \\('kl', 'mse'\\)"):
        method.Config(**{field: "l1"})


def test_regda_needs_an_adversarial_head():
    with pytest.raises(ValueError, match="adversarial head"):
        regda.make_optimizers(_model(erm), regda.Config())


def _bn_buffers(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k}


def test_control_learns_from_the_source_only_and_lets_batchnorm_see_the_target():
    cfg = regda.Config()
    (batch_s, batch_t), (_, other_t) = _batches(2)
    after = []
    for target in (batch_t, other_t):
        model = _model(control)
        losses = control.step(model, batch_s, target, control.make_optimizers(model, cfg), cfg, it=0)
        assert set(losses) == {"A/source"}
        after.append((_snapshot(model), _bn_buffers(model)))
    (params_1, bn_1), (params_2, bn_2) = after
    # Weights do not depend on the target batch at all...
    assert all(torch.equal(params_1[k], params_2[k]) for k in params_1)
    # ...but BatchNorm's running statistics do.
    assert any(not torch.equal(bn_1[k], bn_2[k]) for k in bn_1 if "num_batches" not in k)


def test_control_uses_regdas_optimiser_recipe_without_f_prime():
    cfg = regda.Config(lr=0.02, head_lr=0.3)
    optimizers = control.make_optimizers(_model(control), cfg)
    assert set(optimizers) == {"psi", "head"}
    assert [g["lr"] for g in optimizers["psi"].param_groups] == [0.02, 0.02]
    assert optimizers["head"].param_groups[0]["lr"] == 0.3
    assert optimizers["head"].param_groups[0]["nesterov"] is True


def test_adabn_running_statistics_are_the_average_over_target_batches():
    torch.manual_seed(0)
    bn = torch.nn.BatchNorm2d(3)
    model = torch.nn.Sequential(bn)
    weight_before = bn.weight.detach().clone()
    batches = [torch.randn(4, 3, 5, 5) * 2 + 1, torch.randn(4, 3, 5, 5) - 3]
    assert adabn.recompute_batchnorm(model, batches) == 8
    # Equal batch sizes: the cumulative average of batch means is the overall mean,
    # and the running variance is the average of the per-batch unbiased variances.
    expected_mean = torch.stack([b.mean(dim=(0, 2, 3)) for b in batches]).mean(0)
    expected_var = torch.stack([b.transpose(0, 1).reshape(3, -1).var(dim=1) for b in batches]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected_mean)
    torch.testing.assert_close(bn.running_var, expected_var)
    assert torch.equal(bn.weight, weight_before) and not model.training and bn.momentum == 0.1


def test_adabn_errors():
    with pytest.raises(ValueError, match="no BatchNorm"):
        adabn.recompute_batchnorm(torch.nn.Sequential(torch.nn.Conv2d(3, 3, 1)), [torch.rand(1, 3, 4, 4)])
    with pytest.raises(ValueError, match="empty"):
        adabn.recompute_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)), [])


@pytest.mark.filterwarnings("ignore:Detected call of")
def test_regda_lr_schedule_matches_reference():
    model = _model(regda)
    cfg = regda.Config()
    optimizers = regda.make_optimizers(model, cfg)
    assert [g["lr"] for g in optimizers["psi"].param_groups] == [0.01, 0.01]
    assert optimizers["head"].param_groups[0]["lr"] == optimizers["head_adv"].param_groups[0]["lr"] == 0.1
    sched = contract.make_schedulers(regda, optimizers, cfg)  # the contract's default: the recipe's decay
    for _ in range(5000):
        for s in sched.values():
            s.step()
    assert optimizers["head_adv"].param_groups[0]["lr"] == pytest.approx(0.1 * 1.5**-0.75)


def test_lr_warmup_rises_linearly_over_its_share_of_the_run_then_decays_as_the_reference():
    model = _model(regda)
    cfg = regda.Config(lr_warmup=0.1)
    optimizers = regda.make_optimizers(model, cfg)
    sched = contract.make_schedulers(regda, optimizers, cfg, 200)  # a 200-iteration run: 20 iterations of warm-up
    rates = []
    for _ in range(30):
        rates.append(optimizers["psi"].param_groups[0]["lr"])
        for name, s in sched.items():
            optimizers[name].step()  # no gradients: a no-op, in the order the scheduler expects
            s.step()
    decay = [(1 + 1e-4 * i) ** -0.75 for i in range(30)]
    assert rates == pytest.approx([0.01 * min(1, (i + 1) / 20) * decay[i] for i in range(30)])
    assert optimizers["head"].param_groups[0]["lr"] == pytest.approx(0.1 * (1 + 30e-4) ** -0.75)  # warm after 20
    with pytest.raises(ValueError, match="lr_warmup is a share of the adaptation run"):
        regda.Config(lr_warmup=1.5)


# ----------------------------------------------------------- RegDA sub-steps


def _target_losses(model, x_t, labels):
    """``(L_T, L_F)`` of ``f'`` on a target batch against fixed pseudo-labels, without changing anything."""
    with torch.no_grad():
        y_adv = model.head_adv(model.features(x_t))
        return (
            disparity.ground_truth_disparity(y_adv, labels.truth).item(),
            disparity.ground_false_disparity(y_adv, labels.false).item(),
        )


#: Table 2 of the paper, written out here independently of the methods: (f' in step B, psi in step C).
TABLE2 = {
    "regda": (disparity.minimise_false, disparity.minimise_truth),
    "dd": (disparity.maximise_truth, disparity.minimise_truth),
    "false_max": (disparity.minimise_false, disparity.maximise_false),
}


def test_every_row_of_table2_is_a_method_or_a_regda_variant():
    # RegDA's own pair and its variant are Config.objective; the DD row (the unbounded KL) is the method
    # dd_unbounded, spelled once; the DD baseline bounds its adversary (tests/test_baselines.py).
    assert {**regda.OBJECTIVES, "dd": dd_unbounded.OBJECTIVES} == TABLE2
    assert dd.OBJECTIVES == (disparity.maximise_truth_bounded, disparity.minimise_truth_bounded)
    assert "dd" not in regda.OBJECTIVES
    with pytest.raises(ValueError, match="run --method dd"):
        regda.Config(objective="dd")


@pytest.mark.parametrize("objective", sorted(TABLE2))
def test_steps_a_b_c_report_the_disparity_objectives_on_their_own_logits(objective):
    """What steps A, B and C return is regdakit.disparity's L_T / objective on the logits each step sees.

    Each expected value is computed from the same parameters just before the step (train-mode BatchNorm
    normalises with the batch's statistics, so the extra forward gives the step's own logits).
    """
    cfg = regda.Config()
    model = _model(regda)
    optimizers = regda.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    it, sigma = 5000, 1.5
    loss_b, loss_c = TABLE2[objective]

    with torch.no_grad():
        y_s, y_s_adv = model(batch_s["image"], step=it)
    expected_a = disparity.ground_truth_loss(y_s_adv, y_s, sigma, batch_s["weight"])
    assert torch.equal(regda.step_a(model, batch_s, optimizers, cfg, it, sigma=sigma)["A/truth"], expected_a)

    target = regda.target_pass(model, batch_t["image"], sigma)
    with torch.no_grad():
        expected_b = loss_b(model.head_adv(target.psi.detach()), target.truth, target.false)
    assert torch.equal(regda.step_b(model, target, optimizers, cfg, loss_b), expected_b)

    with torch.no_grad():  # f' after B's update, on the same psi (the gradient-scaling layer is the identity forward)
        expected_c = loss_c(model.head_adv(target.psi.detach()), target.truth, target.false)
    assert torch.equal(regda.step_c(model, target, optimizers, cfg, it, loss_c), expected_c)


@pytest.mark.parametrize(
    ("objective", "b_moves", "c_moves"),
    [
        ("regda", ("false", -1), ("truth", -1)),
        ("dd", ("truth", +1), ("truth", -1)),
        ("false_max", ("false", -1), ("false", +1)),
    ],
)
def test_table2_objectives_move_their_loss_the_right_way(objective, b_moves, c_moves):
    """Step B moves f' and step C moves psi in the direction each objective asks (Table 2 of the paper).

    The pseudo-labels are held fixed (those of the first target pass): each step optimises against
    its own iteration's labels, and f's prediction would otherwise drift with psi.
    """
    cfg = regda.Config()
    loss_b, loss_c = TABLE2[objective]
    ((_, batch_t),) = _batches(1)
    x_t = batch_t["image"]
    for (which, sign), sub_step in ((b_moves, "B"), (c_moves, "C")):
        model = _model(regda)
        optimizers = regda.make_optimizers(model, cfg)
        labels = regda.target_pass(model, x_t)
        index = 0 if which == "truth" else 1
        first = _target_losses(model, x_t, labels)[index]
        for _ in range(3):
            target = regda.TargetPass(model.features(x_t), labels.truth, labels.false)
            if sub_step == "B":
                regda.step_b(model, target, optimizers, cfg, loss_b)
            else:
                regda.step_c(model, target, optimizers, cfg, 5000, loss_c)
        last = _target_losses(model, x_t, labels)[index]
        assert sign * (last - first) > 0, (objective, sub_step, which, first, last)


@pytest.mark.parametrize("fused", [True, False])
def test_each_substep_changes_only_its_player(fused):
    model = _model(regda)
    cfg = regda.Config(fused=fused)
    optimizers = regda.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    it = 5000  # λ ≈ 0.1: step C's gradient into psi is not negligible
    before = _snapshot(model)
    regda.step_a(model, batch_s, optimizers, cfg, it)
    assert _changed(model, before) == {"backbone", "upsampling", "head", "head_adv"}

    loss_b, loss_c = regda.OBJECTIVES["regda"]
    before = _snapshot(model)
    if fused:
        target = regda.target_pass(model, batch_t["image"])
        regda.step_b(model, target, optimizers, cfg, loss_b)
    else:
        regda.step_b_plain(model, batch_t["image"], optimizers, cfg, it, loss_b)
    assert _changed(model, before) == {"head_adv"}

    before = _snapshot(model)
    if fused:
        regda.step_c(model, target, optimizers, cfg, it, loss_c)
    else:
        regda.step_c_plain(model, batch_t["image"], optimizers, cfg, it, loss_c)
    assert _changed(model, before) == {"backbone", "upsampling"}


def test_step_c_reaches_psi_only_through_the_scaled_gradient():
    # With λ = 0 (iteration 0) step C's loss gives psi a zero gradient: only weight decay moves it.
    model = _model(regda)
    cfg = regda.Config(weight_decay=0.0, momentum=0.0, nesterov=False)
    optimizers = regda.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    target = regda.target_pass(model, batch_t["image"])
    before = _snapshot(model)
    regda.step_c(model, target, optimizers, cfg, 0, regda.OBJECTIVES["regda"][1])
    assert _changed(model, before) == set()


def test_the_warm_start_is_regdas_and_the_model_holds_none():
    """λ comes from regda.Config.warmup_iterations; the model's own gradient_scale changes nothing."""
    cfg = regda.Config()
    ((_, batch_t),) = _batches(1)
    loss_c = regda.OBJECTIVES["regda"][1]

    def psi_gradient(warmup, model_scale):
        """The gradient step C leaves on psi's first convolution (the optimiser does not clear it)."""
        model = _model(regda, gradient_scale=model_scale)
        with_warmup = dataclasses.replace(cfg, warmup_iterations=warmup)
        optimizers = regda.make_optimizers(model, with_warmup)
        regda.step_c(model, regda.target_pass(model, batch_t["image"]), optimizers, with_warmup, 50, loss_c)
        return model.backbone.conv1.weight.grad

    slow = psi_gradient(1000, GradientScale())
    assert slow.abs().max() > 0
    assert torch.equal(psi_gradient(1000, GradientScale(max_steps=1, hi=5.0)), slow)  # not the model's schedule
    # The gradient into psi is proportional to λ, RegDA's warm start of this iteration.
    ratio = regda.warm_start(dataclasses.replace(cfg, warmup_iterations=10), 50) / regda.warm_start(cfg, 50)
    assert ratio > 30
    expected = slow * ratio
    torch.testing.assert_close(psi_gradient(10, GradientScale()), expected, rtol=1e-3, atol=1e-4 * expected.abs().max())


# ----------------------------------------------------- fused == plain schedule


def _run_schedule(fused, iterations=3, start=5000):
    """Several RegDA iterations from one seed, in float64 for a tight comparison."""
    model = _model(regda, torch.float64)
    cfg = regda.Config(fused=fused)
    optimizers = regda.make_optimizers(model, cfg)
    schedulers = contract.make_schedulers(regda, optimizers, cfg)
    history = []
    for i, (batch_s, batch_t) in enumerate(_batches(iterations, dtype=torch.float64)):
        history.append(regda.step(model, batch_s, batch_t, optimizers, cfg, it=start + i))
        for s in schedulers.values():
            s.step()
    return model, optimizers, history


def test_fused_and_plain_schedules_are_the_same_algorithm():
    fused, opt_fused, hist_fused = _run_schedule(True)
    plain, opt_plain, hist_plain = _run_schedule(False)
    # Same losses at every iteration, same parameters after three.
    for a, b in zip(hist_fused, hist_plain, strict=True):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    params_fused, params_plain = dict(fused.named_parameters()), dict(plain.named_parameters())
    for name, p in params_fused.items():
        torch.testing.assert_close(p, params_plain[name], rtol=1e-10, atol=1e-12, msg=name)
    # Same optimiser states (momentum buffers) for every player.
    for key in opt_fused:
        for s_f, s_p in zip(opt_fused[key].state.values(), opt_plain[key].state.values(), strict=True):
            torch.testing.assert_close(s_f["momentum_buffer"], s_p["momentum_buffer"], rtol=1e-10, atol=1e-12)
    # The parameters really moved (the test would be empty otherwise).
    assert not torch.equal(params_fused["backbone.conv1.weight"], _model(regda, torch.float64).backbone.conv1.weight)


def test_fused_and_plain_batchnorm_running_statistics():
    """The documented difference: psi's and f's BatchNorm see each target batch twice in the plain schedule."""
    iterations = 3
    fused, _, _ = _run_schedule(True, iterations)
    plain, _, _ = _run_schedule(False, iterations)
    buf_f, buf_p = dict(fused.named_buffers()), dict(plain.named_buffers())
    for name, value in buf_f.items():
        if name.startswith("head_adv."):
            # f' runs twice per target batch in both schedules (B, then C after its update): identical.
            torch.testing.assert_close(value, buf_p[name], rtol=1e-10, atol=1e-12, msg=name)
        elif name.endswith("num_batches_tracked"):
            # psi and f: source + target (fused) against source + target + target (plain).
            assert int(value) == 2 * iterations and int(buf_p[name]) == 3 * iterations, name
        elif name.endswith(("running_mean", "running_var")):
            assert not torch.allclose(value, buf_p[name]), name
