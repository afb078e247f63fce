"""Leeds Sports Pose (LSP): the real body target of SURREAL -> LSP.

Layout (``lsp_dataset.zip`` unpacked into ``root``)::

    images/im0001.jpg ... im2000.jpg
    joints.mat           'joints': (3, 14, 2000) float, rows x, y, flag

The 14 joints (:data:`~regdakit.keypoints.LSP14_NAMES`) map onto BODY16 with
:data:`~regdakit.keypoints.LSP14_TO_BODY16`; pelvis and thorax, which LSP
lacks, are invisible.

Splits. The LSP release designates the first 1000 images for training and the
last 1000 for testing; that is the default here. The reference uses all 2000
images for every split (target train = target test, a transductive setting);
``transductive=True`` reproduces it for comparable numbers.

Visibility. The third row is 0 or 1. The reference treats 1 as *occluded*
(visibility = 1 - flag), which is how the original LSP annotations are widely
read, although the release's readme calls the value a visibility flag; this
could not be checked against the data here. ``flag="visible"`` reads it the
other way.

Framing. The reference letterboxes the whole image (``ResizePad``); so does the
default ``crop="image"`` (centred padding). ``crop="keypoints"`` takes the 1.5x
square around the 14 joints instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._io import check_array, require
from regdakit.keypoints import BODY16, LSP14_TO_BODY16

__all__ = ["LSP", "load_joints_mat"]

FLAGS = ("occluded", "visible")


def load_joints_mat(path: Path) -> np.ndarray:
    """Read ``joints.mat`` as ``(N, 14, 3)`` rows ``(x, y, flag)``.

    Raises:
        ImportError: scipy is missing (``pip install scipy``, or ``pip install -e '.[real]'`` in the repository).
        ValueError: The file is unreadable or ``joints`` has the wrong layout.
    """
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError(
            "reading LSP's joints.mat needs scipy: pip install scipy (in the repository: pip install -e '.[real]')"
        ) from err
    try:
        mat = loadmat(str(path))
    except Exception as err:  # scipy raises MatReadError, IndexError, ValueError... for broken files
        raise ValueError(f"cannot read {path} as a MATLAB file (truncated download?): {err}") from err
    if "joints" not in mat:
        keys = sorted(k for k in mat if not k.startswith("__"))
        raise ValueError(f"{path} has no variable 'joints', found {keys}")
    joints = np.asarray(mat["joints"])
    if joints.ndim != 3 or joints.shape[:2] != (3, 14):
        hint = " (that is LSP extended's (14, 3, N) layout)" if joints.shape[:2] == (14, 3) else ""
        raise ValueError(f"{path}: 'joints' must have shape (3, 14, N), got {joints.shape}{hint}")
    joints = joints.transpose(2, 1, 0).astype(np.float64)  # (N, 14, 3)
    for i, row in enumerate(joints):
        check_array(row, (14, 3), f"{path}, record {i} (im{i + 1:04d}.jpg)")
    return joints


class LSP(RealDataset):
    """Leeds Sports Pose on :data:`~regdakit.keypoints.BODY16`.

    Args:
        root: Folder with ``images/`` and ``joints.mat``.
        split: ``"train"`` (first half), ``"test"`` (second half) or ``"all"``.
        transductive: Every split is all images, as the reference.
        flag: Meaning of ``joints.mat``'s third row: ``"occluded"`` (as the reference) or ``"visible"``.
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "lsp"
    RELEASE = "lsp_dataset.zip (Leeds Sports Pose, University of Leeds)"
    SKELETON = BODY16
    DEFAULT_CROP = "image"

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        transductive: bool = False,
        flag: str = "occluded",
        **kwargs: Any,
    ) -> None:
        super().__init__(root, split, **kwargs)
        if flag not in FLAGS:
            raise ValueError(f"flag must be one of {FLAGS}, got {flag!r}")
        self.transductive = transductive
        images = require(self.root / "images", self.root, self.RELEASE, kind="folder")
        mat = require(self.root / "joints.mat", self.root, self.RELEASE)
        joints = load_joints_mat(mat)  # (N, 14, 3)
        n = len(joints)
        half = n // 2
        indices = range(n) if transductive or split == "all" else range(half) if split == "train" else range(half, n)
        source = list(LSP14_TO_BODY16)
        present = np.array([s is not None for s in source])
        take = [0 if s is None else s for s in source]
        self.records = []
        for i in indices:
            labelled = joints[i, :, 2] < 0.5 if flag == "occluded" else joints[i, :, 2] > 0.5
            self.records.append(
                Record(
                    image=images / f"im{i + 1:04d}.jpg",
                    keypoints=joints[i, take, :2] * present[:, None],
                    visible=labelled[take] & present,
                    source=f"{mat} record {i}",
                    box_points=joints[i, :, :2],  # the 14 real joints, not the zero placeholders
                    meta={"name": f"im{i + 1:04d}.jpg"},
                )
            )
