"""Shared machinery of the real loaders: crop boxes, the crop itself, I/O errors, pickles, splits, registry, CLI."""

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch
from PIL import Image

from regdakit.__main__ import COMMANDS, main
from regdakit.data.real import DATASETS, RealDataset
from regdakit.data.real._crop import bbox_box, crop, image_box, keypoint_box
from regdakit.data.real._io import atomic_write, check_array, read_image, read_json, require
from regdakit.data.real._pickle import load_array_pickle
from regdakit.data.real._split import holdout, subsample
from regdakit.keypoints import Skeleton

THREE = Skeleton(name="three", names=("a", "b", "c"), groups={}, edges=())


def test_keypoint_box_is_1_5x_square_in_edge_units():
    kp = np.array([[10.0, 20.0], [30.0, 30.0]])  # w = 20, h = 10 -> side 30, centre (20.5, 25.5) in edges
    assert keypoint_box(kp, 100, 100).tolist() == [5.5, 10.5, 35.5, 40.5]


def test_keypoint_box_is_shifted_inside_and_capped_by_the_image():
    kp = np.array([[0.0, 0.0], [20.0, 4.0]])  # side 30 around (10.5, 2.5): slides to the top-left corner
    assert keypoint_box(kp, 100, 100).tolist() == [0.0, 0.0, 30.0, 30.0]
    kp = np.array([[0.0, 0.0], [99.0, 10.0]])  # 1.5 * 99 > 50 = shorter side
    assert keypoint_box(kp, 100, 50).tolist() == [25.0, 0.0, 75.0, 50.0]


def test_bbox_and_image_boxes():
    assert bbox_box(np.array([10.0, 20.0, 20.0, 10.0]), 100, 100).tolist() == [5.0, 10.0, 35.0, 40.0]
    assert image_box(40, 20).tolist() == [0.0, -10.0, 40.0, 30.0]


def test_crop_moves_keypoints_with_the_pixels_and_hides_outside_ones():
    image = torch.zeros(3, 10, 10)
    image[0, 4, 6] = 1.0  # a red pixel at (x=6, y=4)
    kp = np.array([[6.0, 4.0], [0.0, 0.0], [-3.0, 0.0]])
    sample = crop(image, kp, np.array([True, True, True]), np.array([0.0, 0.0, 10.0, 10.0]), 20, meta={"a": 1})
    # scale 2 with edge units: x' = 2 (x + 0.5) - 0.5
    torch.testing.assert_close(sample.keypoints, torch.tensor([[12.5, 8.5], [0.5, 0.5], [-5.5, 0.5]]))
    assert sample.visible.tolist() == [True, True, False]
    assert sample.image.shape == (3, 20, 20) and sample.meta == {"a": 1}
    assert sample.image[0, 8:10, 12:14].min() > 0.5  # the red pixel landed under its keypoint
    flipped = crop(image, kp, np.ones(3, bool), np.array([0.0, 0.0, 10.0, 10.0]), 20, flip=True, skeleton=THREE)
    torch.testing.assert_close(flipped.keypoints[:, 0], 19 - sample.keypoints[:, 0])
    assert flipped.image[0, 8:10, 6:8].min() > 0.5


def test_require_names_path_listing_and_release(tmp_path):
    (tmp_path / "wrong_folder").mkdir()
    with pytest.raises(FileNotFoundError) as err:
        require(tmp_path / "data" / "x.json", tmp_path, "Some_release.zip")
    message = str(err.value)
    assert str(tmp_path / "data" / "x.json") in message and "wrong_folder/" in message
    assert "Some_release.zip" in message


def test_read_image_errors_name_file_and_record(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(ValueError, match=r"bad\.jpg of record rec 7"):
        read_image(bad, "rec 7")
    with pytest.raises(FileNotFoundError, match=r"missing\.png of record r"):
        read_image(tmp_path / "missing.png", "r")
    Image.new("L", (3, 2), 255).save(tmp_path / "grey.png")
    assert read_image(tmp_path / "grey.png", "r").shape == (3, 2, 3)  # grey -> RGB


def test_read_json_and_check_array_errors(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[{"name": 1', encoding="utf-8")
    with pytest.raises(ValueError, match=r"a\.json is not valid JSON"):
        read_json(path)
    with pytest.raises(ValueError, match=r"file, record 3: contains NaN"):
        check_array([[1.0, float("nan")]], (1, 2), "file, record 3")
    with pytest.raises(ValueError, match=r"expected shape \(2, 2\), got \(1, 2\)"):
        check_array([[1.0, 2.0]], (2, 2), "where")
    with pytest.raises(ValueError, match="expected numbers"):
        check_array([[1.0], [1.0, 2.0]], (2, 2), "where")


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "f.bin"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two" and os.listdir(path.parent) == ["f.bin"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_array_pickle_loads_arrays(tmp_path, protocol):
    path = tmp_path / "a.pickle"
    data = {0: {"uv_vis": np.arange(6, dtype=np.float32).reshape(2, 3), "name": "x", "k": [1, 2.5]}}
    path.write_bytes(pickle.dumps(data, protocol=protocol))
    out = load_array_pickle(path)
    np.testing.assert_array_equal(out[0]["uv_vis"], data[0]["uv_vis"])
    assert out[0]["uv_vis"].dtype == np.float32 and out[0]["k"] == [1, 2.5]


def test_array_pickle_refuses_code_and_truncation(tmp_path):
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps({0: _Evil()}))
    with pytest.raises(ValueError, match=r"refusing to load (posix|nt)\.system"):
        load_array_pickle(path)
    path.write_bytes(pickle.dumps({0: np.zeros(3)})[:-5])
    with pytest.raises(ValueError, match=r"cannot load the pickle .*evil\.pickle"):
        load_array_pickle(path)


def test_holdout_equals_the_reference_shuffle_without_touching_the_global_rng():
    random.seed(123)
    state = random.getstate()
    test, train = holdout(50, "test", 42), holdout(50, "train", 42)
    assert random.getstate() == state
    reference = list(range(50))
    random.seed(42)
    random.shuffle(reference)
    assert test == reference[:10] and train == reference[10:]
    assert holdout(50000, "test", 0).__len__() == 3200 and holdout(7, "all", 0) == list(range(7))


def test_subsample_has_no_duplicates():
    drawn = subsample(10, 8, seed=1)
    assert len(drawn) == len(set(drawn)) == 8 and subsample(5, 100, 0).__len__() == 5


def test_registry_maps_names_to_loader_classes():
    assert set(DATASETS) == {"rhd", "h3d", "freihand", "surreal", "lsp", "human36m", "coco"}
    for name, cls in DATASETS.items():
        assert issubclass(cls, RealDataset) and cls.NAME == name and cls.RELEASE


def _h3d_fixture(root):
    (root / "H3D_crop" / "part1").mkdir(parents=True)
    entries = []
    for i in range(6):
        Image.new("RGB", (24, 24), (i * 40, 0, 0)).save(root / "H3D_crop" / "part1" / f"{i}.jpg")
        kp = [[2.0 + j, 3.0 + j / 2] for j in range(21)]
        entries.append({"name": f"part1/{i}.jpg", "keypoint2d": kp, "without_object": 1})
    (root / "H3D_crop" / "annotation.json").write_text(json.dumps(entries), encoding="utf-8")


def test_cli_data_check_counts_splits_and_saves_a_gallery(tmp_path, capsys):
    _h3d_fixture(tmp_path)
    out = tmp_path / "g" / "gallery.png"
    assert main(["data", "check", str(tmp_path), "--dataset", "h3d", "--out", str(out), "--num", "3"]) == 0
    printed = capsys.readouterr().out
    assert "h3d train: 5 items" in printed and "h3d test: 1 items" in printed and "h3d all: 6 items" in printed
    assert out.is_file() and Image.open(out).size[0] > 100


def test_cli_reports_bad_folders_and_names(tmp_path, capsys):
    assert main(["data", "check", str(tmp_path), "--dataset", "h3d", "--out", str(tmp_path / "g.png")]) == 1
    assert "H3D_crop" in capsys.readouterr().err
    assert main(["data", "check", str(tmp_path), "--dataset", "nope"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert "data" in COMMANDS and all(len(v) == 2 for v in COMMANDS.values())
