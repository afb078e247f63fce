"""Human3.6M: Moon-style JSON layout, projection, BODY16 mapping, atomic rebuildable cache, test sampling."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from regdakit.data.real import Human36M
from regdakit.data.real.human36m import H36M17_TO_BODY16

FRAMES = 7  # frame 0 and 5 kept (every 5th)


def world_joints(frame):
    """(17, 3) in mm: with R = I, t = 0, f = 1000, c = 20, joint j projects to (j - 8 + 20 + frame / 5, (j % 5) * 2 - 4 + 20)."""
    j = np.arange(17)
    return np.stack([(j - 8 + frame / 5), (j % 5) * 2 - 4.0, np.full(17, 1000.0)], 1) * np.array([1.0, 1.0, 1.0])


def write_subject(root, s):
    ann, images = root / "annotations", root / "images"
    ann.mkdir(exist_ok=True)
    folder = f"s_{s:02d}_act_02_subact_01_ca_01"
    (images / folder).mkdir(parents=True)
    entries, joints = [], {"2": {"1": {}}}
    for f in range(FRAMES):
        name = f"{folder}/{folder}_{f + 1:06d}.jpg"
        if f % 5 == 0:  # the other frames' images are never read
            Image.new("RGB", (40, 40), (s * 20, f * 30, 0)).save(images / name)
        entries.append({"id": f, "file_name": name, "width": 40, "height": 40, "subject": s, "action_idx": 2,
                        "subaction_idx": 1, "cam_idx": 1, "frame_idx": f})  # fmt: skip
        joints["2"]["1"][str(f)] = world_joints(f).tolist()
    camera = {"1": {"R": np.eye(3).tolist(), "t": [0.0, 0.0, 0.0], "f": [1000.0, 1000.0], "c": [20.0, 20.0]}}
    (ann / f"Human36M_subject{s}_data.json").write_text(json.dumps({"images": entries, "annotations": []}))
    (ann / f"Human36M_subject{s}_camera.json").write_text(json.dumps(camera))
    (ann / f"Human36M_subject{s}_joint_3d.json").write_text(json.dumps(joints))


@pytest.fixture
def root(tmp_path):
    for s in (1, 9, 11):
        write_subject(tmp_path, s)
    return tmp_path


def make(root, split="train", **kw):
    return Human36M(root, split, subjects=kw.pop("subjects", (1,) if split == "train" else None),
                    cache_size=32, progress=False, image_size=64, **kw)  # fmt: skip


def expected(frame):
    j = np.arange(17)
    h36m = np.stack([j - 8 + 20 + frame / 5, (j % 5) * 2 - 4.0 + 20], 1)
    body = h36m[list(H36M17_TO_BODY16)]
    body[7] = (h36m[11] + h36m[14]) / 2  # thorax = shoulder midpoint
    # BODY16 spans x 12..28 (+frame/5), y 16..24: side 24, box from (8.5 + frame/5, 8.5); cache 32: scale 4/3
    cached = (body + 0.5 - np.array([8.5 + frame / 5, 8.5])) * 4 / 3 - 0.5
    return torch.tensor(2 * cached + 0.5, dtype=torch.float32)  # the 32 px crop resized to 64


def test_projection_mapping_and_crop(root):
    ds = make(root)
    assert [r.meta["name"][-10:] for r in ds.records] == ["000001.jpg", "000006.jpg"]  # frames 0 and 5
    for item, frame in zip((ds[0], ds[1]), (0, 5), strict=True):
        torch.testing.assert_close(item["keypoints"], expected(frame), atol=1e-4, rtol=0)
        assert item["visible"].all() and item["image"].shape == (3, 64, 64)
    assert ds[0]["meta"]["subject"] == 1 and ds[0]["meta"]["dataset"] == "human36m"


def test_cache_is_reused_and_rebuildable(root):
    make(root)
    cache = root / "regdakit_cache" / "human36m"
    assert (cache / "S1.json").is_file() and len(list((cache / "crops").rglob("*.jpg"))) == 2
    assert not list(cache.rglob("*.tmp"))
    for image in (root / "images").rglob("*.jpg"):
        image.unlink()  # the cache no longer needs the originals
    assert len(make(root)) == 2
    with pytest.raises(FileNotFoundError, match=r"000001\.jpg of record .*Human36M_subject1_data\.json, record 0"):
        make(root, rebuild=True)
    assert not (cache / "S1.json").exists()  # a failed rebuild leaves no index behind


def test_corrupt_image_caches_nothing(root):
    bad = next((root / "images").glob("s_01*/*000006.jpg"))
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=r"000006\.jpg of record .*subject1_data\.json, record 5"):
        make(root)
    cache = root / "regdakit_cache" / "human36m"
    assert not (cache / "S1.json").exists() and not list(cache.rglob("*.jpg"))


def test_test_split_is_sampled_without_replacement(root):
    full = make(root, "test")
    assert len(full) == 4 and len({r.image for r in full.records}) == 4  # subjects 9 and 11, 2 frames each
    small = make(root, "test", test_size=3, seed=0)
    assert len({r.image for r in small.records}) == 3
    assert {r.meta["subject"] for r in full.records} == {9, 11}


def test_layout_and_annotation_errors(root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Human36M_subject5_data\.json .*Moon et al"):
        Human36M(root, "train", progress=False)  # subjects 5, 6, 7, 8 are missing
    path = root / "annotations" / "Human36M_subject1_joint_3d.json"
    joints = json.loads(path.read_text())
    del joints["2"]["1"]["5"]
    path.write_text(json.dumps(joints))
    with pytest.raises(ValueError, match=r"no joints for action 2, subaction 1, frame 5 \(needed by .*record 5"):
        make(root)
    path.write_text(path.read_text()[:50])
    with pytest.raises(ValueError, match=r"joint_3d\.json is not valid JSON"):
        make(root)
