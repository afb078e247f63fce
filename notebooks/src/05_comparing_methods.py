# %% [md]
# # 05 · Comparing methods: the paper's Tables 1 and 2 on synthetic domains
#
# The RegDA paper compares its method with four domain-adaptation methods
# adapted to keypoints (DAN, DANN, MCD, DD; Table 1) and ablates its two
# minimisations (Table 2). On RHD → H3D it finds the feature-alignment
# methods *below* the source-only model, DD above it, and RegDA well above DD.
# Here the same comparison runs on the synthetic tasks of `regdakit`.
#
# **The protocol.** `benchmarks/comparison_v2.py` adapts this version's shipped
# source-only models (one per seed) with every method for the same number of
# iterations, with the same optimiser and rates; only the objective differs.
# Every method with a trade-off gets the same small grid on a tuning seed that
# is never reported, and the choice reads no target label: the candidates that
# keep the source-validation PCK within a margin of the pre-trained model are
# kept, then the entropy of the heatmaps on unlabelled target images decides.
# Beside source only stand two baselines of the same budget: **continue-ERM**
# (the same extra iterations of plain source training) and the **control**
# (RegDA's schedule with the game switched off); the oracle and the target
# fine-tune (both with target labels) mark the top of the scale. Each run
# reports the mean of its last evaluations, each row the mean over seeds with
# a 95 % t-interval, and differences are paired by seed.
#
# **What you will see.** (1) What each method optimises. (2) Tables 1 and 2
# as committed, with the protocol's settings. (3) Each method's paired
# difference with continue-ERM and with the control. (4) The gap closed and
# the paper's order, pair by pair. (5) How each trade-off was chosen. (6) A
# small live re-run. (A) The first version's tables, and why they were
# replaced.

# %%
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import regdakit as rk
from regdakit.stats import format_interval  # "mean [low, high]", as the committed tables print it

# The committed results ship with the package (benchmarks/results/ in the repository).
v2 = rk.resources.read_json("results/comparison_v2/comparison_v2.json")
report = rk.comparison.markdown_sections(rk.resources.path("results/comparison_v2/comparison_v2.md").read_text())
TASKS = ["hands", "bodies"]


def show_sections(prefix):
    """Display the sections of the committed report whose heading starts with ``prefix``."""
    for heading, text in report.items():
        if heading.startswith(prefix):
            display(Markdown(text))

# %% [md]
# ## 1 · What each method does on the target
#
# `ψ` are the features, `f` the main head, `f′` a second head, `D` a domain
# discriminator. Every method also keeps training `f` on labelled source images.
#
# | method | adversary | what the adversary does | what `ψ` does |
# |---|---|---|---|
# | DAN (`methods.dan`) | none | — | minimises the multi-kernel MMD between pooled source and target features |
# | DANN (`methods.dann`) | `D` on pooled `ψ` | tells source from target | fools `D` (gradient reversal) |
# | MCD (`methods.mcd`) | `f` and `f′` | maximise the L1 distance between their heatmaps on the target | minimises it |
# | DD (`methods.dd`) | `f′` | moves its mass `m` off `f`'s prediction: minimises `−log(1 − m)`, bounded | minimises `−log m` |
# | RegDA (`methods.regda`) | `f′` | **minimises** `L_F`: points at the ground-false places | minimises `L_T` |
#
# The paper's DD row **maximises** `L_T`, the KL between `f′` and `f`'s
# prediction, without bound; on these tasks that diverges (the first version's
# tables in the appendix), so `methods.dd` plays DD's game with a saturating
# adversary, in the spirit of MDD, and the paper's form is the labelled variant
# `dd_unbounded`. Notebook 03 showed why DD and RegDA differ: pushing `f′` away
# from `f`'s prediction mostly spreads its distribution (its variance), while
# RegDA's minimisation of `L_F` moves its mass (its mean) onto the keypoints
# `f` confuses.

# %% [md]
# ## 2 · Tables 1 and 2
#
# The committed report of `benchmarks/comparison_v2.py`, as it formatted it:
# its settings first (budget, seeds, tuning seed, wall time), then per task
# target PCK with 95 % t-intervals, the source PCK (how much of the source task
# each method kept), the paired differences with source only, continue-ERM and
# the control, and the paper's numbers under the name of their own benchmark
# (a different, real one, with ResNet-101: compare orders, not values).

# %%
show_sections("Tables 1 and 2")
for task in TASKS:
    show_sections(f"{task} (target")

# %% [md]
# ## 3 · What the method adds, seed by seed
#
# A difference between two rows is measured on the same seeds (the same
# source-only model), so the spread between seeds, large on hands, cancels.
# Against **continue-ERM** a method must beat what more training alone does;
# against the **control** what RegDA's schedule does without its game. An
# interval that excludes 0 (blue) is a difference the seeds support.

# %%
baselines = ("continue", "control")
# The methods and the same-budget baselines; the oracle's and the fine-tune's tens of points would squeeze the rest.
METHOD_ROWS = ["source_only", "continue", "control", "dan", "dann", "mcd", "dd", "false_max", "regda"]
fig, axes = plt.subplots(len(TASKS), len(baselines), figsize=(14, 3.2 * len(TASKS)), squeeze=False)
for row, task in zip(axes, TASKS):
    for ax, base in zip(row, baselines):
        try:
            rk.comparison.plot_paired_differences(v2, task, base, rows=METHOD_ROWS, ax=ax)
        except ValueError as err:  # a task or baseline still to run
            ax.set_axis_off()
            ax.text(0.5, 0.5, f"{task} minus {base}: not in the committed results yet", ha="center")
            print(err)
fig.tight_layout()

# %% [md]
# ### Over the budget
#
# Each reported number is the mean of a run's last three evaluations. The
# curves below show the whole adaptation: each row's target PCK at every
# evaluation minus the source-only model its seed starts from (so that the
# rows of three seeds and of five compare), the mean over seeds thick, every
# seed thin (`benchmarks/comparison_v2_curves.py`).

# %%
curves = rk.resources.read_json("results/comparison_v2/curves.json")
CURVE_ROWS = ["continue", "control", "dan", "dann", "mcd", "dd", "false_max", "regda"]
# One y-axis for both tasks: how little bodies moves is part of the story.
fig, axes = plt.subplots(1, len(TASKS), figsize=(14, 4.2), sharey=True, squeeze=False)
for ax, task in zip(axes[0], TASKS):
    source_only = v2["tasks"][task]["rows"]["source_only"]
    start = dict(zip(source_only["seeds"], source_only["target"]["pck@0.05/all"]["values"]))
    rk.comparison.plot_learning_curves(curves, task, rows=CURVE_ROWS, start=start, ax=ax)
fig.tight_layout()

# %% [md]
# * **The control's gain comes at once, RegDA's game adds over time.** On
#   hands the control is about 6 points above its start at the first
#   evaluation (iteration 80) and no higher at the end: what target batches
#   through BatchNorm give, they give at once. RegDA starts within a point of
#   the control and ends about 6 points above it.
# * DANN and DAN are at their highest at the last evaluation: if anything, the
#   budget understates their lead on hands.
# * On bodies continue-ERM, the control and RegDA stay within about a point of
#   where they start at every evaluation, and no method without target labels
#   moves its mean by more than 3.5 points.

# %% [md]
# The goals the fair-comparison issue set, judged on the committed numbers
# (`met` None: not measured yet):

# %%
for task in TASKS:
    show_sections(f"{task}: the issue's goals")

# %% [md]
# ## 4 · The gap closed, and the paper's order pair by pair
#
# `(X − source only) / (reference − source only)`: 0 is no better than not
# adapting, 1 as good as the reference, the stronger of the oracle and the
# target fine-tune. Then each pair of rows the paper orders: does the measured
# paired difference agree, with its interval excluding 0?

# %%
for task in TASKS:
    show_sections(f"{task}: gap closed")
    show_sections(f"{task}: the paper's order")

# %% [md]
# ### What the tables show
#
# The rows of the same budget (source only, continue-ERM, the control and
# RegDA) are complete on five seeds:
#
# * **Hands.** RegDA is above the control by about 6 points and above
#   continue-ERM by about 12, on every seed, with both intervals excluding 0:
#   the first two goals are met. The control is itself about 6 points
#   above continue-ERM, so RegDA's schedule without its game (target batches
#   through BatchNorm, the second head, another optimiser) accounts for about
#   half of RegDA's gain over more training; the game adds the other half.
# * **The gap closed on hands** is 0.17 of the way to the oracle, short of the
#   issue's goal of 0.30 (the paper reports 31 % on RHD → H3D), and 0.3 of the
#   way to the target fine-tune. The paper's order "RegDA above source only"
#   holds on hands with its interval excluding 0.
# * **Bodies.** No row of the same budget moves the lab target by as much as a
#   point from the source-only model. RegDA is above the control by less than
#   a point (interval excluding 0) and not above continue-ERM (interval
#   containing 0): on bodies the goals are not met, and the paper's order
#   "RegDA above source only" is undecided.
# * No method without target labels lost more than 10 points of source PCK;
#   the target fine-tune does on every seed, as training on the target alone
#   should.
#
# **Table 1 on hands** is complete (three seeds for the other methods), and it
# does not follow the paper:
#
# * The feature-alignment methods, which the paper finds *below* source only,
#   are the best rows here: DANN is about 14 points above RegDA and DAN about
#   9, with the paired intervals below 0; DANN closes about 0.36 of the gap to
#   the oracle, the only method past the 0.30.
# * The bounded DD and RegDA cannot be told apart (the interval of their
#   difference holds 0); MCD is below RegDA by about 3 points.
# * Table 2's three ways to play the game (RegDA, its reversed variant and
#   DD) are within 2 points of each other, every interval holding 0: on hands
#   the choice of minimising or maximising makes no measurable difference.
# * A reason consistent with notebook 01's measurements, not a proof: on hands
#   half of the source-only model's wrong target predictions leave the hand,
#   and they land on another keypoint *less* often than chance. The shift is
#   mostly one of appearance, which aligning the features addresses, and not
#   the confusion between keypoints that RegDA's ground-false distribution is
#   built for.
# * What RegDA changed on hands is where its errors go. Measured on the final
#   weights of each run (`benchmarks/landing_after_adaptation.py`, printed
#   below): the share of wrong predictions that leave the hand falls from about
#   0.51 for source only to 0.43 for RegDA, about 0.10 below the control's with
#   its paired interval excluding 0, and more of RegDA's errors land on another
#   keypoint (0.43 against 0.36). On bodies, where 0.68 of the errors already
#   land on another keypoint (about twice the strongest chance model), RegDA
#   moves that share by less than a hundredth against every baseline, each
#   interval holding 0.
#
# **Table 1 on bodies** (three seeds for the other methods) shows no method
# that adapts:
#
# * Every method ends within 3 points of the source-only model, and none is
#   above continue-ERM with an interval excluding 0.
# * Only MCD (about 2 points) and the reversed Table-2 variant (about 2.5) are
#   above source only with intervals excluding 0; MCD pays for it with the
#   largest loss of source PCK of the methods without target labels, about 2
#   points.
# * Of the 28 pairs the paper orders on RHD → H3D, 10 agree: the oracle above
#   every method, and the reversed variant above source only, DAN and DANN.
#   Three disagree, all because MCD is above source only, DAN and DANN, where
#   the paper has it below; the other 15 are undecided, Table 2's three pairs
#   among them.
#
# `tests/test_notebook_05.py` checks every sentence of this section against
# the committed report and fails when a new report contradicts one. The cell
# below lists any row with fewer seeds than planned.

# %%
# NBVAL_CHECK_OUTPUT
landing = rk.resources.read_json("results/landing_after_adaptation.json")
print("wrong target predictions of the final weights, mean [95 % t-interval] over seeds", landing["seeds"])
for task, entry in landing["tasks"].items():
    print(f"{task + ' -> ' + entry['target']:<30}{'on another keypoint':>25}{'off the object':>25}")
    for row, r in entry["rows"].items():
        on_other = format_interval(r["landing_on_other"], 2)
        off = format_interval(r["wrong_off_object"], 2)
        print(f"  {rk.comparison.LABELS[row]:<28}{on_other:>25}{off:>25}")
    for base, d in entry["regda_minus"].items():
        name = "RegDA - " + rk.comparison.LABELS[base]
        on_other = format_interval(d["landing_on_other"], 3, signed=True)  # 3 decimals: bodies' are tiny
        off = format_interval(d["wrong_off_object"], 3, signed=True)
        print(f"  {name:<28}{on_other:>25}{off:>25}")

# %%
CORE_ROWS = ("source_only", "continue", "control", "regda")  # five seeds; the other methods three
for task in TASKS:
    rows, missing = v2["tasks"][task]["rows"], []
    for row in METHOD_ROWS:
        planned = v2["settings"]["seeds" if row in CORE_ROWS else "baseline_seeds"]
        done = len(set(rows.get(row, {}).get("seeds", [])) & set(planned))
        if done < len(planned):
            missing.append(f"{rk.comparison.LABELS.get(row, row)} ({done} of {len(planned)} seeds)")
    print(f"{task}: still to run: {', '.join(missing) or 'none'}")
print(f"{v2['jobs_done']} of {v2['jobs_planned']} jobs done")

# %% [md]
# ## 5 · How each trade-off was chosen
#
# The grid ran on the tuning seed only. A candidate is kept when its
# source-validation PCK stays within the margin of the pre-trained model's;
# among those kept, the label-free validator decides. No target label is read,
# so the chosen trade-off can be a poor one for the target: that is the price
# of an honest protocol, and the same for every method.

# %%
for task in TASKS:
    show_sections(f"{task}: tuning")

# %% [md]
# ## 6 · A small live re-run
#
# The committed tables took hours on two CPU cores (the wall time is in their
# settings above). Here
# each method adapts this version's shipped source-only hand model for a few
# iterations (30 at full size, a handful under `make test`) with the `cpu-bench`
# settings of this version: every method through the same trainer, from the
# same model, with the same optimiser. What such a run can show is what each
# method's steps log and how far each moves the source task at these rates
# (continue-ERM, with no method, is the reference); it cannot rank the methods
# on the target (one short run of one seed is
# what the tables average away), so the cell prints no target number.

# %%
OUT = Path(tempfile.mkdtemp(prefix="regdakit-05-"))
checkpoint, _ = rk.pretrained.source_only_files("hands")
ITERATIONS = rk.runtime.pick(30, 4)
live = {}
for method in ["continue", "dan", "dann", "mcd", "dd", "regda"]:
    cfg = rk.train.make_config(
        rk.pretrained.PRESET, task="hands", method=method, out=str(OUT), init_checkpoint=str(checkpoint),
        adapt_iterations=ITERATIONS, eval_every=ITERATIONS, checkpoint_every=ITERATIONS,
        eval_size=rk.runtime.pick(256, 32), device="cpu",
    )
    live[method] = rk.train.train(cfg, progress=False)
model, _, _ = rk.train.load_checkpoint(checkpoint, "cpu")
eval_sets = rk.train.make_eval_sets(cfg)  # the same source validation images as the runs above
source_only = rk.train.evaluate(model, eval_sets["source_val"], rk.HAND21)["pck@0.05/all"]
print(f"{'':<14}source val PCK@0.05 after {ITERATIONS} iterations (source only: {100 * source_only:.1f} %); "
      "what its steps log")
for method, result in live.items():
    logged = [r for r in rk.runs.read_log(result["run_dir"]) if "train" in r][-1]["train"]
    name = rk.comparison.LABELS.get(method, "continue-ERM")
    print(f"{name:<14}{100 * result['metrics']['source_val']['pck@0.05/all']:5.1f} %   {', '.join(sorted(logged))}")

# %% [md]
# ## A · The first version's tables
#
# The committed tables below are the **first version's**: the seed-0
# source-only models (σ = 2 cells, 600 iterations, about 25 % source PCK), the
# reference's adaptation rates, DD's unbounded adversary, DANN at trade-off 1
# and each run's last evaluation, every method from the same model of a seed.
# The fair-comparison-v2 issue found that DD's and DANN's collapses below are
# artefacts of that configuration (DD maximises a KL without bound; DANN's
# reversal is at full weight) and set the protocol above. They are kept as a
# record, and for what they show about choosing a checkpoint without labels.

# %%
table1 = rk.comparison.load_table(rk.resources.path("results/table1_synthetic.json"))
table2 = rk.comparison.load_table(rk.resources.path("results/table2_synthetic.json"))

# %% [md]
# ### A.1 · Table 1, measured
#
# Target PCK@0.05 and @0.1 (%, all keypoints), mean ± std over three seeds,
# from `benchmarks/results/table1_synthetic.json` (the command that produced
# it is printed first). The paper's column is the real benchmark each task
# stands in for (`rk.comparison.PAPER_BENCHMARK_OF`, named in each header):
# RHD → H3D for hands, SURREAL → Human3.6M for bodies (whose paper rows are
# only source only, RegDA and the oracle), with ResNet-101, a 40× larger
# network, so compare orderings, not values.

# %%
# NBVAL_CHECK_OUTPUT
print(table1["provenance"]["command"], "| preset", table1["preset_name"], "| seeds", table1["seeds"])
PAPER_TARGET = {"hands": "studio", "bodies": "lab"}  # the first version's target of each task
for task in TASKS:
    pck = table1["tasks"][task]["pck"]
    benchmark = rk.comparison.PAPER_BENCHMARK_OF[task, PAPER_TARGET[task]]
    paper = rk.comparison.PAPER_BENCHMARKS[benchmark]
    print(f"\n{task:<14}{'PCK@0.05':>16}{'PCK@0.1':>16}   paper @0.05, {benchmark}")
    for row in table1["rows"]:
        if row not in pck:
            print(f"{rk.comparison.LABELS[row]:<14}{'not run':>16}")
            continue
        a, b = pck[row]["pck@0.05/all"], pck[row]["pck@0.1/all"]
        print(f"{rk.comparison.LABELS[row]:<14}{a['mean']:10.1f} ± {a['std']:3.1f}{b['mean']:10.1f} ± {b['std']:3.1f}"
              + (f"{paper[row]:9.1f}" if row in paper else f"{'–':>9}"))

# %% [md]
# ### A.2 · One scale: the gap closed
#
# `(X − source only) / (oracle − source only)`: 0 is no better than not
# adapting, 1 is as good as training on labelled target images, below 0 is
# harm. Each seed is measured against its own source-only model and oracle
# (dots); bars are the mean with its standard deviation; diamonds are the
# paper's RHD → H3D values on the same scale.

# %%
methods = [m for m in ("dan", "dann", "mcd", "dd", "regda") if all(m in t["pck"] for t in table1["tasks"].values())]
rk.comparison.plot_gap_closed(table1, methods)
plt.title("Table 1: fraction of the source-only → oracle gap closed");

# %% [md]
# ### A.3 · Does the paper's ordering hold?
#
# Two checks from the committed numbers: how many *pairs* of methods are
# ordered as in the paper's benchmark of the task (mean PCK@0.05, source only
# and oracle included; the bodies benchmark has three rows, so three pairs),
# and, per baseline, in how many seeds RegDA beats it.

# %%
# NBVAL_CHECK_OUTPUT
for task in TASKS:
    pck = table1["tasks"][task]["pck"]
    means = {row: pck[row]["pck@0.05/all"]["mean"] for row in pck}
    benchmark = rk.comparison.PAPER_BENCHMARK_OF[task, PAPER_TARGET[task]]
    agree, pairs = rk.comparison.pairwise_agreement(means, rk.comparison.PAPER_BENCHMARKS[benchmark])
    order = " > ".join(rk.comparison.LABELS[r] for r in sorted(means, key=means.get, reverse=True))
    print(f"{task}: {order}")
    print(f"  pairs ordered as in the paper ({benchmark}): {agree} of {pairs}")
    regda_seeds = pck["regda"]["pck@0.05/all"]["per_seed"]
    for row in (r for r in ("source_only", "dan", "dann", "mcd", "dd") if r in pck):
        other = pck[row]["pck@0.05/all"]["per_seed"]
        wins = sum(r > o for r, o in zip(regda_seeds, other))
        print(f"  RegDA above {rk.comparison.LABELS[row]:<12} in {wins} of {len(other)} seeds")

# %% [md]
# ### A.4 · Table 2: which minimisation matters
#
# Three ways to play the game with `f′`, all with RegDA's schedule:
# DD's (`f′` maximises `L_T`), the reversed roles (`f′` minimises `L_F`, `ψ`
# *maximises* `L_F`: push the features away from the ground-false places), and
# RegDA's (`f′` minimises `L_F`, `ψ` minimises `L_T`). The paper, on RHD → H3D
# only: 65.2, 66.5, 72.5 (its bodies benchmark reports RegDA alone).

# %%
# NBVAL_CHECK_OUTPUT
for task in TASKS:
    pck = table2["tasks"][task]["pck"]
    benchmark = rk.comparison.PAPER_BENCHMARK_OF[task, PAPER_TARGET[task]]
    paper = rk.comparison.PAPER_BENCHMARKS[benchmark]
    print(f"{task} (paper: {benchmark})")
    for row in table2["rows"]:
        a = pck[row]["pck@0.05/all"]
        print(f"  {rk.comparison.LABELS[row]:<24}{a['mean']:6.1f} ± {a['std']:3.1f}   per seed {a['per_seed']}"
              f"   paper {paper[row] if row in paper else '–'}")

# %%
fig, axes = plt.subplots(1, len(TASKS), figsize=(11, 3.5), sharey=True)
for ax, task in zip(axes, TASKS):
    pck = table2["tasks"][task]["pck"]
    rows = table2["rows"]
    means = [pck[r]["pck@0.05/all"]["mean"] for r in rows]
    stds = [pck[r]["pck@0.05/all"]["std"] for r in rows]
    ax.bar(range(len(rows)), means, yerr=stds, capsize=4, color=["tab:gray", "tab:olive", "tab:green"])
    for i, r in enumerate(rows):
        ax.plot([i] * len(pck[r]["pck@0.05/all"]["per_seed"]), pck[r]["pck@0.05/all"]["per_seed"], "k.")
    source = table1["tasks"][task]["pck"]["source_only"]["pck@0.05/all"]["mean"]
    ax.axhline(source, ls="--", c="grey", lw=1, label="source only")
    ax.set_xticks(range(len(rows)), ["f′ max L_T\nψ min L_T (DD)", "f′ min L_F\nψ max L_F", "f′ min L_F\nψ min L_T (RegDA)"])
    ax.set_title(task)
    ax.legend(fontsize=8)
axes[0].set_ylabel("target PCK@0.05 (%)")
fig.tight_layout()

# %% [md]
# ### A.5 · Choosing a checkpoint without target labels
#
# A real user has no target labels, so "the last iteration" or a
# **label-free validator** must choose the model. Each run kept a snapshot
# every 50 iterations; `regdakit.selection` scores each with
#
# * `source_pck`: PCK on the labelled *source* validation set;
# * `neg_entropy`: how peaked `f`'s heatmaps are on unlabelled target images;
# * `head_agreement`: how often `f` and `f′` decode to the same place on
#   unlabelled target images (methods with `f′` only).
#
# The last column picks with the target test labels: it is **not a valid
# unsupervised protocol**, only the ceiling of what any selection could gain.

# %%
# NBVAL_CHECK_OUTPUT
for task in TASKS:
    selection = table1["tasks"][task]["selection"]
    rules = list(next(iter(selection.values())))
    print(task, "| target PCK@0.05 of the picked snapshot, mean over seeds")
    print(f"  {'':<14}" + "".join(f"{r.split(' (')[0]:>16}" for r in rules))
    for method, picks in selection.items():
        cells = "".join(f"{picks[r]['mean']:16.1f}" if r in picks else f"{'n/a':>16}" for r in rules)
        print(f"  {rk.comparison.LABELS[method]:<14}{cells}")

# %%
fig, axes = plt.subplots(1, len(TASKS), figsize=(13, 4.6))
for ax, task in zip(axes, TASKS):
    rk.comparison.plot_selection(table1, task, ax=ax)
fig.tight_layout()

# %% [md]
# ### A.6 · What the first version's ordering does and does not show
#
# **What holds.** RegDA beats source only, MCD and DD on both tasks, and the
# ablation keeps the paper's verdict: with `f′` pulled to the ground-false
# places (min `L_F`), letting `ψ` minimise `L_T` is better than making it
# maximise `L_F`, and both beat DD's maximisation of `L_T` on hands, where DD
# fails outright. On bodies DD and the reversed variant are within a standard
# deviation of each other, so their order there is not measured.
#
# **What does not.** The paper finds DAN and DANN *below* source only on
# RHD → H3D. Here DAN (MMD on pooled features) is far above it and level with
# RegDA — best of all on bodies by half a point, less than one standard
# deviation — while DANN and DD (on hands) collapse far below it. Their
# collapse is not a subtle loss of target accuracy: the features break, and
# even the *source* validation PCK of the last snapshot falls to a few
# percent, where every other method keeps 17–35 %. Adversarial games against
# an unbounded objective (DD's maximised KL) or at full strength after 200
# iterations (DANN's reversal weight reaches ~1) are fragile at this budget;
# RegDA's warm-started, bounded minimisations are not.
#
# **What these numbers cannot show.** A tiny network trained from scratch for
# minutes, 200 adaptation iterations, one synthetic shift per task, three
# seeds: several pairs overlap within their standard deviations. Every
# baseline runs at RegDA's optimiser and rates with trade-off 1; none was
# tuned (the paper does not give its baselines' settings), and DAN's and
# DANN's use of *pooled* features is this library's adaptation, not the
# paper's. So read the tables as "which objectives survive the same budget",
# not as the paper's Table 1 at small scale.
#
# **Selection.** Source-validation PCK picked a better snapshot than the
# last one only for RegDA on hands; the target entropy did in most runs (on bodies it found the
# oracle's pick for DD, MCD and DAN), but not always. RegDA was re-run with
# snapshots for hands only (reproducing the trainer benchmark's runs exactly);
# its bodies rows come from that benchmark, which kept no intermediate
# snapshots, so RegDA has a selection row for hands only.
#
# `tests/test_notebook_05.py` checks every claim of this section on the
# committed numbers: if a re-run of the benchmark changes them, the test fails
# instead of leaving the prose wrong. The cell below checks the first one.

# %%
# NBVAL_CHECK_OUTPUT
def mean_pck(table, task, row):
    return table["tasks"][task]["pck"][row]["pck@0.05/all"]["mean"]


for task in TASKS:
    for row in ("source_only", "mcd", "dd"):
        assert mean_pck(table1, task, "regda") > mean_pck(table1, task, row), (task, row)
    print(f"{task}: RegDA {mean_pck(table1, task, 'regda'):.1f} > source only, MCD, DD "
          f"({max(mean_pck(table1, task, r) for r in ('source_only', 'mcd', 'dd')):.1f} at best)")

# %% [md]
# ## Summary
#
# * Every method adapts the same shipped source-only model of a seed with one
#   budget and one optimiser, and every trade-off is tuned alike without target
#   labels; only the objective differs, so the tables compare objectives.
# * The fair baselines are continue-ERM (more training alone) and the control
#   (RegDA's schedule without its game), compared seed by seed with 95 %
#   intervals; the report says whether it is complete, and its goals (section
#   3) which of the fair-comparison issue's claims the numbers support.
# * On hands RegDA beats both over five seeds (about 6 points above the
#   control), yet closes only 0.17 of the gap to the oracle, and DANN and DAN,
#   tuned alike, are far above it; on bodies nothing of the same budget,
#   RegDA included, moves the target by a point.
# * The first version (appendix: seed-0 models, unbounded DD, DANN at full
#   weight, untuned, last evaluations) found what the v2 protocol re-examines:
#   RegDA above source only, MCD and DD on both synthetic tasks, and Table 2
#   with the paper's verdict (`f′` minimising `L_F` with `ψ` minimising `L_T`
#   the best of the three ways to play the game); DAN level with RegDA, and
#   DANN (and DD on hands) collapsed below the source-only model.
# * Without target labels a checkpoint must be chosen by a validator; in the
#   first version the target entropy beat the last snapshot in most runs, the
#   source PCK rarely, and the target-label pick is a ceiling, not a protocol.
#
# ## Exercises
#
# 1. In section 6, which loss keys does each method log, and which step of
#    RegDA's A/B/C vocabulary (`rk.methods.contract`) does each belong to?
# 2. Re-run section 6 for `"dd_unbounded"` and `"dd"` only, with
#    `ITERATIONS = 100`, and print `live[m]["metrics"]["source_val"]`. Does the
#    unbounded adversary of the first version break the source task, as in
#    Table 1, and the bounded one not?
# 3. In the first version's tables,
#    `table1["tasks"][task]["validator_scores_at_last"][method]["neg_entropy"]`
#    holds each seed's entropy score at the last iteration. Do the methods with
#    the highest scores also have the highest target PCK?
