"""FreiHAND: K/xyz JSON layout, projection, version numbering, pose-disjoint split, mirroring."""

import json
import random

import pytest
import torch
from PIL import Image

from regdakit.data.real import FreiHAND

N = 5  # poses (32,560 in the release)
K = [[100.0, 0.0, 50.0], [0.0, 100.0, 40.0], [0.0, 0.0, 1.0]]


def uv(i):
    """HAND21 pixel positions of pose i: x 20..40, y 20..36, shifted by i."""
    return [(20.0 + j + i, 20.0 + 0.8 * j) for j in range(21)]


@pytest.fixture
def root(tmp_path):
    z = 2.0  # depth 2 m: the projection must divide by it
    xyz = [[[(u - 50) / 100 * z, (v - 40) / 100 * z, z] for u, v in uv(i)] for i in range(N)]
    (tmp_path / "training_K.json").write_text(json.dumps([K] * N))
    (tmp_path / "training_xyz.json").write_text(json.dumps(xyz))
    (tmp_path / "training_mano.json").write_text(json.dumps([[0.0] * 61] * N))
    (tmp_path / "training" / "rgb").mkdir(parents=True)
    for idx in range(4 * N):
        Image.new("RGB", (64, 64), (idx, 0, 0)).save(tmp_path / "training" / "rgb" / f"{idx:08d}.jpg")
    return tmp_path


def test_projection_crop_and_mirror(root):
    item = FreiHAND(root, "all", task="gs", image_size=60)[0]
    # pose 0: box centre (30.5, 28.5) in edges, side 30 -> (15.5, 13.5); scale 2; then mirrored: x'' = 59 - x'
    j = torch.arange(21, dtype=torch.float32)
    x, y = 20 + j, 20 + 0.8 * j
    torch.testing.assert_close(item["keypoints"], torch.stack([59 - (2 * x - 30.5), 2 * y - 26.5], 1))
    assert item["visible"].all() and item["meta"]["flipped"] is True
    plain = FreiHAND(root, "all", task="gs", image_size=60, hand=None)[0]
    torch.testing.assert_close(plain["keypoints"][:, 0], 2 * x - 30.5)


def test_versions_are_numbered_by_blocks_of_n(root):
    ds = FreiHAND(root, "all", task="sample")
    assert [r.image.name for r in ds.records] == [f"{i + 2 * N:08d}.jpg" for i in range(N)]
    assert [r.meta["version"] for r in ds.records] == ["sample"] * N


def test_default_split_keeps_each_pose_on_one_side(root):
    train, test = FreiHAND(root, "train"), FreiHAND(root, "test")
    poses = lambda ds: {r.meta["pose"] for r in ds.records}  # noqa: E731
    assert len(test) == 4 and len(train) == 16  # 1 pose x 4 versions; int(0.2 * 5) = 1
    assert poses(train).isdisjoint(poses(test)) and poses(train) | poses(test) == set(range(N))


def test_leaky_split_reproduces_the_reference(root):
    items = [(i, v) for v in range(4) for i in range(N)]
    random.seed(42)
    random.shuffle(items)
    test = FreiHAND(root, "test", leaky_split=True)
    assert [r.image.name for r in test.records] == [f"{i + N * v:08d}.jpg" for i, v in items[:4]]


def test_errors(root):
    xyz = json.loads((root / "training_xyz.json").read_text())
    xyz[3][7][0] = None
    (root / "training_xyz.json").write_text(json.dumps(xyz))
    with pytest.raises(ValueError, match=r"training_xyz\.json, record 3: contains NaN"):
        FreiHAND(root)
    (root / "training_xyz.json").write_text(json.dumps(xyz[:4]))
    with pytest.raises(ValueError, match=r"has 5 cameras but .* has 4 poses"):
        FreiHAND(root)
    (root / "training_K.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"training_K\.json .*training/.*FreiHAND_pub_v2\.zip"):
        FreiHAND(root)
