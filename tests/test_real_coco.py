"""COCO keypoints JSON: skeleton from categories, visibility codes, bbox crop, filtering, errors."""

import json

import pytest
import torch
from PIL import Image

from regdakit.data.real import COCOKeypoints, detect_flip_pairs, skeleton_from_coco
from regdakit.keypoints import Skeleton

CATEGORY = {"id": 3, "name": "critter", "keypoints": ["nose", "left_eye", "right_eye"], "skeleton": [[1, 2], [1, 3]]}


@pytest.fixture
def root(tmp_path):
    (tmp_path / "images" / "train").mkdir(parents=True)
    Image.new("RGB", (50, 50), (0, 0, 200)).save(tmp_path / "images" / "train" / "a.jpg")
    Image.new("RGB", (50, 50), (0, 200, 0)).save(tmp_path / "images" / "train" / "b.jpg")
    content = {
        "images": [{"id": 1, "file_name": "a.jpg", "width": 50, "height": 50}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 3, "bbox": [10, 10, 20, 10], "iscrowd": 0,
             "keypoints": [12, 14, 2, 20, 12, 1, 0, 0, 0], "num_keypoints": 2},
            {"id": 11, "image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "iscrowd": 1,
             "keypoints": [1, 1, 2, 2, 2, 2, 3, 3, 2]},  # crowd: skipped
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5], "keypoints": [0] * 9},  # unlabelled
            {"id": 13, "image_id": 2, "category_id": 3, "keypoints": [20, 20, 2, 30, 25, 2, 40, 20, 2]},  # no bbox
        ],
        "categories": [CATEGORY, {"id": 1, "name": "background"}],
    }  # fmt: skip
    (tmp_path / "annotations").mkdir()
    (tmp_path / "annotations" / "train.json").write_text(json.dumps(content))
    return tmp_path


def test_skeleton_from_categories():
    sk = skeleton_from_coco(CATEGORY, groups={"eyes": (1, 2)})
    assert sk.names == ("nose", "left_eye", "right_eye") and sk.edges == ((0, 1), (0, 2))
    assert sk.flip_pairs == ((1, 2),) and sk.groups["eyes"] == (1, 2) and sk.groups["all"] == (0, 1, 2)
    assert detect_flip_pairs(["l_hip", "r_hip", "wrist_left", "wrist_right", "left"]) == ((0, 1), (2, 3))
    with pytest.raises(ValueError, match=r"edge \[0, 1\] must be two keypoint numbers in 1\.\.3"):
        skeleton_from_coco({**CATEGORY, "skeleton": [[0, 1]]})


def test_bbox_crop_keypoints_and_visibility(root):
    ds = COCOKeypoints(root, "train", image_size=60)
    assert len(ds) == 2 and ds.skeleton.name == "critter"
    item = ds[0]
    # bbox centre (20, 15), side 30 -> box (5, 0, 35, 30), scale 2: x' = 2 (x + 0.5 - 5) - 0.5, y' = 2 (y + 0.5) - 0.5
    torch.testing.assert_close(item["keypoints"][:2], torch.tensor([[14.5, 28.5], [30.5, 24.5]]))
    assert item["visible"].tolist() == [True, True, False]  # v = 2, 1 (occluded but labelled), 0
    assert COCOKeypoints(root, occluded_visible=False)[0]["visible"].tolist() == [True, False, False]
    assert ds[1]["visible"].all() and ds[1]["meta"]["name"] == "b.jpg"  # cropped around its keypoints


def test_user_skeleton_and_explicit_paths(root):
    sk = Skeleton(name="mine", names=("a", "b", "c"), groups={}, edges=((0, 1),))
    ds = COCOKeypoints(root, "whatever", ann_file=root / "annotations" / "train.json",
                       image_dir=root / "images" / "train", skeleton=sk)  # fmt: skip
    assert ds.skeleton is sk and len(ds) == 2


def test_errors(root):
    with pytest.raises(FileNotFoundError, match=r"annotations/val\.json"):
        COCOKeypoints(root, "val")
    path = root / "annotations" / "train.json"
    content = json.loads(path.read_text())
    content["categories"].append({**CATEGORY, "id": 4})
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"exactly one category with keypoints \(pass category_id\)"):
        COCOKeypoints(root)
    assert len(COCOKeypoints(root, category_id=3)) == 2
    content["categories"].pop()
    content["annotations"][0]["keypoints"] = [1, 2, 2]
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=r"train\.json, annotation 0 \(id 10\), 'keypoints' \(3 x 3 numbers\)"):
        COCOKeypoints(root)
    path.write_text("{")
    with pytest.raises(ValueError, match="not valid JSON"):
        COCOKeypoints(root)
