"""The renderer's API, above the ops: render_views (photo + depth + poses -> frames), the
Renderer and its batched launches, frames-per-launch. The ops it runs have their own tests,
one file each: tests/test_op_splat.py, test_op_fill.py, test_op_grow.py, test_op_nv12.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photo3d_fast import Photo3DError, render_views
from photo3d_fast.render import Renderer
from photo3d_fast.scene.camera import intrinsics_from_fov

from helpers import backend_devices, camera_path, cases, pose, scene, scene_ldi


@pytest.mark.parametrize("c2w", [pose(), pose(0.15), pose(-0.1, 0.08), pose(0.05, 0.0, 0.3), pose(0.1, yaw=4)])
def test_nearer_plane_always_wins(c2w):
    """Two fronto-parallel planes, the near one a square of one color in front of a far
    one of another color. Whatever the pose, every pixel where the true near square
    projects shows the near color, and every pixel that sees only the far plane (per the
    analytic geometry) shows the far color."""
    w, h = 96, 72
    K = intrinsics_from_fov(w, h, 60)
    z_near, z_far = 2.0, 6.0
    depth = np.full((h, w), z_far, np.float32)
    depth[24:48, 36:60] = z_near
    image = np.zeros((h, w, 3), np.uint8)
    image[...] = (20, 40, 200)
    image[24:48, 36:60] = (230, 30, 20)
    out = render_views(image, depth, K, c2w[None], layers=2)[0].astype(int)

    # Where does the near square land? Its corners at depth z_near, projected.
    w2c = np.linalg.inv(c2w)

    def proj(x, y, z):
        X = np.array([x, y, 1.0]) @ np.linalg.inv(K).T * z
        c = w2c[:3, :3] @ X + w2c[:3, 3]
        return (K @ c / c[2])[:2]

    (x0, y0), (x1, y1) = proj(36, 24, z_near), proj(60, 48, z_near)
    inner = np.zeros((h, w), bool)
    inner[int(np.ceil(y0)) + 1 : int(np.floor(y1)) - 1, int(np.ceil(x0)) + 1 : int(np.floor(x1)) - 1] = True
    assert inner.sum() > 100
    red = (out[..., 0] > 150) & (out[..., 2] < 100)
    assert red[inner].all(), "the near square must cover the far plane"
    # pixels well outside the near square (3 px margin) show the far plane's blue
    outer = np.ones((h, w), bool)
    outer[max(0, int(y0) - 3) : int(y1) + 4, max(0, int(x0) - 3) : int(x1) + 4] = False
    blue = (out[..., 2] > 150) & (out[..., 0] < 100)
    assert blue[outer].mean() > 0.99


@pytest.mark.parametrize("size", [(64, 48), (97, 61), (1, 1), (1, 9), (7, 1)])
def test_identity_reproduces_input(size):
    w, h = size
    image, depth = scene(size, "rough", seed=w * 100 + h, wall=(1.0, 10.0))
    K = intrinsics_from_fov(w, h, 55)
    out = render_views(image, depth, K, np.eye(4)[None])
    assert out.shape == (1, h, w, 3) and out.dtype == np.uint8
    # every texel lands on its own pixel center; within 1 LSB everywhere, even at edges
    assert np.abs(out[0].astype(int) - image).max() <= 1


def test_render_views_validates_inputs():
    image = np.zeros((8, 8, 3), np.uint8)
    depth = np.ones((8, 8), np.float32)
    K = intrinsics_from_fov(8, 8, 55)
    with pytest.raises(Photo3DError, match="depth is"):
        render_views(image, np.ones((8, 9), np.float32), K, np.eye(4)[None])
    with pytest.raises(Photo3DError, match="finite and positive"):
        render_views(image, np.zeros((8, 8), np.float32), K, np.eye(4)[None])
    with pytest.raises(Photo3DError, match="poses"):
        render_views(image, depth, K, np.eye(4))
    with pytest.raises(Photo3DError, match="uint8"):
        render_views(image.astype(np.float32), depth, K, np.eye(4)[None])
    with pytest.raises(Photo3DError, match="kernels"):
        render_views(image, depth, K, np.eye(4)[None], kernels="magic")


def test_render_views_output_size_and_determinism():
    image, depth = scene((40, 30), "rough", seed=9, wall=(1.0, 4.0))
    K = intrinsics_from_fov(40, 30, 55)
    poses = np.stack([pose(0.05), pose(-0.03, 0.02, 0.1)])
    a = render_views(image, depth, K, poses, size=(64, 36))
    b = render_views(image, depth, K, poses, size=(64, 36))
    assert a.shape == (2, 36, 64, 3)
    np.testing.assert_array_equal(a, b)


def test_auto_frames_per_launch():
    from photo3d_fast.render import auto_frames_per_launch

    assert auto_frames_per_launch("torch", (1920, 1080)) == 1
    assert auto_frames_per_launch("triton", (1280, 720)) == 8
    assert auto_frames_per_launch("cuda", (1920, 1080)) == 4
    assert auto_frames_per_launch("cuda", (3840, 2160)) == 1
    assert auto_frames_per_launch("triton", (7680, 4320)) == 1  # never 0, however large


#: How far a batched frame may be from the same frame rendered alone, in uint8 levels:
#: batching does not change a pixel in the torch reference; in Triton the colors differ by
#: float rounding only (atomic adds in another order).
LEVELS = {"torch": 0, "triton": 1}


@pytest.mark.parametrize("backend, device, n", cases({("torch", "cpu"): [2, 3, 7], ("triton", "cpu"): [3]}))
def test_render_path_in_batches_equals_frame_by_frame(backend, device, n):
    """A batched path (n frames per launch) yields the same frames, in order, as one frame
    per launch, including a last batch that is not full."""
    w, h = 20, 14
    ldi, K = scene_ldi((w, h), "mixed", seed=8, device=device, kernels="torch")
    path = camera_path(5)
    one = [f.clone() for f in Renderer(ldi, backend, frames_per_launch=1).render_path(path, K, (w, h))]
    batched = Renderer(ldi, backend, frames_per_launch=n)
    assert batched.batch_size((w, h)) == n
    many = list(batched.render_path(path, K, (w, h)))
    assert len(many) == len(one) == 5
    for a, b in zip(one, many):
        assert a.shape == (h, w, 3) and a.dtype == torch.uint8
        assert (a.int() - b.int()).abs().max() <= LEVELS[backend]


def test_frames_per_launch_is_checked():
    ldi, _ = scene_ldi((8, 8), "background", seed=0)
    with pytest.raises(Photo3DError, match="frames-per-launch"):
        Renderer(ldi, "torch", frames_per_launch=0)
    from photo3d_fast.config import RenderConfig

    with pytest.raises(Photo3DError, match="frames-per-launch"):
        RenderConfig(frames_per_launch=70000)


@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu")))
def test_render_views_uses_the_chosen_kernels(backend, device):
    """render_views(kernels=...) renders with that backend: frames within one level of the
    torch reference's, and the photo itself at the identity."""
    w, h = 24, 16
    image, depth = scene((w, h), "mixed", seed=3)
    K = intrinsics_from_fov(w, h, 55)
    poses = np.stack([np.eye(4), pose(0.04)])
    fast = render_views(image, depth, K, poses, kernels=backend)
    slow = render_views(image, depth, K, poses, kernels="torch")
    assert fast.shape == slow.shape == (2, h, w, 3)
    assert np.abs(fast.astype(int) - slow).max() <= 1
    assert np.array_equal(fast[0], image)


def test_small_steps_of_an_exact_map_stretch_the_background():
    """A red block 1 in front of a blue wall, the step below the edge threshold (one
    surface, no cut): in an exact depth map it is a step (LDI.step_disparity), and the gap
    a lateral move opens beside the block shows the wall stretched, not the block; an
    estimated map's small steps are noise and stretch both sides halfway, as before."""
    from dataclasses import replace

    from photo3d_fast.scene.ldi import STEP_SHARE, build_ldi

    w, h = 128, 96
    image = np.zeros((h, w, 3), np.uint8)
    image[..., 2] = 200
    depth = np.full((h, w), 4.0, np.float32)
    image[28:68, 44:84] = (200, 0, 0)
    depth[28:68, 44:84] = 3.0  # disparity 0.333 against 0.25: 0.083 below the edge
    K = intrinsics_from_fov(w, h, 55.0)
    ldi = build_ldi(image, depth, K, layers=2, band=4, edge_disparity=0.1)
    assert ldi.step_disparity == pytest.approx(STEP_SHARE * 0.1)  # the map is exact
    noisy = build_ldi(image, depth * np.random.default_rng(0).uniform(0.97, 1.03, depth.shape).astype(np.float32),
                      K, layers=2, band=4, edge_disparity=0.1)
    assert noisy.step_disparity == float("inf")
    c2w = pose(0.3)  # the block moves ~3 px against the wall: a gap of ~3 px opens on one side
    red = {}
    for name, d in (("steps", ldi), ("no steps", replace(ldi, step_disparity=float("inf")))):
        out = Renderer(d, "torch").render(c2w, K, (w, h)).numpy().astype(int)
        rows = out[30:66]  # inside the block's rows
        red[name] = int(((rows[..., 0] > 100) & (rows[..., 2] < 100)).sum(1).max())
        assert int((rows[..., 0] > 100).sum(1).min()) >= 39  # the block keeps its 40 columns
    assert red["steps"] <= 41, red  # the block, its anti-aliased edge at most
    assert red["no steps"] >= red["steps"] + 2, red  # the block stretched over the gap
