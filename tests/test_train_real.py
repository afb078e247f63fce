"""The trainer on a real-dataset folder (a tiny H3D fixture) and the resumable loader stream."""

import json

import pytest
import torch
from PIL import Image

from regdakit.data.streams import LoaderStream
from regdakit.train import make_config, make_eval_sets, make_stream, train

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def h3d_root(tmp_path):
    base = tmp_path / "H3D_crop"
    (base / "part1").mkdir(parents=True)
    entries = []
    for i in range(24):
        Image.new("RGB", (64, 64), (10 * i, 80, 120)).save(base / "part1" / f"{i:03d}.jpg")
        kp = [[8.0 + 2 * j, 10.0 + j] for j in range(21)]
        entries.append({"name": f"part1/{i:03d}.jpg", "keypoint2d": kp, "keypoint3d": [[0.0, 0.0, 1.0]] * 21,
                        "intrinsic_matrix": [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], "without_object": 1})  # fmt: skip
    (base / "annotation.json").write_text(json.dumps(entries), encoding="utf-8")
    return tmp_path


def test_loader_stream_is_endless_and_resumes_the_order():
    data = [{"i": torch.tensor(i)} for i in range(10)]
    stream = LoaderStream(data, batch_size=3, seed=1)
    seen = [next(stream)["i"].tolist() for _ in range(7)]  # 3 full batches per epoch: crosses two epochs
    assert all(len(b) == 3 for b in seen) and stream.epoch == 2
    assert sorted(sum(seen[:3], [])) == sorted(set(sum(seen[:3], [])))  # no repeats within an epoch
    state = stream.state_dict()
    expected = [next(stream)["i"].tolist() for _ in range(4)]
    again = LoaderStream(data, batch_size=3, seed=1)
    again.load_state_dict(state)
    assert [next(again)["i"].tolist() for _ in range(4)] == expected
    with pytest.raises(ValueError, match="fewer than one batch"):
        LoaderStream(data, batch_size=11)


def test_real_source_needs_its_root_and_the_right_skeleton(h3d_root):
    with pytest.raises(ValueError, match="source_root"):
        make_config("ci", task="hands", source="h3d")
    with pytest.raises(ValueError, match="does not have the bodies skeleton"):
        make_config("ci", task="bodies", source="h3d", source_root=str(h3d_root))
    with pytest.raises(ValueError, match="or a real dataset with the hands skeleton"):
        make_config("ci", task="hands", source="lsp_typo")


def test_train_erm_on_a_real_folder_and_evaluate_on_synthetic(h3d_root, tmp_path):
    cfg = make_config(
        "ci", task="hands", method="erm", source="h3d", source_root=str(h3d_root), target="studio",
        workers=0, out=str(tmp_path / "runs"), pretrain_iterations=3, eval_every=3, checkpoint_every=3,
    )  # fmt: skip
    batch = next(make_stream(cfg, "h3d", seed=0, labels=True))
    assert batch["image"].shape == (cfg.batch_size, 3, cfg.image_size, cfg.image_size)
    assert batch["heatmap"].shape[1:] == (21, cfg.heatmap_size, cfg.heatmap_size)
    assert set(next(make_stream(cfg, "h3d", seed=0, labels=False))) == {"image", "meta"}
    sets = make_eval_sets(cfg)
    images, keypoints, visible = next(iter(sets["source_val"]))
    assert images.shape[1:] == (3, cfg.image_size, cfg.image_size) and keypoints.shape[1:] == (21, 2)
    train(cfg, progress=False)
    logged = list((tmp_path / "runs").rglob("metrics.jsonl"))
    final = list((tmp_path / "runs").rglob("final.json"))
    assert len(logged) == 1 and "pck@0.05/all" in logged[0].read_text()
    assert len(final) == 1 and "target_test" in final[0].read_text()
