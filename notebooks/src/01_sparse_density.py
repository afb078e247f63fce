# %% [md]
# # 01 · Sparse spatial density: where a source-only model's mistakes land
#
# Train a keypoint detector on one domain (rendered hands) and test it on another
# (studio photos of hands): it gets worse. RegDA (Jiang et al., CVPR 2021, §3.2,
# Fig. 1 and Fig. 3) starts from *how* it gets worse. A wrong prediction could land
# anywhere in the image, yet far more of them than chance would allow land **on
# another keypoint**: the tip of the index finger is taken for another fingertip, a
# left knee for the right knee. The density of wrong predictions over an image is
# **sparse**: a few small places, the other keypoints, hold much of it. Notebook 02
# turns that observation into the *ground-false* distribution RegDA trains with.
#
# **What you will see.**
# 1. A source-only hand detector, shipped with regdakit, loses accuracy on the target domain.
# 2. Its wrong target predictions land on another keypoint many times more often than chance.
# 3. Which keypoint is mistaken for which: the K × (K + 1) confusion matrix.
# 4. The density of one keypoint's wrong predictions over the mean target image, with a dropdown.
# 5. The same for bodies, where a left joint is mistaken for its right twin.

# %%
import matplotlib.pyplot as plt
import torch

import regdakit as rk
import regdakit.pretrained
from regdakit.data.synthetic import SKELETONS, make_dataset
from regdakit.widgets import ErrorDensityExplorer

torch.manual_seed(0)
FAST = rk.runtime.fast_mode()  # small sizes under `make test` / CI
RETRAIN = False  # one flag retrains the source-only models (minutes on a CPU) instead of loading the shipped ones
N_TARGET = rk.runtime.pick(512, 128)  # target test images per task
N_SOURCE = rk.runtime.pick(256, 64)  # source test images, for the accuracy on the source domain
N_CHECKED = 128  # the first 128 target images: the same in fast and full mode, so the tests compare their numbers
print(f"fast mode: {FAST}; {N_TARGET} target and {N_SOURCE} source test images per task")

# %% [md]
# ## 1 · A source-only hand detector
#
# `rk.pretrained.load_source_only("hands")` loads a small detector (a tiny ResNet,
# 128 × 128 images, 32 × 32 heatmaps) trained on the *rendered* hand domain only,
# never on a *studio* image. Set `RETRAIN = True` above to train it again with the
# one command it was made with (`rk.pretrained.retrain_command("hands")`).
#
# We render a fixed test set of the target domain, let the main head `f` predict
# one heatmap per keypoint, and decode each heatmap's maximum into a position ŷ_k.
# Everything below is measured in **heatmap cells** (one cell = 4 image pixels), so
# the labels are divided by the stride too.

# %%
model, cfg = rk.pretrained.load_source_only("hands", retrain=RETRAIN)
skeleton = SKELETONS[cfg.task]
print(f"{cfg.task}: trained on '{cfg.source_domain}' only, for {cfg.pretrain_iterations} iterations; "
      f"target domain '{cfg.target_domain}'")

images, keypoints, visible = make_dataset(cfg.task, cfg.target_domain, "test", cfg.image_size, N_TARGET, seed=0).tensors()
logits = rk.density.predict(model, images)  # (N, K, 32, 32): f's heatmaps
pred, _ = rk.heatmaps.decode(logits)  # (N, K, 2): ŷ in heatmap cells
map_size = logits.shape[-1]
stride = images.shape[-1] / map_size  # 128 px / 32 cells = 4
gt = keypoints / stride  # true positions in heatmap cells

# %% [md]
# A keypoint counts as correct when ŷ_k lies within 0.05 × 32 = 1.6 cells of the
# truth (PCK@0.05, the paper's measure). The same model on its own source domain,
# for comparison:

# %%
src_images, src_keypoints, src_visible = make_dataset(
    cfg.task, cfg.source_domain, "test", cfg.image_size, N_SOURCE, seed=0
).tensors()
src_pred, _ = rk.heatmaps.decode(rk.density.predict(model, src_images))
radius = rk.metrics.pck_threshold(map_size)  # 1.6 cells
pck_source = rk.metrics.pck(src_pred, src_keypoints / stride, src_visible, radius, skeleton).all
pck_target = rk.metrics.pck(pred, gt, visible, radius, skeleton).all
print(f"PCK@0.05 on the source domain ({cfg.source_domain}): {100 * pck_source:.1f} %")
print(f"PCK@0.05 on the target domain ({cfg.target_domain}): {100 * pck_target:.1f} %")

# %% [md]
# ## 2 · Where do the wrong predictions land?
#
# `rk.metrics.error_landing` sorts every wrong target prediction: it *lands on*
# keypoint j when it lies within the same 1.6 cells of j's true position (the
# nearest such keypoint), and on the **background** otherwise.
#
# Is "on another keypoint" a lot? The keypoints of a hand cover only a small part of
# the image. `chance` answers it: had the wrong predictions been thrown uniformly on
# the map (anywhere but on their own keypoint), this share would have landed near
# another keypoint.

# %%
landing = rk.metrics.error_landing(pred, gt, visible, radius, skeleton, map_size=map_size)
wrong = landing.landing >= 0  # (N, K): codes >= 0 are wrong predictions (a keypoint index, or K = background)
print(f"{landing.n_wrong} wrong predictions of {int(visible.sum())} visible keypoints")
print(f"  on another keypoint: {landing.on_other:.2f}   (chance: {landing.chance:.2f}, "
      f"{landing.ratio_to_chance:.1f} x chance)")
print(f"  on the background:   {landing.on_background:.2f}")
rk.viz.plot_landing_shares({f"hands: {cfg.source_domain} → {cfg.target_domain}": landing},
                           title="Wrong target predictions of the source-only hand model")
plt.show()

# %% [md]
# The tests re-run this notebook on fewer images, so the exact numbers above differ
# between a full run and a test run. This cell repeats the measurement on the first
# 128 target images, which both runs share, and the tests check that its output
# never changes.

# %%
# NBVAL_CHECK_OUTPUT
part = rk.metrics.error_landing(pred[:N_CHECKED], gt[:N_CHECKED], visible[:N_CHECKED], radius, map_size=map_size)
print(f"first {N_CHECKED} target images: {part.n_wrong} wrong predictions, "
      f"{part.on_other:.2f} on another keypoint, chance {part.chance:.2f}")

# %%
# The effect this notebook teaches; these asserts fail if it ever disappears.
assert pck_target < pck_source, "the source-only model should be worse on the target domain"
assert landing.on_other >= 3 * landing.chance, "wrong predictions should land on other keypoints >= 3x chance"
assert landing.on_other > landing.on_background, "most wrong predictions should land on another keypoint"
print("the wrong predictions are sparse: most land on other keypoints")

# %% [md]
# ## 3 · Which keypoint is mistaken for which
#
# The landing counts form a K × (K + 1) matrix: row = the true keypoint, column = the
# keypoint its wrong prediction landed on, the last column = the background. Each
# row is normalised to the share of that keypoint's wrong predictions (the paper's
# Fig. 1 shows the same for real hands). The diagonal is empty by definition: a
# prediction near its own keypoint is correct.

# %%
rk.viz.plot_confusion(landing.confusion, skeleton,
                      title="Hands, target domain: where each keypoint's wrong predictions land")
plt.show()

# %% [md]
# Read a row from left to right. The background column is never empty, but what is
# not on the background is not spread evenly over the other 20 columns either: it
# piles up in a few of them, the keypoints that look alike or sit where the model
# expects a finger to be. Not every keypoint is confused alike; the share of each
# one's wrong predictions that land on another keypoint:

# %%
share_on_other = landing.confusion[:, :-1].sum(1) / landing.confusion.sum(1).clamp_min(1)  # (K,)
order = share_on_other.argsort()
print("most often on the background:", ", ".join(f"{skeleton.names[i]} {share_on_other[i]:.2f}" for i in order[:3]))
print("most often on another keypoint:", ", ".join(f"{skeleton.names[i]} {share_on_other[i]:.2f}" for i in order[-3:]))

# %% [md]
# ## 4 · The density of one keypoint's wrong predictions
#
# The paper's Fig. 3 draws the wrong predictions of one keypoint as a spatial
# density. `rk.density.error_density` is the histogram of where keypoint k was
# predicted wrongly over the whole test set, smoothed by one cell and normalised to
# sum 1; `rk.density.mean_image` is the average target image, the backdrop. On the
# left, for reference, the same density of the *true* positions of all keypoints:
# where the hands are.

# %%
k = skeleton.index("index_tip")
mean_target = rk.density.mean_image(images)
fig, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
rk.viz.plot_error_density(rk.density.position_density(gt, visible, None, map_size), mean_target, ax=axes[0],
                          title="where the keypoints are (true positions)", label="share of keypoints per cell")
rk.viz.plot_error_density(rk.density.error_density(pred, wrong, k, map_size), mean_target, ax=axes[1],
                          title=f"where {skeleton.names[k]}'s {int(wrong[:, k].sum())} wrong predictions land")
plt.show()

# %% [md]
# Over many images the hands overlap, so the mean image is a blur and the density
# is too. One image at a time shows what the density is made of. Here are the
# first six wrong predictions of the index tip in the test set (not picked by
# hand): the white circle is the truth, the red cross the prediction, and the title
# says where the prediction landed.

# %%
names = list(skeleton.names) + ["background"]
examples = wrong[:, k].nonzero()[:6, 0]
fig, axes = plt.subplots(1, len(examples), figsize=(2.6 * len(examples), 2.9), layout="constrained")
for ax, b in zip(axes, examples):
    rk.viz.plot_mistake(images[b], keypoints[b], visible[b], pred[b, k] * stride, k, skeleton, ax=ax,
                        title=f"→ {names[landing.landing[b, k]]}")
fig.suptitle(f"The first wrong predictions of {skeleton.names[k]}: truth ○ → prediction ×, and where it landed")
plt.show()

# %% [md]
# ### Explore
#
# Pick another keypoint: the fingertips, the joints of the middle fingers, the
# wrist. Whose wrong predictions stay on the hand, whose scatter onto the
# background?

# %%
# NBVAL_IGNORE_OUTPUT
ErrorDensityExplorer(pred, wrong, mean_target, skeleton, map_size, keypoint=k)

# %% [md]
# ## 5 · Bodies: the left for the right
#
# Human bodies are symmetric, so a natural confusion is a joint's mirror twin:
# the left knee for the right knee. The shipped source-only body model was
# trained on the *synthetic* body domain (SURREAL-like) and is tested on the
# *lab* domain (Human3.6M-like). Same steps as for hands.

# %%
body_model, body_cfg = rk.pretrained.load_source_only("bodies", retrain=RETRAIN)
body_skeleton = SKELETONS[body_cfg.task]
body_images, body_keypoints, body_visible = make_dataset(
    body_cfg.task, body_cfg.target_domain, "test", body_cfg.image_size, N_TARGET, seed=0
).tensors()
body_logits = rk.density.predict(body_model, body_images)
body_pred, _ = rk.heatmaps.decode(body_logits)
body_gt = body_keypoints / stride  # the body model has the same sizes: 128 px images, 32 x 32 heatmaps
body_landing = rk.metrics.error_landing(body_pred, body_gt, body_visible, radius, body_skeleton, map_size=map_size)
body_wrong = body_landing.landing >= 0
print(f"bodies: {body_cfg.source_domain} → {body_cfg.target_domain}, "
      f"PCK@0.05 {100 * rk.metrics.pck(body_pred, body_gt, body_visible, radius, body_skeleton).all:.1f} %")
print(f"{body_landing.n_wrong} wrong predictions: {body_landing.on_other:.2f} on another keypoint "
      f"(chance {body_landing.chance:.2f}, {body_landing.ratio_to_chance:.1f} x), "
      f"{body_landing.on_background:.2f} on the background")

# %% [md]
# `rk.density.twin_share` reads the left/right confusion from the landing matrix:
# the share of a joint's wrong predictions that land on its twin
# (`BODY16.flip_pairs`). `rk.density.twin_chance` is the same share for wrong
# predictions thrown uniformly on the map.

# %%
twins = rk.density.twin_share(body_landing.confusion, body_skeleton.flip_pairs)
twin_chance = rk.density.twin_chance(body_gt, body_visible, body_wrong, body_skeleton.flip_pairs, radius, map_size)
print(f"{'pair':<26}{'right → left':>14}{'left → right':>14}")
for right, left in body_skeleton.flip_pairs:
    pair = f"{body_skeleton.names[right]} / {body_skeleton.names[left]}"
    print(f"{pair:<26}{twins.per_keypoint[right]:>14.2f}{twins.per_keypoint[left]:>14.2f}")
print(f"\nall paired joints: {twins.overall:.3f} of the wrong predictions land on the twin "
      f"(chance {twin_chance:.3f}, {twins.overall / twin_chance:.0f} x);")
print(f"of those that land on another keypoint, {twins.among_on_other:.2f} land on the twin")

# %%
# NBVAL_CHECK_OUTPUT
part = rk.metrics.error_landing(body_pred[:N_CHECKED], body_gt[:N_CHECKED], body_visible[:N_CHECKED], radius,
                                map_size=map_size)
part_twins = rk.density.twin_share(part.confusion, body_skeleton.flip_pairs)
print(f"first {N_CHECKED} target images: {part.n_wrong} wrong predictions, {part.on_other:.2f} on another "
      f"keypoint (chance {part.chance:.2f}), {part_twins.overall:.2f} on the twin")

# %%
# Weaker than for hands (see the text below), but the left/right confusion is strong.
assert body_landing.on_other >= 2 * body_landing.chance
assert twins.overall >= 5 * twin_chance
print("body joints are mistaken for other joints, above all for their mirror twins")

# %% [md]
# The body model's errors are less sparse than the hands': a smaller share lands
# on another keypoint, and more land on the background. Body keypoints lie far
# apart compared with the landing radius, and the lab domain's dim clothes on a
# dim wall make the figure itself hard to find for a model that has only seen
# synthetic bodies (`docs/synthetic_domains.md` measures this). Among the errors
# that do land on a keypoint, the mirror twin stands out (the table above says for
# which pairs most). In the confusion matrix it shows as bright cells off the
# diagonal, in the twin's column:

# %%
fig, axes = plt.subplots(1, 2, figsize=(15, 5.2), layout="constrained", width_ratios=(1.35, 1))
rk.viz.plot_confusion(body_landing.confusion, body_skeleton, ax=axes[0],
                      title="Bodies, target domain: where each joint's wrong predictions land")
rk.viz.plot_landing_shares({f"hands: {cfg.source_domain} → {cfg.target_domain}": landing,
                            f"bodies: {body_cfg.source_domain} → {body_cfg.target_domain}": body_landing},
                           ax=axes[1], title="Wrong target predictions on another keypoint")
plt.show()

# %% [md]
# Pick `l_knee`, then `r_knee`, then the pair the table above found most confused:
# where do each one's wrong predictions gather?

# %%
# NBVAL_IGNORE_OUTPUT
ErrorDensityExplorer(body_pred, body_wrong, rk.density.mean_image(body_images), body_skeleton, map_size,
                     keypoint=body_skeleton.index("l_knee"))

# %% [md]
# ## Summary
#
# * A source-only model loses accuracy on the target domain, and its wrong
#   predictions are not spread over the image: for hands most of them land **on
#   another keypoint**, many times the share chance would give (the paper's Fig. 1).
# * In each image, a keypoint's wrong prediction sits on one of a few small places,
#   the other keypoints; over the test set they gather on the hands, not on the
#   background (Fig. 3).
# * For bodies, more mistakes land on the background, but of those that land on a
#   keypoint, a large part land on the joint's mirror twin.
# * So an adversarial regressor `f′` that wants to imitate the main head's
#   mistakes should not search the whole image: it should look at the other
#   keypoints. Notebook 02 builds exactly that target, the ground-false
#   distribution `P_F`.
#
# ## Exercises
#
# 1. Change the landing radius to 0.1 × 32 = 3.2 cells (PCK@0.1). Which share
#    grows faster, "on another keypoint" or its chance? Why?
# 2. Compute `error_landing` on the *source* test set (`src_pred`). Are the
#    source model's few mistakes sparse too?
# 3. Using `landing.confusion`, find for each fingertip the keypoint its wrong
#    predictions land on most often. Same finger or same joint of another finger?
