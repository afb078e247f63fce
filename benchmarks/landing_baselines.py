"""Where a source-only model's errors land, against honest chance models, on its source and its target domain.

For each task's shipped source-only model (:func:`regdakit.pretrained.load_source_only`), on the fixed
source validation set and the fixed target test set of the trainer (seed 0, ``--n`` images each):

* PCK@0.05 (radius 0.05 x heatmap side) and the share of wrong predictions that land on another keypoint,
  beside three chance models of the same wrong predictions (:func:`regdakit.metrics.landing_chance`):
  (a) uniform over the map, (b) uniform inside the keypoints' bounding box, (c) the prediction's own error
  vector turned to every direction; the ratio to the strongest of them;
* ``P_F``'s coverage of wrong and of correct predictions (50 % highest-density region of the ground-false
  map built from ``f``'s own predictions, as RegDA trains with; :func:`regdakit.density.ground_false_discrimination`),
  and the mean share of the map that region covers.

    python benchmarks/landing_baselines.py [--n 256] [--tasks hands bodies]

Writes ``benchmarks/results/landing_baselines.json``. The goal of the teaching-benchmark-v2 issue: on every
target, landing >= 1.5 x the strongest chance model and more than on the source domain.
"""

from __future__ import annotations

import argparse

import torch
from _record import write

from regdakit import density, pretrained
from regdakit.data.synthetic import GENERATOR_VERSION, make_dataset
from regdakit.disparity import pseudo_labels
from regdakit.heatmaps import decode
from regdakit.metrics import inside_keypoint_box, landing_chance, pck, pck_threshold


def _sigma(cfg) -> float:
    """The heatmap width the model was trained with (one setting in newer configs, regda.sigma before)."""
    return float(getattr(cfg, "sigma", None) or cfg.regda.sigma)


def analyse(model, cfg, domain: str, split: str, n: int) -> dict:
    """PCK, landing against chance and P_F's discrimination of one model on one fixed set."""
    images, keypoints, visible = make_dataset(cfg.task, domain, split, cfg.image_size, n, seed=0).tensors()
    logits = density.predict(model, images)  # (N, K, H, W)
    side = logits.shape[-1]
    pred = decode(logits)[0]  # (N, K, 2) cells
    gt = keypoints / (cfg.image_size / side)  # pixels -> cells
    radius = pck_threshold(side, 0.05)
    accuracy = pck(pred, gt, visible, radius)
    chance = landing_chance(pred, gt, visible, radius, map_size=side)
    # the errors that stay on the object (inside its keypoints' box, widened by the landing radius)
    on_object = inside_keypoint_box(pred, gt, visible, margin=radius)
    chance_on_object = landing_chance(pred, gt, visible, radius, map_size=side, among=on_object)
    _, false = pseudo_labels(logits, _sigma(cfg))  # H_F from f's own predictions (no labels)
    wrong = visible.bool() & ~accuracy.correct
    discrimination = density.ground_false_discrimination(false, pred, wrong, visible.bool(), mass=0.5)
    return {
        "domain": domain,
        "split": split,
        "images": n,
        "pck@0.05": round(accuracy.all, 4),
        "wrong": chance.n_wrong,
        "landing_on_other": round(chance.on_other, 4),
        "chance_uniform_image": round(chance.uniform_image, 4),
        "chance_uniform_box": round(chance.uniform_box, 4),
        "chance_rotated_errors": round(chance.rotated_errors, 4),
        "ratio_to_strongest_chance": round(chance.ratio, 3),
        "wrong_off_object": round(1 - chance_on_object.n_wrong / chance.n_wrong, 4) if chance.n_wrong else None,
        "on_object_landing_on_other": round(chance_on_object.on_other, 4),
        "on_object_chance_uniform_box": round(chance_on_object.uniform_box, 4),
        "on_object_ratio_to_strongest_chance": round(chance_on_object.ratio, 3),
        "p_f_covers_wrong": round(discrimination.wrong.share, 4),
        "p_f_covers_correct": round(discrimination.correct.share, 4),
        "p_f_gap": round(discrimination.gap, 4),
        "p_f_region_area": round(discrimination.wrong.uniform, 4),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=("hands", "bodies"), default=["hands", "bodies"])
    parser.add_argument("--n", type=int, default=256, help="images per fixed set (the trainer's eval_size)")
    args = parser.parse_args(argv)
    if args.n < 1:
        parser.error("--n must be positive")
    torch.manual_seed(0)
    results = {}
    for task in args.tasks:
        model, cfg = pretrained.load_source_only(task)
        results[task] = {
            "model": f"shipped source-only ({pretrained.retrain_command(task)})",
            "sigma": _sigma(cfg),
            "source": analyse(model, cfg, cfg.source_domain, "val", args.n),
            "target": analyse(model, cfg, cfg.target_domain, "test", args.n),
        }
        for where in ("source", "target"):
            r = results[task][where]
            print(
                f"{task:6s} {where:6s} PCK {100 * r['pck@0.05']:5.1f}  on other {r['landing_on_other']:.2f}  "
                f"chance a/b/c {r['chance_uniform_image']:.2f}/{r['chance_uniform_box']:.2f}/"
                f"{r['chance_rotated_errors']:.2f}  ratio {r['ratio_to_strongest_chance']:.2f}  "
                f"P_F wrong/correct {r['p_f_covers_wrong']:.2f}/{r['p_f_covers_correct']:.2f}",
                flush=True,
            )
    write("landing_baselines", {"generator_version": GENERATOR_VERSION, "tasks": results})


if __name__ == "__main__":
    main()
