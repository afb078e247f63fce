# %% [md]
# # 03 · Mean versus variance: why RegDA minimises twice
#
# Domain-adaptation methods such as MCD and Disparity Discrepancy (DD) train an
# **adversarial head** `f′` to *maximise* its disagreement with the main head `f`
# on target images, and the features `ψ` to *minimise* it. RegDA (Jiang et al.,
# CVPR 2021, §3.3 and Fig. 4) observes that for keypoint heatmaps this
# maximisation mostly changes the **variance** of `f′`'s prediction, not its
# **mean**: the adversary never learns to point at the places a keypoint is
# really confused with. RegDA replaces the maximisation by two minimisations with
# opposite goals:
#
# * `L_F = KL(P_F(ŷ) ‖ f′)`: pull `f′` towards the **ground-false** distribution,
#   the other keypoints (step B);
# * `L_T = KL(H(ŷ) ‖ f′)`: pull it back towards the **ground truth** `H(ŷ)` of `f`
#   (steps A and C).
#
# **What you will see.** (1) An exact experiment on a 1-D grid: maximising a
# disparity collapses the variance while the mean stays put; RegDA's
# minimisations move the mean to the other keypoint and back. (2) The same with
# heatmap heads on fixed 2-D features: where does the adversary's peak land?

# %%
import matplotlib.pyplot as plt
import torch

import regdakit as rk
from regdakit import toy
from regdakit.widgets import TrajectoryExplorer

torch.manual_seed(0)
FAST = rk.runtime.fast_mode()  # small sizes under `make test` / CI
print("fast mode:", FAST)

# %% [md]
# ## 1 · The setting: two keypoints on a line
#
# Think of a right and a left ankle. On a grid of 64 cells the main head `f`
# predicts keypoint 0 at `ŷ₀ = 20` and keypoint 1 at `ŷ₁ = 44`. Its ground-truth
# pseudo-label is the Gaussian `H(ŷ₀)`; its **ground false** is the clipped sum of
# the *other* keypoints' Gaussians (Eq. 1), normalised into `P_F` (Eq. 2). With
# two keypoints, `P_F(ŷ₀)` is simply the normalised `H(ŷ₁)`.
#
# We build both by hand and check them against `rk.disparity.pseudo_labels`, the
# function the trainer uses. A 1-D grid is a heatmap of height 1.

# %%
cells = torch.arange(64.0)
own, other, sigma = 20, 44, 2.0

def gaussian(center):
    g = torch.exp(-((cells - center) ** 2) / (2 * sigma**2))
    return torch.where(g < 0.01, torch.zeros_like(g), g)  # values under 0.01 are cut

H_own, H_other = gaussian(own), gaussian(other)
H_F_own = (H_other).clamp(0, 1)             # Eq. 1: clipped sum over k' != 0
P_F_own = H_F_own / H_F_own.sum()            # Eq. 2

# f's logits: any maps whose argmax is at ŷ₀ and ŷ₁
main_logits = torch.stack([H_own, H_other])[None, :, None, :]  # (B=1, K=2, H=1, W=64)
truth, false = rk.disparity.pseudo_labels(main_logits, sigma)
torch.testing.assert_close(truth[0, 0, 0], H_own)
torch.testing.assert_close(rk.disparity.ground_false_distribution(false)[0, 0, 0], P_F_own)
print("hand-built H and P_F match rk.disparity")

# %% [md]
# ## 2 · Maximising a disparity changes the variance
#
# Let `f′` output free logits `z` over the grid (a heatmap head can output any
# map) and `q = softmax(z)`. The gradient of `KL(p ‖ q)` with respect to the
# logits is one line:
#
# $$\frac{\partial}{\partial z_i}\,\mathrm{KL}(p\,\|\,\mathrm{softmax}(z)) = q_i - p_i .$$
#
# *Ascending* it adds `q − p` to the logits: mass leaves the cells where `p` is
# large and goes to cells where `q` **already** has mass, right next to `ŷ₀`. So
# the maximiser sharpens (or spreads) `f′` around where it already is; nothing in
# the gradient points to `ŷ₁`. We start `f′` one cell off `f` (exact agreement is
# a stationary point) and run 300 plain gradient steps, for the KL disparity and
# for the L1 disparity MCD uses.

# %%
trajectories = {
    "max_kl": toy.adversary_trajectory("max_kl", steps=300),
    "max_l1": toy.adversary_trajectory("max_l1", steps=300),
}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.2), layout="constrained")
for ax, name in zip(axes, trajectories):
    toy.plot_trajectory(trajectories[name], step=300, ax=ax,
                        title=f"{toy.describe(name)}: after 300 steps")
plt.show()

# %% [md]
# ## 3 · RegDA's two minimisations move the mean
#
# Minimising `L_F` gives `f′` a *target*: the ground-false distribution. The same
# gradient, `q − P_F`, now removes mass wherever `P_F` is small and adds it where
# `P_F` is large: the whole distribution travels to `ŷ₁`. Minimising `L_T`
# afterwards brings it back to `ŷ₀`. Both steps act on the **mean**.

# %%
trajectories["min_false"] = toy.adversary_trajectory("min_false", steps=300)
trajectories["min_false -> min_truth"] = toy.adversary_trajectory([("min_false", 150), ("min_truth", 150)])
fig = toy.plot_moments(trajectories)
plt.show()

# %% [md]
# The left panel is the mean of `f′`, the right its standard deviation (log
# scale). The two maximisations (purple, grey) leave the mean within a cell or
# two of `ŷ₀ = 20` while the standard deviation collapses from 2 cells to almost
# 0. The minimisations (red, and the chained run) carry the mean to `ŷ₁ = 44`
# and, in the chained run, back to 20.
#
# The same numbers as a table. This cell is checked by the tests: the experiment
# is exact (float64, plain gradient descent), so its output never changes.

# %%
# NBVAL_CHECK_OUTPUT
print(f"{'objective':<24}{'mean 0→end':>14}{'std 0→end':>14}{'mass near ŷ₁':>14}")
for name, t in trajectories.items():
    print(f"{name:<24}{t.mean[0]:>6.1f} →{t.mean[-1]:>6.1f}{t.std[0]:>7.2f} →{t.std[-1]:>5.2f}"
          f"{t.mass_near_other[-1]:>14.2f}")

# %%
# The effect the notebook teaches; these asserts fail if it ever disappears.
for name in ("max_kl", "max_l1"):
    t = trajectories[name]
    assert abs(t.mean[-1] - t.mean[0]) < 1.5 and t.std[-1] < 0.5 * t.std[0] and t.mass_near_other[-1] < 0.01
assert abs(trajectories["min_false"].mean[-1] - other) < 1.0
chained = trajectories["min_false -> min_truth"]
assert abs(chained.mean[150] - other) < 2 and abs(chained.mean[-1] - own) < 1
print("maximisation moved the variance; minimisation moved the mean")

# %% [md]
# ### The same functions as the trainer
#
# These objectives are not written for this notebook: `toy.adversary_loss` calls
# the functions of `rk.disparity` that the trainer's steps minimise
# (`rk.methods.regda.OBJECTIVES` and `rk.methods.dd_unbounded.OBJECTIVES`: one pair per variant of Table 2).
# `min_false` and `min_truth` are RegDA's steps B and C, `max_kl` is step B of
# Disparity Discrepancy as Table 2 writes it (`--method dd_unbounded`; the DD
# baseline, `--method dd`, bounds its adversary), and `max_l1` is MCD's L1 discrepancy
# taken to `H(ŷ)` instead of to the main head's softmax. The cell below
# evaluates the toy's objectives and the trainer's on the same logits.

# %%
regda = rk.methods.regda
adv_logits = torch.randn(main_logits.shape)  # any f′
trainer_objective = {
    "min_false": regda.OBJECTIVES["regda"][0],  # RegDA, step B: f′ minimises L_F
    "min_truth": regda.OBJECTIVES["regda"][1],  # RegDA, step C: ψ minimises L_T
    "max_kl": rk.methods.dd_unbounded.OBJECTIVES[0],  # DD of Table 2, step B: f′ maximises L_T
}
for name, objective in trainer_objective.items():
    torch.testing.assert_close(
        toy.adversary_loss(name, adv_logits, main_logits), objective(adv_logits, truth, false), rtol=0, atol=0
    )
# MCD's discrepancy against a main head whose distribution is the normalised H(ŷ)
# (equal up to the rounding of exp(log p))
head_at_truth = torch.log(rk.losses.normalize_heatmaps(truth))
torch.testing.assert_close(
    toy.adversary_loss("max_l1", adv_logits, main_logits),
    -rk.methods.mcd.heatmap_discrepancy(adv_logits, head_at_truth),
)
print("the toy's objectives give the trainer's values")

# %% [md]
# ### Explore
#
# Pick an objective and move the step slider: watch the black curve (`f′`)
# against `f`'s prediction (blue) and the ground false (red).

# %%
# NBVAL_IGNORE_OUTPUT
TrajectoryExplorer(trajectories)

# %% [md]
# ## 4 · The same with heatmap heads on fixed features
#
# Now a 2-D version closer to the real model. Each image is a feature map
# (16 channels, 32 × 32 cells); each of 5 keypoints paints a blob of its own
# embedding, and all embeddings share a common direction (cosine 0.6), so the
# keypoints *look alike*, as fingers or left and right limbs do. The main head
# `f` is a 1 × 1 convolution trained on them with the KL loss; the adversarial
# head `f′` starts as a copy of `f` and is trained, features fixed, by each
# objective.
#
# We then ask where each of `f′`'s peaks lands relative to `f`'s predictions
# `ŷ`, with `rk.metrics.error_landing` (taking `ŷ` as the "truth"): still on `ŷ_k`,
# on **another keypoint** `ŷ_j`, or on the **background**. `chance` is the share of
# another keypoint's neighbourhood if a moved peak were placed uniformly.

# %%
n_images, steps = (32, 100) if FAST else (64, 200)
data = toy.make_feature_toy(n=n_images, num_keypoints=5, size=32, channels=16, seed=0)
main_head = toy.train_main_head(data, steps=150)
with torch.no_grad():
    y_hat, _ = rk.heatmaps.decode(main_head(data.features), subpixel=False)
pck_main = rk.metrics.pck(y_hat, data.keypoints, torch.ones(y_hat.shape[:2]), threshold=1.6)
print(f"f finds the keypoints: PCK@0.05 = {pck_main.all:.2f}")

heads, rows = {}, []
for name in toy.OBJECTIVES:
    heads[name] = adv = toy.train_adversary_head(data, main_head, name, steps=steps)
    land = toy.adversary_landing(data, main_head, adv)
    with torch.no_grad():
        spread = toy.spatial_spread(adv(data.features)).mean().item()
    moved = land.n_wrong / land.landing.numel()
    rows.append((name, moved, land.on_other, land.chance, spread))
with torch.no_grad():
    spread_f = toy.spatial_spread(main_head(data.features)).mean().item()
print(f"spread (std, cells) of f: {spread_f:.1f}\n")
print(f"{'objective':<12}{'peaks moved':>13}{'on other kp':>13}{'chance':>9}{'spread':>9}")
for name, moved, on_other, chance, spread in rows:
    other_txt = f"{on_other:13.2f}" if moved > 0 else f"{'—':>13}"
    print(f"{name:<12}{moved:13.2f}{other_txt}{chance:9.2f}{spread:9.1f}")

# %% [md]
# Read the table row by row. *Peaks moved* is the share of `f′`'s peaks that
# left `ŷ_k`; *on other kp* is the share of those that landed on another
# keypoint; *spread* is the standard deviation of `f′`'s distribution.
#
# * **max_kl / max_l1** — few peaks move and those that do land on the
#   background; the spread collapses far below that of `f`: variance, not mean.
# * **min_false** — every peak moves and nearly all land on another keypoint,
#   many times the chance share: exactly the places `f` would confuse on a new
#   domain. This is the adversary RegDA wants; step C then trains `ψ` so that
#   `f′` cannot be fooled into agreeing with such a mistake.
# * **min_truth** — the peaks stay: `f′` agrees with `f`.

# %%
result = {name: (moved, on_other, chance) for name, moved, on_other, chance, _ in rows}
for name in ("max_kl", "max_l1"):
    moved, on_other, chance = result[name]
    assert moved < 0.5 and (moved == 0 or on_other < 0.5), name
moved, on_other, chance = result["min_false"]
assert moved > 0.9 and on_other > 0.8 and on_other > 3 * chance
assert result["min_truth"][0] < 0.05
print("the 2-D heads show the same effect")

# %% [md]
# One image, keypoint 0: `f`'s map and `f′`'s map after each objective. White
# circles mark `f`'s predictions `ŷ`; the filled one is keypoint 0's.

# %%
sample, k = 0, 0
fig, axes = plt.subplots(1, 5, figsize=(15, 3.3), layout="constrained")
maps = {"f (main)": main_head} | {name: heads[name] for name in toy.OBJECTIVES}
with torch.no_grad():
    for ax, (name, head) in zip(axes, maps.items()):
        probs = torch.softmax(head(data.features[sample : sample + 1])[0, k].flatten(), 0).reshape(32, 32)
        rk.viz.plot_heatmap(probs, ax=ax, title=name, cmap="viridis")
        ax.scatter(y_hat[sample, :, 0], y_hat[sample, :, 1], s=60, facecolors="none", edgecolors="white")
        ax.scatter(y_hat[sample, k, 0], y_hat[sample, k, 1], s=60, color="white")
plt.show()

# %% [md]
# ## Summary
#
# * The gradient of a KL (or L1) disparity in `f′`'s logits only redistributes
#   mass around where `f′` already is: **maximising** a disparity changes the
#   **variance** of `f′`, and its peak stays on `ŷ_k` or drifts to the background.
# * **Minimising** `L_F` towards the ground-false distribution gives `f′` a
#   target at the other keypoints, so its **mean** moves there; minimising `L_T`
#   brings it back. RegDA trains with these two minimisations (steps B and C).
# * This is the paper's Table 2 in miniature: "f′ max" objectives barely move the
#   adversary, "f′ min L_F" moves it onto the keypoints a target model confuses.
#   The toy's objectives are the trainer's own functions (`rk.disparity`),
#   checked value for value in section 3.
#
# ## Exercises
#
# 1. Start `f′` further from `f` (`start_offset=4`). Does maximisation move the
#    mean now? Why does the gradient `q − p` explain what you see?
# 2. Add a third keypoint at cell 52 with `toy.make_feature_toy(num_keypoints=...)`
#    in part 4, or by hand in part 1: where does `min_false` put the mean when
#    `P_F` has two modes?
# 3. Lower `similarity` in `make_feature_toy` to 0: do the maximisations land on
#    other keypoints more often? What does this say about *confusable* keypoints?
