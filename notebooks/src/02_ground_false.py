# %% [md]
# # 02 · The ground-false distribution: where RegDA expects a keypoint to be mistaken
#
# Notebook 01 measured how often a source-only model's wrong predictions on the
# target domain land **on other keypoints**, and against which chance. RegDA (Jiang
# et al., CVPR 2021, §3.3) turns the paper's observation, that they land there
# often, into a training target without any target label. From the main head's own
# prediction `ŷ`, it builds for every keypoint `k`:
#
# * the **ground truth** `H(ŷ_k)`: a Gaussian at the predicted position;
# * the **ground false** (Eq. 1) `H_F(ŷ_k) = clip(Σ_{k'≠k} H(ŷ_k'), 0, 1)`: the
#   Gaussians of all the *other* keypoints, where RegDA expects `k` to be mistaken;
# * the **ground-false distribution** (Eq. 2) `P_F(ŷ_k) = H_F(ŷ_k) / Σ_{h,w} H_F(ŷ_k)`.
#
# The adversarial head `f′` is trained towards `P_F` (notebook 03 shows why this
# beats maximising a disparity).
#
# **What you will see.**
# 1. One real prediction of the shipped source-only hand model on a target image.
# 2. `H`, `H_F` and `P_F` built by hand, step by step, and checked against `rk.disparity`.
# 3. How `P_F` looks over the whole test set, and sliders over the image, the keypoint and the Gaussian width sigma.
# 4. What `P_F` covers and what it does not: how many of `f`'s wrong *and* correct predictions fall inside the
#    region holding half of `P_F`'s mass, against the region's area.

# %%
import matplotlib.pyplot as plt
import torch

import regdakit as rk
import regdakit.pretrained
from regdakit.data.synthetic import SKELETONS, make_dataset
from regdakit.widgets import GroundFalseExplorer

torch.manual_seed(0)
FAST = rk.runtime.fast_mode()  # small sizes under `make test` / CI
SEED = None  # which shipped source-only model: None = the default seed; several ship, see rk.pretrained.SEEDS
RETRAIN = False  # one flag retrains the source-only model (minutes on a CPU) instead of loading the shipped one
N_TARGET = rk.runtime.pick(512, 128)  # target test images
N_CHECKED = 128  # the first 128 images: the same in fast and full mode, so the tests compare their numbers
print(f"fast mode: {FAST}; {N_TARGET} target test images")
print(f"shipped source-only seeds: {rk.pretrained.SEEDS}; SEED = {SEED}")

# %% [md]
# ## 1 · One real prediction
#
# The same model and target test set as in notebook 01: the hand detector trained
# on rendered hands only (`SEED` picks which of the shipped seeds), predicting on
# studio hands. We also sort its wrong predictions with the labels
# (`error_landing`), but only to *choose* an instructive example and, in section 5,
# to measure: RegDA itself never sees a target label.

# %%
model, cfg = rk.pretrained.load_source_only("hands", seed=SEED, retrain=RETRAIN)
skeleton = SKELETONS[cfg.task]
print(f"{cfg.task}, seed {cfg.seed}: trained on '{cfg.source_domain}' only; target domain '{cfg.target_domain}'")
images, keypoints, visible = make_dataset(cfg.task, cfg.target_domain, "test", cfg.image_size, N_TARGET, seed=0).tensors()
logits = rk.density.predict(model, images)  # (N, K, H, W): f's heatmaps (logits)
pred, _ = rk.heatmaps.decode(logits)  # (N, K, 2): ŷ in heatmap cells
map_size = logits.shape[-1]
stride = images.shape[-1] / map_size  # image pixels per heatmap cell
gt = keypoints / stride
radius = rk.metrics.pck_threshold(map_size)  # PCK@0.05: 0.05 x the heatmap side, in cells
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
# peak 1 and standard deviation `sigma` cells, the width the model was trained
# with (`cfg.sigma`, printed below), with values up to 0.01 set to zero. We build
# it by hand and check it against `rk.disparity.pseudo_labels`, the function the
# trainer calls.

# %%
sigma = cfg.sigma  # one setting: the training targets and the pseudo-labels use the same width
print(f"heatmaps {map_size} x {map_size} cells, sigma = {sigma:g} cells")
K, side = skeleton.num_keypoints, map_size
index = logits[b].reshape(K, -1).argmax(dim=-1)  # (K,): flat cell of each maximum
y_hat = torch.stack([index % side, index // side], dim=-1).float()  # (K, 2) as (x, y)

ys, xs = torch.meshgrid(torch.arange(side, dtype=torch.float32), torch.arange(side, dtype=torch.float32),
                        indexing="ij")
def gaussian(center):
    g = torch.exp(-((xs - center[0]) ** 2 + (ys - center[1]) ** 2) / (2 * sigma**2))
    return torch.where(g > 0.01, g, torch.zeros_like(g))  # the cut of the recipe

H = torch.stack([gaussian(c) for c in y_hat])  # (K, H, W)
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
H_F = torch.stack([H[[j for j in range(K) if j != kk]].sum(dim=0).clamp(0, 1) for kk in range(K)])  # (K, H, W)
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
P_F = H_F / H_F.sum(dim=(-2, -1), keepdim=True)  # (K, H, W)
torch.testing.assert_close(P_F, rk.disparity.ground_false_distribution(false)[0])
print(f"P_F(ŷ_k) sums to {P_F[k].sum():.4f}; it is non-zero on {int((P_F[k] > 0).sum())} "
      f"of {side * side} cells ({(P_F[k] > 0).float().mean():.0%} of the map)")

rk.viz.plot_ground_false(images[b], y_hat, k, H[k], H_F[k], P_F[k], skeleton=skeleton)
plt.show()

# %% [md]
# The left panel shows `f`'s predictions ŷ, with `k` ringed. Where several
# keypoints are predicted on nearly the same spot, their Gaussians stack in `H_F`
# and clipping makes the spot count once. How typical is this one image? The same
# maps for every test image and keypoint:

# %%
_, false_all = rk.disparity.pseudo_labels(logits, sigma)  # (N, K, H, W): H_F of every image and keypoint
cells = logits.flatten(2).argmax(dim=-1)  # (N, K): the flat cell of each ŷ_k, as pseudo_labels uses
distinct = torch.tensor([c.unique().numel() for c in cells], dtype=torch.float32).mean()
own = false_all.flatten(2).gather(2, cells.unsqueeze(-1)).squeeze(-1) > 0  # (N, K): H_F(ŷ_k) > 0 at ŷ_k itself
support = (false_all > 0).flatten(2).float().mean(dim=-1)  # (N, K): share of the map where P_F > 0
print(f"over {len(images)} test images: f's {K} predictions occupy {distinct:.1f} distinct cells per image")
print(f"P_F(ŷ_k) is non-zero on {support.mean():.0%} of the map on average")
print(f"P_F(ŷ_k) is non-zero at k's own predicted cell in {own.float().mean():.0%} of the (image, keypoint) pairs")

# %% [md]
# Read the three numbers together. The fewer distinct cells the K predictions
# occupy, the more Gaussians stack on the same spots. The support is how much of
# the map `P_F` spreads over. The last number is how often `P_F(ŷ_k)` contains k's
# *own* prediction: whenever another keypoint is predicted within the Gaussians'
# reach of it (about 3 sigma, where the Gaussian falls to the 0.01 cut). Where
# that happens, `P_F` points at k's prediction itself, right or wrong; section 5
# measures what this does to `P_F` as a guess of where `f` goes wrong.

# %% [md]
# ### Explore
#
# Move through the images, pick other keypoints, and widen or narrow the Gaussians.
# With a small sigma, `P_F` is a set of narrow spots, one per distinct predicted
# position; with a large one, the spots merge into one region over the hand. The
# slider starts at the model's own sigma.

# %%
# NBVAL_IGNORE_OUTPUT
n_explore = max(64, b + 1)  # the first images, including sample b
GroundFalseExplorer(images[:n_explore], logits[:n_explore], skeleton, sample=b, keypoint=k, sigma=sigma)

# %% [md]
# ## 5 · What `P_F` covers, and what it does not
#
# RegDA bets that `P_F(ŷ_k)` marks the places where keypoint k is wrongly
# predicted. We measure it over the whole target test set, starting from one number
# defined in `rk.density.ground_false_coverage`:
#
# > For each prediction of keypoint k, take the **smallest region holding a
# > given mass** (say 50 %) of its own image's `P_F(ŷ_k)`. The **share** is the
# > fraction of the predictions that fall inside their region. The baseline is
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
# The share of *wrong* predictions inside the region is not a test on its own: a
# `P_F` that is one plateau over the whole hand would cover every prediction of
# `f`, right or wrong, and score high. `rk.density.ground_false_discrimination`
# measures the wrong and the correct predictions against the same regions; only a
# positive **gap** (wrong minus correct) says that `P_F` singles out the mistakes.
# Here with `P_F` built from `f`'s own predictions, exactly as RegDA builds it:

# %%
observed = visible.bool()
disc = rk.density.ground_false_discrimination(false_all, pred, wrong, observed, mass=0.5)
print(f"the region holding 50 % of P_F covers {disc.wrong.uniform:.0%} of the map on average")
print(f"  wrong predictions inside:   {disc.wrong.share:.2f} of {disc.wrong.n} "
      f"({disc.wrong.ratio:.1f} x the region's area)")
print(f"  correct predictions inside: {disc.correct.share:.2f} of {disc.correct.n}")
print(f"  gap, wrong - correct: {disc.gap:+.2f}: P_F covers f's "
      + ("mistakes more often than its correct predictions" if disc.gap > 0
         else "correct predictions at least as often as its mistakes"))

# %% [md]
# **What `P_F` covers.** The places where `f` predicts the *other* keypoints: a
# small part of the map (the first line), and the wrong predictions fall there
# far more often than a uniform region of the same area would catch them (the
# second line; both asserted below). In this sense the wrong predictions are
# concentrated, as the paper's sparse density says; the third line asks whether
# that is special to the mistakes.
#
# **What it does not.** `P_F` is built from `f`'s predictions alone, so nothing in
# it knows which of them are right. Where `f`'s other predictions surround k's own
# prediction (section 4 counted how often), the region contains ŷ_k whether it is
# right or wrong. The gap says whether, for this model, the region still favours
# the mistakes: read its sign and size above, not the wrong share alone.
#
# Over several region masses, for the wrong and the correct predictions:

# %%
masses = [0.25, 0.5, 0.75, 0.9]
from_f = [rk.density.ground_false_discrimination(false_all, pred, wrong, observed, m) for m in masses]
fig, ax = plt.subplots(figsize=(5.6, 4.4), layout="constrained")
rk.viz.plot_coverage({"wrong predictions": [d.wrong for d in from_f], "correct predictions": [d.correct for d in from_f]},
                     ax=ax, title="f's predictions inside the region of P_F (from f)")
ax.set_ylabel("share of the predictions inside")
plt.show()
for d in from_f:
    print(f"region holding {d.wrong.mass:.0%} of P_F: {d.wrong.uniform:.0%} of the map; "
          f"wrong {d.wrong.share:.2f}, correct {d.correct.share:.2f} inside")

# %% [md]
# Each point is one region mass: x is the share of the map the regions cover, y the
# share of predictions they catch. A uniform region of the same size would lie on
# the dotted diagonal. The vertical distance between the two curves is the gap at
# that mass. (Because `H_F` is clipped at 1, `P_F` has a flat top; all of its cells
# enter a region together, so small masses can give the same region and share one
# point.)
#
# A check that does not lean on `f`'s other predictions builds `P_F` from the
# **true** positions of the other keypoints (labels; for this analysis only, never
# for training): is a wrong prediction of k near where another keypoint really is?
# It is notebook 01's landing question asked with Gaussians instead of a radius,
# and it needs the same care: a correct prediction sits at its own keypoint, and
# the Gaussians of that keypoint's neighbours may reach it. So again both:

# %%
true_heatmaps, _ = rk.heatmaps.encode(keypoints, visible, map_size, stride, sigma)
false_true = rk.disparity.ground_false_from_truth(true_heatmaps)  # Eq. 1 at the true positions
disc_true = rk.density.ground_false_discrimination(false_true, pred, wrong, observed, mass=0.5)
print(f"the region holding 50 % of P_F(true) covers {disc_true.wrong.uniform:.0%} of the map on average")
print(f"  wrong predictions inside:   {disc_true.wrong.share:.2f} ({disc_true.wrong.ratio:.1f} x the region's area)")
print(f"  correct predictions inside: {disc_true.correct.share:.2f}")
print(f"  gap, wrong - correct: {disc_true.gap:+.2f}")

# %% [md]
# The numbers from the first 128 images (shared by full and test runs):

# %%
# NBVAL_CHECK_OUTPUT
n = N_CHECKED
for name, maps in (("f's predictions", false_all), ("true positions", false_true)):
    d = rk.density.ground_false_discrimination(maps[:n], pred[:n], wrong[:n], observed[:n], 0.5)
    print(f"P_F from {name:<16} 50 %: wrong {d.wrong.share:.2f}, correct {d.correct.share:.2f}, "
          f"region {d.wrong.uniform:.2f} of the map")

# %%
# The claims of the text above; these asserts fail if a model contradicts them.
assert disc.wrong.uniform < 0.25, "the region holding half of P_F should cover a small part of the map"
assert disc.wrong.share >= 2 * disc.wrong.uniform, "wrong predictions should fall inside far more than its area says"
print("P_F's region is small, and the wrong predictions fall inside it far more often than its area would give")

# %% [md]
# ### The mistakes on the hand and those off it
#
# Notebook 01 found that many studio errors leave the hand altogether. `P_F` is
# built from the other *predicted* keypoints; how much of it reaches a prediction
# lost on the backdrop? The wrong predictions split by
# `rk.metrics.inside_keypoint_box` (the box of the image's true keypoints, widened
# by the landing radius), each group against the same regions:

# %%
on_hand = rk.metrics.inside_keypoint_box(pred, gt, visible, margin=radius)  # (N, K) bool
split = {"on the hand": wrong & on_hand, "off the hand": wrong & ~on_hand}
inside = {name: rk.density.ground_false_discrimination(false_all, pred, mask, observed, mass=0.5).wrong
          for name, mask in split.items()}
for name, c in inside.items():
    print(f"wrong predictions {name}: {c.n} ({c.n / disc.wrong.n:.0%} of them), {c.share:.2f} inside the 50 % region")
print(f"correct predictions: {disc.correct.share:.2f} inside")

# %%
# The claims of the text below; these asserts fail if a model contradicts them.
assert inside["off the hand"].share < inside["on the hand"].share, "errors off the hand should lie outside P_F more"
print("P_F reaches the errors on the hand more often than those off it")

# %% [md]
# Read the three lines against each other. The errors off the hand fall inside
# less often than those on it, but far from never: when `f` loses the hand, it
# often loses several keypoints to the same wrong spot, and `P_F`, built from the
# other predictions, follows them there. The errors that stay on the hand are not
# covered more often than the correct predictions either (asserted for hands
# below): for this model, no part of the mistakes is singled out by `P_F`.

# %%
if cfg.task == "hands":
    assert inside["on the hand"].share <= disc.correct.share, "the text says on-hand errors are not covered more"
print(f"on the hand {inside['on the hand'].share:.2f} vs correct {disc.correct.share:.2f} inside the region")

# %% [md]
# ### `P_F` beside the error density of notebook 01
#
# For one keypoint: on the left, the average of `P_F(ŷ_k)` over the images where k
# is predicted wrongly, the density RegDA *expects* k's mistakes to follow; on the
# right, where they actually landed (notebook 01's `error_density`).
#
# In each image `P_F` spreads over *all* the other predicted keypoints, while a
# wrong prediction sits at one place, so the mean `P_F` is the smoother of the two.
# The per-image measures above are the test; this picture is for intuition only.

# %%
expected = rk.disparity.ground_false_distribution(false_all[wrong[:, k], k][:, None])[:, 0].mean(dim=0)  # (H, W)
mean_target = rk.density.mean_image(images)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
rk.viz.plot_error_density(expected, mean_target, ax=axes[0], label="probability per cell",
                          title=f"mean P_F of {skeleton.names[k]} (from f's predictions)")
rk.viz.plot_error_density(rk.density.error_density(pred, wrong, k, map_size), mean_target, ax=axes[1],
                          title=f"where {skeleton.names[k]}'s wrong predictions land")
plt.show()

# %% [md]
# ## 6 · Every seed, every target: the committed benchmark
#
# The same measure (`P_F` from `f`'s own predictions, the region holding 50 % of
# it) for every shipped seed and both body targets, 256 images per set, from
# `benchmarks/results/synthetic_domains.json`. Means over seeds and the 95 %
# interval of the gap:

# %%
# NBVAL_CHECK_OUTPUT
bench = rk.resources.read_json("results/synthetic_domains.json")
print(f"{'task → target':<18}{'seeds':>6}{'region':>8}{'wrong in':>10}{'correct in':>12}{'gap (95 % CI)':>24}")
for task, entry in bench["tasks"].items():
    for target, t in entry["targets"].items():
        low, high = t["p_f_gap"]["ci95"]
        print(f"{task + ' → ' + target:<18}{t['p_f_gap']['n']:>6}{t['p_f_region_area']['mean']:>8.2f}"
              f"{t['p_f_covers_wrong']['mean']:>10.2f}{t['p_f_covers_correct']['mean']:>12.2f}"
              f"{t['p_f_gap']['mean']:>+10.2f} [{low:+.2f}, {high:+.2f}]")

# %%
# The claims of the summary below, checked against the committed benchmark.
gaps = {(task, target): t["p_f_gap"] for task, entry in bench["tasks"].items() for target, t in entry["targets"].items()}
assert all(g <= 0 for g in gaps["hands", "studio"]["values"]), "hands: the summary says no seed has a positive gap"
hands_gaps = gaps["hands", "studio"]["values"]
assert abs(min(hands_gaps) + 0.21) < 0.02 and abs(max(hands_gaps) + 0.01) < 0.02, f"the summary's range: {hands_gaps}"
assert all(gaps["bodies", t]["ci95"][0] > 0 for t in ("lab", "wild")), "bodies: the summary says a positive gap"
assert all(gaps["bodies", t]["mean"] < 0.15 for t in ("lab", "wild")), "bodies: the summary says a small gap"
print("the summary's claims hold in the committed benchmark")

# %% [md]
# ## Summary
#
# * From `f`'s prediction alone, RegDA builds `H(ŷ_k)`, a Gaussian at the predicted
#   position, and the ground false `H_F(ŷ_k)`: the other keypoints' Gaussians,
#   summed and clipped to [0, 1] (Eq. 1); `P_F` normalises it (Eq. 2).
# * What `P_F` covers: the places where `f` predicts the other keypoints. Its
#   50 % region is a small part of the map, and `f`'s wrong predictions fall inside
#   it far more often than its area would give.
# * What it does not: `P_F` knows nothing of which predictions are right. Where
#   `f`'s predictions crowd together, the region contains k's own prediction,
#   right or wrong; a mistake is covered only where `f` predicts another keypoint
#   near it.
# * Measured over every shipped seed (section 6): on **bodies** the region covers
#   the wrong predictions more often than the correct ones, by a small but clear
#   margin. On **hands** it covers the *correct* ones at least as often, on
#   every seed (the gap ranges from about −0.01 to −0.21), and for the model
#   above whether the mistakes stay on the hand or leave it. `P_F` is a guess of where a keypoint is
#   confused with another, not a map of every mistake; how much that guess helps
#   is what training RegDA measures (notebooks 04 and 05).
# * In RegDA's step B, `f′` moves towards `P_F`; in step C, the features `ψ` are
#   trained so that `f′` must agree with `f` again (notebook 04 trains the whole
#   method).
#
# ## Exercises
#
# 1. Recompute `disc` with `sigma` halved and doubled (`pseudo_labels(logits, sigma)`).
#    How do the region's area, the wrong and the correct shares change? Does any
#    sigma make the gap clearly positive?
# 2. Why is the clip in Eq. 1 needed? Build `P_F` without it for sample `b` and
#    compare where its mass goes when several keypoints are predicted on one spot.
# 3. Split the wrong predictions inside the regions of `P_F` from the true
#    positions by where they landed (`landing.landing`): what share of the
#    *background* landings still lies inside the region?
