"""Scene geometry, LDI construction and the torch reference renderer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from photo3d_fast import Photo3DError, render_views
from photo3d_fast.ops.grow import discontinuities
from photo3d_fast.scene.ldi import build_ldi
from photo3d_fast.render import Renderer
from photo3d_fast.ops import splat as ref
from photo3d_fast.scene.camera import intrinsics_from_fov, scale_intrinsics


def _pose(tx=0.0, ty=0.0, tz=0.0, yaw_deg=0.0) -> np.ndarray:
    a = np.radians(yaw_deg)
    p = np.eye(4)
    p[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    p[:3, 3] = [tx, ty, tz]
    return p


@pytest.mark.parametrize("size", [(33, 17), (64, 48), (101, 77)])
def test_projection_round_trip(size):
    """Back-project pixel centers at random depths, move the camera, project: the
    pinhole equations give the same points back."""
    w, h = size
    rng = np.random.default_rng(w)
    K = intrinsics_from_fov(w, h, rng.uniform(30, 90))
    z = torch.tensor(rng.uniform(0.5, 20, (h, w)), dtype=torch.float32)
    points = z[..., None] * ref.pixel_rays(K, (w, h), torch.device("cpu"))
    # identity pose: every point lands on its own pixel center at its own depth
    grid = ref.SurfaceGrid(points[None], None, None, None, None, 0.0, float(K[0, 0]))
    Kt = torch.tensor(K, dtype=torch.float32)
    u, v, zc = ref.project(grid, torch.eye(4), Kt)
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    torch.testing.assert_close(u[0], torch.tensor(xs, dtype=torch.float32), atol=1e-3, rtol=0)
    torch.testing.assert_close(v[0], torch.tensor(ys, dtype=torch.float32), atol=1e-3, rtol=0)
    torch.testing.assert_close(zc[0], z, atol=1e-5, rtol=1e-5)
    # a general pose: compare with the textbook K [R^T | -R^T t] X
    c2w = _pose(0.3, -0.1, 0.2, yaw_deg=7.0)
    u, v, zc = ref.project(grid, torch.tensor(c2w, dtype=torch.float32), Kt)
    X = points.reshape(-1, 3).double().numpy()
    w2c = np.linalg.inv(c2w)
    cam = X @ w2c[:3, :3].T + w2c[:3, 3]
    uvw = cam @ K.T
    torch.testing.assert_close(u[0].reshape(-1).double(), torch.tensor(uvw[:, 0] / uvw[:, 2]), atol=2e-3, rtol=0)
    torch.testing.assert_close(v[0].reshape(-1).double(), torch.tensor(uvw[:, 1] / uvw[:, 2]), atol=2e-3, rtol=0)
    torch.testing.assert_close(zc[0].reshape(-1).double(), torch.tensor(cam[:, 2]), atol=1e-4, rtol=1e-5)


def test_zbuffer_keeps_nearest_and_lowest_id_on_ties():
    pix = torch.tensor([0, 0, 1, 1, 2, 2])
    tex = torch.tensor([5, 3, 9, 2, 7, 4])
    z = torch.tensor([2.0, 3.0, 1.0, 1.0, 0.5, 7.0])
    buf = ref.zbuffer(pix, tex, z, 4)
    assert (buf[:3] & 0xFFFFFFFF).tolist() == [5, 2, 7]
    assert buf[3] == torch.iinfo(torch.int64).max


@pytest.mark.parametrize("pose", [_pose(), _pose(0.15), _pose(-0.1, 0.08), _pose(0.05, 0.0, 0.3), _pose(0.1, yaw_deg=4)])
def test_nearer_plane_always_wins(pose):
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
    out = render_views(image, depth, K, pose[None], layers=2)[0].astype(int)

    # Where does the near square land? Its corners at depth z_near, projected.
    w2c = np.linalg.inv(pose)

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


def test_ldi_back_layer_on_step_depth():
    """A near block on the right half in front of a far wall: the back layer exists
    exactly in a band of the block's pixels next to the edge, with the wall's colors and
    depth, and nowhere else."""
    h, w, band = 40, 64, 6
    depth = np.full((h, w), 5.0, np.float32)
    depth[:, 32:] = 1.0
    rng = np.random.default_rng(1)
    image = np.empty((h, w, 3), np.uint8)
    image[:, :32] = rng.integers(0, 100, (h, 32, 3))  # dark wall texture
    image[:, 32:] = 250  # bright block
    K = intrinsics_from_fov(w, h, 50)
    ldi = build_ldi(image, depth, K, layers=2, band=band)
    mask = ldi.valid[1].numpy()
    expected = np.zeros((h, w), bool)
    expected[:, 32 : 32 + band] = True
    np.testing.assert_array_equal(mask, expected)
    back = ldi.color[1].numpy()[mask]
    assert back.max() <= 100 / 255 + 1e-6, "foreground color leaked into the back layer"
    np.testing.assert_allclose(ldi.depth[1].numpy()[mask], 5.0, rtol=1e-6)
    assert ldi.valid[0].all() and not ldi.valid[1][:, :32].any()


def test_ldi_third_layer_is_nested():
    """Pole (z=1) in front of a box (z=2) in front of a wall (z=6): layer 2 lies behind
    the pole with the box's depth near the box, layer 3 only inside layer 2."""
    h, w = 32, 80
    depth = np.full((h, w), 6.0, np.float32)
    depth[:, 30:60] = 2.0
    depth[:, 36:40] = 1.0
    image = np.full((h, w, 3), 128, np.uint8)
    K = intrinsics_from_fov(w, h, 50)
    ldi = build_ldi(image, depth, K, layers=3, band=8)
    v = ldi.valid.numpy()
    assert v[2].any()
    assert not (v[2] & ~v[1]).any()
    assert (ldi.depth[1].numpy()[v[1]] > 1.9).all()


def test_discontinuities_threshold():
    # disparities 1.0, 0.95, 0.5: only the second step exceeds 0.1
    depth = torch.tensor([[1.0, 1.0 / 0.95, 2.0]])
    fg, bg = discontinuities(depth, edge_disparity=0.1)
    assert fg.tolist() == [[False, True, False]]
    assert bg.tolist() == [[False, False, True]]


def test_slanted_floor_is_one_surface():
    """A plane is linear in disparity: however steep its depth ratio per row (near the
    horizon), it has no edge, while a small real step does."""
    h, w = 60, 8
    fy, cy = 50.0, 0.0
    v = np.arange(h)[:, None] + 0.5
    depth = torch.tensor(np.broadcast_to(fy / (v - cy), (h, w)).astype(np.float32))
    fg, _ = discontinuities(depth, edge_disparity=0.05)
    assert not fg.any()
    depth[30:] *= 1.5
    fg, _ = discontinuities(depth, edge_disparity=0.05)
    assert fg[29].all() and fg.sum() == w  # row 29 is the near side of the step


@pytest.mark.parametrize("size", [(64, 48), (97, 61), (1, 1), (1, 9), (7, 1)])
def test_identity_reproduces_input(size):
    w, h = size
    rng = np.random.default_rng(w * 100 + h)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = rng.uniform(1.0, 10.0, (h, w)).astype(np.float32)
    K = intrinsics_from_fov(w, h, 55)
    out = render_views(image, depth, K, np.eye(4)[None])
    assert out.shape == (1, h, w, 3) and out.dtype == np.uint8
    # every texel lands on its own pixel center; within 1 LSB everywhere, even at edges
    assert np.abs(out[0].astype(int) - image).max() <= 1


def test_forward_motion_has_no_cracks():
    """Dolly into a slanted floor and a wall: no pixel is left for the hole filler."""
    w, h = 120, 90
    K = intrinsics_from_fov(w, h, 60)
    ys = (np.arange(h) + 0.5)[:, None]
    # a floor plane y = 1 below the camera: z = fy / (v - cy) below the horizon, clipped by a wall
    depth = np.where(ys > K[1, 2] + 2, K[1, 1] * 1.0 / np.maximum(ys - K[1, 2], 1e-3), 8.0)
    depth = np.broadcast_to(np.minimum(depth, 8.0), (h, w)).astype(np.float32)
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ldi = build_ldi(image, depth, K, layers=2, band=4, edge_disparity=0.05)
    r = Renderer(ldi, kernels="torch")
    for tz in (0.2, 0.5, 1.0):
        grid = r._grid
        _, covered = ref.render_frame(grid, torch.tensor(_pose(tz=tz), dtype=torch.float32),
                                      torch.tensor(K, dtype=torch.float32), (w, h))
        # forward motion pushes content out of the frame; nothing may open inside it
        assert covered.all(), f"{(~covered).sum().item()} uncovered pixels at tz={tz}"


def test_zoomed_output_size_keeps_texels_dense():
    """Output twice the photo's size: footprints grow so that every pixel is covered."""
    w, h = 40, 30
    K = intrinsics_from_fov(w, h, 55)
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    depth = np.full((h, w), 3.0, np.float32)
    ldi = build_ldi(image, depth, K)
    _, covered = ref.render_frame(ref.prepare(ldi), torch.eye(4), torch.tensor(scale_intrinsics(K, (w, h), (80, 60)), dtype=torch.float32), (80, 60))
    assert covered.all()


def test_back_layer_fills_disocclusion():
    """After a lateral move, pixels that see behind the near block show the wall's
    inpainted colors (dark), not the block's (bright) and not a filled hole."""
    h, w = 48, 96
    depth = np.full((h, w), 5.0, np.float32)
    depth[:, 48:] = 1.0
    image = np.full((h, w, 3), 30, np.uint8)
    image[:, 48:] = 240
    K = intrinsics_from_fov(w, h, 50)
    # the camera moves left by `shift`: the block moves right by fx * shift px, the wall by a
    # fifth of that, so a gap of fx * shift * 0.8 px opens left of the block
    shift = 0.15
    band = int(np.ceil(K[0, 0] * shift * 0.8)) + 3
    ldi = build_ldi(image, depth, K, layers=2, band=band)
    r = Renderer(ldi, kernels="torch")
    color, covered = ref.render_frame(r._grid, torch.tensor(_pose(tx=-shift), dtype=torch.float32),
                                      torch.tensor(K, dtype=torch.float32), (w, h))
    wall_edge = 48 + K[0, 0] * shift / 5
    gap = slice(int(wall_edge) + 2, 48 + int(K[0, 0] * shift) - 2)
    assert gap.stop - gap.start >= 5
    assert covered[:, gap].all()
    assert (color[:, gap] < 0.2).all()
    single = Renderer(build_ldi(image, depth, K, layers=1), kernels="torch")
    _, covered1 = ref.render_frame(single._grid, torch.tensor(_pose(tx=-shift), dtype=torch.float32),
                                   torch.tensor(K, dtype=torch.float32), (w, h))
    assert not covered1[:, gap].any(), "with one layer the same pixels must be holes"


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
    rng = np.random.default_rng(9)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    depth = rng.uniform(1, 4, (30, 40)).astype(np.float32)
    K = intrinsics_from_fov(40, 30, 55)
    poses = np.stack([_pose(0.05), _pose(-0.03, 0.02, 0.1)])
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


@pytest.mark.parametrize("n", [2, 3, 7])
def test_render_path_in_batches_equals_frame_by_frame(n):
    """A batched path yields the same frames, in order, as one frame per launch, including
    a last batch that is not full."""
    from photo3d_fast.scene.paths import CameraPath

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    depth = rng.uniform(2, 4, (24, 32)).astype(np.float32)
    depth[6:18, 8:16] = 1.0
    K = intrinsics_from_fov(32, 24, 55)
    ldi = build_ldi(image, depth, K)
    path = CameraPath(np.stack([_pose(0.02 * i, -0.01 * i) for i in range(5)]), np.linspace(1.0, 1.2, 5))
    one = [f.clone() for f in Renderer(ldi, "torch", frames_per_launch=1).render_path(path, K, (32, 24))]
    batched = Renderer(ldi, "torch", frames_per_launch=n)
    assert batched.batch_size((32, 24)) == n
    many = list(batched.render_path(path, K, (32, 24)))
    assert len(many) == len(one) == 5
    for a, b in zip(one, many):
        assert a.shape == (24, 32, 3) and a.dtype == torch.uint8
        assert torch.equal(a, b)


def test_frames_per_launch_is_checked():
    rng = np.random.default_rng(0)
    ldi = build_ldi(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), np.ones((8, 8), np.float32),
                    intrinsics_from_fov(8, 8, 55))
    with pytest.raises(Photo3DError, match="frames-per-launch"):
        Renderer(ldi, "torch", frames_per_launch=0)
    from photo3d_fast.config import RenderConfig

    with pytest.raises(Photo3DError, match="frames-per-launch"):
        RenderConfig(frames_per_launch=70000)
