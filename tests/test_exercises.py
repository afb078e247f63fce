"""The exercise checkers diagnose typical wrong answers, refuse the library's own implementation, trace mistakes.

Each wrong answer below is written the way a student would write it (loops,
meshgrids, ``F.kl_div``), independently of the checker's own variants, and
the test asserts the specific diagnosis. A correct student version, written
differently from the library, must pass.
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from regdakit import exercises as ex
from regdakit.disparity import ground_false_from_truth, pseudo_labels

ROOT = Path(__file__).resolve().parent.parent


def stub(*args):
    raise NotImplementedError


def crash(*args):
    return [1, 2, 3][10]


def incorrect(fb: ex.Feedback, *needles: str) -> bool:
    """The feedback is "incorrect" and its message contains every needle."""
    return fb.status == "incorrect" and all(n in fb.message for n in needles)


def reference(fb: ex.Feedback, what: str) -> bool:
    """The feedback says the answer calls the library's own implementation ``what``."""
    return incorrect(fb, "calls the library's own", what, "earns no credit")


# --- encode ---------------------------------------------------------------------------------


def student_encode(keypoints, visible, heatmap_size, stride, sigma, mistake=None):
    """A student's encode: 2-D meshgrid, one formula; ``mistake`` injects one typical error."""
    h, w = heatmap_size
    if mistake == "width_height":
        h, w = w, h
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    if mistake == "cell_centre":
        xs, ys = xs + 0.5, ys + 0.5
    c = {
        "no_stride": keypoints,
        "times_stride": keypoints * stride,
        "pixel_centre": (keypoints + 0.5) / stride - 0.5,
        "round": (keypoints / stride).round(),
        "int": (keypoints / stride).floor(),
    }.get(mistake, keypoints / stride)
    x, y = c[..., 0, None, None], c[..., 1, None, None]
    if mistake == "swap":
        x, y = y, x
    if mistake == "sigma_pixels":  # distances in image pixels with sigma meant in cells
        d2 = (xs * stride - keypoints[..., 0, None, None]) ** 2 + (ys * stride - keypoints[..., 1, None, None]) ** 2
    else:
        d2 = (xs - x) ** 2 + (ys - y) ** 2
    s = sigma * stride if mistake == "sigma_times_stride" else sigma
    if mistake == "variance":
        g = torch.exp(-d2 / (2 * s))
    elif mistake == "no_two":
        g = torch.exp(-d2 / s**2)
    else:
        g = torch.exp(-d2 / (2 * s**2))
    if mistake == "normalised":
        g = g / (2 * math.pi * s**2)
    if mistake == "sum_normalised":
        g = g / g.sum(dim=(-2, -1), keepdim=True)
    if mistake != "no_cut":
        g = torch.where(g < 0.01, torch.zeros_like(g), g)
    if mistake != "invisible":
        g = g * visible[..., None, None].float()
    if mistake == "tuple":
        return g, visible.float()
    if mistake == "numpy":
        return g.numpy()
    if mistake == "flat":
        return g.flatten(2)
    if mistake == "no_return":
        return None
    return g


def encode_with(mistake):
    return lambda k, v, s, st, sg: student_encode(k, v, s, st, sg, mistake)


def test_encode_correct_blank_and_crash():
    assert ex.check_encode(student_encode).status == "correct"
    assert reference(ex.check_encode(ex.solution("encode")), "solution('encode')")
    assert ex.check_encode(stub).status == "not attempted"
    fb = ex.check_encode(crash)
    assert incorrect(fb, "raised IndexError")
    fb = ex.check_encode(lambda keypoints: keypoints)
    assert incorrect(
        fb, "raised TypeError", "the checker calls encode(keypoints, visible, heatmap_size, stride, sigma)"
    )


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("swap", ["x and y are swapped"]),
        ("invisible", ["invisible keypoints must get an all-zero heatmap"]),
        ("no_stride", ["divide the image position by the stride"]),
        ("times_stride", ["don't multiply"]),
        ("sigma_pixels", ["sigma is in heatmap cells, not image pixels"]),
        ("sigma_times_stride", ["don't multiply it by stride"]),
        ("variance", ["standard deviation"]),
        ("no_two", ["the 2 is missing"]),
        ("no_cut", ["below 0.01 to zero"]),
        ("cell_centre", ["off by half a cell", "not at j + 0.5"]),
        ("pixel_centre", ["off by half a pixel"]),
        ("round", ["don't round"]),
        ("int", ["don't truncate"]),
        ("normalised", ["peak-1", "yours peaks at 0.07"]),
        ("sum_normalised", ["peak-1", "don't divide by 2πσ² or by the sum"]),
        ("width_height", ["should have shape (3, 5, 12, 16), got (3, 5, 16, 12)", "rows (y) first"]),
        ("flat", ["not a flattened one"]),
        ("tuple", ["return only the heatmaps", "not a tuple"]),
        ("numpy", ["should be a torch.Tensor, got a NumPy array"]),
        ("no_return", ["returned None", "forget `return`"]),
    ],
)
def test_encode_diagnoses(mistake, needles):
    fb = ex.check_encode(encode_with(mistake))
    assert incorrect(fb, *needles), fb


def test_encode_fallbacks_name_the_problem():
    def shifted_one(k, v, s, st, sg):  # one keypoint two cells off
        maps = student_encode(k, v, s, st, sg)
        maps[1, 2] = student_encode(k + torch.tensor([8.0, 0.0]), v, s, st, sg)[1, 2]
        return maps

    fb = ex.check_encode(shifted_one)
    assert incorrect(fb, "sample 1, keypoint 2: your Gaussian is centred near")

    def wider_at_top(k, v, s, st, sg):  # the right centres and peaks, the wrong bump
        return student_encode(k, v, s, st, sg) ** 0.5

    assert incorrect(ex.check_encode(wider_at_top), "right places but their values differ")

    fb = ex.check_encode(lambda k, v, s, st, sg: student_encode(k, v, s, st, sg) * float("nan"))
    assert incorrect(fb, "NaN")


def test_encode_accepts_values_at_the_cut_either_side():
    # The library zeroes values <= 0.01, a student typically < 0.01: both are right.
    fb = ex.check_encode(lambda k, v, s, st, sg: student_encode(k, v, s, st, sg).double())
    assert fb.status == "correct"


# --- pck ------------------------------------------------------------------------------------


def student_pck(pred, gt, visible, threshold, mistake=None):
    """A student's PCK; ``mistake`` injects one typical error."""
    diff = pred - gt
    dist = {
        "squared": (diff**2).sum(-1),
        "l1": diff.abs().sum(-1),
        "max": diff.abs().max(-1).values,
    }.get(mistake, (diff**2).sum(-1).sqrt())
    thr = 3.2 if mistake == "fixed" else threshold
    correct = dist <= thr if mistake == "less_equal" else dist < thr
    vis = visible.bool()
    if mistake == "all":
        return correct.float().mean().item()
    if mistake == "denominator":
        return ((correct & vis).sum() / vis.numel()).item()
    if mistake in ("per_keypoint", "per_keypoint_tensor"):
        per = torch.stack([correct[:, k][vis[:, k]].float().mean() for k in range(pred.shape[1])])
        return per if mistake == "per_keypoint_tensor" else per.mean().item()
    if mistake == "per_image":
        return sum(correct[i][vis[i]].float().mean().item() for i in range(len(pred))) / len(pred)
    if mistake == "empty":
        return correct[vis & ~vis].float().mean()
    fraction = correct[vis].float().mean().item()
    return {"percent": 100 * fraction, "count": int((correct & vis).sum()), "wrong": 1 - fraction}.get(
        mistake, fraction
    )


def pck_with(mistake):
    return lambda p, g, v, t: student_pck(p, g, v, t, mistake)


def test_pck_correct_blank_and_crash():
    assert ex.check_pck(student_pck).status == "correct"
    assert reference(ex.check_pck(ex.solution("pck")), "solution('pck')")
    assert ex.check_pck(lambda p, g, v, t: torch.tensor(student_pck(p, g, v, t))).status == "correct"
    assert ex.check_pck(stub).status == "not attempted"
    assert incorrect(ex.check_pck(lambda p, g, v, t: 1 / 0), "raised ZeroDivisionError")


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("less_equal", ["strictly below the threshold"]),
        ("all", ["ignore invisible keypoints"]),
        ("denominator", ["divide by the number of visible keypoints"]),
        ("per_keypoint", ["instead of averaging the per-keypoint fractions"]),
        ("per_image", ["instead of averaging per image (or per batch)"]),
        ("per_keypoint_tensor", ["that is PCK per keypoint"]),
        ("percent", ["not a percentage"]),
        ("count", ["not their count"]),
        ("wrong", ["fraction of *wrong* keypoints"]),
        ("squared", ["not the squared distance"]),
        ("l1", ["not |dx| + |dy|"]),
        ("max", ["not max(|dx|, |dy|)"]),
        ("fixed", ["use the threshold argument"]),
        ("empty", ["NaN"]),
    ],
)
def test_pck_diagnoses(mistake, needles):
    fb = ex.check_pck(pck_with(mistake))
    assert incorrect(fb, *needles), fb


def test_pck_odd_returns():
    assert incorrect(ex.check_pck(lambda p, g, v, t: None), "returned None")
    assert incorrect(ex.check_pck(lambda p, g, v, t: "0.5"), "return one number")
    assert incorrect(ex.check_pck(lambda p, g, v, t: torch.zeros(2, 2)), "got a tensor of shape (2, 2)")
    assert incorrect(ex.check_pck(lambda p, g, v, t: 0.123), "expected 0.4793, got 0.1230")


# --- ground false (Eq. 1) ------------------------------------------------------------------------


def student_ground_false(truth, mistake=None):
    """A student's H_F with loops; ``mistake`` injects one typical error."""
    b, k = truth.shape[:2]
    out = torch.zeros_like(truth)
    for i in range(k):
        for j in range(k - 1 if mistake == "off_by_one" else k):
            if j == i and not (mistake == "self" or (mistake == "self_3" and i == 3)):
                continue
            out[:, i] = torch.maximum(out[:, i], truth[:, j]) if mistake == "max" else out[:, i] + truth[:, j]
    if mistake == "no_clip":
        return out
    return out.clamp(0, 1)


def ground_false_with(mistake):
    return lambda t: student_ground_false(t, mistake)


def test_ground_false_correct_blank_and_crash():
    assert ex.check_ground_false(student_ground_false).status == "correct"
    assert reference(ex.check_ground_false(ground_false_from_truth), "regdakit.disparity.ground_false_from_truth")
    assert ex.check_ground_false(stub).status == "not attempted"
    assert incorrect(ex.check_ground_false(crash), "raised IndexError")


@pytest.mark.parametrize(
    ("wrong", "needles"),
    [
        (ground_false_with("self"), ["your ground-false for keypoint 0 includes keypoint 0 itself"]),
        (ground_false_with("self_3"), ["your ground-false for keypoint 3 includes keypoint 3 itself"]),
        (ground_false_with("off_by_one"), ["your ground-false for keypoint 0 misses keypoint 5"]),
        (ground_false_with("no_clip"), ["clip the sum to [0, 1]"]),
        (ground_false_with("max"), ["not their maximum"]),
        (lambda t: t.sum(1, keepdim=True).clamp(0, 1) - t, ["clip after leaving keypoint k out"]),
        (lambda t: (t.sum(0, keepdim=True) - t).clamp(0, 1), ["summed over the batch (dim 0)"]),
        (lambda t: (t.sum(-1, keepdim=True) - t).clamp(0, 1), ["summed over the columns (dim 3)"]),
        (lambda t: (t.sum(2, keepdim=True) - t).clamp(0, 1), ["summed over the rows (dim 2)"]),
        (lambda t: (f := student_ground_false(t)) / f.sum((-2, -1), keepdim=True), ["that is P_F"]),
        (lambda t: t, ["that is the ground truth"]),
        (lambda t: 1 - t, ["not 1 - H"]),
        (lambda t: t.sum(1, keepdim=True).clamp(0, 1), ["got (3, 1, 16, 16)", "one ground-false map per keypoint"]),
        (lambda t: student_ground_false(t) * 0.9, ["keypoint 0's ground false is wrong"]),
    ],
)
def test_ground_false_diagnoses(wrong, needles):
    fb = ex.check_ground_false(wrong)
    assert incorrect(fb, *needles), fb


# --- ground-false distribution (Eq. 2) ------------------------------------------------------------


def student_distribution(false, mistake=None):
    """A student's P_F; ``mistake`` injects one typical error."""
    if mistake == "none":
        return false
    if mistake == "softmax":
        return torch.softmax(false.flatten(2), dim=-1).view_as(false)
    if mistake == "again":
        false = student_ground_false(false)
    dims = {"sample": (1, 2, 3), "keypoints": 1, "columns": -1, "rows": -2}.get(mistake, (-2, -1))
    total = false.amax(dim=(-2, -1), keepdim=True) if mistake == "max" else false.sum(dim=dims, keepdim=True)
    if mistake == "nan":
        return false / total
    return false / total.clamp_min(1e-12)


def test_distribution_correct_blank_and_crash():
    assert ex.check_ground_false_distribution(student_distribution).status == "correct"
    assert reference(ex.check_ground_false_distribution(ex.solution("ground_false_distribution")), "solution(")
    assert ex.check_ground_false_distribution(stub).status == "not attempted"
    assert incorrect(ex.check_ground_false_distribution(crash), "raised IndexError")
    assert incorrect(ex.check_ground_false_distribution(lambda f: f[:, 0]), "should have shape (3, 6, 16, 16)")


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("none", ["not normalised"]),
        ("nan", ["an all-zero H_F", "gives NaN"]),
        ("sample", ["not over the keypoints too"]),
        ("keypoints", ["wrong axis", "not over the keypoints (dim 1)"]),
        ("columns", ["not over the columns only"]),
        ("rows", ["not over the rows only"]),
        ("max", ["not normalised"]),  # H_F peaks at 1, so dividing by the maximum changes nothing
        ("softmax", ["not a softmax"]),
        ("again", ["already H_F"]),
    ],
)
def test_distribution_diagnoses(mistake, needles):
    fb = ex.check_ground_false_distribution(lambda f: student_distribution(f, mistake))
    assert incorrect(fb, *needles), fb


# --- KL loss -----------------------------------------------------------------------------------


def student_kl(logits, target, mistake=None):
    """A student's spatial KL; ``mistake`` injects one typical error."""
    b, k = logits.shape[:2]
    z = logits.flatten(2)
    if mistake == "detach":
        z = z.detach()
    q = target.flatten(2)
    if mistake != "unnormalised":
        q = q / q.sum(-1, keepdim=True)
    log_p = {
        "no_softmax": z,
        "log_logits": z.log(),
        "no_log": torch.softmax(z, -1),
        "axis_k": torch.log_softmax(logits, 1).flatten(2),
        "axis_row": torch.log_softmax(logits, -1).flatten(2),
        "axis_sample": torch.log_softmax(logits.flatten(1), -1).view(b, k, -1),
    }.get(mistake, torch.log_softmax(z, -1))
    if mistake == "batchmean":
        return F.kl_div(log_p, q, reduction="batchmean")
    if mistake == "no_softmax_batchmean":
        return F.kl_div(z, q, reduction="batchmean")
    if mistake == "mse":
        return ((torch.softmax(z, -1) - q) ** 2).mean()
    if mistake == "mse_logits":
        return F.mse_loss(logits, target)
    if mistake == "mean_cells":
        with warnings.catch_warnings():  # PyTorch warns that 'mean' is not the KL's definition: that is the point
            warnings.simplefilter("ignore", UserWarning)
            return F.kl_div(log_p, q, reduction="mean")
    if mistake == "reverse":
        return (log_p.exp() * (log_p - q.log())).sum(-1).mean()
    if mistake == "reverse_eps":
        return (log_p.exp() * (log_p - torch.log(q + 1e-8))).sum(-1).mean()
    if mistake == "zero_log_zero":
        per_map = (q * (q.log() - log_p)).sum(-1)
    elif mistake == "cross_entropy":
        per_map = -(q * log_p).sum(-1)
    else:
        per_map = (torch.special.xlogy(q, q) - q * log_p).sum(-1)
    if mistake == "per_map":
        return per_map
    loss = per_map.sum() if mistake == "sum" else per_map.sum(0).mean() if mistake == "sum_b" else per_map.mean()
    if mistake == "item":
        return loss.item()
    return -loss if mistake == "negative" else loss


def test_kl_correct_blank_and_crash():
    assert ex.check_kl_loss(student_kl).status == "correct"
    assert ex.check_kl_loss(
        lambda z, t: (
            F.kl_div(F.log_softmax(z.flatten(2), -1), t.flatten(2) / t.sum((-2, -1))[..., None], reduction="none")
            .sum(-1)
            .mean()
        )
    )
    assert reference(ex.check_kl_loss(ex.solution("kl_loss")), "solution(")
    assert ex.check_kl_loss(stub).status == "not attempted"
    assert incorrect(ex.check_kl_loss(crash), "raised IndexError")


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("reverse", ["wrong way round"]),
        ("unnormalised", ["the target is not normalised"]),
        ("cross_entropy", ["that is the cross-entropy"]),
        ("no_softmax", ["softmax missing"]),
        ("log_logits", ["NaN although the target has no zeros", "log_softmax"]),
        ("no_log", ["take the log of the softmax"]),
        ("axis_k", ["softmax over the wrong axis", "not over the keypoints (dim 1)"]),
        ("axis_row", ["softmax over the wrong axis", "not over each row"]),
        ("axis_sample", ["softmax over the wrong axis", "one distribution per keypoint map"]),
        ("sum", ["average over the B·K maps instead of summing"]),
        ("batchmean", ["not by the batch size B", "batchmean"]),
        ("mean_cells", ["also averages over the cells"]),
        ("negative", ["not its negative"]),
        ("zero_log_zero", ["NaN where the target is 0", "xlogy"]),
        ("per_map", ["that is the KL per keypoint map (B, K)"]),
        ("item", ["return a scalar tensor", "got float"]),
        ("detach", ["the value is right", "gradient"]),
        ("mse", ["that is a mean squared error"]),
        ("mse_logits", ["that is a mean squared error"]),
        ("sum_b", ["summed over the batch B only"]),
        ("no_softmax_batchmean", ["softmax missing", "not by the batch size B"]),
    ],
)
def test_kl_diagnoses(mistake, needles):
    fb = ex.check_kl_loss(lambda z, t: student_kl(z, t, mistake))
    assert incorrect(fb, *needles), fb


# --- L_F ---------------------------------------------------------------------------------------


def student_lf(adv, main, mistake=None, kl_mistake=None):
    """A student's L_F from the library's pseudo-labels; ``mistake`` injects one typical error."""
    truth, false = pseudo_labels(main)
    target = truth if mistake == "truth" else false
    if mistake == "from_adv":
        target = pseudo_labels(adv)[1]
    if mistake == "swapped":
        adv, target = main, pseudo_labels(adv)[1]
    loss = student_kl(adv, target, kl_mistake)
    if mistake == "not_detached":
        loss = loss + (main - main.detach()).sum()  # the right value, a gradient path into f
    return loss


def test_ground_false_loss_correct_blank_and_crash():
    assert ex.check_ground_false_loss(student_lf).status == "correct"
    assert reference(ex.check_ground_false_loss(ex.solution("ground_false_loss")), "solution(")
    assert ex.check_ground_false_loss(stub).status == "not attempted"
    assert incorrect(ex.check_ground_false_loss(crash), "raised IndexError")
    assert incorrect(ex.check_ground_false_loss(lambda a, m: None), "returned None")


@pytest.mark.parametrize(
    ("mistake", "kl_mistake", "needles"),
    [
        ("truth", None, ["that is L_T"]),
        ("from_adv", None, ["build P_F from the main head's prediction"]),
        ("swapped", None, ["the heads are swapped"]),
        ("not_detached", None, ["detach the main head"]),
        (None, "reverse", ["wrong way round"]),
        (None, "reverse_eps", ["wrong way round"]),
        (None, "zero_log_zero", ["NaN", "0 · log 0"]),
        (None, "unnormalised", ["the target is not normalised"]),
        (None, "no_softmax", ["softmax missing"]),
        (None, "sum", ["instead of summing"]),
        (None, "batchmean", ["not by the batch size B"]),
        (None, "mean_cells", ["also averages over the cells"]),
        (None, "negative", ["L_F is minimised", "not -KL"]),
        (None, "detach", ["no gradient with respect to adv_logits"]),
        (None, "per_map", ["(B, K)"]),
        (None, "mse", ["that is a mean squared error"]),
        (None, "mse_logits", ["that is a mean squared error"]),
        (None, "sum_b", ["summed over the batch B only"]),
        (None, "no_softmax_batchmean", ["softmax missing", "not by the batch size B"]),
    ],
)
def test_ground_false_loss_diagnoses(mistake, kl_mistake, needles):
    fb = ex.check_ground_false_loss(lambda a, m: student_lf(a, m, mistake, kl_mistake))
    assert incorrect(fb, *needles), fb


# --- feedback and checkers never crash -------------------------------------------------------------


CHECKERS = [
    ex.check_encode,
    ex.check_pck,
    ex.check_ground_false,
    ex.check_ground_false_distribution,
    ex.check_kl_loss,
    ex.check_ground_false_loss,
    ex.check_error_landing,
    ex.check_rotated_chance,
    ex.check_step_b,
    ex.check_step_c,
]


@pytest.mark.parametrize("check", CHECKERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "weird",
    [
        lambda *a: None,
        lambda *a: "text",
        lambda *a: torch.zeros(()),
        lambda *a: torch.zeros(7),
        lambda *a: torch.full((1,), float("nan")),
        lambda *a: torch.zeros(3, 2, dtype=torch.complex64),
        lambda *a: (torch.zeros(1), torch.zeros(1)),
        lambda *a: a[0],
        crash,
    ],
)
def test_checkers_answer_any_result_with_feedback(check, weird):
    fb = check(weird)
    assert isinstance(fb, ex.Feedback) and fb.status == "incorrect" and fb.message


def test_a_checker_that_breaks_on_a_result_still_answers():
    # A scalar-like object whose comparison raises inside the checker itself.
    class Boom:
        def __float__(self):
            raise OverflowError("boom")

    fb = ex.check_pck(lambda *a: Boom())
    assert fb.status == "incorrect" and "checker could not compare your result" in fb.message


def test_inputs_are_cloned():
    def vandal(keypoints, visible, heatmap_size, stride, sigma):
        out = student_encode(keypoints, visible, heatmap_size, stride, sigma)
        keypoints.zero_()
        return out

    assert ex.check_encode(vandal).status == "correct"


def test_feedback_prints_and_renders():
    fb = ex.check_pck(stub)
    assert str(fb).startswith("pck: not attempted") and not fb
    assert "✏️" in fb._repr_markdown_()
    assert ex.check_pck(student_pck).mark == "✅"


# --- the library's own implementation is refused ---------------------------------------------------


def test_every_way_of_calling_the_reference_is_refused():
    import regdakit as rk
    from regdakit.disparity import ground_false_from_truth as imported

    def swallows(t):
        try:
            return rk.disparity.ground_false_from_truth(t)
        except BaseException:  # noqa: BLE001 - a student hiding the refusal still gets it
            return student_ground_false(t)

    ways = {
        "module attribute": lambda t: rk.disparity.ground_false_from_truth(t),
        "imported name": lambda t: imported(t),
        "default argument": lambda t, f=ground_false_from_truth: f(t),
        "the function itself": ground_false_from_truth,
        "solution()": lambda t: ex.solution("ground_false")(t),
        "EXERCISES": lambda t: ex.EXERCISES["ground_false"][0](t),
        "caught": swallows,
    }
    for way, fn in ways.items():
        fb = ex.check_ground_false(fn)
        assert incorrect(fb, "calls the library's own", "earns no credit"), (way, fb)
        with pytest.raises(ex.CheckFailed, match="library's own"):
            ex.hidden_check("ground_false", fn, seed=3)
    # Outside the check, the library works again, and the blocked function's module is left as it was.
    truth = pseudo_labels(torch.randn(2, 3, 8, 8))[0]
    torch.testing.assert_close(rk.disparity.ground_false_from_truth(truth), student_ground_false(truth))
    assert not any(k.startswith("__regdakit") for k in vars(rk.disparity))


@pytest.mark.parametrize(
    ("check", "wrapper", "what"),
    [
        (ex.check_encode, lambda k, v, s, st, sg: rk_mod().heatmaps.encode(k, v, s, st, sg)[0], "heatmaps.encode"),
        (
            ex.check_encode,
            lambda k, v, s, st, sg: rk_mod().heatmaps.gaussian_heatmaps(k / st, s, sg),
            "heatmaps.gaussian_heatmaps",
        ),
        (  # the private helper that holds encode's Gaussians
            ex.check_encode,
            lambda k, v, s, st, sg: rk_mod().heatmaps._gaussians(k / st, *s, sg) * v[..., None, None],
            "heatmaps._gaussians",
        ),
        (ex.check_pck, lambda p, g, v, t: rk_mod().metrics.pck(p, g, v, t).all, "metrics.pck"),
        (ex.check_ground_false, lambda t: rk_mod().disparity._ground_false(t), "disparity._ground_false"),
        (  # the ground false of pseudo-labels: the same private helper, reached through a public function
            ex.check_ground_false,
            lambda t: rk_mod().disparity.pseudo_labels((t + 1e-9).log())[1],
            "disparity._ground_false",
        ),
        (
            ex.check_ground_false_distribution,
            lambda f: rk_mod().disparity.ground_false_distribution(f),
            "disparity.ground_false_distribution",
        ),
        (ex.check_ground_false_distribution, lambda f: rk_mod().losses.normalize_heatmaps(f), "normalize_heatmaps"),
        (ex.check_kl_loss, lambda z, t: rk_mod().losses.kl_heatmap_loss(z, t), "losses.kl_heatmap_loss"),
        (ex.check_kl_loss, lambda z, t: rk_mod().losses.kl_per_keypoint(z, t).mean(), "losses.kl_per_keypoint"),
        (ex.check_ground_false_loss, lambda a, m: rk_mod().disparity.ground_false_loss(a, m), "ground_false_loss"),
    ],
)
def test_wrapping_the_reference_earns_nothing(check, wrapper, what):
    assert reference(check(wrapper), what)


def rk_mod():
    import regdakit

    return regdakit


def test_the_building_blocks_the_notebooks_suggest_stay_allowed():
    # Notebook 02 suggests pseudo_labels + kl_heatmap_loss for L_F: only ground_false_loss itself is refused.
    import regdakit as rk

    def lf(adv, main):
        return rk.losses.kl_heatmap_loss(adv, rk.disparity.pseudo_labels(main.detach())[1])

    assert ex.check_ground_false_loss(lf).status == "correct"
    ex.hidden_check("ground_false_loss", lf, seed=1)


def test_no_message_tells_how_to_reveal_solutions():
    # The old solutions switch is gone; nothing a student sees names an environment variable or solution().
    messages = [
        str(ex.check_ground_false(stub)),
        str(ex.check_ground_false(blank_ground_false())),
        str(ex.check_ground_false_loss(student_lf_with_blank_kl())),
    ]
    try:
        blank_ground_false()(torch.zeros(1, 2, 4, 4)).sum()
    except NotImplementedError as err:
        messages.append(str(err))
    for text in messages:
        assert "REGDAKIT_SOLUTIONS" not in text and "solution(" not in text, text
    # Nor does anything the project ships: the notebooks, their sources, the guides, the tools, the package.
    shipped = [ROOT / "README.md", *(ROOT / "tools").glob("*.py"), *(ROOT / "regdakit").rglob("*.py")]
    shipped += [p for p in (ROOT / "notebooks").rglob("*") if p.suffix in (".py", ".ipynb", ".md")]
    for path in shipped:
        assert "REGDAKIT_SOLUTIONS" not in path.read_text(encoding="utf-8"), path


# --- blanks ------------------------------------------------------------------------------------------


def blank_ground_false():
    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        """The student's docstring."""
        # YOUR CODE HERE
        raise NotImplementedError()

    return ground_false


def student_lf_with_blank_kl():
    @ex.exercise("kl_loss")
    def kl_loss(logits, target):
        raise NotImplementedError()

    @ex.exercise("ground_false_loss")
    def ground_false_loss(adv_logits, main_logits):
        return kl_loss(adv_logits, pseudo_labels(main_logits)[1])

    return ground_false_loss


def test_a_blank_is_not_attempted_and_says_what_to_write():
    fn = blank_ground_false()
    assert fn.__name__ == "ground_false" and fn.__doc__ == "The student's docstring."
    fb = ex.check_ground_false(fn)
    assert fb.status == "not attempted" and "write the body of `ground_false`" in fb.message
    with pytest.raises(ex.CheckFailed, match="not attempted"):
        ex.hidden_check("ground_false", fn, seed=0)


def test_a_blank_reports_itself_where_its_result_is_used():
    truth = pseudo_labels(torch.randn(2, 3, 8, 8))[0]
    h_false = blank_ground_false()(truth)  # the cell that calls the blank runs ...
    assert isinstance(h_false, ex.Blank) and "`ground_false` is still blank" in repr(h_false)
    uses = [
        lambda: h_false.sum(1),  # a method
        lambda: torch.allclose(h_false, truth),  # a torch function
        lambda: h_false / 2,  # arithmetic
        lambda: h_false[0],  # indexing
        lambda: float(h_false),  # conversion
        lambda: student_ground_false(h_false),  # written code that receives it
    ]
    for use in uses:  # ... and every later use names the function to write, instead of a NameError
        with pytest.raises(NotImplementedError, match="`ground_false` is still blank"):
            use()
    with pytest.raises(NotImplementedError, match="`ground_false` is still blank"):
        a, b = blank_ground_false()(truth)  # unpacking


def test_an_exercise_given_a_blank_passes_it_on():
    # ground_false blank, ground_false_distribution written: P_F of the blank H_F names ground_false where used.
    @ex.exercise("ground_false_distribution")
    def distribution(false):
        return student_distribution(false)

    truth = pseudo_labels(torch.randn(2, 3, 8, 8))[0]
    p_false = distribution(blank_ground_false()(truth))
    assert isinstance(p_false, ex.Blank)
    with pytest.raises(NotImplementedError, match="`ground_false` is still blank"):
        torch.log(p_false + 1e-6)
    assert isinstance(distribution(false=blank_ground_false()(truth)), ex.Blank)  # as a keyword too
    torch.testing.assert_close(distribution(truth), student_distribution(truth))  # written, given a tensor: runs


def test_a_used_blank_shows_one_line_in_a_kernel():
    # Where a later cell uses a blank's result, IPython shows the one ✏️ line, not a traceback into regdakit.
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.user_ns.update(blank=blank_ground_false(), truth=pseudo_labels(torch.randn(2, 3, 8, 8))[0])
    shell.run_cell("h_false = blank(truth)")
    result = shell.run_cell("h_false.sum(1)")
    err = result.error_in_exec
    assert isinstance(err, NotImplementedError) and err._render_traceback_() == [
        "✏️ `ground_false` is still blank: write its body (in place of `raise NotImplementedError()`) in the "
        "exercise cell that defines `ground_false`, run that cell, then run the cells below it again"
    ]
    assert err.__cause__ is None and err.__suppress_context__


def test_written_code_that_raises_is_not_a_blank():
    @ex.exercise("ground_false")
    def calls_something_unfinished(ground_truth):
        return stub(ground_truth)  # NotImplementedError from deeper code: not the blank

    with pytest.raises(NotImplementedError) as info:
        calls_something_unfinished(torch.zeros(1, 2, 4, 4))
    assert "still blank" not in str(info.value)

    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        return ground_truth  # written, and wrong

    assert incorrect(ex.check_ground_false(ground_false), "that is the ground truth")


def test_a_blank_called_by_another_exercise_is_named():
    fb = ex.check_ground_false_loss(student_lf_with_blank_kl())
    assert fb.status == "not attempted" and "`kl_loss` is still blank" in fb.message


def test_unknown_exercise_name():
    with pytest.raises(ValueError, match="unknown exercise 'encoder'"):
        ex.exercise("encoder")
    with pytest.raises(ValueError, match="unknown exercise"):
        ex.solution("nope")


# --- upstream mistakes are traced --------------------------------------------------------------------


def test_a_wrong_upstream_function_is_named():
    @ex.exercise("ground_false")
    def ground_false(ground_truth):  # keypoint k left in: wrong
        return ground_truth.sum(1, keepdim=True).clamp(0, 1).expand_as(ground_truth)

    @ex.exercise("ground_false_loss")
    def ground_false_loss(adv_logits, main_logits):  # right, built on the wrong ground_false
        truth, _ = pseudo_labels(main_logits.detach())
        return student_kl(adv_logits, ground_false(truth))

    fb = ex.check_ground_false_loss(ground_false_loss)
    assert incorrect(
        fb, "your `ground_false` is wrong, and your `ground_false_loss` uses it: fix `ground_false` first"
    ), fb
    assert "includes keypoint 0 itself" in fb.message

    @ex.exercise("kl_loss")
    def kl_loss(logits, target):  # softmax missing
        return student_kl(logits, target, "no_softmax")

    @ex.exercise("ground_false_loss")
    def lf_on_kl(adv_logits, main_logits):
        return kl_loss(adv_logits, pseudo_labels(main_logits.detach())[1])

    fb = ex.check_ground_false_loss(lf_on_kl)
    assert incorrect(fb, "your `kl_loss` is wrong", "softmax missing"), fb


def test_a_right_upstream_function_is_not_blamed():
    @ex.exercise("ground_false")
    def ground_false(ground_truth):
        return student_ground_false(ground_truth)

    @ex.exercise("ground_false_loss")
    def ground_false_loss(adv_logits, main_logits):  # its own mistake: L_T
        truth, _ = pseudo_labels(main_logits.detach())
        ground_false(truth)
        return student_kl(adv_logits, truth)

    fb = ex.check_ground_false_loss(ground_false_loss)
    assert incorrect(fb, "that is L_T") and "uses it" not in fb.message


# --- verify: printed once, a failure is one line ------------------------------------------------------


def test_verify_prints_a_correct_feedback_once_and_returns_nothing(capsys):
    assert ex.verify(ex.check_pck(student_pck)) is None  # nothing for Jupyter to display a second time
    out = capsys.readouterr().out
    assert out.startswith("✅ pck: correct") and out.count("pck") == 1


def test_verify_raises_a_one_line_failure(capsys):
    with pytest.raises(ex.CheckFailed) as info:
        ex.verify(ex.check_ground_false(lambda t: t))
    assert isinstance(info.value, AssertionError)  # nbgrader: the graded cell fails, no points
    assert str(info.value).startswith("❌ ground_false: that is the ground truth")
    assert info.value._render_traceback_() == [str(info.value)]  # what IPython shows instead of a traceback
    assert capsys.readouterr().out == ""  # not printed as well
    with pytest.raises(ex.CheckFailed, match="✏️ ground_false: not attempted"):
        ex.verify(ex.check_ground_false(stub))


def test_verify_shows_once_in_a_kernel():
    # The old verify printed the line and returned the feedback, which Jupyter displayed again.
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    shell.run_cell("from regdakit import exercises as ex")
    shell.user_ns["student_pck"] = student_pck
    shell.user_ns["wrong"] = lambda t: t
    result = shell.run_cell("ex.verify(ex.check_pck(student_pck))")
    assert result.result is None and result.success
    result = shell.run_cell("ex.verify(ex.check_ground_false(wrong))")
    assert isinstance(result.error_in_exec, ex.CheckFailed)


# --- hidden tests ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "right"),
    [
        ("encode", student_encode),
        ("pck", student_pck),
        ("ground_false", student_ground_false),
        ("ground_false_distribution", student_distribution),
        ("kl_loss", student_kl),
        ("ground_false_loss", student_lf),
    ],
)
def test_hidden_check_passes_a_right_answer_and_fails_a_fitted_one(name, right):
    for seed in range(3):
        ex.hidden_check(name, right, seed=seed)
    with pytest.raises(ex.CheckFailed, match="hidden test with other inputs"):
        ex.hidden_check(name, lambda *a: a[0] * 0 + 0.5 if isinstance(a[0], torch.Tensor) else 0.5, seed=1)
    with pytest.raises(ex.CheckFailed, match="hidden test with other inputs.*raised IndexError"):
        ex.hidden_check(name, crash, seed=1)


# --- error landing and chance model (c) (exercise notebook 01) --------------------------------------------


def student_landing(pred, gt, visible, radius, mistake=None):
    """A student's error_landing, vectorised with cdist; ``mistake`` injects one typical error."""
    b, k = visible.shape
    targets = pred if mistake == "to_prediction" else gt
    dist = torch.cdist(pred, targets)  # (B, K, K): prediction k to keypoint j
    own = torch.linalg.vector_norm(pred - gt, dim=-1)
    wrong = visible & ((own > radius) if mistake == "less_equal" else (own >= radius))
    usable = ~torch.eye(k, dtype=torch.bool)
    if mistake != "invisible_targets":
        usable = usable & visible[:, None, :]
    dist = dist.masked_fill(~usable, math.inf)
    if mistake == "first":  # the first keypoint within the radius, by index
        within = dist < radius
        nearest = torch.where(
            within.any(-1), within.float().argmax(-1), torch.zeros_like(within[..., 0], dtype=torch.long)
        )
        near = within.any(-1)
    else:
        near_dist, nearest = dist.min(-1)
        near = near_dist < radius
    codes = torch.full((b, k), -1 if mistake == "invisible_code" else -2)
    codes[visible] = -1
    codes[wrong] = -1 if mistake == "background_code" else k
    hit = wrong & near
    codes[hit] = nearest[hit]
    if mistake == "positions":
        return pred
    return codes


def landing_with(mistake):
    return lambda p, g, v, r: student_landing(p, g, v, r, mistake)


def test_error_landing_correct_blank_and_reference():
    assert ex.check_error_landing(student_landing).status == "correct"
    assert ex.check_error_landing(stub).status == "not attempted"
    assert reference(ex.check_error_landing(ex.solution("error_landing")), "solution('error_landing')")
    import regdakit as rk

    fb = ex.check_error_landing(lambda p, g, v, r: rk.metrics.error_landing(p, g, v, r).landing)
    assert reference(fb, "metrics.error_landing")
    fb = ex.check_error_landing(lambda p, g, v, r: rk.metrics.landing_chance(p, g, v, r).n_wrong)
    assert reference(fb, "metrics.landing_chance")


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("less_equal", ["exactly `radius` from its own keypoint is wrong (radius 2 here)", "strictly"]),
        ("invisible_targets", ["landed on a keypoint that is invisible", "only visible keypoints"]),
        ("first", ["lands on the nearest one, not the first"]),
        ("to_prediction", ["near j's true position `gt`, not near j's prediction"]),
        ("invisible_code", ["an invisible keypoint should get code -2 (got -1)"]),
        ("background_code", ["a background landing should get code 6 (got -1)"]),
        ("positions", ["should have shape (24, 6), got (24, 6, 2)", "one code per (image, keypoint)"]),
    ],
)
def test_error_landing_diagnoses(mistake, needles):
    assert incorrect(ex.check_error_landing(landing_with(mistake)), *needles)


def student_rotated(pred, gt, visible, radius, angles, mistake=None):
    """A student's chance model (c): loops over the wrong predictions; ``mistake`` injects one typical error."""
    if mistake == "linspace":
        theta = torch.linspace(0, 2 * math.pi, angles)
    elif mistake == "degrees":
        theta = torch.arange(angles) * 360.0 / angles
    else:
        theta = torch.arange(angles) * 2 * math.pi / angles
    rotation = torch.stack(
        [torch.stack([theta.cos(), -theta.sin()], -1), torch.stack([theta.sin(), theta.cos()], -1)], -2
    )
    b, k = visible.shape
    shares = []
    for i in range(b):
        for kk in range(k):
            if not visible[i, kk]:
                continue
            if torch.linalg.vector_norm(pred[i, kk] - gt[i, kk]) < radius:
                if mistake == "all_predictions":
                    shares.append(torch.tensor(0.0))
                continue
            centre = torch.zeros(2) if mistake == "origin" else gt[i, kk]
            moved = centre + rotation @ (pred[i, kk] - centre)  # (angles, 2)
            others = [j for j in range(k) if j != kk and (visible[i, j] or mistake == "invisible_targets")]
            shares.append((torch.cdist(moved, gt[i, others]) < radius).any(-1).float().mean())
    share = torch.stack(shares).mean()
    return {"percent": 100 * share, "per_prediction": torch.stack(shares)}.get(mistake, share)


def rotated_with(mistake):
    return lambda p, g, v, r, a: student_rotated(p, g, v, r, a, mistake)


def test_rotated_chance_correct_blank_and_reference():
    assert ex.check_rotated_chance(student_rotated).status == "correct"
    assert ex.check_rotated_chance(stub).status == "not attempted"
    import regdakit as rk

    fb = ex.check_rotated_chance(lambda p, g, v, r, a: rk.metrics.landing_chance(p, g, v, r, angles=a).rotated_errors)
    assert reference(fb, "metrics.landing_chance")

    # error_landing is a building block the notebook allows here (for the wrong predictions).
    def with_library_landing(p, g, v, r, a):
        assert rk.metrics.error_landing(p, g, v, r).n_wrong > 0
        return student_rotated(p, g, v, r, a)

    assert ex.check_rotated_chance(with_library_landing).status == "correct"


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("all_predictions", ["average over the wrong predictions only"]),
        ("origin", ["around the true keypoint gt", "not the prediction around the origin"]),
        ("linspace", ["evenly spaced over [0, 2π)", "repeats θ = 0 at 2π"]),
        ("degrees", ["cos and sin take radians"]),
        ("invisible_targets", ["only visible keypoints can be hit"]),
        ("percent", ["a share between 0 and 1, not a percentage"]),
        ("per_prediction", ["return one number", "got a tensor of shape"]),
    ],
)
def test_rotated_chance_diagnoses(mistake, needles):
    assert incorrect(ex.check_rotated_chance(rotated_with(mistake)), *needles)


# --- RegDA's steps B and C (exercise notebook 04) ---------------------------------------------------------


def student_step_b(model, x_t, optimizers, trade_off, sigma, mistake=None):
    """A student's step B: one forward, pseudo-labels of f, f' on detached features; ``mistake`` injects one error."""
    import regdakit as rk

    psi = model.features(x_t)
    with torch.no_grad():
        y = model.head_adv(psi) if mistake == "labels_from_adv" else model.head(psi)
    truth, false = rk.disparity.pseudo_labels(y, sigma)
    y_adv = model.head_adv(psi if mistake == "all_players" else psi.detach())
    if mistake == "truth":
        loss = rk.losses.kl_heatmap_loss(y_adv, truth)
    elif mistake == "dd":
        loss = -rk.losses.kl_heatmap_loss(y_adv, truth)
    else:
        loss = rk.losses.kl_heatmap_loss(y_adv, false)
    objective = {"maximise": -trade_off * loss, "no_trade_off": loss}.get(mistake, trade_off * loss)
    players = list(optimizers.values()) if mistake == "all_players" else [optimizers["head_adv"]]
    if mistake != "no_zero_grad":
        for opt in players:
            opt.zero_grad()
    objective.backward()
    if mistake != "no_step":
        for opt in players:
            opt.step()
    if mistake == "eval":
        model.eval()
    return {"return_scaled": trade_off * loss.detach(), "no_return": None, "return_after": loss * 0 + 9.0}.get(
        mistake, loss.detach()
    )


def student_step_c(model, x_t, optimizers, trade_off, sigma, lam, mistake=None):
    """A student's step C: f' through the gradient-scaling layer, only psi steps; ``mistake`` injects one error."""
    import regdakit as rk

    psi = model.features(x_t)
    with torch.no_grad():
        y = model.head_adv(psi) if mistake == "labels_from_adv" else model.head(psi)
    truth, false = rk.disparity.pseudo_labels(y, sigma)
    scaled = {"no_scale": psi, "reverse": rk.models.reverse_gradient(psi, lam)}.get(
        mistake, rk.models.scale_gradient(psi, lam)
    )
    y_adv = model.head_adv(scaled)
    if mistake == "false":
        loss = rk.losses.kl_heatmap_loss(y_adv, false)
    elif mistake == "false_max":
        loss = -rk.losses.kl_heatmap_loss(y_adv, false)
    else:
        loss = rk.losses.kl_heatmap_loss(y_adv, truth)
    objective = {"maximise": -trade_off * loss, "no_trade_off": loss}.get(mistake, trade_off * loss)
    players = [optimizers["psi"], optimizers["head_adv"]] if mistake == "adv_too" else [optimizers["psi"]]
    if mistake != "no_zero_grad":
        for opt in players:
            opt.zero_grad()
    objective.backward()
    if mistake != "no_step":
        for opt in players:
            opt.step()
    return {"return_scaled": trade_off * loss.detach(), "no_return": None}.get(mistake, loss.detach())


def step_b_with(mistake):
    return lambda m, x, o, t, s: student_step_b(m, x, o, t, s, mistake)


def step_c_with(mistake):
    return lambda m, x, o, t, s, lam: student_step_c(m, x, o, t, s, lam, mistake)


def test_steps_correct_blank_and_reference():
    import regdakit as rk
    from regdakit.methods import regda

    assert ex.check_step_b(student_step_b).status == "correct"
    assert ex.check_step_c(student_step_c).status == "correct"
    assert ex.check_step_b(stub).status == "not attempted"
    assert ex.check_step_c(stub).status == "not attempted"
    assert reference(ex.check_step_b(ex.solution("step_b")), "solution('step_b')")

    def library_c(m, x, o, t, s, lam):
        return regda.step_c(m, regda.target_pass(m, x, s), o, regda.Config(trade_off=t), 9, rk.disparity.minimise_truth)

    assert reference(ex.check_step_c(library_c), "regda.step_c")

    def library_iteration(m, x, o, t, s):
        return regda.iteration(m, {}, {"image": x}, o, regda.Config(trade_off=t), 0, regda.OBJECTIVES["regda"])

    assert reference(ex.check_step_b(library_iteration), "regda.iteration")


def test_the_library_steps_are_what_the_checker_writes_out():
    # The checker's plain update (every variant starts from it) equals the library's fused steps B and C.
    from regdakit import disparity
    from regdakit.exercises import steps

    case = steps.step_case(4)
    library_b, _ = steps._library(case, "b")
    library_c, _ = steps._library(case, "c")
    assert steps._same(steps.update(case, ("head_adv",), disparity.minimise_false), library_b)
    assert steps._same(steps.update(case, ("psi",), disparity.minimise_truth, detach=False, lam=case.lam), library_c)
    assert steps._changed(library_b) == ["f′ (the adversary)"] and steps._changed(library_c) == ["ψ (the features)"]
    # The solution's λ route: the library's step C reached through an iteration of a long warm start.
    model = copy.deepcopy(case.model)
    ex.solution("step_c")(model, case.x_t, steps.make_sgd(model, case.lr), case.trade_off, case.sigma, case.lam)
    after = dict(model.named_parameters())
    moved = {n: float((after[n] - p).detach().abs().max()) for n, p in case.model.named_parameters()}
    assert max(moved[n] for n in moved if n.startswith("backbone.")) > 0
    assert max(moved[n] for n in moved if n.startswith("head")) == 0


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("all_players", ["your step B changed ψ (the features)", "only f′ (the adversary) trains"]),
        ("no_step", ["f′ (the adversary) did not change"]),
        ("maximise", ["f′ moved away from the ground false: L_F went up", "*minimises* L_F"]),
        ("no_zero_grad", ["old gradients", "optimizers['head_adv'].zero_grad()"]),
        ("no_trade_off", ["ignores trade_off (0.25)"]),
        ("truth", ["f′ moved towards f's own prediction H(ŷ): that is L_T"]),
        ("dd", ["f′ maximised L_T, the adversary of Disparity Discrepancy"]),
        ("labels_from_adv", ["your pseudo-labels come from f′"]),
        ("eval", ["left the model in eval mode"]),
        ("return_scaled", ["return L_F itself, not trade_off · L_F"]),
        ("return_after", ["return L_F before the update"]),
        ("no_return", ["the update is right; now return L_F"]),
    ],
)
def test_step_b_diagnoses(mistake, needles):
    assert incorrect(ex.check_step_b(step_b_with(mistake)), *needles)


@pytest.mark.parametrize(
    ("mistake", "needles"),
    [
        ("adv_too", ["your step C changed f′ (the adversary)", "only ψ (the features) trains"]),
        ("no_step", ["ψ (the features) did not change"]),
        ("maximise", ["L_T went up", "*minimises* L_T"]),
        ("reverse", ["L_T went up", "gradient reversal"]),
        ("no_scale", ["not scaled", "scale_gradient(psi, lam)"]),
        ("no_zero_grad", ["old gradients", "optimizers['psi'].zero_grad()"]),
        ("no_trade_off", ["ignores trade_off (0.25)"]),
        ("false", ["ψ minimised L_F", "step C minimises L_T"]),
        ("false_max", ["ψ maximised L_F", "Table 2's variant"]),
        ("labels_from_adv", ["your pseudo-labels come from f′"]),
        ("return_scaled", ["return L_T itself, not trade_off · L_T"]),
    ],
)
def test_step_c_diagnoses(mistake, needles):
    assert incorrect(ex.check_step_c(step_c_with(mistake)), *needles)


def test_hidden_checks_of_the_new_exercises():
    right = {
        "error_landing": student_landing,
        "rotated_chance": student_rotated,
        "step_b": student_step_b,
        "step_c": student_step_c,
    }
    for name, fn in right.items():
        for seed in range(2):
            ex.hidden_check(name, fn, seed=seed)

    # Answers fitted to the visible case: its trade_off, its radius.
    def fitted_b(m, x, o, t, s):
        return student_step_b(m, x, o, 0.25, s)

    def fitted_landing(p, g, v, r):
        return student_landing(p, g, v, 2.0)

    with pytest.raises(ex.CheckFailed, match="hidden test with another tiny model and settings fails"):
        ex.hidden_check("step_b", fitted_b, seed=0)
    with pytest.raises(ex.CheckFailed, match="hidden test with other inputs"):
        ex.hidden_check("error_landing", fitted_landing, seed=0)
    with pytest.raises(ex.CheckFailed, match="library's own"):
        ex.hidden_check("step_b", ex.solution("step_b"), seed=0)


# --- the diagnoses the notebooks promise ------------------------------------------------------------------

#: Every diagnosis the exercise notebooks quote, with a deliberately wrong function that must produce it.
PROMISED = {
    "x and y are swapped": (ex.check_encode, encode_with("swap")),
    "your ground-false for keypoint 3 includes keypoint 3 itself": (
        ex.check_ground_false,
        ground_false_with("self_3"),
    ),
    "the KL is the wrong way round": (ex.check_kl_loss, lambda z, t: student_kl(z, t, "reverse")),
    "softmax missing": (ex.check_kl_loss, lambda z, t: student_kl(z, t, "no_softmax")),
    "a prediction exactly `radius` from its own keypoint is wrong": (
        ex.check_error_landing,
        landing_with("less_equal"),
    ),
    "average over the wrong predictions only": (ex.check_rotated_chance, rotated_with("all_predictions")),
    "your step B changed ψ": (ex.check_step_b, step_b_with("all_players")),
    "the gradient from f′ into ψ is not scaled": (ex.check_step_c, step_c_with("no_scale")),
}


def test_every_diagnosis_a_notebook_promises_is_produced():
    import re

    quoted = set()
    for path in (ROOT / "notebooks" / "src" / "exercises").glob("[0-9]*.py"):
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"\(((?:\"[^\"]+\",?\s*(?:#\s*)?)+)\.\.\.\)", text):
            quoted |= {" ".join(q.replace("\n#", " ").split()) for q in re.findall(r"\"([^\"]+)\"", block)}
    assert quoted and quoted <= set(PROMISED), f"promised but not tested here: {sorted(quoted - set(PROMISED))}"
    for message, (check, wrong) in PROMISED.items():
        assert incorrect(check(wrong), message), message


# --- the package's public API ---------------------------------------------------------------------


def test_the_package_offers_the_public_api_its_callers_use():
    # The notebooks, their sources and these tests import only from `regdakit.exercises`; the modules
    # behind it (framework, one per topic) may move, these names may not.
    assert ex.__all__ == [
        "EXERCISES",
        "Feedback",
        "CheckFailed",
        "Blank",
        "exercise",
        "solution",
        "reference_blocked",
        "verify",
        "hidden_check",
        "check_encode",
        "check_pck",
        "check_ground_false",
        "check_ground_false_distribution",
        "check_kl_loss",
        "check_ground_false_loss",
        "check_error_landing",
        "check_rotated_chance",
        "check_step_b",
        "check_step_c",
    ]
    assert all(getattr(ex, name) is not None for name in ex.__all__)
    assert sorted(ex.EXERCISES) == sorted(c.__name__.removeprefix("check_") for c in CHECKERS)
