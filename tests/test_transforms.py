import pytest
import torch

from regdakit.data.base import KeypointDataset, Sample
from regdakit.data.transforms import (
    Augment,
    affine_matrices,
    box_matrices,
    color_jitter,
    gaussian_blur,
    hflip,
    inside,
    warp_images,
    warp_keypoints,
)
from regdakit.keypoints import BODY16, Skeleton


def blob_images(points: torch.Tensor, h: int, w: int, sigma: float = 1.5) -> torch.Tensor:
    """(B, 3, h, w) images with a Gaussian blob at each (B, 2) point."""
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    d2 = (xs - points[:, 0, None, None]) ** 2 + (ys - points[:, 1, None, None]) ** 2
    return torch.exp(-d2 / (2 * sigma**2))[:, None].expand(-1, 3, -1, -1).clone()


def centroid(images: torch.Tensor) -> torch.Tensor:
    """(B, 2) intensity-weighted centre of channel 0."""
    img = images[:, 0]
    h, w = img.shape[-2:]
    total = img.sum((-2, -1))
    x = (img * torch.arange(w, dtype=img.dtype)).sum((-2, -1)) / total
    y = (img * torch.arange(h, dtype=img.dtype)[:, None]).sum((-2, -1)) / total
    return torch.stack([x, y], -1)


def test_marker_follows_its_keypoint_through_random_warps():
    g = torch.Generator().manual_seed(0)
    b, h, w = 16, 60, 80  # non-square
    points = torch.rand(b, 2, generator=g, dtype=torch.float64) * torch.tensor([40.0, 30.0]) + torch.tensor(
        [20.0, 15.0]
    )
    images = blob_images(points, h, w)
    center = (
        torch.tensor([[w / 2, h / 2]], dtype=torch.float64).expand(b, 2)
        + torch.randn(b, 2, generator=g, dtype=torch.float64) * 3
    )
    rotation = torch.rand(b, generator=g, dtype=torch.float64) * 360 - 180
    scale = torch.rand(b, generator=g, dtype=torch.float64) * 0.6 + 0.7
    matrices = affine_matrices(center, (50, 50), scale, rotation)
    out = warp_images(images, matrices, (50, 50))
    moved = warp_keypoints(points[:, None], matrices)[:, 0]
    keep = inside(moved[:, None], (50, 50))[:, 0] & (moved.min(-1).values > 6) & (moved.max(-1).values < 44)
    assert keep.sum() >= 8
    torch.testing.assert_close(centroid(out)[keep], moved[keep], atol=0.05, rtol=0)


def test_rotation_direction_and_identity():
    center = torch.tensor([[4.5, 4.5]])
    identity = affine_matrices(center, (10, 10))
    torch.testing.assert_close(identity, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]]))
    quarter = affine_matrices(center, (10, 10), rotation=90.0)
    # a point to the right of the centre goes up on screen (smaller y) under a counter-clockwise turn
    moved = warp_keypoints(torch.tensor([[[7.5, 4.5]]]), quarter)
    torch.testing.assert_close(moved, torch.tensor([[[4.5, 1.5]]]), atol=1e-6, rtol=0)


def test_box_crop_like_pil_crop_and_resize():
    image = torch.arange(64.0).reshape(1, 1, 8, 8).expand(1, 3, 8, 8)
    out = warp_images(image, box_matrices(torch.tensor([[2.0, 3.0, 6.0, 7.0]]), 4), 4)
    torch.testing.assert_close(out, image[:, :, 3:7, 2:6])  # integer box, same size: an exact crop
    # a box twice the output size halves coordinates about its corner
    m = box_matrices(torch.tensor([[0.0, 0.0, 8.0, 8.0]]), 4)
    torch.testing.assert_close(
        warp_keypoints(torch.tensor([[[-0.5, -0.5], [7.5, 7.5], [3.5, 3.5]]]), m),
        torch.tensor([[[-0.5, -0.5], [3.5, 3.5], [1.5, 1.5]]]),
    )
    with pytest.raises(ValueError, match="x1 > x0"):
        box_matrices(torch.tensor([[4.0, 0.0, 4.0, 8.0]]), 4)


def test_hflip_swaps_left_right_and_mirrors():
    kp = torch.rand(2, 16, 2) * 30
    vis = torch.rand(2, 16) > 0.3
    images = torch.rand(2, 3, 32, 40)
    fi, fk, fv = hflip(images, kp, vis, BODY16)
    la, ra = BODY16.index("l_ankle"), BODY16.index("r_ankle")
    torch.testing.assert_close(fk[:, la, 0], 39 - kp[:, ra, 0])
    torch.testing.assert_close(fk[:, la, 1], kp[:, ra, 1])
    assert torch.equal(fv[:, la], vis[:, ra])
    assert torch.equal(fi[..., 0], images[..., -1])
    twice = hflip(fi, fk, fv, BODY16)
    torch.testing.assert_close(twice[1], kp)


def test_marker_follows_flip():
    points = torch.tensor([[10.3, 7.0]], dtype=torch.float64)
    images = blob_images(points, 20, 30)
    fi, fk, _ = hflip(images, points[:, None], torch.ones(1, 1, dtype=torch.bool), Skeleton("one", ("a",), {}, ()))
    torch.testing.assert_close(centroid(fi), fk[:, 0], atol=1e-3, rtol=0)


def test_augment_keypoints_exact_and_invisible_when_out_of_frame():
    g = torch.Generator().manual_seed(1)
    points = torch.tensor([[32.0, 32.0]], dtype=torch.float64).expand(12, 2).clone()
    images = blob_images(points, 64, 64)
    aug = Augment(rotation=180, area_scale=(0.6, 1.3), color=0.0, blur=0.0)
    out, kp, vis = aug.batch(images.float(), points[:, None].float(), torch.ones(12, 1, dtype=torch.bool), g)
    torch.testing.assert_close(centroid(out.double()), kp[:, 0].double(), atol=0.05, rtol=0)
    corner = torch.tensor([[[0.0, 0.0]]]).expand(50, 1, 2)
    _, kp2, vis2 = aug.batch(torch.rand(50, 3, 64, 64), corner, torch.ones(50, 1, dtype=torch.bool), g)
    assert (~vis2).any() and torch.equal(vis2[:, 0], inside(kp2, 64)[:, 0])


def test_augment_reproducible_from_generator():
    images, kp, vis = torch.rand(4, 3, 32, 32), torch.rand(4, 16, 2) * 32, torch.ones(4, 16, dtype=torch.bool)
    aug = Augment(flip=0.5, skeleton=BODY16)
    a = aug.batch(images, kp, vis, torch.Generator().manual_seed(3))
    b = aug.batch(images, kp, vis, torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_augment_flip_needs_skeleton_and_bad_scale():
    with pytest.raises(ValueError, match="skeleton"):
        Augment(flip=0.5)
    with pytest.raises(ValueError, match="area_scale"):
        Augment(area_scale=(0.0, 1.0))


def test_color_jitter_and_blur_properties():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 3, 16, 16, generator=g)
    out = color_jitter(images, 0.25, g)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert torch.equal(color_jitter(images, 0.0), images)
    blurred = gaussian_blur(images, torch.tensor([0.0, 1.0, 2.0]))
    torch.testing.assert_close(blurred[0], images[0], atol=1e-4, rtol=0)  # sigma 0 keeps it sharp
    assert blurred[2].std() < blurred[1].std() < images[1].std()
    torch.testing.assert_close(blurred.mean((-2, -1)), images.mean((-2, -1)), atol=0.02, rtol=0)


class _Points(KeypointDataset):
    def __init__(self, n=3, **kw):
        super().__init__(BODY16, domain="toy", **kw)
        self.n = n

    def __len__(self):
        return self.n

    def load(self, index):
        kp = torch.full((16, 2), 8.0 * index + 4)
        vis = torch.ones(16, dtype=torch.bool)
        vis[3] = False
        return Sample(torch.zeros(3, 64, 64), kp, vis, {"seed": 7})


def test_dataset_items_and_heatmaps_and_collate():
    ds = _Points(heatmap_size=16)
    item = ds[1]
    assert set(item) == {"image", "keypoints", "visible", "meta", "heatmap", "weight"}
    assert item["heatmap"].shape == (16, 16, 16) and item["weight"][3] == 0 and item["weight"][0] == 1
    assert item["heatmap"][0].argmax() == 3 * 16 + 3  # (12, 12) px / stride 4
    assert item["meta"] == {"domain": "toy", "index": 1, "seed": 7}
    batch = torch.utils.data.default_collate([ds[0], ds[2]])
    assert batch["image"].shape == (2, 3, 64, 64) and batch["visible"].dtype == torch.bool
    assert ds[-1]["meta"]["index"] == 2
    with pytest.raises(IndexError, match="out of range"):
        ds[3]


def test_dataset_without_labels_yields_no_keypoints():
    item = _Points(labels=False, heatmap_size=16)[0]
    assert set(item) == {"image", "meta"}


def test_sample_validation():
    with pytest.raises(ValueError, match=r"image must have shape \(3, H, W\)"):
        Sample(torch.zeros(64, 64), torch.zeros(2, 2), torch.ones(2))
    with pytest.raises(ValueError, match=r"visible must have shape \(2,\)"):
        Sample(torch.zeros(3, 4, 4), torch.zeros(2, 2), torch.ones(3))
    assert Sample(torch.zeros(3, 4, 4), torch.zeros(2, 2), torch.tensor([0.9, 0.1])).visible.tolist() == [True, False]
