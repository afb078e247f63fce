import pytest
import torch

from regdakit.data.synthetic import (
    DOMAINS,
    GENERATOR_VERSION,
    GENERATOR_VERSIONS,
    SyntheticStream,
    make_dataset,
    render,
)
from regdakit.data.synthetic.bodies import BODY_PRIORS, sample_bodies
from regdakit.data.synthetic.hands import HAND_PRIORS, sample_hands
from regdakit.data.synthetic.raster import Capsules, rasterize
from regdakit.data.synthetic.render import visibility
from regdakit.keypoints import BODY16, HAND21


@pytest.mark.parametrize("task, domain", [(t, d) for t in DOMAINS for d in DOMAINS[t]])
def test_render_shapes_ranges_and_determinism(task, domain):
    a = render(task, domain, 4, 64, torch.Generator().manual_seed(5))
    b = render(task, domain, 4, 64, torch.Generator().manual_seed(5))
    c = render(task, domain, 4, 64, torch.Generator().manual_seed(6))
    k = 21 if task == "hands" else 16
    assert a.images.shape == (4, 3, 64, 64) and a.images.dtype == torch.float32
    assert a.keypoints.shape == (4, k, 2) and a.visible.shape == (4, k) and a.visible.dtype == torch.bool
    assert 0 <= a.images.min() and a.images.max() <= 1
    assert torch.equal(a.images, b.images) and torch.equal(a.keypoints, b.keypoints)
    assert not torch.equal(a.images, c.images)
    assert 0.3 < a.visible.float().mean() < 1.0  # some self-occlusion, most keypoints seen


@pytest.mark.parametrize(
    "sampler, prior, parts",
    [(sample_hands, HAND_PRIORS["rendered"], HAND21), (sample_bodies, BODY_PRIORS["synthetic"], BODY16)],
)
def test_visible_keypoints_lie_on_the_drawn_figure(sampler, prior, parts):
    posed = sampler(16, prior, 96, torch.Generator().manual_seed(0))
    raster = rasterize(posed.capsules, 96, 96)
    scale = posed.capsules.radius[:, :1] / 0.11
    vis = visibility(raster, posed.keypoints, posed.depth + posed.keypoint_radius + 0.04 * scale, 96)
    pixel = posed.keypoints.round().long().clamp(0, 95)
    on_figure = raster.mask[torch.arange(16)[:, None], pixel[..., 1], pixel[..., 0]]
    assert vis.any() and on_figure[vis].all()


def test_visibility_from_the_depth_buffer_hand_case():
    # a horizontal bar in front (z = 10) crosses a vertical bar behind it (z = 0)
    a = torch.tensor([[[2.0, 10.0], [10.0, 2.0]]])
    b = torch.tensor([[[18.0, 10.0], [10.0, 18.0]]])
    caps = Capsules(a, b, torch.tensor([[10.0, 0.0]]), torch.tensor([[10.0, 0.0]]), torch.tensor([[2.0, 2.0]]))
    raster = rasterize(caps, 20, 20)
    assert raster.part[0, 10, 10] == 0 and raster.part[0, 16, 10] == 1 and raster.part[0, 0, 0] == -1
    keypoints = torch.tensor([[[10.0, 10.0], [10.0, 16.0], [30.0, 5.0]]])  # under the bar, free, outside
    surface = torch.tensor([[0.0 + 2.0 + 0.5, 2.5, 2.5]])
    assert visibility(raster, keypoints, surface, 20).tolist() == [[False, True, False]]


def test_rasterize_matches_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    a = torch.rand(2, 7, 2, generator=g) * 30
    b = a + (torch.rand(2, 7, 2, generator=g) - 0.5) * 20
    z = torch.rand(2, 7, generator=g) * 5
    r = torch.rand(2, 7, generator=g) * 4 + 0.5
    raster = rasterize(Capsules(a, b, z, z + 1, r), 24, 28)
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(28.0), indexing="ij")
    for i in range(2):
        best = torch.full((24, 28), float("-inf"))
        part = torch.full((24, 28), -1)
        for s in range(7):
            d = b[i, s] - a[i, s]
            t = (((xs - a[i, s, 0]) * d[0] + (ys - a[i, s, 1]) * d[1]) / (d @ d)).clamp(0, 1)
            dist2 = (xs - a[i, s, 0] - t * d[0]) ** 2 + (ys - a[i, s, 1] - t * d[1]) ** 2
            depth = z[i, s] + t + (r[i, s] ** 2 - dist2).clamp_min(0).sqrt()
            depth[dist2 >= r[i, s] ** 2] = float("-inf")
            front = (depth >= best) & torch.isfinite(depth)
            best, part = torch.where(front, depth, best), torch.where(front, s, part)
        assert torch.equal(raster.part[i], part)
        torch.testing.assert_close(raster.depth[i][part >= 0], best[part >= 0])


def test_dataset_is_reproducible_and_order_independent():
    a = make_dataset("hands", "studio", "val", size=64, n=70, seed=3)
    b = make_dataset("hands", "studio", "val", size=64, n=70, seed=3)
    late = b[69]["image"]  # renders the second block first
    assert torch.equal(a[69]["image"], late) and torch.equal(a[0]["keypoints"], b[0]["keypoints"])
    other = make_dataset("hands", "studio", "test", size=64, n=70, seed=3)
    assert not torch.equal(a[0]["image"], other[0]["image"])  # splits are disjoint draws
    item = a[5]
    assert item["meta"]["generator_version"] == GENERATOR_VERSIONS["hands"] and item["meta"]["split"] == "val"
    images, keypoints, visible = a.tensors()
    assert images.shape == (70, 3, 64, 64) and torch.equal(images[5], item["image"])


def test_dataset_heatmaps_and_unlabelled_target():
    ds = make_dataset("bodies", "lab", "train", size=64, n=4, heatmap_size=16)
    item = ds[0]
    assert item["heatmap"].shape == (16, 16, 16) and item["weight"].shape == (16,)
    assert torch.equal(
        item["weight"].bool(), item["visible"] & ((item["keypoints"] / 4 + 0.5).floor().clamp(-1, 16).lt(16).all(-1))
    )
    assert set(make_dataset("bodies", "lab", "train", size=64, n=4, labels=False)[0]) == {"image", "meta"}


def test_stream_resumes_exactly_and_hides_target_labels():
    s = SyntheticStream("hands", "rendered", 3, 64, seed=1, heatmap_size=16)
    next(s)
    state = s.state_dict()
    expected = next(s)
    t = SyntheticStream("hands", "rendered", 3, 64, seed=1, heatmap_size=16)
    t.load_state_dict(state)
    again = next(t)
    assert torch.equal(expected["image"], again["image"]) and torch.equal(expected["heatmap"], again["heatmap"])
    target = next(SyntheticStream("hands", "studio", 2, 64, labels=False))
    assert set(target) == {"image", "meta"}


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: make_dataset("faces", "studio", "test"), r"task must be one of \['bodies', 'hands'\], got 'faces'"),
        (
            lambda: make_dataset("hands", "wild", "test"),
            r"domain of task 'hands' must be one of \['rendered', 'studio'\]",
        ),
        (lambda: make_dataset("hands", "studio", "dev"), r"split must be one of \('train', 'val', 'test'\), got 'dev'"),
        (lambda: make_dataset("hands", "studio", "test", size=30), "size must be a multiple of 4 in"),
        (lambda: make_dataset("hands", "studio", "test", size=1024), "got 1024"),
        (lambda: make_dataset("hands", "studio", "test", n=0), "n must be an int >= 1, got 0"),
        (lambda: SyntheticStream("hands", "studio", 0), "batch_size must be an int >= 1"),
        (lambda: render("bodies", "studio", 1, 64, torch.Generator()), "domain of task 'bodies'"),
    ],
)
def test_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_shipped_samples_are_reproduced_exactly():
    import importlib.util
    import json
    from pathlib import Path

    import numpy as np
    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "data_samples" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    mosaic, labels = module.render_sample("hands", "studio")
    png, js = module.paths("hands", "studio")
    assert np.array_equal(np.asarray(Image.open(png).convert("RGB")), mosaic)
    assert json.loads(js.read_text()) == labels
    assert sum(f.stat().st_size for f in path.parent.iterdir()) < 5 * 2**20


def test_each_task_has_its_own_generator_version():
    # bodies v2 (hair, revised targets) must not change a single hands image: the seed hashes the task's version
    assert GENERATOR_VERSIONS == {"hands": "synthetic-1.0", "bodies": "synthetic-2.0"}
    assert GENERATOR_VERSION == "synthetic-2.0"
    assert make_dataset("bodies", "lab", "val", size=64, n=2)[0]["meta"]["generator_version"] == "synthetic-2.0"


def test_data_subpackages_load_on_first_attribute_access():
    import subprocess
    import sys

    code = (
        "import sys, regdakit as rk; assert 'regdakit.data.synthetic' not in sys.modules; "
        "assert rk.data.synthetic.__name__ == 'regdakit.data.synthetic' and rk.data.real and rk.data.streams; "
        "assert {'real', 'streams', 'synthetic'} <= set(dir(rk.data))"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
