# %% [md]
# # Exercise 04 · RegDA's steps B and C, written by you
#
# After source-only pre-training, every RegDA iteration (Jiang et al., CVPR
# 2021, Fig. 5) makes three updates of a detector with features `ψ`, a main
# head `f` and an adversarial head `f′`:
#
# * **A** (source): `ψ`, `f`, `f′` learn from the labels, and `f′` to agree with `f`;
# * **B** (target, `ψ` and `f` fixed): `f′` minimises `trade_off · L_F`: it moves
#   towards the ground-false distribution `P_F(ŷ)`, the other keypoints;
# * **C** (target, `f` and `f′` fixed): `ψ` minimises `trade_off · L_T`: the
#   features must make `f′` agree with `f`'s prediction `H(ŷ)` again, through a
#   gradient-scaling layer that multiplies the gradient from `f′` into `ψ` by `λ`.
#
# You write steps B and C. Each check runs your step and the library's
# (`rk.methods.regda.step_b` / `step_c`) on two copies of the same tiny model
# and compares **which parameters changed** (`ψ`, `f` or `f′`) and **how**: did
# the loss the step minimises go down, by the same update?
#
# **How to work.** Replace `raise NotImplementedError()` (under
# `# YOUR CODE HERE`) with your code and run the cell, then the **graded cell**
# below it: it prints ✅, or fails with one line that says what is wrong
# ("your step B changed ψ", "the gradient from f′ into ψ is not scaled", ...).
# When your work is graded, the same cells run again on another tiny model with
# other settings; the points are in the section titles. Don't call the
# library's steps (`rk.methods.regda.step_b`, `step_c`, `iteration`, `step`):
# they are unavailable while a check runs your function, and such an answer
# earns no points. Its building blocks are yours to use:
# `rk.disparity.pseudo_labels`, `rk.losses.kl_heatmap_loss`,
# `rk.models.scale_gradient`. Leave the `@ex.exercise(...)` line.

# %%
import copy

import torch

import regdakit as rk
from regdakit import exercises as ex
from regdakit.methods import regda

FAST = rk.runtime.fast_mode()  # fewer iterations under the automatic tests

# %% [md]
# ## 0 · A tiny detector with two heads
#
# `rk.models.pose_resnet("tiny", K)` builds the detector: `model.features(x)` is
# `ψ` `(B, C, H/4, W/4)`, `model.head` is `f` and `model.head_adv` is `f′`, each
# mapping `ψ` to `(B, K, H/4, W/4)` logits. Each player has its own optimiser,
# `optimizers = {"psi": …, "head": …, "head_adv": …}`: a step updates only the
# players whose optimiser it steps. The target batch `x_t` is a few images of
# the target domain; no target label is used anywhere.

# %%
torch.manual_seed(0)
model = rk.models.pose_resnet("tiny", 21, upsampling_channels=16)
model.train()
x_t = rk.data.synthetic.make_dataset("hands", "studio", "test", size=64, n=4).tensors()[0]  # (4, 3, 64, 64)
print("ψ:", tuple(model.features(x_t).shape), " f, f′:", tuple(model.head(model.features(x_t)).shape))


def make_optimizers(model, lr=0.05):
    """Plain SGD per player, as the checks use."""
    return {
        "psi": torch.optim.SGD([*model.backbone.parameters(), *model.upsampling.parameters()], lr=lr),
        "head": torch.optim.SGD(model.head.parameters(), lr=lr),
        "head_adv": torch.optim.SGD(model.head_adv.parameters(), lr=lr),
    }


# %% [md]
# ## 1 · Step B: `f′` moves towards the ground false (4 points)
#
# Write `step_b(model, x_t, optimizers, trade_off, sigma)`:
#
# 1. `ψ = model.features(x_t)`; the main head's logits `f(ψ)` without a graph
#    (`torch.no_grad()`: `f` is fixed and its prediction is a constant);
# 2. `truth, false = rk.disparity.pseudo_labels(logits, sigma)`: `H(ŷ)` and
#    `H_F(ŷ)` of `f`'s prediction (Eq. 1);
# 3. `L_F = rk.losses.kl_heatmap_loss(f′(ψ), false)` (it normalises `H_F` into
#    `P_F`, Eq. 2), with `ψ` **detached**: `ψ` is fixed in step B;
# 4. one update of `f′` only on `trade_off · L_F`: `zero_grad`, `backward`, `step`;
# 5. return `L_F` (its value before the update, not multiplied by `trade_off`).

# %% nbgrader={"grade": false, "grade_id": "step_b", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("step_b")  # keep this line: it never changes code you write
def step_b(model, x_t, optimizers, trade_off, sigma):
    """RegDA's step B: f' minimises trade_off * L_F on x_t (B, 3, H, W); psi and f fixed. Returns L_F."""
    ### BEGIN SOLUTION
    psi = model.features(x_t)  # (B, C, H/4, W/4)
    with torch.no_grad():
        logits = model.head(psi)  # f is fixed: its prediction is a constant
    truth, false = rk.disparity.pseudo_labels(logits, sigma)  # H(ŷ), H_F(ŷ): (B, K, H/4, W/4)
    loss = rk.losses.kl_heatmap_loss(model.head_adv(psi.detach()), false)  # L_F; psi fixed
    optimizers["head_adv"].zero_grad()
    (trade_off * loss).backward()
    optimizers["head_adv"].step()  # only f' moves
    return loss.detach()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_step_b", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_step_b(step_b))
### BEGIN HIDDEN TESTS
ex.hidden_check("step_b", step_b, seed=41)
### END HIDDEN TESTS

# %% [md]
# ## 2 · Step C: the features make `f′` agree with `f` again (4 points)
#
# Write `step_c(model, x_t, optimizers, trade_off, sigma, lam)`:
#
# 1. `ψ` and the pseudo-labels as in step B;
# 2. `f′` applied to `rk.models.scale_gradient(ψ, lam)`: the identity forward,
#    and a backward that multiplies the gradient into `ψ` by `λ = lam` (the
#    warm-start of the gradient-scaling layer);
# 3. `L_T = rk.losses.kl_heatmap_loss(f′(…), truth)`;
# 4. one update of `ψ` only on `trade_off · L_T` (`f` and `f′` are fixed);
# 5. return `L_T` (before the update, not multiplied by `trade_off`).

# %% nbgrader={"grade": false, "grade_id": "step_c", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("step_c")  # keep this line: it never changes code you write
def step_c(model, x_t, optimizers, trade_off, sigma, lam):
    """RegDA's step C: psi minimises trade_off * L_T through the scaling layer (λ = lam). Returns L_T."""
    ### BEGIN SOLUTION
    psi = model.features(x_t)  # (B, C, H/4, W/4), with graph: psi trains
    with torch.no_grad():
        logits = model.head(psi)
    truth, _ = rk.disparity.pseudo_labels(logits, sigma)  # H(ŷ) of f
    y_adv = model.head_adv(rk.models.scale_gradient(psi, lam))  # gradient into psi times λ
    loss = rk.losses.kl_heatmap_loss(y_adv, truth)  # L_T
    optimizers["psi"].zero_grad()
    (trade_off * loss).backward()
    optimizers["psi"].step()  # only psi moves
    return loss.detach()
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_step_c", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_step_c(step_c))
### BEGIN HIDDEN TESTS
ex.hidden_check("step_c", step_c, seed=42)
### END HIDDEN TESTS

# %% [md]
# ## 3 · A few iterations of B and C: yours beside the library's
#
# Two copies of the detector: one trained by your steps, one by the library's
# (`regda.target_pass`, then `regda.step_b` and `regda.step_c`, with the same
# `λ` schedule, rising with the iteration). After each step we measure how far
# each part moved: in step B only `f′`, in step C only `ψ`. The losses are the
# values each step starts from: step B lowers `L_F` by moving `f′` onto the other
# keypoints, then step C moves `ψ` so that `f′` agrees with `f` again, which
# lowers `L_T` and raises the next `L_F`: the game. The two copies must stay
# identical.

# %%
cfg = regda.Config(trade_off=1.0, warmup_iterations=5)
sigma, iterations = 2.0, (3 if FAST else 10)
mine, library = copy.deepcopy(model), copy.deepcopy(model)
opt_mine, opt_library = make_optimizers(mine), make_optimizers(library)
parts = {"ψ": ("backbone.", "upsampling."), "f": ("head.",), "f′": ("head_adv.",)}


def snapshot(m):
    return {n: p.detach().clone() for n, p in m.named_parameters()}


def moved(before, m):
    """How far each part moved: the largest change of any of its parameters."""
    now = dict(m.named_parameters())
    return {part: max(float((now[n].detach() - p).abs().max()) for n, p in before.items() if n.startswith(prefixes))
            for part, prefixes in parts.items()}


print(f"{'it':>3}{'step':>6}{'L (yours)':>11}{'L (library)':>13}   moved: " + "  ".join(f"{p:>8}" for p in parts))
for it in range(1, iterations + 1):  # it = 0 would give λ = 0: no gradient into ψ
    lam = regda.warm_start(cfg, it, adapt_iterations=iterations)
    before = snapshot(mine)
    loss_b = float(step_b(mine, x_t, opt_mine, cfg.trade_off, sigma))
    change_b = moved(before, mine)
    target = regda.target_pass(library, x_t, sigma)
    ref_b = float(regda.step_b(library, target, opt_library, cfg, rk.disparity.minimise_false))
    before = snapshot(mine)
    loss_c = float(step_c(mine, x_t, opt_mine, cfg.trade_off, sigma, lam))
    change_c = moved(before, mine)
    ref_c = float(regda.step_c(library, target, opt_library, cfg, it, rk.disparity.minimise_truth,
                               adapt_iterations=iterations))
    for step, loss, ref, change in (("B", loss_b, ref_b, change_b), ("C", loss_c, ref_c, change_c)):
        print(f"{it:>3}{step:>6}{loss:>11.4f}{ref:>13.4f}            " + "  ".join(f"{v:8.1e}" for v in change.values()))
    only_adv = change_b["ψ"] == change_b["f"] == 0 < change_b["f′"]  # step B moved f′ only
    only_psi = change_c["f"] == change_c["f′"] == 0 < change_c["ψ"]  # step C moved ψ only
    assert only_adv and only_psi, "your step B should move f′ only, your step C ψ only: see the checks above"
for (name, a), b in zip(mine.named_parameters(), library.parameters(), strict=True):
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=lambda m, name=name: (
        f"after {iterations} iterations, {name} of your model differs from the library's: see the checks of "
        f"sections 1 and 2 ({m.splitlines()[0]})"))
print(f"after {iterations} iterations your model equals the library's")

# %% [md]
# **Questions.**
#
# 1. Why does step B detach `ψ`, and why does step C not step `f′` although its
#    backward fills `f′`'s gradients?
# 2. The library's fused schedule runs `ψ` once for both B and C and reuses B's
#    pseudo-labels in C (`regda.target_pass`). Why is that the same update as
#    your two separate forwards? (Hint: which weights change between B and C?)
# 3. What would step C do with `rk.models.reverse_gradient` instead of
#    `scale_gradient`? Which method of the paper's Table 1 trains its features
#    that way?
