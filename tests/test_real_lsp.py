"""LSP: joints.mat layout via scipy, the 14 -> 16 mapping, occlusion flag, splits, letterbox."""

import sys

import numpy as np
import pytest
import torch
from PIL import Image

from regdakit.data.real import LSP
from regdakit.keypoints import LSP14_TO_BODY16

scipy_io = pytest.importorskip("scipy.io")
N = 4


@pytest.fixture
def root(tmp_path):
    (tmp_path / "images").mkdir()
    joints = np.zeros((3, 14, N))  # the release's layout: (x/y/flag, joint, image)
    for i in range(N):
        joints[0, :, i] = 2.0 + np.arange(14) + i
        joints[1, :, i] = 3.0 + np.arange(14) / 2
        Image.new("RGB", (40, 20), (i * 50, 0, 0)).save(tmp_path / "images" / f"im{i + 1:04d}.jpg")
    joints[2, 3, 0] = 1  # image 1's left hip: flag 1
    scipy_io.savemat(tmp_path / "joints.mat", {"joints": joints})
    return tmp_path


def test_splits_and_the_transductive_flag(root):
    names = lambda ds: [r.meta["name"] for r in ds.records]  # noqa: E731
    assert names(LSP(root, "train")) == ["im0001.jpg", "im0002.jpg"]
    assert names(LSP(root, "test")) == ["im0003.jpg", "im0004.jpg"]
    assert len(LSP(root, "all")) == N
    assert names(LSP(root, "test", transductive=True)) == names(LSP(root, "train", transductive=True))
    assert len(LSP(root, "test", transductive=True)) == N


def test_mapping_visibility_and_letterbox(root):
    item = LSP(root, "train", image_size=80)[0]
    # 40 x 20 image letterboxed to 40 x 40, then x2: x' = 2x + 0.5, y' = 2 (y + 10) + 0.5
    for slot, joint in enumerate(LSP14_TO_BODY16):
        if joint is not None:
            torch.testing.assert_close(
                item["keypoints"][slot], torch.tensor([2 * (2.0 + joint) + 0.5, 2 * (13 + joint / 2) + 0.5])
            )
    expected = [j is not None and j != 3 for j in LSP14_TO_BODY16]  # pelvis, thorax missing; l_hip flagged
    assert item["visible"].tolist() == expected
    other = LSP(root, "train", image_size=80, flag="visible")[0]["visible"]
    assert other.tolist() == [j == 3 for j in LSP14_TO_BODY16]


def test_keypoint_crop_option_uses_the_14_joints(root):
    ds = LSP(root, "train", image_size=39, crop="keypoints")
    # joints x 2..15, y 3..9.5: side 1.5 * 13 = 19.5, centre (9, 6.25) + 0.5 -> box (-0.25.. shifted to 0, 0)
    box_left, box_top, scale = 0.0, 0.0, 39 / 19.5
    item = ds[0]
    torch.testing.assert_close(
        item["keypoints"][0], torch.tensor([(2.5 - box_left) * scale - 0.5, (3.5 - box_top) * scale - 0.5])
    )


def test_errors(root, monkeypatch):
    scipy_io.savemat(root / "joints.mat", {"joints": np.zeros((14, 3, N))})
    with pytest.raises(
        ValueError, match=r"joints\.mat: 'joints' must have shape \(3, 14, N\), got \(14, 3, 4\) \(that is LSP extended"
    ):
        LSP(root)
    bad = np.zeros((3, 14, N))
    bad[1, 5, 2] = np.nan
    scipy_io.savemat(root / "joints.mat", {"joints": bad})
    with pytest.raises(ValueError, match=r"joints\.mat, record 2 \(im0003\.jpg\): contains NaN"):
        LSP(root)
    (root / "joints.mat").write_bytes(b"MATLAB 5.0 truncated")
    with pytest.raises(ValueError, match=r"cannot read .*joints\.mat"):
        LSP(root)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    with pytest.raises(
        ImportError, match=r"needs scipy: pip install scipy \(in the repository: pip install -e '\.\[real\]'\)"
    ):
        LSP(root)
    (root / "joints.mat").unlink()
    with pytest.raises(FileNotFoundError, match=r"joints\.mat .*images/.*lsp_dataset\.zip"):
        LSP(root)
