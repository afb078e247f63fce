"""Method contracts over METHODS, RegDA's sub-steps, and the fused/plain equivalence."""

import math

import pytest
import torch

from regdakit import disparity
from regdakit.methods import METHODS, adabn, control, dd, erm, regda
from regdakit.models import pose_resnet

K = 5
SIZE = 64  # the tiny backbone needs sides divisible by 32; heatmaps are 16 x 16


pytestmark = pytest.mark.usefixtures("one_thread")


def _batches(n, seed=1, dtype=torch.float32, b=4):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        kp = torch.rand(b, K, 2, generator=g) * (SIZE - 8) + 4
        from regdakit.heatmaps import encode

        heat, weight = encode(kp, torch.ones(b, K, dtype=torch.bool), SIZE // 4, 4.0)
        batch_s = {
            "image": torch.rand(b, 3, SIZE, SIZE, generator=g, dtype=dtype),
            "heatmap": heat.to(dtype),
            "weight": weight.to(dtype),
        }
        batch_t = {"image": torch.rand(b, 3, SIZE, SIZE, generator=g, dtype=dtype)}
        out.append((batch_s, batch_t))
    return out


def _config(method):
    return dd.make_config() if method is dd else method.Config()


def _model(method, dtype=torch.float32):
    torch.manual_seed(0)
    model = pose_resnet("tiny", K, adversarial=getattr(method, "ADVERSARIAL_HEAD", False))
    if hasattr(method, "prepare"):
        method.prepare(model, _config(method))
    return model.to(dtype).train()


#: Parts each method's whole iteration trains (beyond psi and f).
EXTRA_PARTS = {"regda": {"head_adv"}, "dd": {"head_adv"}, "mcd": {"head_adv"}, "dann": {"domain_discriminator"}}
SOURCE_KEY = {"erm": "source", "dan": "source", "dann": "source"}


def _snapshot(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed(model, before):
    """Top-level parts (backbone, upsampling, head, head_adv) whose parameters changed."""
    return {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}


@pytest.mark.parametrize("name", sorted(METHODS))
def test_method_module_shape(name):
    method = METHODS[name]
    cfg = _config(method)
    with pytest.raises(dataclasses_frozen_error()):
        cfg.__setattr__("fused" if name == "regda" else "lr", 1)
    optimizers = method.make_optimizers(_model(method), cfg)
    schedulers = method.make_schedulers(optimizers, cfg)
    assert set(schedulers) <= set(optimizers)


def dataclasses_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@pytest.mark.parametrize("name", sorted(METHODS))
def test_one_step_is_finite_and_changes_trainable_parts(name):
    method = METHODS[name]
    model = _model(method)
    cfg = _config(method)
    optimizers = method.make_optimizers(model, cfg)
    before = _snapshot(model)
    ((batch_s, batch_t),) = _batches(1)
    losses = method.step(model, batch_s, batch_t, optimizers, cfg, it=100)
    assert losses and all(isinstance(v, float) and math.isfinite(v) for v in losses.values())
    expected = {"backbone", "upsampling", "head"} | EXTRA_PARTS.get(name, set())
    assert _changed(model, before) == expected
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_few_steps_lower_the_source_loss(name):
    method = METHODS[name]
    model = _model(method)
    cfg = _config(method)
    optimizers = method.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    key = SOURCE_KEY.get(name, "A_source")
    first = method.step(model, batch_s, batch_t, optimizers, cfg, it=0)[key]
    for it in range(1, 6):
        last = method.step(model, batch_s, batch_t, optimizers, cfg, it=it)[key]
    assert last < first


def test_erm_mse_and_adam_recipe():
    model = _model(erm)
    optimizers = erm.make_optimizers(model, erm.ADAM_MSE)
    assert isinstance(optimizers["model"], torch.optim.Adam)
    ((batch_s, _),) = _batches(1)
    losses = erm.step(model, batch_s, None, optimizers, erm.ADAM_MSE, it=0)
    assert math.isfinite(losses["source"])


def test_erm_rejects_unlabelled_source():
    model = _model(erm)
    cfg = erm.Config()
    with pytest.raises(ValueError, match="heatmap"):
        erm.step(model, {"image": torch.rand(2, 3, SIZE, SIZE)}, None, erm.make_optimizers(model, cfg), cfg, 0)


@pytest.mark.parametrize("key", regda.LABEL_KEYS)
def test_regda_rejects_labelled_target(key):
    model = _model(regda)
    cfg = regda.Config()
    ((batch_s, batch_t),) = _batches(1)
    leaked = dict(batch_t, **{key: batch_s["weight"]})
    with pytest.raises(ValueError, match="target labels"):
        regda.step(model, batch_s, leaked, regda.make_optimizers(model, cfg), cfg, 0)


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
        assert set(losses) == {"A_source"}
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


@pytest.mark.parametrize("key", regda.LABEL_KEYS)
def test_control_rejects_labelled_target(key):
    model, cfg = _model(control), regda.Config()
    ((batch_s, batch_t),) = _batches(1)
    with pytest.raises(ValueError, match="target labels"):
        control.step(
            model, batch_s, dict(batch_t, **{key: batch_s["weight"]}), control.make_optimizers(model, cfg), cfg, 0
        )


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
    sched = regda.make_schedulers(optimizers, cfg)
    for _ in range(5000):
        for s in sched.values():
            s.step()
    assert optimizers["head_adv"].param_groups[0]["lr"] == pytest.approx(0.1 * 1.5**-0.75)


# ----------------------------------------------------------- RegDA sub-steps


def _target_losses(model, x_t, labels):
    """``(L_T, L_F)`` of ``f'`` on a target batch against fixed pseudo-labels, without changing anything."""
    with torch.no_grad():
        y_adv = model.head_adv(model.features(x_t))
        return (
            disparity.ground_truth_disparity(y_adv, labels.truth).item(),
            disparity.ground_false_disparity(y_adv, labels.false).item(),
        )


#: Table 2 of the paper, written out here independently of regda.OBJECTIVES: (f' in step B, psi in step C).
TABLE2 = {
    "regda": (disparity.minimise_false, disparity.minimise_truth),
    "dd": (disparity.maximise_truth, disparity.minimise_truth),
    "false_max": (disparity.minimise_false, disparity.maximise_false),
}


def test_every_trainer_variant_is_in_table2():
    assert list(regda.OBJECTIVES) == list(TABLE2)


@pytest.mark.parametrize("objective", sorted(TABLE2))
def test_steps_a_b_c_report_the_disparity_objectives_on_their_own_logits(objective):
    """What steps A, B and C return is regdakit.disparity's L_T / objective on the logits each step sees.

    Each expected value is computed from the same parameters just before the step (train-mode BatchNorm
    normalises with the batch's statistics, so the extra forward gives the step's own logits).
    """
    cfg = regda.Config(objective=objective)
    model = _model(regda)
    optimizers = regda.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    it = 5000
    loss_b, loss_c = TABLE2[objective]

    with torch.no_grad():
        y_s, y_s_adv = model(batch_s["image"], step=it)
    expected_a = disparity.ground_truth_loss(y_s_adv, y_s, cfg.sigma, batch_s["weight"])
    assert torch.equal(regda.step_a(model, batch_s, optimizers, cfg, it)["A_truth"], expected_a)

    target = regda.target_pass(model, batch_t["image"], cfg.sigma)
    with torch.no_grad():
        expected_b = loss_b(model.head_adv(target.psi.detach()), target.truth, target.false)
    assert torch.equal(regda.step_b(model, target, optimizers, cfg), expected_b)

    with torch.no_grad():  # f' after B's update, on the same psi (the gradient-scaling layer is the identity forward)
        expected_c = loss_c(model.head_adv(target.psi.detach()), target.truth, target.false)
    assert torch.equal(regda.step_c(model, target, optimizers, cfg, it), expected_c)


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
    cfg = regda.Config(objective=objective)
    ((_, batch_t),) = _batches(1)
    x_t = batch_t["image"]
    for (which, sign), sub_step in ((b_moves, "B"), (c_moves, "C")):
        model = _model(regda)
        optimizers = regda.make_optimizers(model, cfg)
        labels = regda.target_pass(model, x_t, cfg.sigma)
        index = 0 if which == "truth" else 1
        first = _target_losses(model, x_t, labels)[index]
        for _ in range(3):
            target = regda.TargetPass(model.features(x_t), labels.truth, labels.false)
            if sub_step == "B":
                regda.step_b(model, target, optimizers, cfg)
            else:
                regda.step_c(model, target, optimizers, cfg, it=5000)
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

    before = _snapshot(model)
    if fused:
        target = regda.target_pass(model, batch_t["image"], cfg.sigma)
        regda.step_b(model, target, optimizers, cfg)
    else:
        regda.step_b_plain(model, batch_t["image"], optimizers, cfg, it)
    assert _changed(model, before) == {"head_adv"}

    before = _snapshot(model)
    if fused:
        regda.step_c(model, target, optimizers, cfg, it)
    else:
        regda.step_c_plain(model, batch_t["image"], optimizers, cfg, it)
    assert _changed(model, before) == {"backbone", "upsampling"}


def test_step_c_reaches_psi_only_through_the_scaled_gradient():
    # With λ = 0 (iteration 0) step C's loss gives psi a zero gradient: only weight decay moves it.
    model = _model(regda)
    cfg = regda.Config(weight_decay=0.0, momentum=0.0, nesterov=False)
    optimizers = regda.make_optimizers(model, cfg)
    ((batch_s, batch_t),) = _batches(1)
    target = regda.target_pass(model, batch_t["image"], cfg.sigma)
    before = _snapshot(model)
    regda.step_c(model, target, optimizers, cfg, it=0)
    assert _changed(model, before) == set()


# ----------------------------------------------------- fused == plain schedule


def _run_schedule(fused, iterations=3, start=5000):
    """Several RegDA iterations from one seed, in float64 for a tight comparison."""
    model = _model(regda, torch.float64)
    cfg = regda.Config(fused=fused)
    optimizers = regda.make_optimizers(model, cfg)
    schedulers = regda.make_schedulers(optimizers, cfg)
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
