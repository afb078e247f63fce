"""H3D: annotation.json layout, tasks, the reference's seed-42 split, letterboxed whole images."""

import json
import random

import pytest
import torch
from PIL import Image

from regdakit.data.real import H3D


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "H3D_crop"
    entries = []
    for i in range(10):
        part = base / f"part{1 + i % 2}"
        part.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (40, 20), (0, 20 * i, 0)).save(part / f"{i:03d}.jpg")  # not square: letterboxed
        kp = [[1.0 + j, 2.0 + j / 4] for j in range(21)]
        kp[20] = [45.0, 5.0]  # outside the 40 px wide image
        entries.append(
            {
                "name": f"part{1 + i % 2}/{i:03d}.jpg",
                "keypoint2d": kp,
                "keypoint3d": [[0.0, 0.0, 1.0]] * 21,
                "intrinsic_matrix": [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
                "without_object": 0 if i in (2, 5, 8) else 1,
            }
        )
    (base / "annotation.json").write_text(json.dumps(entries), encoding="utf-8")
    return tmp_path


def test_tasks_and_the_reference_split(root):
    names = lambda ds: [r.meta["name"] for r in ds.records]  # noqa: E731
    noobject = [f"part{1 + i % 2}/{i:03d}.jpg" for i in range(10) if i not in (2, 5, 8)]
    order = list(range(7))
    random.seed(42)  # what the reference does (here only to compute the expectation)
    random.shuffle(order)
    assert names(H3D(root, "test")) == [noobject[order[0]]]  # int(0.2 * 7) = 1 test sample
    assert names(H3D(root, "train")) == [noobject[i] for i in order[1:]]
    assert names(H3D(root, "all")) == noobject
    assert len(H3D(root, "all", task="object")) == 3 and len(H3D(root, "all", task="all")) == 10
    assert set(names(H3D(root, "test", seed=1))) | set(names(H3D(root, "train", seed=1))) == set(noobject)


def test_whole_image_is_letterboxed_and_out_of_frame_points_hidden(root):
    item = H3D(root, "all", image_size=80)[0]
    # box (0, -10, 40, 30), scale 2: x' = 2x + 0.5, y' = 2 (y + 10) + 0.5
    j = torch.arange(20, dtype=torch.float32)
    torch.testing.assert_close(item["keypoints"][:20], torch.stack([2 * (1 + j) + 0.5, 2 * (12 + j / 4) + 0.5], 1))
    assert item["visible"][:20].all() and not item["visible"][20]
    assert item["image"][:, :15].abs().max() == 0  # padding above the picture is black
    assert item["meta"]["name"] == "part1/000.jpg" and item["meta"]["dataset"] == "h3d"


def test_keypoint_crop_option(root):
    item = H3D(root, "all", image_size=30, crop="keypoints")[0]
    assert item["image"].shape == (3, 30, 30)


def test_errors(root, tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        H3D(root, task="objects")
    path = root / "H3D_crop" / "annotation.json"
    entries = json.loads(path.read_text())
    entries[4]["keypoint2d"] = entries[4]["keypoint2d"][:20]
    path.write_text(json.dumps(entries))
    with pytest.raises(
        ValueError, match=r"annotation\.json, record 4 \(part1/004\.jpg\), 'keypoint2d': expected shape"
    ):
        H3D(root)
    path.write_text(json.dumps(entries)[:-30])
    with pytest.raises(ValueError, match=r"annotation\.json is not valid JSON"):
        H3D(root)
    with pytest.raises(FileNotFoundError, match=r"H3D_crop/annotation\.json .*H3D_crop\.tar"):
        H3D(tmp_path / "elsewhere")
