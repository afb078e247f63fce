"""Human3.6M (JSON annotations of Moon et al.): the real body target of SURREAL -> Human3.6M.

Layout (the Human3.6M images plus the ``Human36M_subject*_*.json`` annotation
release of Moon et al., as the reference expects)::

    images/s_01_act_02_subact_01_ca_01/s_01_act_02_subact_01_ca_01_000001.jpg ...
    annotations/Human36M_subject1_data.json      {"images": [{"file_name", "width", "height",
                                                   "action_idx", "subaction_idx", "cam_idx", "frame_idx"}, ...]}
    annotations/Human36M_subject1_camera.json    {"1": {"R": (3, 3), "t": (3,), "f": (2,), "c": (2,)}, ...}
    annotations/Human36M_subject1_joint_3d.json  {action: {subaction: {frame: (17, 3) world mm}}}

On first use each needed subject is preprocessed as the reference does: every
5th frame, the 17 Human3.6M joints projected (``x_cam = R x_world + t``, then
``u = f x / z + c``) and mapped onto BODY16 (thorax = shoulder midpoint), the
1.5x square cropped and resized to 512 x 512. The crops and an index per
subject go to ``regdakit_cache/human36m/`` under ``root``; files are written
atomically and the index last, so an interrupted run leaves no half cache.
``rebuild=True`` redoes it.

Splits: train subjects 1, 5, 6, 7, 8; test subjects 9, 11, of which
``test_size`` (3200) frames are drawn *without* replacement (the reference
draws with replacement, so its test set repeats frames).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from regdakit.data.real._base import RealDataset, Record
from regdakit.data.real._crop import crop, keypoint_box
from regdakit.data.real._io import atomic_write, atomic_write_json, check_array, read_image, read_json, require
from regdakit.data.real._split import subsample
from regdakit.keypoints import BODY16

__all__ = ["Human36M", "H36M17_NAMES", "H36M17_TO_BODY16", "SUBJECTS", "project"]

SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11), "all": (1, 5, 6, 7, 8, 9, 11)}

H36M17_NAMES = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "torso", "neck", "nose", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip

#: For each BODY16 slot, the Human3.6M joint (the reference's ``body_index``);
#: slot 7 (thorax) is then replaced by the midpoint of the shoulders (11, 14).
H36M17_TO_BODY16 = (3, 2, 1, 4, 5, 6, 0, 11, 8, 10, 16, 15, 14, 11, 12, 13)

CACHE_VERSION = 1


def project(world: np.ndarray, camera: dict[str, np.ndarray]) -> np.ndarray:
    """Project ``(J, 3)`` world points (mm) to ``(J, 2)`` pixels with a Human3.6M camera.

    >>> cam = {"R": np.eye(3), "t": np.zeros(3), "f": np.array([100.0, 100.0]), "c": np.array([50.0, 40.0])}
    >>> project(np.array([[10.0, -20.0, 1000.0]]), cam).tolist()
    [[51.0, 38.0]]
    """
    cam = world @ camera["R"].T + camera["t"]  # (J, 3) camera frame
    return cam[:, :2] / cam[:, 2:] * camera["f"] + camera["c"]


def to_body16(h36m: np.ndarray) -> np.ndarray:
    """``(17, 2)`` Human3.6M joints -> ``(16, 2)`` BODY16 with the thorax at the shoulder midpoint."""
    body = h36m[list(H36M17_TO_BODY16)].copy()
    body[7] = (h36m[11] + h36m[14]) / 2
    return body


class Human36M(RealDataset):
    """Human3.6M on :data:`~regdakit.keypoints.BODY16`, from cached 1.5x crops.

    Args:
        root: Folder with ``images/`` and ``annotations/``.
        split: ``"train"``, ``"test"`` or ``"all"``.
        seed: Seed of the test subsample.
        test_size: Frames drawn (without replacement) from the test subjects.
        subjects: Override the split's subjects, e.g. ``(1,)`` for a partial download.
        keep_every: Keep frames whose index is a multiple of this (5 as the reference).
        cache_size: Side of the cached crops (512 as the reference).
        rebuild: Redo the preprocessing even if a cache exists.
        progress: Show a progress bar while preprocessing.
        **kwargs: See :class:`~regdakit.data.real._base.RealDataset`.
    """

    NAME = "human36m"
    RELEASE = "Human3.6M images with the Human36M_subject*_{data,camera,joint_3d}.json annotations of Moon et al."
    SKELETON = BODY16
    DEFAULT_CROP = "image"  # the cache already holds the 1.5x crops

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        seed: int = 42,
        test_size: int = 3200,
        subjects: tuple[int, ...] | None = None,
        keep_every: int = 5,
        cache_size: int = 512,
        rebuild: bool = False,
        progress: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(root, split, **kwargs)
        self.subjects = tuple(SUBJECTS[split] if subjects is None else subjects)
        self.settings = {"version": CACHE_VERSION, "keep_every": int(keep_every), "cache_size": int(cache_size)}
        self.cache = self.root / "regdakit_cache" / "human36m"
        self.progress = progress
        require(self.root / "images", self.root, self.RELEASE, kind="folder")
        for s in self.subjects:  # validate the whole layout before any work
            for part in ("data", "camera", "joint_3d"):
                require(self.root / "annotations" / f"Human36M_subject{s}_{part}.json", self.root, self.RELEASE)
        records = []
        for s in self.subjects:
            index = self.cache / f"S{s}.json"
            if rebuild or not self._is_current(index):
                self._preprocess(s, index)
            records += self._records(index)
        if split == "test":
            records = [records[i] for i in subsample(len(records), test_size, seed)]
        self.records = records

    def _is_current(self, index: Path) -> bool:
        if not index.is_file():
            return False
        try:
            content = read_json(index)
        except ValueError:
            return False  # unreadable: rebuild it
        return isinstance(content, dict) and all(content.get(k) == v for k, v in self.settings.items())

    def _records(self, index: Path) -> list[Record]:
        content = read_json(index)
        return [
            Record(
                image=self.cache / "crops" / item["file_name"],
                keypoints=check_array(item["keypoints"], (16, 2), f"{index}, record {i}"),
                visible=np.ones(16, dtype=bool),
                source=f"{index} record {i}",
                meta={"name": item["file_name"], "subject": content["subject"]},
            )
            for i, item in enumerate(content["samples"])
        ]

    def _preprocess(self, subject: int, index: Path) -> None:
        index.unlink(missing_ok=True)  # a failed rebuild must not leave the old index pointing at new crops
        frames = self._annotations(subject)  # parse everything before writing anything
        size = self.settings["cache_size"]
        written: list[Path] = []
        samples = []
        try:
            for file_name, keypoints, source in tqdm(
                frames, desc=f"Human3.6M S{subject}: caching crops", unit="img", disable=not self.progress
            ):
                image = read_image(self.root / "images" / file_name, source)
                box = keypoint_box(keypoints, image.shape[-1], image.shape[-2])
                sample = crop(image, keypoints, np.ones(16, dtype=bool), box, size)
                target = self.cache / "crops" / file_name
                atomic_write(target, _jpeg(sample.image))
                written.append(target)
                samples.append({"file_name": file_name, "keypoints": sample.keypoints.double().tolist()})
        except BaseException:
            for path in written:  # nothing partial stays behind
                path.unlink(missing_ok=True)
            raise
        atomic_write_json(index, {**self.settings, "subject": subject, "samples": samples})

    def _annotations(self, subject: int) -> list[tuple[str, np.ndarray, str]]:
        folder = self.root / "annotations"
        data_path = folder / f"Human36M_subject{subject}_data.json"
        cam_path = folder / f"Human36M_subject{subject}_camera.json"
        joint_path = folder / f"Human36M_subject{subject}_joint_3d.json"
        data, cameras, joints = read_json(data_path), read_json(cam_path), read_json(joint_path)
        if not isinstance(data, dict) or not isinstance(data.get("images"), list):
            raise ValueError(f"{data_path}: expected a dict with an 'images' list")
        parsed_cams: dict[str, dict[str, np.ndarray]] = {}
        frames = []
        for i, img in enumerate(data["images"]):
            where = f"{data_path}, record {i}"
            try:
                action, sub, cam, frame = (img[k] for k in ("action_idx", "subaction_idx", "cam_idx", "frame_idx"))
                file_name = img["file_name"]
            except (KeyError, TypeError) as err:
                raise ValueError(f"{where}: missing key {err}") from err
            if int(frame) % self.settings["keep_every"]:
                continue
            if str(cam) not in parsed_cams:
                parsed_cams[str(cam)] = self._camera(cameras, str(cam), cam_path)
            try:
                world = joints[str(action)][str(sub)][str(frame)]
            except (KeyError, TypeError):
                raise ValueError(
                    f"{joint_path} has no joints for action {action}, subaction {sub}, frame {frame} "
                    f"(needed by {where}, {file_name})"
                ) from None
            world = check_array(world, (17, 3), f"{joint_path}, action {action}/{sub}/{frame} ({file_name})")
            uv = project(world, parsed_cams[str(cam)])
            if not np.isfinite(uv).all():
                raise ValueError(f"{where} ({file_name}): projection is not finite (a joint at depth 0?)")
            frames.append((file_name, to_body16(uv), where))
        return frames

    @staticmethod
    def _camera(cameras: Any, cam: str, path: Path) -> dict[str, np.ndarray]:
        if not isinstance(cameras, dict) or not isinstance(cameras.get(cam), dict):
            raise ValueError(f"{path}: no camera {cam!r}")
        shapes = {"R": (3, 3), "t": (3,), "f": (2,), "c": (2,)}
        try:
            return {k: check_array(cameras[cam][k], s, f"{path}, camera {cam}, {k!r}") for k, s in shapes.items()}
        except KeyError as err:
            raise ValueError(f"{path}, camera {cam}: missing key {err}") from err


def _jpeg(image: Any) -> bytes:
    from PIL import Image

    array = (image.permute(1, 2, 0).numpy() * 255 + 0.5).clip(0, 255).astype(np.uint8)  # (S, S, 3)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()
