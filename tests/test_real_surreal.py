"""SURREAL: run JSON layout, SMPL -> BODY16 mapping (collar shoulders), splits, out-of-frame joints."""

import json
import random

import pytest
import torch
from PIL import Image

from regdakit.data.real import SURREAL
from regdakit.data.real.surreal import SMPL24_NAMES, SURREAL24_TO_BODY16
from regdakit.keypoints import BODY16


def write_split(root, split, runs, per_run):
    for run in runs:
        (root / split / run).mkdir(parents=True)
        entries = []
        for i in range(per_run):
            name = f"{run}_{i:02d}.png"
            Image.new("RGB", (32, 32), (0, 0, 8 * i)).save(root / split / run / name)
            entries.append(
                {
                    "name": name,
                    "keypoint2d": [[float(j), 2.0 * j] for j in range(24)],  # joint j at (j, 2j)
                    "keypoint3d": [[0.0, 0.0, 1.0]] * 24,
                    "intrinsic_matrix": [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
                }
            )
        (root / split / f"{run}.json").write_text(json.dumps(entries))


@pytest.fixture
def root(tmp_path):
    write_split(tmp_path, "train", ["run0", "run1", "run2"], 4)
    write_split(tmp_path, "test", ["run0", "run1", "run2"], 2)
    write_split(tmp_path, "val", ["run0"], 3)
    return tmp_path


def test_mapping_is_the_references_with_collar_shoulders():
    named = {BODY16.names[s]: SMPL24_NAMES[j] for s, j in enumerate(SURREAL24_TO_BODY16)}
    # SMPL's left joints fill BODY16's right slots (SURREAL's 2D labels are reported L/R-swapped)
    assert named["r_ankle"] == "l_ankle" and named["l_wrist"] == "r_wrist"
    assert named["r_shoulder"] == "l_collar" and named["l_shoulder"] == "r_collar"
    assert named["head_top"] == "head" and named["thorax"] == "spine3"


def test_keypoints_after_mapping_and_resize(root):
    item = SURREAL(root, "val", image_size=64)[0]
    smpl = torch.tensor(SURREAL24_TO_BODY16, dtype=torch.float32)
    # a 32 x 32 image resized to 64: x' = 2x + 0.5
    torch.testing.assert_close(item["keypoints"], torch.stack([2 * smpl + 0.5, 4 * smpl + 0.5], 1))
    assert item["visible"].tolist() == [2 * j < 32 for j in SURREAL24_TO_BODY16]  # y = 2j leaves the frame
    shoulders = SURREAL(root, "val", image_size=64, shoulders="shoulder")[0]["keypoints"]
    torch.testing.assert_close(shoulders[12], torch.tensor([32.5, 64.5]))  # SMPL 16 -> (16, 32)


def test_splits_follow_the_reference(root):
    names = lambda ds: [r.meta["name"] for r in ds.records]  # noqa: E731
    train_all = [f"run{r}_{i:02d}.png" for r in range(3) for i in range(4)]
    order = list(range(12))
    random.seed(42)
    random.shuffle(order)
    assert names(SURREAL(root, "train")) == [train_all[i] for i in order[2:]]  # drops int(0.2 * 12) = 2
    test = SURREAL(root, "test")
    assert len(test) == 1 and test.records[0].image.parent.parent.name == "test"
    assert len(SURREAL(root, "val")) == 3


def test_errors(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected .*nothing/train/run0\.json|expected the folder .*train"):
        SURREAL(tmp_path / "nothing")
    (root / "val" / "run0.json").write_text(json.dumps([{"name": "a.png", "keypoint2d": [[0.0, 0.0]] * 16}]))
    with pytest.raises(ValueError, match=r"run0\.json, record 0 \(a\.png\), 'keypoint2d': expected shape \(24, 2\)"):
        SURREAL(root, "val")
    with pytest.raises(ValueError, match="split must be one of"):
        SURREAL(root, "all")
