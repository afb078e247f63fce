# %% [md]
# # Exercise 01 · Where the mistakes land, and against which chance
#
# RegDA (Jiang et al., CVPR 2021) starts from an observation about a detector
# trained on one domain and tested on another: when it predicts a keypoint
# wrongly, the prediction often lands **on another keypoint** (a fingertip for
# another fingertip) rather than on the background. Notebook 01 puts this
# observation to the test on a shipped hand detector. Here you write the two
# measurements yourself, and see what they say about that detector:
#
# 1. `error_landing`: for every prediction, is it correct, on which other
#    keypoint did it land, or on the background?
# 2. `rotated_chance`: how often would it land on another keypoint *by chance*,
#    if each wrong prediction kept its distance to its own keypoint but pointed
#    in a random direction? Keypoints of a hand lie close together, so even
#    random errors hit one of them often: the effect is only the excess over
#    such a chance level.
#
# **How to work.** Each exercise is a function whose body is blank: replace
# `raise NotImplementedError()` (under `# YOUR CODE HERE`) with your code and
# run the cell. The **graded cell** after it checks your function on fixed and
# random cases against the library and prints ✅, or fails with one line that
# says what is wrong ("a prediction exactly `radius` from its own keypoint is
# wrong", "average over the wrong predictions only", ...). When your work is
# graded, the same cells run again with further tests on other inputs; the
# points of each exercise are in its section title.
#
# Use `torch` freely, but not the library function you are rewriting
# (`rk.metrics.error_landing`, `rk.metrics.landing_chance`): while a check runs
# your function, it is unavailable, and an answer that calls it earns no points.
# Leave the `@ex.exercise(...)` line above each function: it never changes what
# your code does; it lets the checks trace a mistake to the function it comes
# from, and makes a function you have not written yet say so where a later
# cell uses its result.

# %%
import math

import torch

import regdakit as rk
from regdakit import exercises as ex
from regdakit.data.synthetic import make_dataset
from regdakit.pretrained import load_source_only

FAST = rk.runtime.fast_mode()  # fewer images under the automatic tests

# %% [md]
# ## 0 · Predictions of a source-only model on the target domain
#
# The shipped source-only hand detector (trained on rendered hands only)
# predicts on studio photos of hands, the target domain. Everything below is
# in **heatmap cells** (32 × 32 maps): predictions `pred` and true positions
# `gt` are `(B, K, 2)` tensors of `(x, y)`, `visible` is `(B, K)` bool. A
# prediction is correct when it lies closer than `radius` = 0.05 × 32 = 1.6
# cells to its own keypoint (PCK@0.05).

# %%
model, cfg = load_source_only("hands")
n_images = 16 if FAST else 128
images, keypoints, visible = make_dataset("hands", cfg.target_domain, "test", size=cfg.image_size, n=n_images).tensors()
logits = rk.inference.predict(model, images)  # (B, K, 32, 32): the main head's logits
pred, _ = rk.heatmaps.decode(logits)  # (B, K, 2) in heatmap cells
map_size = logits.shape[-1]
gt = keypoints / (cfg.image_size / map_size)  # true positions in heatmap cells
radius = rk.metrics.pck_threshold(map_size)  # 1.6 cells
print(f"{n_images} {cfg.target_domain} images, {keypoints.shape[1]} keypoints, radius {radius:.2f} cells")

# %% [md]
# ## 1 · Where does each prediction land? (4 points)
#
# Write `error_landing(pred, gt, visible, radius)` returning a `(B, K)`
# integer tensor of **codes**:
#
# * `-2` where the keypoint is invisible (not evaluated);
# * `-1` where the prediction is correct: its distance to its own truth
#   `gt[b, k]` is strictly below `radius`;
# * otherwise the prediction is wrong, and it **lands on** keypoint `j`
#   (code `j`) when `j ≠ k` is visible in the same image and its true position
#   `gt[b, j]` is closer than `radius`; if several are, the **nearest** one;
# * `K` (the number of keypoints) where a wrong prediction lands on no other
#   keypoint: the background.
#
# Hint: `torch.cdist(pred, gt)` gives the `(B, K, K)` distances from every
# prediction to every true position; `torch.eye(K, dtype=torch.bool)` masks the
# keypoint itself.

# %% nbgrader={"grade": false, "grade_id": "error_landing", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("error_landing")  # keep this line: it never changes code you write
def error_landing(pred, gt, visible, radius):
    """Landing codes: pred (B, K, 2), gt (B, K, 2), visible (B, K) -> (B, K) long."""
    ### BEGIN SOLUTION
    b, k = visible.shape
    visible = visible.bool()
    dist = torch.cdist(pred, gt)  # (B, K, K): prediction k to the truth of keypoint j
    own = dist.diagonal(dim1=1, dim2=2)  # (B, K): to its own truth
    wrong = visible & (own >= radius)
    others = visible[:, None, :] & ~torch.eye(k, dtype=torch.bool)  # (B, K, K): j visible and j != k
    nearest_dist, nearest = dist.masked_fill(~others, math.inf).min(dim=-1)  # (B, K)
    codes = torch.full((b, k), -2, dtype=torch.long)
    codes[visible] = -1
    codes[wrong] = k  # background, unless it lands on another keypoint:
    lands = wrong & (nearest_dist < radius)
    codes[lands] = nearest[lands]
    return codes
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_error_landing", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_error_landing(error_landing))
### BEGIN HIDDEN TESTS
ex.hidden_check("error_landing", error_landing, seed=31)
### END HIDDEN TESTS

# %% [md]
# Your codes on the real predictions: how many are wrong, and where do they land?

# %%
codes = error_landing(pred, gt, visible, radius)
k = keypoints.shape[1]
n_wrong = int((codes >= 0).sum())
on_other = float(((codes >= 0) & (codes < k)).sum()) / max(n_wrong, 1)
print(f"{int(visible.sum())} visible keypoints, {n_wrong} wrong; {on_other:.2f} of the wrong ones land on another "
      f"keypoint, {1 - on_other:.2f} on the background")
library = rk.metrics.error_landing(pred, gt, visible, radius, map_size=map_size)
assert torch.equal(codes, library.landing), "your codes differ from rk.metrics.error_landing: see the check above"

# %% [md]
# ## 2 · Chance model (c): the same errors, in random directions (3 points)
#
# Is that share a lot? Keypoints of a hand are packed within a few cells, so a
# wrong prediction that knows nothing about the skeleton still hits one of them
# fairly often, the more so the shorter the error. Chance model (c) keeps each
# wrong prediction's **error vector** `e = pred[b, k] − gt[b, k]` (its length)
# and turns it around its own keypoint:
# `gt[b, k] + R(θ) e`, with `R(θ)` the rotation by `θ`, for the `angles`
# directions `θ = 2π j / angles`, `j = 0 … angles − 1`. Its share is the
# fraction of those directions that land closer than `radius` to the true
# position of another **visible** keypoint `j ≠ k`.
#
# Write `rotated_chance(pred, gt, visible, radius, angles)`: the mean of that
# share over the **wrong** visible predictions (as your `error_landing`
# defines them), as one Python float. `R(θ) (x, y) = (x cos θ − y sin θ,
# x sin θ + y cos θ)`. A turned error keeps its length, so it never comes back
# to its own keypoint.

# %% nbgrader={"grade": false, "grade_id": "rotated_chance", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("rotated_chance")  # keep this line: it never changes code you write
def rotated_chance(pred, gt, visible, radius, angles):
    """Chance model (c): pred (B, K, 2), gt (B, K, 2), visible (B, K), radius, angles -> float in [0, 1]."""
    ### BEGIN SOLUTION
    visible = visible.bool()
    k = visible.shape[1]
    theta = torch.arange(angles, dtype=torch.float64) * (2 * math.pi / angles)  # (A,)
    cos, sin = theta.cos(), theta.sin()
    b_idx, k_idx = torch.nonzero(visible & (torch.linalg.vector_norm(pred - gt, dim=-1) >= radius), as_tuple=True)
    own = gt[b_idx, k_idx].double()  # (N, 2): the wrong predictions' own keypoints
    e = pred[b_idx, k_idx].double() - own  # (N, 2): their error vectors
    turned = torch.stack([cos * e[:, :1] - sin * e[:, 1:], sin * e[:, :1] + cos * e[:, 1:]], dim=-1)  # (N, A, 2)
    dist = torch.cdist(own[:, None] + turned, gt[b_idx].double())  # (N, A, K): to every keypoint of the image
    others = visible[b_idx] & (torch.arange(k) != k_idx[:, None])  # (N, K): visible and not itself
    hits = ((dist < radius) & others[:, None, :]).any(dim=-1)  # (N, A)
    return float(hits.double().mean(dim=1).mean())
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_rotated_chance", "locked": true, "points": 3, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_rotated_chance(rotated_chance))
### BEGIN HIDDEN TESTS
ex.hidden_check("rotated_chance", rotated_chance, seed=32)
### END HIDDEN TESTS

# %% [md]
# ## 3 · The landing share against the honest chance levels
#
# Beside your chance model (c), the library's `rk.metrics.landing_chance`
# gives two more: (a) a wrong cell uniform over the whole map, and (b) a wrong
# cell uniform inside the box of the image's visible keypoints (the model knows
# where the hand is). The paper's effect is the part of the landing share that
# the **strongest** of them does not explain.

# %%
mine = rotated_chance(pred, gt, visible, radius, 360)
chance = rk.metrics.landing_chance(pred, gt, visible, radius, map_size=map_size)
# 1e-4, not exact: float32 and float64 can put a turned error that ends right at the radius on either side
assert abs(mine - chance.rotated_errors) < 1e-4, "your chance (c) differs from the library's: see the check above"
print(f"landing on another keypoint: {chance.on_other:.2f}")  # section 1's share (the library's count)
print(f"chance (a) uniform over the map:     {chance.uniform_image:.2f}")
print(f"chance (b) uniform in the hand's box: {chance.uniform_box:.2f}")
print(f"chance (c) your turned errors:        {mine:.2f}")
print(f"landing / strongest chance = {chance.ratio:.2f}")
# The claims of the text below; these asserts fail if a model contradicts them.
assert chance.on_other < 0.5, "most wrong predictions should land on the background"
assert chance.ratio < 1, "the landing share should stay below the strongest chance level"

# %% [md]
# For the shipped hand model on studio photos, the observation does not show
# when all wrong predictions count: most of them land on the background, and
# the share that lands on another keypoint stays **below** the strongest chance
# level, so nothing is left for the paper's effect to explain. Question 4 asks
# where those background errors are.

# %% [md]
# **Questions.**
#
# 1. Why does chance (a) understate the chance level of a model that has found
#    the hand? Which of (b) and (c) is the stronger here, and why would short
#    errors make (c) strong?
# 2. Notebook 01 compares the landing share on the target with the same model
#    on its *source* domain. What would it mean if the share were as high there?
# 3. `error_landing` gives a wrong prediction to the *nearest* keypoint within
#    the radius. Where on a hand can a prediction be within the radius of two
#    keypoints at once?
# 4. Most wrong predictions here land on the background. Do they stay on the
#    hand, between its keypoints, or leave it? With `codes`, `pred`, `gt` and
#    `visible`, count the wrong predictions that lie outside the box of their
#    image's visible keypoints, and compute the landing share of the others.
#    What would that mean for the ground-false distribution of exercise 02,
#    which is built from the other keypoints' predicted positions? Compare
#    with notebook 01's section "Errors that leave the hand".
