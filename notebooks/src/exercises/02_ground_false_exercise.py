# %% [md]
# # Exercise 02 · The ground-false distribution
#
# RegDA (Jiang et al., CVPR 2021) trains its adversarial head `f′` towards the
# **ground-false distribution**: the places where a keypoint is most likely to be
# mistaken for, namely the *other* keypoints. In this exercise you build it
# yourself, step by step, from a real prediction of a detector that was trained
# on rendered hands and is applied to studio photos (the target domain):
#
# 1. `encode`: the Gaussian heatmap `H(y)` of a position;
# 2. `pck`: how often the detector is right on the target domain;
# 3. `ground_false`: `H_F(ŷ_k) = clip(Σ_{k′≠k} H(ŷ_k′), 0, 1)` (Eq. 1);
# 4. `ground_false_distribution`: `P_F(ŷ_k) = H_F(ŷ_k) / Σ_{h,w} H_F(ŷ_k)` (Eq. 2);
# 5. `ground_false_loss`: `L_F = KL(P_F(ŷ) ‖ softmax(f′))`.
#
# **How to work.** Each exercise is a function whose body is blank: replace
# `raise NotImplementedError()` (under `# YOUR CODE HERE`) with your code and
# run the cell. The **graded cell** after it checks your function on fixed and
# random cases against the library and prints ✅, or fails with one line that
# says what is wrong ("x and y are swapped", "your ground-false for keypoint 3
# includes keypoint 3 itself", ...). When your work is graded, the same cells
# run again with further tests on other inputs; the points of each exercise are
# in its section title.
#
# Use `torch` freely, but not the library function you are rewriting: while a
# check runs your function, that function is unavailable, and an answer that
# calls it earns no points. Leave the `@ex.exercise(...)` line above each
# function: it never changes what your code does; it lets the checks trace a
# mistake to the function it comes from, and it makes a function you have not
# written yet say so wherever a later cell uses its result.

# %%
import matplotlib.pyplot as plt
import torch

import regdakit as rk
from regdakit import exercises as ex
from regdakit.data.synthetic import make_dataset
from regdakit.pretrained import load_source_only

FAST = rk.runtime.fast_mode()  # fewer images under the automatic tests

# %% [md]
# ## 0 · A real prediction on the target domain
#
# The shipped source-only model (`regdakit.pretrained`) takes 128 × 128 images
# and outputs one 32 × 32 map of logits per keypoint (21 hand keypoints): the
# **stride** is 4 image pixels per heatmap cell. Its prediction `ŷ_k` is the
# cell with the largest logit. Positions are `(x, y)`: `x` to the right (the
# column), `y` down (the row).

# %%
model, cfg = load_source_only("hands")
skeleton = rk.HAND21
n_images = 16 if FAST else 64
images, keypoints, visible = make_dataset("hands", cfg.target_domain, "test", size=cfg.image_size, n=n_images).tensors()
logits = rk.inference.predict(model, images)  # (B, K, 32, 32): the main head f's logits, eval mode, no_grad
stride = cfg.image_size / cfg.heatmap_size  # 4.0
y_hat, _ = rk.heatmaps.decode(logits, subpixel=False)  # (B, K, 2): (x, y) of each argmax, in heatmap cells
print(f"{cfg.source_domain} -> {cfg.target_domain}: images {tuple(images.shape)}, logits {tuple(logits.shape)}")

# %% [md]
# ## 1 · The heatmap `H(y)` of a position (3 points)
#
# Write `encode(keypoints, visible, heatmap_size, stride, sigma)`:
#
# * `keypoints`: `(B, K, 2)` positions `(x, y)` in **image pixels**; `visible`: `(B, K)` bool;
# * `heatmap_size`: `(H, W)`; `stride`: image pixels per heatmap cell; `sigma`: in **heatmap cells**;
# * returns `(B, K, H, W)`: for keypoint position `(x, y)`, the cell in row `i`,
#   column `j` gets `exp(-((j - x / stride)² + (i - y / stride)²) / (2 σ²))`, an
#   *unnormalised* Gaussian (peak 1); values of at most 0.01 become 0, and an
#   invisible keypoint gets an all-zero map.
#
# Hint: `torch.arange(H)` and `torch.arange(W)` give the rows and columns; index
# with `[..., None, None]` to broadcast `(B, K)` against `(H, W)`.

# %% nbgrader={"grade": false, "grade_id": "encode", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("encode")  # keep this line: it never changes code you write
def encode(keypoints, visible, heatmap_size, stride, sigma):
    """Gaussian heatmaps: keypoints (B, K, 2) in pixels, visible (B, K) -> (B, K, H, W)."""
    ### BEGIN SOLUTION
    h, w = heatmap_size
    rows = torch.arange(h, dtype=torch.float32)[:, None]  # (H, 1): y of each cell
    cols = torch.arange(w, dtype=torch.float32)[None, :]  # (1, W): x of each cell
    centres = keypoints.float() / stride  # (B, K, 2) in heatmap cells
    x, y = centres[..., 0, None, None], centres[..., 1, None, None]  # (B, K, 1, 1)
    maps = torch.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * sigma**2))
    maps = torch.where(maps > 0.01, maps, torch.zeros_like(maps))
    return maps * visible[..., None, None]
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_encode", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_encode(encode))
### BEGIN HIDDEN TESTS
ex.hidden_check("encode", encode, seed=11)
### END HIDDEN TESTS

# %% [md]
# Your `encode`, applied to the prediction `ŷ` (in image pixels) with σ = 2 and
# every keypoint counted as visible, gives the **ground-truth pseudo-label**
# `H(ŷ)` the trainer uses (`rk.disparity.pseudo_labels`):

# %%
truth = encode(y_hat * stride, torch.ones_like(visible), logits.shape[-2:], stride, 2.0)  # (B, K, 32, 32)
library_truth, library_false = rk.disparity.pseudo_labels(logits)
print("your H(ŷ) equals the trainer's pseudo-label:", torch.allclose(truth, library_truth, atol=1e-4))

# %% [md]
# ## 2 · How good is the detector on the target domain? PCK (2 points)
#
# Write `pck(pred, gt, visible, threshold)`: the fraction of **visible**
# keypoints whose predicted position is at a Euclidean distance strictly
# **below** `threshold` from the truth, pooled over all (image, keypoint) pairs
# of the batch (not averaged per image). `pred`, `gt`: `(B, K, 2)`; `visible`:
# `(B, K)` bool. Return a Python float (or a 0-d tensor).

# %% nbgrader={"grade": false, "grade_id": "pck", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("pck")  # keep this line: it never changes code you write
def pck(pred, gt, visible, threshold):
    """Fraction of visible keypoints with ||pred - gt|| < threshold: (B, K, 2), (B, K, 2), (B, K) -> float."""
    ### BEGIN SOLUTION
    distance = torch.linalg.vector_norm(pred - gt, dim=-1)  # (B, K)
    correct = (distance < threshold) & visible.bool()
    return float(correct.sum() / visible.sum())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_pck", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_pck(pck))
### BEGIN HIDDEN TESTS
ex.hidden_check("pck", pck, seed=12)
### END HIDDEN TESTS

# %% [md]
# PCK@0.05 counts a keypoint as correct within 0.05 × the image side (6.4 pixels
# here). The source-only model is weak on the target domain. Some of its wrong
# predictions land **on another keypoint** (`rk.metrics.error_landing`,
# exercise 01): more than a wrong prediction placed uniformly over the image
# would (`chance`), though exercise 01 shows that chance levels which know
# where the hand is reach that share too. RegDA's ground false bets on these
# confusions: it puts keypoint `k`'s probability on the other keypoints.

# %%
threshold = 0.05 * cfg.image_size
landing = rk.metrics.error_landing(y_hat * stride, keypoints, visible, radius=threshold, map_size=cfg.image_size)
print(f"PCK@0.05 of the source-only model on {n_images} {cfg.target_domain} images: "
      f"{float(pck(y_hat * stride, keypoints, visible, threshold)):.3f}")
print(f"wrong: {landing.n_wrong}, of which on another keypoint: {landing.on_other:.2f} (chance {landing.chance:.2f})")

# %% [md]
# ## 3 · The ground false `H_F` (Eq. 1, 3 points)
#
# Write `ground_false(ground_truth)`: for every keypoint `k`, the sum of the
# **other** keypoints' heatmaps, clipped to `[0, 1]`:
# `H_F[:, k] = clip(Σ_{k′≠k} H[:, k′], 0, 1)`. Input and output are
# `(B, K, H, W)`; keypoints are dimension 1.

# %% nbgrader={"grade": false, "grade_id": "ground_false", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("ground_false")  # keep this line: it never changes code you write
def ground_false(ground_truth):
    """Eq. 1: (B, K, H, W) heatmaps H(ŷ) -> (B, K, H, W) ground false H_F(ŷ)."""
    ### BEGIN SOLUTION
    everyone = ground_truth.sum(dim=1, keepdim=True)  # (B, 1, H, W): all keypoints
    return (everyone - ground_truth).clamp(0, 1)  # leave keypoint k out, then clip
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_ground_false", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_ground_false(ground_false))
### BEGIN HIDDEN TESTS
ex.hidden_check("ground_false", ground_false, seed=13)
### END HIDDEN TESTS

# %% [md]
# ## 4 · The ground-false distribution `P_F` (Eq. 2, 2 points)
#
# Write `ground_false_distribution(ground_false)`: each `(H, W)` map divided by
# its sum over the `H·W` cells, so that it sums to 1. A map that is all zero
# (a skeleton where no other keypoint exists) must stay all zero, not NaN.

# %% nbgrader={"grade": false, "grade_id": "ground_false_distribution", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("ground_false_distribution")  # keep this line: it never changes code you write
def ground_false_distribution(ground_false):
    """Eq. 2: (B, K, H, W) ground false H_F -> (B, K, H, W) maps that each sum to 1."""
    ### BEGIN SOLUTION
    total = ground_false.sum(dim=(-2, -1), keepdim=True)  # (B, K, 1, 1)
    return ground_false / torch.where(total > 0, total, torch.ones_like(total))
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_ground_false_distribution", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_ground_false_distribution(ground_false_distribution))
### BEGIN HIDDEN TESTS
ex.hidden_check("ground_false_distribution", ground_false_distribution, seed=14)
### END HIDDEN TESTS

# %% [md]
# ### Look at it on a real mistake
#
# We pick the image where the detector is most often right but still confuses
# a keypoint `k`: its prediction `ŷ_k` landed on another keypoint. `P_F(ŷ_k)`
# spreads keypoint `k`'s probability over the places where the *other*
# keypoints were predicted: exactly the kind of place where `ŷ_k` went wrong.
# White cross: the true position of `k`; red dot: `ŷ_k`.

# %%
h_false = ground_false(truth)
p_false = ground_false_distribution(h_false)
print("every P_F map sums to 1:", torch.allclose(p_false.sum(dim=(-2, -1)), torch.ones(p_false.shape[:2])))

on_other = (landing.landing >= 0) & (landing.landing < skeleton.num_keypoints)  # (B, K)
right = (landing.landing == -1).sum(1) / visible.sum(1).clamp_min(1)  # per image: share of correct keypoints
b = int(right.masked_fill(~on_other.any(1), -1).argmax())  # the best image that still confuses a keypoint
error = torch.linalg.vector_norm(y_hat[b] * stride - keypoints[b], dim=-1).masked_fill(~on_other[b], -1)
k = int(error.argmax())  # its largest such mistake
print(f"image {b} ({float(right[b]):.0%} of its keypoints right): {skeleton.names[k]} was predicted on "
      f"{skeleton.names[int(landing.landing[b, k])]}, {float(error[k]):.0f} pixels from the truth")
side = cfg.image_size
extent = (-stride / 2, side - stride / 2, side - stride / 2, -stride / 2)  # cell j is centred at pixel j·stride
fig, axes = plt.subplots(1, 4, figsize=(15, 4), layout="constrained")
axes[0].imshow(images[b].permute(1, 2, 0))
axes[0].scatter(*(y_hat[b] * stride).T, s=14, c=skeleton.colors)
axes[0].set_title("target image, all predictions ŷ")
titles = (f"H(ŷ_k), k = {skeleton.names[k]}", "H_F(ŷ_k), Eq. 1", "P_F(ŷ_k), Eq. 2, over the image")
for ax, maps, title in zip(axes[1:], (truth, h_false, p_false), titles, strict=True):
    if maps is p_false:
        ax.imshow(images[b].permute(1, 2, 0))
    ax.imshow(maps[b, k], extent=extent, cmap="magma", alpha=0.7 if maps is p_false else 1.0)
    ax.set_title(title)
for ax in axes:
    ax.scatter(*(y_hat[b, k] * stride), s=50, color="red")
    ax.scatter(*keypoints[b, k], s=80, marker="x", color="white")
    ax.set(xlim=(-0.5, side - 0.5), ylim=(side - 0.5, -0.5))
    ax.axis("off")
plt.show()

# %% [md]
# ## 5 · The loss `L_F` (3 points)
#
# Write `ground_false_loss(adv_logits, main_logits)`:
# `L_F = KL(P_F(ŷ) ‖ softmax(f′))`, where `ŷ` is the argmax of `main_logits` (the
# main head `f`), and `adv_logits` are the outputs of the adversarial head `f′`.
# Both are `(B, K, H, W)`. Build the target from the main head with
# `rk.disparity.pseudo_labels(main_logits)` (it returns `H(ŷ)` and `H_F(ŷ)`, σ = 2)
# or with your functions above, then compare it with `f′` using the spatial KL
# loss `rk.losses.kl_heatmap_loss(logits, target)` (it normalises the target and
# applies the softmax over the `H·W` cells itself). Return a scalar.

# %% nbgrader={"grade": false, "grade_id": "ground_false_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("ground_false_loss")  # keep this line: it never changes code you write
def ground_false_loss(adv_logits, main_logits):
    """L_F: KL(P_F(ŷ) || softmax(f')) averaged over B·K; (B, K, H, W), (B, K, H, W) -> scalar."""
    ### BEGIN SOLUTION
    _, false = rk.disparity.pseudo_labels(main_logits.detach())  # H_F(ŷ) from the main head f
    return rk.losses.kl_heatmap_loss(adv_logits, false)  # normalises H_F into P_F, softmax over H·W
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_ground_false_loss", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_ground_false_loss(ground_false_loss))
### BEGIN HIDDEN TESTS
ex.hidden_check("ground_false_loss", ground_false_loss, seed=15)
### END HIDDEN TESTS

# %% [md]
# Step B of RegDA trains `f′` to **minimise** `L_F`. How large is `L_F` on the
# real prediction for a few adversaries? One that agrees sharply with `f` (its
# logits are `log H(ŷ)`), one that knows nothing (uniform logits), the main
# head `f` itself, and one that already points at the ground false (`log P_F`).

# %%
candidates = {
    "f′ = log H(ŷ): agrees sharply with f": torch.log(truth + 1e-6),
    "f′ uniform": torch.zeros_like(logits),
    "f′ = f: the main head itself": logits,
    "f′ = log P_F: at the other keypoints": torch.log(p_false + 1e-6),
}
losses = {name: float(ground_false_loss(adv, logits)) for name, adv in candidates.items()}
for name, value in losses.items():
    print(f"{name:<40} L_F = {value:6.3f}")
regda = {name: float(rk.disparity.ground_false_loss(adv, logits)) for name, adv in candidates.items()}
wrong = [name for name in losses if abs(losses[name] - regda[name]) > 1e-3 * max(1.0, abs(regda[name]))]
assert not wrong, f"your L_F differs from RegDA's for {wrong}: see what the check of section 5 says"
# The claims of the text below; these asserts fail if a model contradicts them.
order = sorted(losses, key=losses.get, reverse=True)  # the largest L_F first
assert order[0].startswith("f′ = log H") and order[-1].startswith("f′ = log P_F"), order
assert losses["f′ = f: the main head itself"] > losses["f′ uniform"], "f should be further from P_F than uniform"

# %% [md]
# An adversary that agrees sharply with `f` is far from the ground false, and
# so, less extremely, is the main head `f` itself: even on the target domain its
# softmax is concentrated around its own prediction `ŷ_k`, where `P_F(ŷ_k)` has
# little mass, so that an adversary that knows nothing (uniform) is closer to
# the ground false than `f` is. Minimising `L_F` moves `f′` away from `f`'s own
# prediction and onto the other keypoints: the plausible mistakes. Step C then
# trains the features so that `f′` must agree with `f` again (`L_T`), which
# makes the features tell the keypoints apart. Exercise 03 shows why this works
# better than maximising a disparity.
