"""RHD: the pickle layout, per-hand filters, finger order, handedness flip, errors."""

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from regdakit.data.real import RHD
from regdakit.data.real.rhd import RHD_TO_HAND21

SIZE = 240  # output side; the 120 px box is scaled by 2


def hand(x0, y0, step_x, step_y, visible=21):
    """(21, 3) uv_vis in RHD's order for a hand whose HAND21 keypoint k sits at (x0 + step_x k, y0 + step_y k)."""
    k = np.arange(21)
    hand21 = np.stack([x0 + step_x * k, y0 + step_y * k, (k < visible).astype(float)], 1)
    return hand21[list(RHD_TO_HAND21)]  # the reordering is its own inverse


def write_set(base, folder, samples, protocol=2):
    (base / folder / "color").mkdir(parents=True)
    annotations = {}
    for i, (left, right) in enumerate(samples):
        uv_vis = np.concatenate([left, right]).astype(np.float32)  # (42, 3), left hand first
        annotations[i] = {"uv_vis": uv_vis, "xyz": np.zeros((42, 3), np.float32), "K": np.eye(3, dtype=np.float32)}
        Image.new("RGB", (320, 320), (10 * i, 0, 0)).save(base / folder / "color" / f"{i:05d}.png")
    with open(base / folder / f"anno_{folder}.pickle", "wb") as f:
        pickle.dump(annotations, f, protocol=protocol)


@pytest.fixture
def root(tmp_path):
    base = tmp_path / "RHD_published_v2"
    good_left = hand(100, 100, 4, 3)  # x 100..180, y 100..160: box side 120 > 64
    good_left[list(RHD_TO_HAND21).index(4), 2] = 0  # HAND21 thumb tip occluded
    write_set(
        base,
        "training",
        [
            (good_left, hand(250, 250, 2.5, 2.5, visible=10)),  # right hand: only 10 visible -> dropped
            (hand(10, 10, 2, 1), hand(100, 100, 4, 3)),  # left box side 60 -> dropped; right kept and flipped
            (hand(100, 100, 4, 3), hand(100, 100, 4, 3.1)),  # hands on top of each other -> both dropped
        ],
    )
    write_set(base, "evaluation", [(hand(100, 100, 4, 3), hand(0, 0, 1, 1, visible=0))], protocol=4)
    return tmp_path


def expected(step_y=3):
    # box: centre (140.5, 130.5) in edge units, side 120 -> left 80.5, top 70.5; scale 2
    k = torch.arange(21, dtype=torch.float64)
    x, y = 100 + 4 * k, 100 + step_y * k
    return torch.stack([2 * (x + 0.5 - 80.5) - 0.5, 2 * (y + 0.5 - 70.5) - 0.5], 1).float()


def test_filters_keep_one_sample_per_good_hand(root):
    ds = RHD(root, "train", image_size=SIZE)
    assert [(r.meta["hand"], r.flip) for r in ds.records] == [("left", False), ("right", True)]
    assert [r.image.name for r in ds.records] == ["00000.png", "00001.png"]
    assert len(RHD(root, "test", image_size=SIZE)) == 1 and len(RHD(root, "all", image_size=SIZE)) == 3


def test_left_hand_keypoints_order_and_visibility(root):
    item = RHD(root, "train", image_size=SIZE)[0]
    torch.testing.assert_close(item["keypoints"], expected())
    vis = torch.ones(21, dtype=torch.bool)
    vis[4] = False  # the occluded thumb tip, now at its HAND21 slot
    assert torch.equal(item["visible"], vis)
    assert item["image"].shape == (3, SIZE, SIZE) and item["meta"]["dataset"] == "rhd"
    assert item["meta"]["file"].endswith("00000.png") and "record 0 (left hand)" in item["meta"]["source"]


def test_right_hands_are_mirrored_into_left_hands(root):
    ds = RHD(root, "train", image_size=SIZE)
    flipped = ds[1]["keypoints"]
    plain = expected()
    torch.testing.assert_close(flipped[:, 0], SIZE - 1 - plain[:, 0])
    torch.testing.assert_close(flipped[:, 1], plain[:, 1])
    assert ds[1]["meta"]["flipped"] is True
    keep = RHD(root, "train", image_size=SIZE, hand=None)
    torch.testing.assert_close(keep[1]["keypoints"], plain)
    assert [r.flip for r in RHD(root, "train", hand="right").records] == [True, False]


def test_heatmaps_and_unlabelled_items(root):
    item = RHD(root, "train", image_size=SIZE, heatmap_size=60)[0]
    assert item["heatmap"].shape == (21, 60, 60) and item["weight"][4] == 0
    assert set(RHD(root, "train", labels=False)[0]) == {"image", "meta"}


def test_root_may_be_the_release_folder_itself(root):
    assert len(RHD(root / "RHD_published_v2", "train")) == 2


def test_missing_folder_names_path_and_release(tmp_path):
    (tmp_path / "RHD_v1-1").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        RHD(tmp_path, "train")
    assert "anno_training.pickle" in str(err.value) and "RHD_v1-1/" in str(err.value)
    assert "RHD_v1-1.zip" in str(err.value)


def test_corrupt_annotations_name_file_and_record(tmp_path):
    base = tmp_path / "RHD_published_v2"
    write_set(base, "training", [(hand(100, 100, 4, 3), hand(0, 0, 1, 1))])
    path = base / "training" / "anno_training.pickle"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"anno_training\.pickle \(truncated"):
        RHD(tmp_path)
    with open(path, "wb") as f:
        pickle.dump({5: {"uv_vis": np.zeros((21, 3))}}, f)
    with pytest.raises(ValueError, match=r"anno_training\.pickle, record 5, 'uv_vis': expected shape \(42, 3\)"):
        RHD(tmp_path)
    bad = np.zeros((42, 3))
    bad[3, 0] = np.nan
    with open(path, "wb") as f:
        pickle.dump({7: {"uv_vis": bad}}, f)
    with pytest.raises(ValueError, match=r"record 7, 'uv_vis': contains NaN"):
        RHD(tmp_path)


def test_unreadable_image_names_file_and_record(root):
    (root / "RHD_published_v2" / "training" / "color" / "00001.png").write_bytes(b"garbage")
    ds = RHD(root, "train")
    with pytest.raises(ValueError, match=r"00001\.png of record .*record 1 \(right hand\)"):
        ds[1]


def test_items_batch_with_the_default_collate(root):
    from torch.utils.data import DataLoader

    batch = next(iter(DataLoader(RHD(root, "train", image_size=64, heatmap_size=16), batch_size=2)))
    assert batch["image"].shape == (2, 3, 64, 64) and batch["heatmap"].shape == (2, 21, 16, 16)
    assert batch["meta"]["hand"] == ["left", "right"] and batch["meta"]["flipped"].tolist() == [False, True]
