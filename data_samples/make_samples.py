"""Regenerate (or check) the shipped synthetic samples and the README gallery.

Each task and domain ships 64 images of 64 x 64 pixels as one 8 x 8 mosaic
PNG, with keypoints and visibility in a JSON file beside it. Everything is
rendered from fixed seeds, so the files are reproduced exactly:

    python data_samples/make_samples.py            # write the files
    python data_samples/make_samples.py --check    # re-render and compare, exit 1 on a difference
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from regdakit.data.synthetic import DOMAINS, GENERATOR_VERSIONS, make_dataset

HERE = Path(__file__).resolve().parent
N, SIZE, COLUMNS, SEED = 64, 64, 8, 0


def render_sample(task: str, domain: str) -> tuple[np.ndarray, dict]:
    """The mosaic ``(8*64, 8*64, 3)`` uint8 and its labels."""
    images, keypoints, visible = make_dataset(task, domain, "test", size=SIZE, n=N, seed=SEED).tensors()
    tiles = (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # exact: stored as uint8
    rows = [np.concatenate(list(tiles[r * COLUMNS : (r + 1) * COLUMNS]), axis=1) for r in range(N // COLUMNS)]
    labels = {
        "task": task,
        "domain": domain,
        "generator_version": GENERATOR_VERSIONS[task],
        "seed": SEED,
        "split": "test",
        "image_size": SIZE,
        "layout": f"{N // COLUMNS} rows x {COLUMNS} columns of {SIZE} px tiles, row-major",
        "keypoints": [[[round(float(v), 4) for v in p] for p in sample] for sample in keypoints],
        "visible": visible.int().tolist(),
    }
    return np.concatenate(rows, axis=0), labels


def paths(task: str, domain: str) -> tuple[Path, Path]:
    """The mosaic PNG and labels JSON of a task and domain."""
    stem = HERE / f"{task}_{domain}"
    return stem.with_suffix(".png"), stem.with_suffix(".json")


def gallery(path: Path) -> None:
    """Source versus target: the first 6 images of each domain, with skeletons."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from regdakit.data.synthetic import SKELETONS
    from regdakit.viz import plot_skeleton

    rows = [(t, d) for t in DOMAINS for d in DOMAINS[t]]
    fig, axes = plt.subplots(len(rows), 6, figsize=(9, 1.65 * len(rows)), layout="constrained")
    for (task, domain), line in zip(rows, axes, strict=True):
        ds = make_dataset(task, domain, "test", size=128, n=6, seed=SEED)
        for i, ax in enumerate(line):
            item = ds[i]
            plot_skeleton(
                item["keypoints"], SKELETONS[task], image=item["image"], visible=item["visible"], ax=ax,
                marker_size=6, line_width=1,
            )  # fmt: skip
        line[0].set_title(f"{task}: {domain}", loc="left", fontsize=9)
    fig.savefig(path, dpi=80)


def main() -> int:
    """Write or check every sample; with ``--check`` return 1 on any difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped files instead of writing")
    parser.add_argument("--gallery", type=Path, default=HERE.parent / "docs" / "gallery.png")
    args = parser.parse_args()
    bad = []
    for task in DOMAINS:
        for domain in DOMAINS[task]:
            mosaic, labels = render_sample(task, domain)
            png, js = paths(task, domain)
            if args.check:
                same = np.array_equal(np.asarray(Image.open(png).convert("RGB")), mosaic)
                same &= json.loads(js.read_text()) == labels
                if not same:
                    bad.append(f"{task}/{domain}")
            else:
                Image.fromarray(mosaic).save(png, optimize=True)
                js.write_text(json.dumps(labels, separators=(",", ":")) + "\n")
    if args.check:
        print("all samples reproduced exactly" if not bad else f"samples differ: {bad}")
        return 1 if bad else 0
    gallery(args.gallery)
    return 0


if __name__ == "__main__":
    sys.exit(main())
