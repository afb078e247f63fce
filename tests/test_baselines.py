"""The baselines DAN, DANN, MCD, DD: hand-computed math, which parameters each step moves, and in which direction."""

import json
import math

import pytest
import torch

from regdakit import disparity
from regdakit.heatmaps import encode
from regdakit.methods import METHODS, contract, dan, dann, dd, dd_unbounded, mcd, regda
from regdakit.methods.common import source_loss
from regdakit.models import pose_resnet, scale_gradient

K = 5
SIZE = 64

pytestmark = pytest.mark.usefixtures("one_thread")

#: The bounded disparities' largest value, -log(MASS_FLOOR) ≈ 13.8, and float32's rounding of it.
BOUNDED_CEILING = -math.log(disparity.MASS_FLOOR) + 1e-5


def _batch(seed=1, b=4):
    g = torch.Generator().manual_seed(seed)
    kp = torch.rand(b, K, 2, generator=g) * (SIZE - 8) + 4
    heat, weight = encode(kp, torch.ones(b, K, dtype=torch.bool), SIZE // 4, 4.0)
    batch_s = {"image": torch.rand(b, 3, SIZE, SIZE, generator=g), "heatmap": heat, "weight": weight}
    return batch_s, {"image": torch.rand(b, 3, SIZE, SIZE, generator=g) * 0.5 + 0.5}


def _model(adversarial):
    torch.manual_seed(0)
    return pose_resnet("tiny", K, adversarial=adversarial).train()


def _params(model):
    return {name: p.detach().clone() for name, p in model.named_parameters()}


def _changed_parts(model, before):
    return {name.split(".")[0] for name, p in model.named_parameters() if not torch.equal(p, before[name])}


# ------------------------------------------------------------------ DAN: MK-MMD


def test_mk_mmd_matches_a_hand_computed_case():
    # Points 0, 1 (source) and 2, 3 (target) on a line, one kernel of bandwidth = mean squared distance
    # over distinct pairs = 2 * (1 + 4 + 9 + 1 + 4 + 1) / 12 = 10 / 3, so k(d^2) = exp(-0.3 d^2).
    s, t = torch.tensor([[0.0], [1.0]]), torch.tensor([[2.0], [3.0]])
    within = math.exp(-0.3)  # one off-diagonal pair per domain, d^2 = 1
    cross = (math.exp(-1.2) + math.exp(-2.7) + math.exp(-0.3) + math.exp(-1.2)) / 4  # d^2 = 4, 9, 1, 4
    expected = within + within - 2 * cross
    assert dan.mk_mmd(s, t, scales=(1.0,)).item() == pytest.approx(expected, rel=1e-6)


def _mmd_plain(s, t, scales):
    """The unbiased MK-MMD written as loops over pairs: the reference for the vectorised one."""
    pts = torch.cat([s, t]).double()
    n_all = len(pts)
    sq = [[float(((pts[i] - pts[j]) ** 2).sum()) for j in range(n_all)] for i in range(n_all)]
    bandwidth = sum(sq[i][j] for i in range(n_all) for j in range(n_all) if i != j) / (n_all * (n_all - 1))

    def k(i, j):
        return sum(math.exp(-sq[i][j] / (u * bandwidth)) for u in scales) / len(scales)

    m, n = len(s), len(t)
    xx = sum(k(i, j) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(m + i, m + j) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(i, m + j) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mk_mmd_equals_the_pairwise_loops():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(5, 3, generator=g), torch.randn(6, 3, generator=g) + 0.7
    scales = dan.Config().kernel_scales
    assert dan.mk_mmd(s, t, scales).item() == pytest.approx(_mmd_plain(s, t, scales), rel=1e-5)


def test_mk_mmd_separates_shifted_samples_and_has_a_gradient():
    g = torch.Generator().manual_seed(4)
    s = torch.randn(64, 4, generator=g)
    same, shifted = torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g) + 1.5
    assert abs(dan.mk_mmd(s, same).item()) < 0.02 < dan.mk_mmd(s, shifted).item()
    t = shifted.clone().requires_grad_()
    dan.mk_mmd(s, t).backward()
    # Moving the target towards the source lowers the MMD: the gradient points away from the source mean.
    assert (t.grad.sum(0) > 0).all()


@pytest.mark.parametrize(
    "s, t, match",
    [
        (torch.zeros(1, 3), torch.zeros(4, 3), "at least 2 points"),
        (torch.zeros(4, 3), torch.zeros(4, 2), "same D"),
        (torch.zeros(4), torch.zeros(4, 2), "source"),
    ],
)
def test_mk_mmd_rejects_bad_input(s, t, match):
    with pytest.raises(ValueError, match=match):
        dan.mk_mmd(s, t)


def test_dan_head_update_does_not_depend_on_the_mmd_but_the_features_do():
    # The MMD is a function of psi only: f's gradient is the source loss's, whatever the trade-off.
    batch_s, batch_t = _batch()
    after = {}
    for trade_off in (0.0, 10.0):
        model = _model(False)
        cfg = dan.Config(trade_off=trade_off)
        losses = dan.step(model, batch_s, batch_t, dan.make_optimizers(model, cfg), cfg, it=0)
        assert set(losses) == {"A/source", "A/mmd"}
        after[trade_off] = _params(model)
    heads = [k for k in after[0.0] if k.startswith("head.")]
    features = [k for k in after[0.0] if k.startswith(("backbone.", "upsampling."))]
    assert all(torch.equal(after[0.0][k], after[10.0][k]) for k in heads)
    assert any(not torch.equal(after[0.0][k], after[10.0][k]) for k in features)


def test_dan_lowers_the_mmd_it_minimises():
    batch_s, batch_t = _batch()
    model = _model(False)
    cfg = dan.Config(trade_off=10.0, head_lr=1e-4)
    opts = dan.make_optimizers(model, cfg)
    first = dan.step(model, batch_s, batch_t, opts, cfg, it=0)["A/mmd"]
    for it in range(1, 6):
        last = dan.step(model, batch_s, batch_t, opts, cfg, it=it)["A/mmd"]
    assert last < first


# ------------------------------------------------------------------ DANN: gradient reversal


def test_reverse_gradient_is_the_identity_forward_and_negates_scaled_gradients():
    x = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = dann.reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    (y * torch.tensor([1.0, 2.0, 4.0])).sum().backward()
    assert torch.allclose(x.grad, torch.tensor([-0.3, -0.6, -1.2]))
    with pytest.raises(ValueError, match="lam"):
        dann.reverse_gradient(x, -1.0)


def test_reversal_and_scaling_are_one_layer():
    # DANN's reversal is RegDA's scaling layer with -lambda: the same gradient, bit for bit.
    x = torch.randn(5, requires_grad=True)
    upstream = torch.randn(5)
    (reversed_grad,) = torch.autograd.grad((dann.reverse_gradient(x, 0.3) * upstream).sum(), x)
    (scaled_grad,) = torch.autograd.grad((scale_gradient(x, 0.3) * upstream).sum(), x)
    assert torch.equal(reversed_grad, -scaled_grad)


def test_reversal_schedule_is_danns():
    cfg = dann.Config(reversal_iterations=200)
    assert dann.reversal_lambda(0, cfg) == 0.0
    assert dann.reversal_lambda(200, cfg) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert dann.reversal_lambda(40, cfg) == pytest.approx(math.tanh(1.0))  # p = 0.2: tanh(5 p)


def test_dann_gradients_are_the_reversed_domain_gradient_plus_the_source_gradient():
    # One backward through R_lambda must give psi  grad(L_src) - lambda * trade_off * grad(L_domain),
    # and the discriminator  trade_off * grad(L_domain): recompute both terms without the reversal layer.
    batch_s, batch_t = _batch()
    cfg = dann.Config(trade_off=0.7, reversal_iterations=10)
    it = 3
    lam = dann.reversal_lambda(it, cfg)
    grads, scales = {}, {}
    for mode in ("step", "by_hand"):
        model = dann.prepare(_model(False), cfg)
        if mode == "step":
            opts = dann.make_optimizers(model, cfg)
            for opt in opts.values():  # capture the gradients, not the update
                opt.step = lambda *a, **k: None
            dann.step(model, batch_s, batch_t, opts, cfg, it)
            grads[mode] = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
            continue
        m = len(batch_s["image"])
        psi = model.features(torch.cat([batch_s["image"], batch_t["image"]]))
        loss_src = source_loss(model.head(psi[:m]), batch_s["heatmap"], batch_s["weight"])
        logits = model.domain_discriminator(psi.mean(dim=(2, 3)))
        labels = torch.cat([torch.ones(m), torch.zeros(len(batch_t["image"]))])
        loss_dom = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
        params = dict(model.named_parameters())
        g_src = torch.autograd.grad(loss_src, list(params.values()), retain_graph=True, allow_unused=True)
        g_dom = torch.autograd.grad(loss_dom, list(params.values()), allow_unused=True)
        expected = {}
        for (name, _), gs, gd in zip(params.items(), g_src, g_dom, strict=True):
            gs = torch.zeros_like(params[name]) if gs is None else gs
            gd = torch.zeros_like(params[name]) if gd is None else gd
            sign = 1.0 if name.startswith("domain_discriminator.") else -lam
            expected[name] = gs + sign * cfg.trade_off * gd
            # float32 rounding is relative to the size of the terms of the player the parameter belongs to,
            # not to this parameter's gradient: a Linear bias before a BatchNorm has a true gradient of 0, so
            # both computations give only rounding noise there (~1e-7).
            player = name.split(".")[0]
            size = max(gs.abs().max().item(), (cfg.trade_off * gd).abs().max().item())
            scales[player] = max(scales.get(player, 0.0), size)
        grads[mode] = expected
    assert set(grads["step"]) == set(grads["by_hand"])
    for name, g in grads["step"].items():
        error = (g - grads["by_hand"][name]).abs().max().item()
        scale = scales[name.split(".")[0]]
        assert scale > 0 and error <= 1e-4 * scale, (name, error, scale)


def test_dann_prepare_adds_a_discriminator_and_the_step_trains_it():
    model = dann.prepare(_model(False), dann.Config(hidden=8))
    assert model.domain_discriminator[0].out_features == 8
    assert dann.prepare(model, dann.Config()) is model  # idempotent: the existing discriminator is kept
    with pytest.raises(ValueError, match="prepare"):
        dann.make_optimizers(_model(False), dann.Config())
    cfg = dann.Config(hidden=8)
    before = _params(model)
    losses = dann.step(model, *_batch(), dann.make_optimizers(model, cfg), cfg, it=5)
    # The accuracy is a metric, not a loss: a key outside every step.
    assert set(losses) == {"A/source", "A/domain", "metric/domain_accuracy"}
    assert 0 <= losses["metric/domain_accuracy"] <= 1
    assert _changed_parts(model, before) == {"backbone", "upsampling", "head", "domain_discriminator"}


# ------------------------------------------------------------------ MCD: two heads' discrepancy


def test_heatmap_discrepancy_by_hand():
    peak = torch.full((1, 1, 2, 2), -1e4)
    a, b = peak.clone(), peak.clone()
    a[0, 0, 0, 0] = 0.0
    b[0, 0, 1, 1] = 0.0
    assert mcd.heatmap_discrepancy(a, b).item() == pytest.approx(2.0)  # disjoint supports
    assert mcd.heatmap_discrepancy(a, a).item() == 0.0
    uniform = torch.zeros(1, 1, 2, 2)
    assert mcd.heatmap_discrepancy(a, uniform).item() == pytest.approx(0.75 + 3 * 0.25)
    x, y = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    assert mcd.heatmap_discrepancy(x, y).item() == pytest.approx(mcd.heatmap_discrepancy(y, x).item())
    with pytest.raises(ValueError, match="must match"):
        mcd.heatmap_discrepancy(x, y[:, :2])


def _mcd_setup():
    model = _model(True)
    cfg = mcd.Config()
    return model, cfg, mcd.make_optimizers(model, cfg), *_batch()


def test_mcd_step_a_trains_everything_on_the_source():
    model, cfg, opts, batch_s, _ = _mcd_setup()
    before = _params(model)
    mcd.step_a(model, batch_s, opts, cfg)
    assert _changed_parts(model, before) == {"backbone", "upsampling", "head", "head_adv"}


def test_mcd_step_b_moves_only_the_heads_and_raises_their_discrepancy():
    model, cfg, opts, batch_s, batch_t = _mcd_setup()
    mcd.step_a(model, batch_s, opts, cfg)  # the heads differ after A (f' starts elsewhere)
    before = _params(model)
    with torch.no_grad():
        psi_s = model.features(batch_s["image"])
    psi_t = model.features(batch_t["image"])
    _, disc_before = mcd.step_b(model, batch_s, psi_s, psi_t, opts, mcd.Config(trade_off=50.0))
    assert _changed_parts(model, before) == {"head", "head_adv"}
    with torch.no_grad():  # train mode as in the step: BatchNorm normalises with this batch's statistics
        psi_t = model.features(batch_t["image"])
        after = mcd.heatmap_discrepancy(model.head(psi_t), model.head_adv(psi_t)).item()
    assert after > disc_before.item()


def test_mcd_step_c_moves_only_psi_and_lowers_the_discrepancy():
    model, cfg, opts, batch_s, batch_t = _mcd_setup()
    for it in range(3):  # a few iterations so the heads disagree on the target
        mcd.step(model, batch_s, batch_t, opts, cfg, it)
    before = _params(model)
    cfg_c = mcd.Config(trade_off=20.0)
    first = mcd.step_c(model, model.features(batch_t["image"]), opts, cfg_c).item()
    assert _changed_parts(model, before) == {"backbone", "upsampling"}
    for _ in range(4):
        last = mcd.step_c(model, model.features(batch_t["image"]), opts, cfg_c).item()
    assert last < first


def test_mcd_feature_steps_repeat_step_c_and_need_f_prime():
    model, _, _, batch_s, batch_t = _mcd_setup()
    calls = []
    original = mcd.step_c

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    mcd.step_c = counting
    try:
        cfg = mcd.Config(feature_steps=3)
        mcd.step(model, batch_s, batch_t, mcd.make_optimizers(model, cfg), cfg, 0)
    finally:
        mcd.step_c = original
    assert len(calls) == 3
    with pytest.raises(ValueError, match="f'"):
        mcd.step(_model(False), batch_s, batch_t, {}, mcd.Config(), 0)
    with pytest.raises(ValueError, match="feature_steps"):
        mcd.Config(feature_steps=0)


# ------------------------------------------------------------------ DD


@pytest.mark.parametrize(
    ("module", "pair"),
    [
        (dd, (disparity.maximise_truth_bounded, disparity.minimise_truth_bounded)),
        (dd_unbounded, (disparity.maximise_truth, disparity.minimise_truth)),
    ],
)
def test_dd_is_regdas_schedule_with_its_own_pair_of_objectives(module, pair):
    batch_s, batch_t = _batch()
    cfg = module.Config()
    states = []
    for run in ("dd", "regda_schedule_with_dd_objectives"):
        model = _model(True)
        opts = module.make_optimizers(model, cfg)
        for it in range(2):
            if run == "dd":
                losses = module.step(model, batch_s, batch_t, opts, cfg, it)
            else:
                regda.iteration(model, batch_s, batch_t, opts, cfg, it, pair)
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert module.OBJECTIVES == pair
    if module is dd:  # the bounded pair: both players descend a loss in [0, -log(MASS_FLOOR)]
        assert 0 <= losses["B/adversary"] <= BOUNDED_CEILING
        assert 0 <= losses["C/features"] <= BOUNDED_CEILING
    else:
        assert losses["B/adversary"] <= 0  # step B's own objective is -L_T
        assert losses["C/features"] >= 0  # step C's is L_T
    # DD's objectives are its own: the section it shares with RegDA must not select a RegDA variant.
    with pytest.raises(ValueError, match="methods 'dd' and 'dd_unbounded' have their own objectives"):
        module.step(_model(True), batch_s, batch_t, opts, regda.Config(objective="false_max"), 0)


def test_the_bounded_pair_matches_a_hand_computed_case():
    # One 2 x 2 map: softmax of logits (0, ln 3; 0, 0) is (1/6, 1/2; 1/6, 1/6). H(ŷ) is > 0 on the cells
    # (0, 1) and (1, 0), so f' has m = 1/2 + 1/6 = 2/3 on it: -log(1 - m) = log 3, -log m = log 3/2.
    logits = torch.tensor([[[[0.0, math.log(3)], [0.0, 0.0]]]])
    truth = torch.tensor([[[[0.0, 1.0], [0.5, 0.0]]]])
    log_in, log_out = disparity.truth_log_masses(logits, truth)
    assert log_in.shape == log_out.shape == (1, 1)
    assert log_in.item() == pytest.approx(math.log(2 / 3)) and log_out.item() == pytest.approx(math.log(1 / 3))
    assert disparity.maximise_truth_bounded(logits, truth, truth).item() == pytest.approx(math.log(3))
    assert disparity.minimise_truth_bounded(logits, truth, truth).item() == pytest.approx(math.log(1.5))
    # The mean over B·K: a second keypoint whose support is all of the map has m = 1, so 1 - m is floored.
    two = torch.cat([logits, logits], dim=1)
    both = torch.cat([truth, torch.ones_like(truth)], dim=1)
    expected = (math.log(3) - math.log(disparity.MASS_FLOOR)) / 2
    assert disparity.maximise_truth_bounded(two, both, both).item() == pytest.approx(expected, rel=1e-5)
    assert disparity.minimise_truth_bounded(two, both, both).item() == pytest.approx(math.log(1.5) / 2, rel=1e-5)
    with pytest.raises(ValueError, match=r"adv_logits \(1, 2, 2, 2\) and truth \(1, 1, 2, 2\)"):
        disparity.truth_log_masses(two, truth)


def test_the_bounded_adversary_has_a_floor_and_the_unbounded_one_runs_away():
    """Many adversarial steps on free logits: -log(1 - m) settles at 0, -L_T falls without limit."""
    truth, _ = disparity.pseudo_labels(torch.randn(2, K, 16, 16, generator=torch.Generator().manual_seed(0)), 1.0)
    ceiling = BOUNDED_CEILING
    final = {}
    for objective in (disparity.maximise_truth_bounded, disparity.maximise_truth):
        logits = (4 * truth).clone().requires_grad_()  # f' starts agreeing with f, as step A trains it to
        opt = torch.optim.SGD([logits], lr=10.0)
        for _ in range(300):
            loss = objective(logits, truth, truth)
            if objective is disparity.maximise_truth_bounded:
                assert 0 <= loss.item() <= ceiling
            opt.zero_grad()
            loss.backward()
            opt.step()
        final[objective.__name__] = loss.item()
    assert final["maximise_truth_bounded"] < 0.1  # f' has moved its mass off H(ŷ); the loss saturates near 0
    assert final["maximise_truth"] < -20  # -L_T: the same optimiser runs far below any floor (and on, unbounded)
    # Analytically, for any logits and any support (none, some, all of the map): within [0, ceiling], gradient finite.
    wild = (torch.randn(2, K, 16, 16, generator=torch.Generator().manual_seed(1)) * 1e4).requires_grad_()
    for support in (torch.zeros_like(truth), truth, torch.ones_like(truth)):
        for objective in (disparity.maximise_truth_bounded, disparity.minimise_truth_bounded):
            loss = objective(wild, support, support)
            assert 0 <= loss.item() <= ceiling
            (grad,) = torch.autograd.grad(loss, wild)
            assert torch.isfinite(grad).all()


def test_many_bounded_dd_steps_keep_the_adversarys_loss_bounded():
    batch_s, batch_t = _batch()
    cfg = dd.Config(head_lr=0.5)  # a fast adversary: the unbounded one falls far below 0 at this rate
    ceiling = BOUNDED_CEILING
    for module in (dd, dd_unbounded):
        model = _model(True)
        opts = module.make_optimizers(model, cfg)
        adversary = [module.step(model, batch_s, batch_t, opts, cfg, it)["B/adversary"] for it in range(25)]
        if module is dd:
            assert all(0 <= v <= ceiling for v in adversary), adversary
        else:
            assert min(adversary) < -5, adversary


# ------------------------------------------------------------------ through the trainer


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return tmp_path_factory.mktemp("baseline_runs")


@pytest.mark.parametrize("method", sorted(name for name in METHODS if name != "erm"))
def test_the_trainer_runs_each_adaptation_method_from_the_shared_pretraining(method, runs):
    from regdakit import train as T

    cfg = T.make_config(
        "ci", method=method, out=str(runs), pretrain_iterations=6, adapt_iterations=4, eval_every=4, checkpoint_every=2
    )
    result = T.train(cfg, progress=False)
    assert math.isfinite(result["metrics"]["target_test"]["pck@0.05/all"])
    assert len(list((runs / "pretrain").iterdir())) == 1  # every method adapts the same cached pre-training
    parts = list(METHODS[method].PARTS)
    snapshot = torch.load(cfg.run_dir / "iter_0000002.pt", weights_only=True)
    assert snapshot["parts"] == parts  # recorded, so that loading builds the same model without guessing
    model, loaded_cfg, _ = T.load_checkpoint(cfg.run_dir / "iter_0000002.pt")
    assert loaded_cfg.method == method
    assert (model.head_adv is not None) == ("head_adv" in parts)
    assert hasattr(model, "domain_discriminator") == ("domain_discriminator" in parts)
    # Every log_every (5 in "ci": at the end, iteration 4) the means of the step's own keys are logged.
    logged = [json.loads(line) for line in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in logged if "train" in r]
    assert [r["iteration"] for r in train] == [4]
    keys = list(train[0]["train"])
    assert keys[0] == "A/source" and all(math.isfinite(v) for v in train[0]["train"].values())
    assert {contract.step_of(k) for k in keys} - {None} == set(METHODS[method].STEPS)  # every step reports


def test_method_dd_refuses_a_regda_variant():
    from regdakit import train as T

    for method in ("dd", "dd_unbounded"):
        with pytest.raises(ValueError, match="methods 'dd' and 'dd_unbounded' have their own objectives"):
            T.make_config("ci", method=method, regda=regda.Config(objective="false_max"))
    with pytest.raises(ValueError, match="run --method dd"):
        T.apply_overrides(T.PRESETS["ci"], {"regda.objective": "dd"})
    dd_cfg = T.make_config("ci", method="dd")
    assert T.method_config(dd_cfg) is dd_cfg.regda  # DD's hyper-parameters are RegDA's section, as they are
    assert T.method_config(T.make_config("ci", regda=regda.Config(objective="false_max"))).objective == "false_max"
