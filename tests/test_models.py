"""Backbones (torchvision names and sizes), heads, the warm-start gradient layer, PoseResNet contracts."""

import pytest
import torch
from torch import nn

from regdakit import models as M

K = 5


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.fixture
def model():
    return M.pose_resnet("tiny", K)


# ---------------------------------------------------------------- backbones


@pytest.mark.parametrize(
    "name, expected",
    [
        # torchvision totals minus fc: 11,689,512 - 513,000; 21,797,672 - 513,000;
        # 25,557,032 - 2,049,000; 44,549,160 - 2,049,000.
        ("resnet18", 11_176_512),
        ("resnet34", 21_284_672),
        ("resnet50", 23_508_032),
        ("resnet101", 42_500_160),
    ],
)
def test_backbone_parameter_count_matches_torchvision(name, expected):
    with torch.device("meta"):  # shapes only: no memory, no init time
        backbone = M.BACKBONES[name]()
    assert _params(backbone) == expected


def test_resnet50_keys_follow_torchvision_layout():
    with torch.device("meta"):
        keys = set(M.resnet50().state_dict())
    expected = [
        "conv1.weight",
        "bn1.weight",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "layer1.0.conv1.weight",
        "layer1.0.bn3.running_var",
        "layer1.0.downsample.0.weight",
        "layer1.0.downsample.1.running_mean",
        "layer2.3.conv3.weight",
        "layer3.5.bn2.bias",
        "layer4.0.downsample.0.weight",
        "layer4.2.bn3.weight",
    ]
    assert set(expected) <= keys
    assert not any(k.startswith(("fc.", "avgpool")) for k in keys)
    assert "layer1.1.downsample.0.weight" not in keys
    assert len(keys) == 318  # torchvision resnet50 state_dict has 320 entries, 2 of them fc


def test_resnet18_keys_and_downsample():
    with torch.device("meta"):
        keys = set(M.resnet18().state_dict())
    assert {"layer1.1.conv2.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.running_var"} <= keys
    assert "layer1.0.downsample.0.weight" not in keys  # BasicBlock keeps 64 channels in layer1
    assert "layer1.0.conv3.weight" not in keys


def test_tiny_backbone_is_stride_32():
    backbone = M.resnet_tiny()
    out = backbone(torch.rand(2, 3, 64, 96))
    assert out.shape == (2, backbone.out_channels, 2, 3)
    assert backbone.out_channels == 128


def test_backbones_dict_holds_constructors():
    assert set(M.BACKBONES) == {"resnet18", "resnet34", "resnet50", "resnet101", "tiny"}
    assert M.BACKBONES["resnet50"] is M.resnet50


# ---------------------------------------------------------------- load_pretrained


def test_load_pretrained_round_trip_drops_fc(tmp_path):
    source = M.resnet_tiny()
    for p in source.parameters():
        nn.init.normal_(p)
    state = dict(source.state_dict())
    state["fc.weight"] = torch.zeros(1000, source.out_channels)
    state["fc.bias"] = torch.zeros(1000)
    path = tmp_path / "tiny.pth"
    torch.save(state, path)
    fresh = M.load_pretrained(M.resnet_tiny(), path)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[key], value)


def test_load_pretrained_fills_missing_num_batches_tracked():
    source = M.resnet_tiny()
    for p in source.parameters():
        nn.init.normal_(p)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    target = M.resnet_tiny()
    for m in target.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.num_batches_tracked.fill_(7)  # what the fill must overwrite
    loaded = M.load_pretrained(target, state)  # old torchvision files lack these buffers
    assert loaded is target
    filled = {k: v for k, v in loaded.state_dict().items() if k.endswith("num_batches_tracked")}
    assert filled and all(v.dtype == torch.long and v.item() == 0 for v in filled.values())
    assert set(loaded.state_dict()) == set(state) | set(filled)
    for key, value in state.items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_load_pretrained_names_bad_keys(tmp_path):
    state = dict(M.resnet_tiny().state_dict())
    state["layer9.0.conv1.weight"] = state.pop("layer1.0.conv1.weight")
    state["conv1.weight"] = torch.zeros(1, 1, 1, 1)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(ValueError) as info:
        M.load_pretrained(M.resnet_tiny(), path)
    message = str(info.value)
    assert "missing keys (1): layer1.0.conv1.weight" in message
    assert "unexpected keys (1): layer9.0.conv1.weight" in message
    assert "conv1.weight: (1, 1, 1, 1) vs (16, 3, 7, 7)" in message


def test_pose_resnet_loads_weights(tmp_path):
    source = M.resnet_tiny()
    nn.init.normal_(source.conv1.weight)
    path = tmp_path / "tiny.pth"
    torch.save(source.state_dict(), path)
    model = M.pose_resnet("tiny", K, weights=path)
    torch.testing.assert_close(model.backbone.conv1.weight, source.conv1.weight)


# ---------------------------------------------------------------- upsampling and heads


def test_upsampling_and_head_shapes_and_init():
    up = M.Upsampling(128, channels=32)
    assert up(torch.rand(2, 128, 2, 2)).shape == (2, 32, 16, 16)
    deconvs = [m for m in up if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 3 and all(d.bias is None and d.kernel_size == (4, 4) for d in deconvs)
    assert all(abs(d.weight.std().item() - 0.001) < 2e-4 for d in deconvs)
    bns = [m for m in up if isinstance(m, nn.BatchNorm2d)]
    assert all(torch.all(b.weight == 1) and torch.all(b.bias == 0) for b in bns)

    head = M.Head(64, K, num_layers=2)
    assert head(torch.rand(2, 64, 16, 16)).shape == (2, K, 16, 16)
    convs = [m for m in head if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
    assert abs(convs[0].weight.std().item() - 0.001) < 1e-4
    assert abs(convs[1].weight.std().item() - 0.001) < 3e-4
    assert all(torch.all(c.bias == 0) for c in convs)


def test_head_with_one_layer_is_a_single_1x1_conv():
    head = M.Head(64, K, num_layers=1)
    assert len(head) == 1 and isinstance(head[0], nn.Conv2d) and head[0].kernel_size == (1, 1)
    with pytest.raises(ValueError, match="num_layers"):
        M.Head(64, K, num_layers=0)


# ---------------------------------------------------------------- gradient scaling


@pytest.mark.parametrize("step, expected", [(0, 0.0), (500, 0.0245), (1000, 0.0462), (2000, 0.0762)])
def test_warm_start_lambda_values(step, expected):
    assert M.warm_start_lambda(step) == pytest.approx(expected, abs=5e-5)


def test_warm_start_lambda_limits_and_checks():
    assert M.warm_start_lambda(10**6, lo=0.02, hi=0.5) == pytest.approx(0.5)
    assert M.warm_start_lambda(0, lo=0.02, hi=0.5) == pytest.approx(0.02)
    assert M.warm_start_lambda(torch.tensor(1000)) == M.warm_start_lambda(1000)
    with pytest.raises(ValueError, match="step"):
        M.warm_start_lambda(-1)
    with pytest.raises(TypeError):
        M.warm_start_lambda(1.5)


def test_gradient_scale_forward_identity_backward_scaled():
    layer = M.GradientScale(lo=0.0, hi=0.1, alpha=1.0, max_steps=1000)
    x = torch.randn(3, 4, requires_grad=True)
    w = torch.randn(3, 4)
    out = layer(x, step=1000)
    torch.testing.assert_close(out, x)
    (out * w).sum().backward()
    # d/dx sum(w * x) = w, scaled by λ(1000) = 0.1 * tanh(0.5); positive, not reversed.
    torch.testing.assert_close(x.grad, 0.1 * torch.tanh(torch.tensor(0.5)) * w)


def test_gradient_scale_zero_blocks_and_missing_step_raises():
    layer = M.GradientScale()
    x = torch.randn(4, requires_grad=True)
    layer(x, step=0).pow(2).sum().backward()
    assert torch.all(x.grad == 0)
    x.grad = None
    y = layer(x)  # forward without a step is fine ...
    with pytest.raises(RuntimeError, match="step=it"):
        y.sum().backward()  # ... but a gradient through it needs one


def test_gradient_scale_is_stateless():
    layer = M.GradientScale(hi=0.3)
    assert len(layer.state_dict()) == 0 and not list(layer.parameters())
    assert layer.lam(2000) == pytest.approx(M.warm_start_lambda(2000, hi=0.3))
    with pytest.raises(ValueError, match="hi"):
        M.GradientScale(hi=-0.1)


def test_scale_gradient_function():
    x = torch.randn(5, requires_grad=True)
    M.scale_gradient(x, 0.25).sum().backward()
    torch.testing.assert_close(x.grad, torch.full((5,), 0.25))
    with pytest.raises(ValueError, match="lam"):
        M.scale_gradient(x, -1.0)


# ---------------------------------------------------------------- PoseResNet


def test_forward_returns_two_heatmaps_in_train_and_eval(model):
    x = torch.rand(2, 3, 64, 64)
    for train in (True, False):
        model.train(train)
        out = model(x, step=0)
        assert isinstance(out, tuple) and len(out) == 2
        assert out[0].shape == out[1].shape == (2, K, 16, 16)
    assert model.features(x).shape == (2, 64, 16, 16)


def test_heatmaps_is_the_main_head_of_forward(model):
    x = torch.rand(2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        y, _ = model(x)
        assert torch.equal(model.heatmaps(x), y)
        assert torch.equal(model.heatmaps(x), model.head(model.features(x)))


def test_non_adversarial_model_returns_none():
    model = M.pose_resnet("tiny", K, adversarial=False, head_layers=1)
    y, y_adv = model(torch.rand(1, 3, 32, 64))
    assert y.shape == (1, K, 8, 16) and y_adv is None
    assert set(M.parameter_groups(model)) == {"backbone", "upsampling", "head"}


def test_state_dict_names_and_parameter_groups(model):
    keys = list(model.state_dict())
    assert {k.split(".")[0] for k in keys} == {"backbone", "upsampling", "head", "head_adv"}
    assert "backbone.layer1.0.conv1.weight" in keys and "mean" not in keys  # normalisation is not a weight
    groups = M.parameter_groups(model)
    assert list(groups) == ["backbone", "upsampling", "head", "head_adv"]
    ids = [id(p) for group in groups.values() for p in group]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_normalisation_inside_features(model):
    x = torch.rand(1, 3, 64, 64)
    mean = torch.tensor(M.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(M.IMAGENET_STD).view(1, 3, 1, 1)
    model.eval()
    expected = model.upsampling(model.backbone((x - mean) / std))
    torch.testing.assert_close(model.features(x), expected)


def test_gradient_scale_sits_only_before_head_adv(model):
    """y_adv's gradient reaches psi scaled by λ; y's gradient reaches psi unscaled."""
    psi = torch.randn(2, 64, 16, 16, requires_grad=True)
    step = 2000
    lam = M.warm_start_lambda(step)

    y, y_adv = model.forward_heads(psi, step=step)
    (g_adv,) = torch.autograd.grad(y_adv.sum(), psi)
    reference = model.head_adv(psi)  # the same head without the layer
    (g_ref,) = torch.autograd.grad(reference.sum(), psi)
    torch.testing.assert_close(g_adv, lam * g_ref)

    y, _ = model.forward_heads(psi, step=0)  # λ = 0 does not touch the main head's path
    (g_main,) = torch.autograd.grad(y.sum(), psi)
    assert g_main.abs().sum() > 0

    _, y_adv = model.forward_heads(psi, step=0)
    (g_zero,) = torch.autograd.grad(y_adv.sum(), psi)
    assert torch.all(g_zero == 0)


def test_resume_gives_same_outputs(model, tmp_path):
    model.eval()
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path)
    fresh = M.pose_resnet("tiny", K).eval()
    fresh.load_state_dict(torch.load(path, weights_only=True))
    x = torch.rand(1, 3, 64, 64)
    for a, b in zip(model(x, step=7), fresh(x, step=7), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(
    "shape", [(3, 64, 64), (2, 1, 64, 64), (2, 3, 64, 48), (2, 3, 50, 64)], ids=["3d", "gray", "w48", "h50"]
)
def test_bad_input_shape_raises(model, shape):
    with pytest.raises(ValueError, match=r"x must have shape \(B, 3, H, W\).*got \(" + ", ".join(map(str, shape))):
        model(torch.rand(*shape))


def test_factory_rejects_unknown_backbone():
    with pytest.raises(ValueError, match="resnet101"):
        M.pose_resnet("vgg16", K)
