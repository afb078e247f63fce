"""regdakit.inference.predict, the one loop that runs a detector over a set of images."""

import pytest
import torch

from regdakit.heatmaps import decode
from regdakit.inference import predict
from regdakit.models import PoseResNet, resnet_tiny


def _model(adversarial=True):
    torch.manual_seed(0)
    return PoseResNet(resnet_tiny(), num_keypoints=3, upsampling_channels=16, adversarial=adversarial)


def test_one_tensor_and_its_batches_give_the_eval_mode_heatmaps(one_thread):
    model = _model()
    images = torch.rand(5, 3, 64, 64)
    y = predict(model, images, batch_size=2)
    assert y.shape == (5, 3, 16, 16) and y.dtype == torch.float32 and y.device.type == "cpu"
    assert not y.requires_grad
    with torch.no_grad():
        expected = model.eval().heatmaps(images)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(predict(model, list(images.split(3))), expected)  # batches used as they come
    torch.testing.assert_close(predict(model, (x for x in images.split(4))), expected)  # a generator too


def test_adversarial_returns_both_heads_and_refuses_a_model_without_f_prime(one_thread):
    model = _model()
    images = torch.rand(3, 3, 64, 64)
    y, y_adv = predict(model, images, adversarial=True)
    with torch.no_grad():
        expected, expected_adv = model.eval()(images)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(y_adv, expected_adv)
    with pytest.raises(ValueError, match="f'"):
        predict(_model(adversarial=False), images, adversarial=True)


def test_then_runs_on_each_batch_before_the_results_meet(one_thread):
    model = _model()
    images = torch.rand(4, 3, 64, 64)
    shapes = []

    def positions(y):
        shapes.append(tuple(y.shape))
        return decode(y)[0]

    cells = predict(model, images, batch_size=3, then=positions)
    assert shapes == [(3, 3, 16, 16), (1, 3, 16, 16)]
    torch.testing.assert_close(cells, decode(predict(model, images))[0])
    assert cells.shape == (4, 3, 2)


def test_every_submodule_gets_its_mode_back_also_after_an_error(one_thread):
    model = _model()
    model.head.eval()  # a mixed state: model.train(...) could not restore it
    before = {name: m.training for name, m in model.named_modules()}
    running_mean = model.backbone.bn1.running_mean.clone()
    predict(model, torch.rand(2, 3, 64, 64))
    assert {name: m.training for name, m in model.named_modules()} == before
    assert torch.equal(model.backbone.bn1.running_mean, running_mean)  # eval mode: no statistics updated
    with pytest.raises(ValueError, match="divisible by 32"):
        predict(model, [torch.rand(1, 3, 64, 64), torch.rand(1, 3, 60, 60)])
    assert {name: m.training for name, m in model.named_modules()} == before


def test_empty_sets_and_bad_arguments():
    model = _model()
    assert predict(model, []).shape == (0,)
    y, y_adv = predict(model, [], adversarial=True)
    assert y.shape == y_adv.shape == (0,)
    for bad in (0, -1, 2.0, True):
        with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
            predict(model, torch.rand(1, 3, 64, 64), batch_size=bad)
    with pytest.raises(ValueError, match=r"images must have shape \(N, 3, S, S\)"):
        predict(model, torch.rand(3, 64, 64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cpu_images_run_on_the_model_device_and_come_back_to_the_cpu():
    model = _model().cuda()
    images = torch.rand(3, 3, 64, 64)
    y = predict(model, images, batch_size=2)
    assert y.device.type == "cpu"
    with torch.no_grad():
        torch.testing.assert_close(y, model.eval().heatmaps(images.cuda()).cpu(), rtol=1e-4, atol=1e-5)
