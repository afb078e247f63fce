# %% [md]
# # 02 · The ground-false distribution: where a keypoint is likely mistaken
#
# Notebook 01 measured that a source-only model's wrong predictions on the target
# domain mostly land **on other keypoints**. RegDA (Jiang et al., CVPR 2021, §3.3)
# turns this into a training target without any target label. From the main head's
# own prediction `ŷ`, it builds for every keypoint `k`:
#
# * the **ground truth** `H(ŷ_k)`: a Gaussian at the predicted position;
# * the **ground false** (Eq. 1) `H_F(ŷ_k) = clip(Σ_{k'≠k} H(ŷ_k'), 0, 1)`: the
#   Gaussians of all the *other* keypoints, where `k` is most likely mistaken;
# * the **ground-false distribution** (Eq. 2) `P_F(ŷ_k) = H_F(ŷ_k) / Σ_{h,w} H_F(ŷ_k)`.
#
# The adversarial head `f′` is trained towards `P_F` (notebook 03 shows why this
# beats maximising a disparity).
#
# **What you will see.**
# 1. One real prediction of the shipped source-only hand model on a target image.
# 2. `H`, `H_F` and `P_F` built by hand, step by step, and checked against `rk.disparity`.
# 3. Sliders over the image, the keypoint and the Gaussian width sigma.
# 4. A measurement: how much of the wrong predictions of notebook 01 falls where `P_F` puts its mass.

# %%
import matplotlib.pyplot as plt
import torch

import regdakit as rk
import regdakit.pretrained
from regdakit.data.synthetic import SKELETONS, make_dataset
from regdakit.widgets import GroundFalseExplorer

torch.manual_seed(0)
FAST = rk.runtime.fast_mode()  # small sizes under `make test` / CI
RETRAIN = False  # one flag retrains the source-only model (minutes on a CPU) instead of loading the shipped one
N_TARGET = rk.runtime.pick(512, 128)  # target test images
N_CHECKED = 128  # the first 128 images: the same in fast and full mode, so the tests compare their numbers
print(f"fast mode: {FAST}; {N_TARGET} target test images")

# %% [md]
# ## 1 · One real prediction
#
# The same model and target test set as in notebook 01: the hand detector trained
# on rendered hands only, predicting on studio hands. We also sort its wrong
# predictions with the labels (`error_landing`), but only to *choose* an instructive
# example and, in section 5, to measure: RegDA itself never sees a target label.

# %%
model, cfg = rk.pretrained.load_source_only("hands", retrain=RETRAIN)
skeleton = SKELETONS[cfg.task]
images, keypoints, visible = make_dataset(cfg.task, cfg.target_domain, "test", cfg.image_size, N_TARGET, seed=0).tensors()
logits = rk.density.predict(model, images)  # (N, K, 32, 32): f's heatmaps (logits)
pred, _ = rk.heatmaps.decode(logits)  # (N, K, 2): ŷ in heatmap cells
map_size = logits.shape[-1]
stride = images.shape[-1] / map_size  # 4 pixels per cell
gt = keypoints / stride
radius = rk.metrics.pck_threshold(map_size)  # PCK@0.05: 1.6 cells
landing = rk.metrics.error_landing(pred, gt, visible, radius, skeleton, map_size=map_size)
wrong = landing.landing >= 0  # (N, K)

k = skeleton.index("index_tip")
b = int((wrong[:, k] & (landing.landing[:, k] < skeleton.num_keypoints)).nonzero()[0, 0])
print(f"sample {b}: the first test image whose {skeleton.names[k]} is predicted on another keypoint "
      f"({skeleton.names[landing.landing[b, k]]})")
fig, ax = plt.subplots(figsize=(3.6, 3.6), layout="constrained")
rk.viz.plot_mistake(images[b], keypoints[b], visible[b], pred[b, k] * stride, k, skeleton, ax=ax)
plt.show()

# %% [md]
# ## 2 · The ground truth `H(ŷ_k)`
#
# RegDA's `ŷ_k` is the cell of the maximum of `f`'s heatmap `k` (no sub-cell
# refinement). `H(ŷ_k)` is the training target recipe applied to it: a Gaussian of
# peak 1 and standard deviation `sigma = 2` cells, with values up to 0.01 set to zero.
# We build it by hand and check it against `rk.disparity.pseudo_labels`, the
# function the trainer calls.

# %%
sigma = 2.0
K, side = skeleton.num_keypoints, map_size
index = logits[b].reshape(K, -1).argmax(dim=-1)  # (K,): flat cell of each maximum
y_hat = torch.stack([index % side, index // side], dim=-1).float()  # (K, 2) as (x, y)

ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                        indexing="ij")
def gaussian(center):
    g = torch.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))
    return torch.where(g > 0.01, g, torch.zeros_like(g))  # the cut of the recipe

H = torch.stack([gaussian(c) for c in y_hat])  # (K, 32, 32)
truth, false = rk.disparity.pseudo_labels(logits[b : b + 1], sigma)  # each (1, K, 32, 32)
torch.testing.assert_close(H, truth[0])
print(f"H matches rk.disparity; H(ŷ_k) peaks at cell {y_hat[k].int().tolist()} with value {H[k].max():.1f}")

# %% [md]
# ## 3 · The ground false `H_F(ŷ_k)` (Eq. 1)
#
# Sum the Gaussians of every keypoint **except k**, then clip to [0, 1]. Where two
# predicted keypoints are close, their Gaussians overlap and the sum exceeds 1;
# clipping keeps `H_F` a heatmap whose values say "a keypoint is predicted here",
# however many are stacked on the same spot.

# %%
H_F = torch.stack([H[[j for j in range(K) if j != kk]].sum(dim=0).clamp(0, 1) for kk in range(K)])  # (K, 32, 32)
torch.testing.assert_close(H_F, false[0])
unclipped = H.sum(dim=0) - H[k]
print(f"before clipping, the sum of the other Gaussians reaches {unclipped.max():.2f}; H_F stays <= {H_F[k].max():.0f}")
print(f"H_F(ŷ_k) at k's own predicted cell: {H_F[k][y_hat[k, 1].long(), y_hat[k, 0].long()]:.2f} "
      f"(non-zero only if other keypoints are predicted close to it)")

# %% [md]
# ## 4 · The ground-false distribution `P_F(ŷ_k)` (Eq. 2)
#
# Normalise `H_F` to sum 1 over the cells: a probability distribution over the
# map, the target `f′` is trained towards in RegDA's step B (`L_F = KL(P_F ‖ f′)`).

# %%
P_F = H_F / H_F.sum(dim=(-2, -1), keepdim=True)  # (K, 32, 32)
torch.testing.assert_close(P_F, rk.disparity.ground_false_distribution(false)[0])
print(f"P_F(ŷ_k) sums to {P_F[k].sum():.4f}; it is non-zero on {int((P_F[k] > 0).sum())} "
      f"of {side * side} cells ({(P_F[k] > 0).float().mean():.0%} of the map)")

rk.viz.plot_ground_false(images[b], y_hat, k, H[k], H_F[k], P_F[k], skeleton=skeleton)
plt.show()

# %% [md]
# The left panel shows `f`'s predictions ŷ, with `k` ringed. This model, trained on
# rendered hands only, often predicts several keypoints on nearly the same spot of a
# studio hand: a few bright blobs in `H_F` carry many stacked Gaussians, and clipping
# makes each count once.

# %% [md]
# ### Explore
#
# Move through the images, pick other keypoints, and widen or narrow the Gaussians.
# With a small sigma, `P_F` is a few sharp spots; with a large one, it blurs into
# the whole hand.

# %%
# NBVAL_IGNORE_OUTPUT
n_explore = max(64, b + 1)  # the first images, including sample b
GroundFalseExplorer(images[:n_explore], logits[:n_explore], skeleton, sample=b, keypoint=k)

# %% [md]
# ## 5 · Does `P_F` point where the mistakes go?
#
# RegDA bets that `P_F(ŷ_k)` marks the places where keypoint k is wrongly
# predicted. We measure it over the whole target test set with one number,
# defined in `rk.density.ground_false_coverage`:
#
# > For each wrong prediction of keypoint k, take the **smallest region holding a
# > given mass** (say 50 %) of its own image's `P_F(ŷ_k)`. The **share** is the
# > fraction of wrong predictions that fall inside their region. The baseline is
# > the fraction of the map the region covers: what a uniform distribution over a
# > region of the same area, placed at random, would catch.
#
# On a tiny example first (this cell's output is checked by the tests):

# %%
# NBVAL_CHECK_OUTPUT
toy_false = torch.zeros(1, 2, 4, 4)  # one image, two keypoints, 4 x 4 cells
toy_false[0, 0, 1, 2], toy_false[0, 0, 3, 0] = 3.0, 1.0  # keypoint 0's ground false: 3/4 of it at (x=2, y=1)
toy_false[0, 1, 0, 0] = 1.0
toy_pred = torch.tensor([[[2.2, 0.9], [3.0, 3.0]]])  # keypoint 0 predicted at (2, 1), keypoint 1 at (3, 3)
toy = rk.density.ground_false_coverage(toy_false, toy_pred, torch.tensor([[True, True]]), mass=0.5)
print(f"share {toy.share:.2f} (keypoint 0 inside its region, keypoint 1 not), "
      f"uniform {toy.uniform:.4f} (each region is 1 of 16 cells)")

# %% [md]
# Now the real thing, for all keypoints' wrong predictions, with `P_F` built from
# `f`'s own predictions exactly as RegDA builds it:

# %%
_, false_all = rk.disparity.pseudo_labels(logits, sigma)  # (N, K, 32, 32): H_F of every image and keypoint
masses = [0.25, 0.5, 0.75, 0.9, 0.99]
from_f = [rk.density.ground_false_coverage(false_all, pred, wrong, m) for m in masses]
for result in from_f[1:4:2]:
    print(f"region holding {result.mass:.0%} of P_F: {result.share:.2f} of the {result.n} wrong predictions inside, "
          f"uniform {result.uniform:.2f} ({result.ratio:.1f} x)")

# %% [md]
# Far more than the uniform share. But read this with care: the regions are built
# from `f`'s *other* predictions, and this model stacks several keypoints on the
# same spots (section 4). Check its *correct* predictions too: if they lie inside
# the same regions as often, the number mostly says "f predicts keypoint k where it
# also predicts other keypoints":

# %%
correct = landing.landing == -1
print(f"correct predictions inside the 50 % region: "
      f"{rk.density.ground_false_coverage(false_all, pred, correct, 0.5).share:.2f}")

# %% [md]
# A check that does not lean on `f`'s other predictions builds `P_F` from the
# **true** positions of the other keypoints (labels; for this analysis only, never
# for training): is a wrong prediction of k near where another keypoint really is?

# %%
true_heatmaps, _ = rk.heatmaps.encode(keypoints, visible, map_size, stride, sigma)
false_true = rk.disparity.ground_false_from_truth(true_heatmaps)  # Eq. 1 at the true positions
from_labels = [rk.density.ground_false_coverage(false_true, pred, wrong, m) for m in masses]
for result in from_labels[1:4:2]:
    print(f"region holding {result.mass:.0%} of P_F(true): {result.share:.2f} inside, "
          f"uniform {result.uniform:.2f} ({result.ratio:.1f} x)")

rk.viz.plot_coverage({"P_F from f's predictions": from_f, "P_F from the true positions": from_labels},
                     title="Wrong target predictions inside the region of P_F")
plt.show()

# %% [md]
# Each point is one region mass: x is the share of the map the regions cover, y the
# share of wrong predictions they catch. A uniform region of the same size would
# lie on the dotted diagonal. Both curves rise steeply at the left: small regions
# catch most of the mistakes. (Because `H_F` is clipped at 1, `P_F` has a flat top;
# all of its cells enter a region together, so small masses can give the same
# region and share one point.)
#
# The numbers from the first 128 images (shared by full and test runs):

# %%
# NBVAL_CHECK_OUTPUT
n = N_CHECKED
for name, maps in (("f's predictions", false_all), ("true positions", false_true)):
    line = ", ".join(
        f"{r.mass:.0%}: {r.share:.2f} vs uniform {r.uniform:.2f}"
        for r in (rk.density.ground_false_coverage(maps[:n], pred[:n], wrong[:n], m) for m in (0.5, 0.9))
    )
    print(f"P_F from {name:<16} {line}")

# %%
# The effect this notebook teaches; these asserts fail if it ever disappears.
half_f, half_labels = from_f[masses.index(0.5)], from_labels[masses.index(0.5)]
assert half_f.share >= 3 * half_f.uniform, "P_F from f's predictions should catch >= 3x its area's share"
assert half_labels.share >= 3 * half_labels.uniform, "wrong predictions should land near other true keypoints"
print("P_F's regions catch the wrong predictions many times more often than their area would")

# %% [md]
# ### `P_F` beside the error density of notebook 01
#
# For one keypoint: on the left, the average of `P_F(ŷ_k)` over the images where k
# is predicted wrongly, the density RegDA *expects* k's mistakes to follow; on the
# right, where they actually landed (notebook 01's `error_density`).
#
# Averaged over images, both sit on the hands rather than the background. The mean
# `P_F` is smoother: in each image it spreads over *all* the other predicted
# keypoints, while a wrong prediction picks one of them. The per-image measure above
# is the sharper test; this picture shows the same thing at a glance.

# %%
expected = rk.disparity.ground_false_distribution(false_all[wrong[:, k], k][:, None])[:, 0].mean(dim=0)  # (32, 32)
mean_target = rk.density.mean_image(images)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
rk.viz.plot_error_density(expected, mean_target, ax=axes[0], label="probability per cell",
                          title=f"mean P_F of {skeleton.names[k]} (from f's predictions)")
rk.viz.plot_error_density(rk.density.error_density(pred, wrong, k, map_size), mean_target, ax=axes[1],
                          title=f"where {skeleton.names[k]}'s wrong predictions land")
plt.show()

# %% [md]
# ## Summary
#
# * From `f`'s prediction alone, RegDA builds `H(ŷ_k)`, a Gaussian at the predicted
#   position, and the ground false `H_F(ŷ_k)`: the other keypoints' Gaussians,
#   summed and clipped to [0, 1] (Eq. 1); `P_F` normalises it (Eq. 2).
# * `P_F` puts its mass on a small part of the map, and the target model's wrong
#   predictions fall there many times more often than the area alone would give.
#   Built from `f`'s own predictions, `P_F` also covers most correct predictions
#   (this model stacks keypoints); built from the true positions, it confirms that
#   the mistakes land near real keypoints.
# * So `P_F` is a good guess of where `f` goes wrong, found without a label. In
#   RegDA's step B, `f′` moves towards it; in step C, the features `ψ` are trained so
#   that `f′` must agree with `f` again (notebook 04 trains the whole method).
#
# ## Exercises
#
# 1. Recompute `from_f` with `sigma = 1` and `sigma = 3` (`pseudo_labels(logits, sigma)`).
#    How do the share and its uniform baseline change? Which sigma separates them most?
# 2. Why is the clip in Eq. 1 needed? Build `P_F` without it for sample `b` and
#    compare where its mass goes when several keypoints are predicted on one spot.
# 3. Split `from_labels` by where the wrong predictions landed (`landing.landing`):
#    what share of the *background* landings still lies inside the region?
