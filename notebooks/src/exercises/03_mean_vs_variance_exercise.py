# %% [md]
# # Exercise 03 · Mean versus variance, with your own losses
#
# Notebook 03 showed that *maximising* a disparity between the adversarial head
# `f′` and the main head `f` mostly changes the **variance** of `f′`'s
# distribution, while RegDA's *minimisation* of `L_F` (towards the ground-false
# distribution `P_F`) moves its **mean** onto the other keypoints. Here you
# write the two losses yourself and rerun that experiment with them:
#
# 1. `kl_loss`: the spatial KL divergence between a target heatmap and the
#    softmax of a head's logits;
# 2. `ground_false_loss`: `L_F = KL(P_F(ŷ) ‖ softmax(f′))` with your `kl_loss`;
# 3. the 1-D experiment and the 2-D heads of notebook 03, driven by your functions.
#
# **How to work.** Replace `raise NotImplementedError()` (under
# `# YOUR CODE HERE`) with your code and run the cell, then run the **graded
# cell** below it: it tests your function against the library on fixed and
# random cases and prints ✅, or fails with one line that says what is wrong
# ("the KL is the wrong way round", "softmax missing", ...). When your work is
# graded, the same cells run again with further tests on other inputs; the
# points are in the section titles. Don't call the library function you are
# rewriting: it is unavailable while a check runs your function, and such an
# answer earns no points. Leave the `@ex.exercise(...)` line: it never changes
# what your code does; it lets the checks trace a mistake to the function it
# comes from, and makes a function you have not written yet say so wherever a
# later cell uses it.

# %%
import copy

import matplotlib.pyplot as plt
import torch

import regdakit as rk
from regdakit import exercises as ex
from regdakit import toy

FAST = rk.runtime.fast_mode()  # smaller sizes under the automatic tests

# %% [md]
# ## 1 · The spatial KL loss (4 points)
#
# A heatmap head outputs one map of logits per keypoint. The KL loss treats each
# map as a distribution over its `H·W` cells:
#
# * the prediction `p = softmax` of the logits over the `H·W` cells of the map;
# * the target `q` = the target map divided by its sum over the cells;
# * `KL(q ‖ p) = Σ_{h,w} q log q − q log p`, where `0 · log 0` counts as 0;
# * the loss is the mean of the `B·K` per-map divergences.
#
# Write `kl_loss(logits, target)` for `(B, K, H, W)` inputs; return a scalar
# tensor that can be back-propagated into `logits`.
# Hints: `logits.flatten(2)` gives `(B, K, H·W)`; `torch.log_softmax`;
# `torch.special.xlogy(q, q)` is `q log q` with `0 log 0 = 0`.

# %% nbgrader={"grade": false, "grade_id": "kl_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("kl_loss")  # keep this line: it never changes code you write
def kl_loss(logits, target):
    """KL(target / Σ target || softmax(logits)) per map, mean over B·K: (B, K, H, W), (B, K, H, W) -> scalar."""
    ### BEGIN SOLUTION
    q = target.flatten(2)  # (B, K, H·W)
    q = q / q.sum(dim=-1, keepdim=True)  # each target map sums to 1
    log_p = torch.log_softmax(logits.flatten(2), dim=-1)  # log-probabilities over the H·W cells
    return (torch.special.xlogy(q, q) - q * log_p).sum(dim=-1).mean()  # KL per map, mean over B·K
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_kl_loss", "locked": true, "points": 4, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_kl_loss(kl_loss))
### BEGIN HIDDEN TESTS
ex.hidden_check("kl_loss", kl_loss, seed=21)
### END HIDDEN TESTS

# %% [md]
# ## 2 · `L_F`, towards the ground false (2 points)
#
# Write `ground_false_loss(adv_logits, main_logits)`: `ŷ` is the argmax of each
# map of `main_logits` (the main head `f`); `rk.disparity.pseudo_labels(main_logits)`
# returns its ground truth `H(ŷ)` and ground false `H_F(ŷ)` (Eq. 1, σ = 2). `L_F`
# is your `kl_loss` of the adversary's logits `adv_logits` against `H_F` (your
# `kl_loss` normalises it into `P_F`, Eq. 2). `L_F` must not train `f`: no
# gradient may flow into `main_logits`.

# %% nbgrader={"grade": false, "grade_id": "ground_false_loss", "locked": false, "schema_version": 3, "solution": true, "task": false}
@ex.exercise("ground_false_loss")  # keep this line: it never changes code you write
def ground_false_loss(adv_logits, main_logits):
    """L_F = KL(P_F(ŷ) || softmax(f')), mean over B·K: (B, K, H, W), (B, K, H, W) -> scalar."""
    ### BEGIN SOLUTION
    _, false = rk.disparity.pseudo_labels(main_logits.detach())  # H_F(ŷ) from the main head f
    return kl_loss(adv_logits, false)  # your kl_loss normalises H_F into P_F
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_ground_false_loss", "locked": true, "points": 2, "schema_version": 3, "solution": false, "task": false}
ex.verify(ex.check_ground_false_loss(ground_false_loss))
### BEGIN HIDDEN TESTS
ex.hidden_check("ground_false_loss", ground_false_loss, seed=22)
### END HIDDEN TESTS

# %% [md]
# ## 3 · The exact experiment on a 1-D grid, with your losses
#
# As in notebook 03: on a grid of 64 cells (a heatmap of height 1), `f` predicts
# keypoint 0 at `ŷ₀ = 20` and keypoint 1 at `ŷ₁ = 44`. The adversary `f′` has
# free logits and starts one cell to the right of `f`. We train it by plain
# gradient descent (300 steps, float64) with three objectives built from *your*
# functions and follow the mean and standard deviation of its distribution for
# keypoint 0:
#
# * **maximise** `KL(H(ŷ) ‖ f′)`, the disparity of MCD / DD (we descend `−kl_loss`);
# * **minimise** `L_F` (RegDA's step B);
# * **minimise** `L_T = KL(H(ŷ) ‖ f′)` (back towards `f`).

# %%
n_cells, own, other, sigma = 64, 20, 44, 2.0
centres = torch.tensor([[[own, 0.0], [other, 0.0]]], dtype=torch.float64)  # (B=1, K=2, 2) as (x, y)
main_1d = torch.log(rk.heatmaps.gaussian_heatmaps(centres, (1, n_cells), sigma) + 1e-12)  # f: (1, 2, 1, 64)
start = torch.log(rk.heatmaps.gaussian_heatmaps(centres + torch.tensor([1.0, 0.0]), (1, n_cells), sigma) + 1e-6)
truth_1d, _ = rk.disparity.pseudo_labels(main_1d)
cells = torch.arange(n_cells, dtype=torch.float64)


def train_adversary(loss_of, steps=300, lr=5.0):
    """Gradient descent on f′'s logits; the mean and std of its keypoint-0 distribution at every step."""
    adv = start.clone().requires_grad_()
    optimizer = torch.optim.SGD([adv], lr=lr)
    probs = [torch.softmax(adv.detach()[0, 0, 0], dim=-1)]
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(adv).backward()
        optimizer.step()
        probs.append(torch.softmax(adv.detach()[0, 0, 0], dim=-1))
    probs = torch.stack(probs)  # (steps + 1, 64)
    mean = probs @ cells
    std = (probs * (cells - mean[:, None]) ** 2).sum(-1).sqrt()
    return mean, std


objectives = {
    "max_kl": lambda adv: -kl_loss(adv, truth_1d),
    "min_false": lambda adv: ground_false_loss(adv, main_1d),
    "min_truth": lambda adv: kl_loss(adv, truth_1d),
}


def your_blank():
    """What your kl_loss or ground_false_loss returns while it is still blank (a value that names it), else None."""
    for result in (lambda: kl_loss(start, truth_1d), lambda: ground_false_loss(start, main_1d)):  # L_F uses kl_loss
        if isinstance(value := result(), ex.Blank):
            return value
    return None


# While one of your functions is blank, `runs` is what it returned: the cells below say which one to write.
blank = your_blank()
runs = {name: train_adversary(loss_of) for name, loss_of in objectives.items()} if blank is None else blank
library = {name: toy.adversary_trajectory(name, steps=300) for name in objectives}  # notebook 03's runs

print(f"{'objective':<12}{'mean 0 → 300':>16}{'std 0 → 300':>16}{'library mean':>14}")
for name, (mean, std) in runs.items():
    print(f"{name:<12}{mean[0]:>8.1f} →{mean[-1]:>6.1f}{std[0]:>9.2f} →{std[-1]:>5.2f}{library[name].mean[-1]:>14.1f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2), layout="constrained")
for name, (mean, std) in runs.items():
    axes[0].plot(mean, label=toy.describe(name))
    axes[1].plot(std, label=toy.describe(name))
for y in (own, other):
    axes[0].axhline(y, color="k", ls=":", lw=1)
axes[0].set(xlabel="step", ylabel="mean position (cells)", title="mean of f′ (your losses)")
axes[1].set(xlabel="step", ylabel="std (cells)", title="standard deviation of f′", yscale="symlog")
axes[1].legend(fontsize=8)
plt.show()

# %% [md]
# With correct losses your runs reproduce the library's (the last column above):
# maximising the KL leaves the mean at `ŷ₀ = 20` and collapses the standard
# deviation (variance, not mean); minimising `L_F` carries the mean to `ŷ₁ = 44`.

# %%
for name, (mean, _) in runs.items():
    gap = float((mean - library[name].mean).abs().max())
    assert gap < 0.05, f"{name}: your run differs from the library's by up to {gap:.2f} cells"
mean, std = runs["max_kl"]
assert abs(mean[-1] - mean[0]) < 1.5 and std[-1] < 0.5 * std[0], "maximising your KL should move the variance only"
assert abs(runs["min_false"][0][-1] - other) < 1.0, "minimising your L_F should carry the mean to the other keypoint"
print("maximising moved the variance; minimising L_F moved the mean")

# %% [md]
# ## 4 · The same with heatmap heads, trained with your losses
#
# The 2-D toy of notebook 03: fixed feature maps in which 5 keypoints *look
# alike*, a main head `f` (a 1 × 1 convolution) trained on them, and an
# adversarial head `f′` that starts as a copy of `f` and is trained, features
# fixed, by your objective. Where do `f′`'s peaks land relative to `f`'s
# predictions `ŷ`? *moved*: share of peaks that left `ŷ_k`; *on other*: share
# of those that landed on another keypoint; *chance*: that share for a uniformly
# placed peak.

# %%
n_images, steps = (32, 100) if FAST else (64, 200)
data = toy.make_feature_toy(n=n_images, num_keypoints=5, size=32, channels=16, seed=0)
main_head = toy.train_main_head(data, steps=150)
with torch.no_grad():
    main_2d = main_head(data.features)  # (B, 5, 32, 32)
truth_2d, _ = rk.disparity.pseudo_labels(main_2d)


def train_adversary_head(loss_of, steps):
    """f′ starts as a copy of f and descends loss_of(f′ logits) with Adam, features fixed."""
    adv = copy.deepcopy(main_head)
    optimizer = torch.optim.Adam(adv.parameters(), lr=0.05)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_of(adv(data.features)).backward()
        optimizer.step()
    return adv


objectives_2d = {
    "max_kl": lambda adv: -kl_loss(adv, truth_2d),
    "min_false": lambda adv: ground_false_loss(adv, main_2d),
}
blank = your_blank()
landings = {} if blank is None else blank  # while one of your functions is blank, the cells below name it
for name, loss_of in objectives_2d.items():
    adv_head = train_adversary_head(loss_of, steps)
    landings[name] = land = toy.adversary_landing(data, main_head, adv_head)
    moved = land.n_wrong / land.landing.numel()
    print(f"{toy.describe(name):<34} moved {moved:.2f}   on other {land.on_other:.2f}   chance {land.chance:.2f}")

# %%
land = landings["max_kl"]
assert land.n_wrong / land.landing.numel() < 0.5 and (land.n_wrong == 0 or land.on_other < 0.5), (
    "maximising your KL should leave most of f′'s peaks in place: see the checks of sections 1 and 2")
land = landings["min_false"]
assert land.n_wrong / land.landing.numel() > 0.9 and land.on_other > 0.8 and land.on_other > 3 * land.chance, (
    "minimising your L_F should send f′'s peaks onto the other keypoints: see the checks of sections 1 and 2")
print("your L_F sends f′ onto the other keypoints; maximising your KL does not")

# %% [md]
# **Questions.**
#
# 1. The gradient of `KL(p ‖ softmax(z))` in the logits `z` is `softmax(z) − p`.
#    Use it to explain why *ascending* it cannot move `f′` towards `ŷ₁`.
# 2. Swap the arguments of the KL inside your `ground_false_loss` (the wrong
#    direction) and run the check again: what does the checker say, and why is
#    the value infinite or huge?
# 3. Replace `kl_loss` in `max_kl` by an L1 distance between the two
#    distributions (MCD's disparity): does the mean move now?
