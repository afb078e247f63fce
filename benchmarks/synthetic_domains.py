"""Measure the domain gap of the synthetic domains (the synthetic-domain issue).

For each task a small PoseResNet (the ``tiny`` backbone) is trained with a
plain supervised loop on the source style only, and the same recipe is
trained on the target style (the oracle). Both are evaluated on fixed test
sets of both styles: PCK@0.05 and PCK@0.1 (of the heatmap side), and, for the
source-only model on the target, where its wrong predictions land
(``regdakit.metrics.error_landing`` with the PCK@0.05 radius).

    python benchmarks/synthetic_domains.py [--steps 800] [--tasks hands bodies-wild bodies-lab]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from _record import write
from tqdm import tqdm

from regdakit.data.synthetic import GENERATOR_VERSION, SyntheticStream, make_dataset
from regdakit.data.transforms import Augment
from regdakit.heatmaps import decode
from regdakit.inference import predict
from regdakit.losses import kl_heatmap_loss
from regdakit.metrics import error_landing, pck, pck_threshold
from regdakit.models import pose_resnet

#: task name -> (skeleton task, source domain, target domain, augmentation rotation)
TASKS = {
    "hands": ("hands", "rendered", "studio", 180.0),
    "bodies-wild": ("bodies", "synthetic", "wild", 30.0),
    "bodies-lab": ("bodies", "synthetic", "lab", 30.0),
}
PRESET = {"image_size": 128, "heatmap_size": 32, "batch_size": 32, "lr": 1e-3, "backbone": "tiny", "test_n": 512}


def train(task: str, domain: str, steps: int, seed: int, rotation: float) -> torch.nn.Module:
    """Supervised training on one style: Adam, KL heatmap loss."""
    torch.manual_seed(seed)
    stream = SyntheticStream(
        task, domain, PRESET["batch_size"], PRESET["image_size"], seed,
        heatmap_size=PRESET["heatmap_size"], augment=Augment(rotation=rotation),
    )  # fmt: skip
    k = 21 if task == "hands" else 16
    model = pose_resnet(PRESET["backbone"], k, adversarial=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=PRESET["lr"])
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [int(steps * 0.75)], 0.1)
    model.train()
    for _ in tqdm(range(steps), desc=f"train {task}/{domain}", leave=False):
        batch = next(stream)
        y, _ = model(batch["image"])
        loss = kl_heatmap_loss(y, batch["heatmap"], batch["weight"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
    return model.eval()


def evaluate(model, task: str, domain: str, seed: int, skeleton) -> dict:
    ds = make_dataset(task, domain, "test", PRESET["image_size"], PRESET["test_n"], seed)
    images, keypoints, visible = ds.tensors()
    stride = PRESET["image_size"] / PRESET["heatmap_size"]
    pred = predict(model, images, then=lambda y: decode(y)[0])  # (N, K, 2) heatmap cells
    gt = keypoints / stride
    side = PRESET["heatmap_size"]
    r05 = pck(pred, gt, visible, pck_threshold(side, 0.05), skeleton)
    r10 = pck(pred, gt, visible, pck_threshold(side, 0.1), skeleton)
    landing = error_landing(pred, gt, visible, pck_threshold(side, 0.05), skeleton, map_size=side)
    return {
        "pck05": round(100 * r05.all, 2),
        "pck10": round(100 * r10.all, 2),
        "pck05_groups": {g: round(100 * v, 2) for g, v in r05.per_group.items()},
        "landing_on_other": round(landing.on_other, 4),
        "landing_background": round(landing.on_background, 4),
        "landing_chance": round(landing.chance, 4),
        "n_wrong": landing.n_wrong,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--name", default="synthetic_domains")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results, models = {}, {}
    for name in args.tasks:
        task, source, target, rotation = TASKS[name]
        from regdakit.data.synthetic import SKELETONS

        skeleton = SKELETONS[task]
        start = time.perf_counter()
        if (task, source) not in models:
            models[(task, source)] = train(task, source, args.steps, args.seed, rotation)
        oracle = train(task, target, args.steps, args.seed, rotation)
        src = models[(task, source)]
        on_source = evaluate(src, task, source, args.seed, skeleton)
        on_target = evaluate(src, task, target, args.seed, skeleton)
        oracle_target = evaluate(oracle, task, target, args.seed, skeleton)
        results[name] = {
            "generator_version": GENERATOR_VERSION,
            "source": source,
            "target": target,
            "source_on_source": on_source["pck05"],
            "source_on_target": on_target["pck05"],
            "oracle_on_target": oracle_target["pck05"],
            "landing_on_other": on_target["landing_on_other"],
            "landing_chance": on_target["landing_chance"],
            "landing_background": on_target["landing_background"],
            "pck10": {
                "source_on_source": on_source["pck10"],
                "source_on_target": on_target["pck10"],
                "oracle_on_target": oracle_target["pck10"],
            },
            "details": {
                "source_on_source": on_source,
                "source_on_target": on_target,
                "oracle_on_target": oracle_target,
            },
            "seconds": round(time.perf_counter() - start, 1),
        }
        print(name, json.dumps({k: v for k, v in results[name].items() if k != "details"}))
    path = write(args.name, {"preset": {**PRESET, "steps": args.steps}, "seeds": [args.seed], "tasks": results})
    print("wrote", path)


if __name__ == "__main__":
    main()
