import torch

from regdakit import exercises as ex
from regdakit.disparity import ground_false_from_truth, ground_false_loss
from regdakit.heatmaps import encode
from regdakit.losses import kl_heatmap_loss, normalize_heatmaps
from regdakit.metrics import pck


def stub(*args):
    raise NotImplementedError


def test_encode_checker():
    assert ex.check_encode(lambda k, v, s, st, sg: encode(k, v, s, st, sg)[0]).status == "correct"
    assert ex.check_encode(stub).status == "not attempted"
    fb = ex.check_encode(lambda k, v, s, st, sg: encode(k.flip(-1), v, s, st, sg)[0])
    assert fb.status == "incorrect" and "swapped" in fb.message
    fb = ex.check_encode(lambda k, v, s, st, sg: encode(k, torch.ones_like(v), s, st, sg)[0])
    assert "invisible" in fb.message
    fb = ex.check_encode(lambda k, v, s, st, sg: encode(k, v, s, 1.0, sg)[0])
    assert "stride" in fb.message
    assert "shape" in ex.check_encode(lambda k, v, s, st, sg: torch.zeros(2, 2)).message


def test_ground_false_checker():
    assert ex.check_ground_false(ground_false_from_truth)
    assert ex.check_ground_false(stub).status == "not attempted"
    fb = ex.check_ground_false(lambda t: t.sum(1, keepdim=True).expand_as(t).clamp(0, 1))
    assert "includes keypoint k itself" in fb.message
    fb = ex.check_ground_false(lambda t: t.sum(1, keepdim=True) - t)
    assert "clip" in fb.message
    fb = ex.check_ground_false(lambda t: normalize_heatmaps(ground_false_from_truth(t)))
    assert "P_F" in fb.message


def test_pck_checker():
    assert ex.check_pck(lambda p, g, v, t: pck(p, g, v, t).all)
    fb = ex.check_pck(lambda p, g, v, t: float((torch.linalg.vector_norm(p - g, dim=-1) < t).float().mean()))
    assert "invisible" in fb.message
    fb = ex.check_pck(lambda p, g, v, t: float((torch.linalg.vector_norm(p - g, dim=-1) <= t)[v.bool()].float().mean()))
    assert "strictly" in fb.message
    assert "percentage" in ex.check_pck(lambda p, g, v, t: 100 * pck(p, g, v, t).all).message
    assert "raised ZeroDivisionError" in ex.check_pck(lambda p, g, v, t: 1 / 0).message


def test_ground_false_loss_checker():
    assert ex.check_ground_false_loss(ground_false_loss)
    assert ex.check_ground_false_loss(stub).status == "not attempted"

    def towards_truth(adv, main):
        from regdakit.disparity import pseudo_labels

        return kl_heatmap_loss(adv, pseudo_labels(main)[0])

    assert "L_T" in ex.check_ground_false_loss(towards_truth).message

    def not_detached(adv, main):
        from regdakit.disparity import pseudo_labels

        # the right value, but a path for gradients into the main head
        _, false = pseudo_labels(main)
        return kl_heatmap_loss(adv, false) + (main - main.detach()).sum()

    fb = ex.check_ground_false_loss(not_detached)
    assert fb.status == "incorrect" and "detach" in fb.message


def test_feedback_prints_and_renders():
    fb = ex.check_pck(stub)
    assert str(fb).startswith("pck: not attempted") and not fb
    assert "✏️" in fb._repr_markdown_()
