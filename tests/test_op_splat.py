"""The op ``splat`` (project texels, splat their footprints, resolve the z-buffer winner):
``prepare``, ``render_frame``, ``render_frames``.

| reference | photo3d_fast/ops/splat.py |
| Triton    | kernels/splat.py (photo3d_fast.kernels.splat) |
| CUDA C++  | csrc/splat.cu, through photo3d_fast/ops/cuda.py |
| selector  | photo3d_fast.ops.backends.select("splat", kernels, device) |

First the reference's own geometry and rendering; then every implementation against it,
parametrised over (backend, device) (helpers.BACKEND_DEVICES: Triton interpreted on CPU
tensors, the C++ CPU kernels (csrc/cpu) on CPU tensors, compiled Triton and the CUDA C++
extension on a GPU).

Tolerances (TOLERANCE below): a footprint boundary within float rounding of a pixel center
may flip the coverage of that one pixel, since the kernels multiply-add where the reference
uses a matmul: at most 0.5% of pixels (helpers.assert_close_with_boundary_band). Triton: the
z-buffer winner must be the same texel wherever the two winners' depths differ by more than
the resolve tolerance (again at most 0.5% of pixels may not), and where the winners agree,
colors agree to 1e-5 (float atomic adds sum in another order). C++ CPU: Triton's tolerance
(it rounds as the reference and sums in its order, so it meets it with winners and sums
equal bit for bit on the machines checked, but a BLAS that sums the matmul another way may
flip boundary pixels). CUDA C++ (built with --use_fast_math): colors agree to 2e-3 wherever
both cover the pixel.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import pytest
import torch

from photo3d_fast.ops import splat as ref
from photo3d_fast.scene.camera import intrinsics_from_fov, scale_intrinsics, zoom_intrinsics
from photo3d_fast.scene.ldi import build_ldi

from helpers import (
    BATCH_VIEWS,
    BATCH_ZOOMS,
    SLIDE_VIEWS,
    SLIDE_ZOOMS,
    VIEWS,
    assert_close_with_boundary_band,
    backend_devices,
    batch_cameras,
    cases,
    implementation,
    pose,
    pose_t,
    scene_grid,
    spy_device_guard,
    views,
)

EMPTY = torch.iinfo(torch.int64).max


# -- the reference ---------------------------------------------------------------------------

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
    grid = ref.SurfaceGrid(points[None], None, None, None, None, None, None, 0.0, float(K[0, 0]))
    Kt = torch.tensor(K, dtype=torch.float32)
    u, v, zc = ref.project(grid, torch.eye(4), Kt)
    xs, ys = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    torch.testing.assert_close(u[0], torch.tensor(xs, dtype=torch.float32), atol=1e-3, rtol=0)
    torch.testing.assert_close(v[0], torch.tensor(ys, dtype=torch.float32), atol=1e-3, rtol=0)
    torch.testing.assert_close(zc[0], z, atol=1e-5, rtol=1e-5)
    # a general pose: compare with the textbook K [R^T | -R^T t] X
    c2w = pose(0.3, -0.1, 0.2, yaw=7.0)
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
    assert buf[3] == EMPTY


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
    grid = ref.prepare(build_ldi(image, depth, K, layers=2, band=4, edge_disparity=0.05))
    for tz in (0.2, 0.5, 1.0):
        _, covered = ref.render_frame(grid, pose_t(tz=tz), torch.tensor(K, dtype=torch.float32), (w, h))
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
    Kt = torch.tensor(K, dtype=torch.float32)
    # the camera moves left by `shift`: the block moves right by fx * shift px, the wall by a
    # fifth of that, so a gap of fx * shift * 0.8 px opens left of the block
    shift = 0.15
    band = int(np.ceil(K[0, 0] * shift * 0.8)) + 3
    grid = ref.prepare(build_ldi(image, depth, K, layers=2, band=band))
    color, covered = ref.render_frame(grid, pose_t(tx=-shift), Kt, (w, h))
    wall_edge = 48 + K[0, 0] * shift / 5
    gap = slice(int(wall_edge) + 2, 48 + int(K[0, 0] * shift) - 2)
    assert gap.stop - gap.start >= 5
    assert covered[:, gap].all()
    assert (color[:, gap] < 0.2).all()
    single = ref.prepare(build_ldi(image, depth, K, layers=1))
    _, covered1 = ref.render_frame(single, pose_t(tx=-shift), Kt, (w, h))
    assert not covered1[:, gap].any(), "with one layer the same pixels must be holes"


# -- implementations against the reference ---------------------------------------------------

def _compare_winners(impl, grid, c2w, K, size):
    """Triton's tolerance for one frame: its z-buffer and accumulator against the
    reference's. Returns both (W*H,) z-buffers (fast, reference)."""
    w, h = size
    acc, buf = (t[0] for t in impl.accumulate_frames(grid, c2w[None], K[None], size))
    pix, tex, z, _ = ref.splat_pairs(grid, c2w, K, size)
    rbuf = ref.zbuffer(pix, grid.texels[tex], z, w * h)
    both = (buf != EMPTY) & (rbuf != EMPTY)
    z_t = (buf[both] >> 32).to(torch.int32).view(torch.float32)
    z_r = (rbuf[both] >> 32).to(torch.int32).view(torch.float32)
    tol = ref.RESOLVE_SHARE * grid.edge_disparity
    differ = (buf[both] != rbuf[both]) & ((1 / z_t - 1 / z_r).abs() > tol)
    assert int(differ.sum()) <= max(1, 0.005 * w * h), "z-buffer winners disagree beyond the tolerance"
    color_t, cov_t = ref.finish(acc, buf, size, grid.edge_disparity)
    color_r, cov_r = ref.render_frame(grid, c2w, K, size)
    same = (buf == rbuf).reshape(h, w) & cov_t & cov_r
    coverage_flips = ((buf == EMPTY) != (rbuf == EMPTY)).reshape(h, w)
    assert_close_with_boundary_band(color_t, color_r, flipped=coverage_flips, max_flip_share=0.005, min_flips=1,
                                    where=same, rtol=0, atol=1e-5, what="pixels covered by one but not the other")
    return buf, rbuf


def _frames_match_winners(impl, grid, c2ws, Ks, size, buf, color, covered):
    """Triton's tolerance for a batch's frames: as _compare_winners for each, and the batch's
    colors equal the reference's where the winners agree (everywhere if they all do)."""
    w, h = size
    ref_color, ref_covered = ref.render_frames(grid, c2ws, Ks, size)
    for f in range(len(c2ws)):
        rbuf = _compare_winners(impl, grid, c2ws[f], Ks[f], size)[1]
        same = (buf[f] == rbuf).reshape(h, w) & covered[f] & ref_covered[f]
        torch.testing.assert_close(color[f][same], ref_color[f][same], rtol=0, atol=1e-5)
        if torch.equal(buf[f], rbuf):  # same winners everywhere: the filled holes agree too
            torch.testing.assert_close(color[f], ref_color[f], rtol=0, atol=1e-4)


def _compare_coverage(impl, grid, c2w, K, size):
    """The CUDA C++ twin's tolerance for one frame: its rendered frame against the reference's."""
    fast, cov_f = impl.render_frame(grid, c2w, K, size)
    slow, cov_s = ref.render_frame(grid, c2w, K, size)
    assert_close_with_boundary_band(fast, slow, flipped=cov_f != cov_s, max_flip_share=0.005,
                                    where=cov_f & cov_s, rtol=0, atol=2e-3,
                                    what="pixels covered by one but not the other")


def _frames_match_coverage(impl, grid, c2ws, Ks, size, buf, color, covered):
    """The CUDA C++ twin's tolerance for a batch's frames: each against the reference's frame."""
    for f in range(len(c2ws)):
        slow, cov_s = ref.render_frame(grid, c2ws[f], Ks[f], size)
        assert_close_with_boundary_band(color[f], slow, flipped=covered[f] != cov_s, max_flip_share=0.005,
                                        where=covered[f] & cov_s, rtol=0, atol=2e-3,
                                        what="pixels covered by one but not the other")


class Tolerance(NamedTuple):
    frame: Callable  # (impl, grid, c2w, K, size): one frame against the reference
    frames: Callable  # (impl, grid, c2ws, Ks, size, buf, color, covered): a batch's frames
    acc_rtol: float  # of a batch's accumulator against its frames' (atol 1e-5)


#: How closely each implementation matches the reference: see the module docstring.
TOLERANCE = {"triton": Tolerance(_compare_winners, _frames_match_winners, 0.0),
             "cpp": Tolerance(_compare_winners, _frames_match_winners, 0.0),
             "cuda": Tolerance(_compare_coverage, _frames_match_coverage, 1e-5)}

KINDS = ["mixed", "background", "foreground", "extreme"]
#: The CUDA twin's two views: the photo's camera and a slide right.
SLIDES = ({}, {"tx": 0.06})


def _id(size, kind, seed=None, ldi_options=None, *_):
    return f"{size[0]}x{size[1]}-{kind}" + ("-steps" if "step_share" in (ldi_options or {}) else "")


#: An LDI with steps (LDI.step_disparity) between its rough wall's texels, of either sign.
STEPS = {"layers": 2, "band": 4, "step_share": 0.2}


@pytest.mark.parametrize("backend, device, size, kind, seed, ldi_options, poses", cases({
    # interpreted: small frames, every kind of scene
    ("triton", "cpu"): [(s, k, s[0] * 7 + s[1], {"layers": 2, "band": 4}, VIEWS)
                        for s in ((1, 1), (7, 5), (33, 17)) for k in KINDS]
                       + [((33, 17), "mixed", 3, STEPS, VIEWS)],
    ("cpp", "cpu"): [(s, k, s[0] * 7 + s[1], {"layers": 2, "band": 4}, VIEWS)
                     for s in ((1, 1), (7, 5), (33, 17), (101, 77)) for k in KINDS]
                    + [((240, 136), "mixed", 240, {"layers": 2, "band": 8}, VIEWS),
                       ((101, 77), "mixed", 3, STEPS, VIEWS)],
    ("triton", "cuda"): [(s, "mixed", s[0], {"layers": 2, "band": 8, "kernels": "torch"}, VIEWS)
                         for s in ((33, 17), (640, 360), (1920, 1080))]
                        + [((640, 360), "mixed", 3, {**STEPS, "kernels": "torch"}, VIEWS)],
    ("cuda", "cuda"): [(s, "box", s[0], {}, SLIDES) for s in ((1, 1), (33, 17), (640, 360))]
                      + [((640, 360), "mixed", 3, STEPS, SLIDES)],
}, ids=_id))
def test_render_frame_matches_reference(backend, device, size, kind, seed, ldi_options, poses):
    impl = implementation("splat", backend, device)
    grid, K = scene_grid(size, kind, seed, device=device, **ldi_options)
    Kt = torch.tensor(K, dtype=torch.float32, device=device)
    for c2w in views(device, poses):
        TOLERANCE[backend].frame(impl, grid, c2w, Kt, size)


@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu"), "cpp"))
def test_identity_is_exact_and_layers_three(backend, device):
    impl = implementation("splat", backend, device)
    w, h = 40, 30
    grid, K = scene_grid((w, h), "mixed", 1, layers=3, band=5)
    buf, rbuf = _compare_winners(impl, grid, pose_t(), torch.tensor(K, dtype=torch.float32), (w, h))
    assert torch.equal(buf, rbuf)  # at the identity every texel lands on its own pixel center
    _compare_winners(impl, grid, pose_t(-0.1, 0.05, 0.1, yaw=-3.0), torch.tensor(K, dtype=torch.float32), (w, h))


@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu"), "cpp"))
def test_other_output_size_and_zoom(backend, device):
    impl = implementation("splat", backend, device)
    w, h = 32, 24
    grid, K = scene_grid((w, h), "mixed", 2)
    K_out = zoom_intrinsics(scale_intrinsics(K, (w, h), (50, 40)), 1.3, (50, 40))
    _compare_winners(impl, grid, pose_t(0.05), torch.tensor(K_out, dtype=torch.float32), (50, 40))


@pytest.mark.parametrize("backend, device, size, kind, seed, ldi_options, cameras", cases({
    # interpreted: small frames
    ("triton", "cpu"): [(s, k, s[0] + 5 * s[1], {"layers": 2, "band": 4}, (BATCH_VIEWS, BATCH_ZOOMS))
                        for s in ((1, 1), (19, 11)) for k in ("mixed", "extreme")],
    ("cpp", "cpu"): [(s, k, s[0] + 5 * s[1], {"layers": 2, "band": 4}, (BATCH_VIEWS, BATCH_ZOOMS))
                     for s in ((1, 1), (19, 11), (96, 54)) for k in ("mixed", "extreme")],
    ("triton", "cuda"): [(s, "mixed", s[0] + 1, {"layers": 2, "band": 8, "kernels": "torch"}, (BATCH_VIEWS, BATCH_ZOOMS))
                         for s in ((33, 17), (1920, 1080))],
    ("cuda", "cuda"): [(s, "corner", s[1], {}, (SLIDE_VIEWS, SLIDE_ZOOMS)) for s in ((33, 17), (1280, 720))],
}, ids=_id))
def test_render_frames_match_single_frames_and_reference(backend, device, size, kind, seed, ldi_options, cameras):
    """One launch for a batch of cameras, each with its own pose and zoom, equals one launch
    per camera: z-buffers bit for bit, accumulators to 1e-5 (float atomic adds may land in
    another order on a GPU); and each frame matches the reference within TOLERANCE."""
    impl = implementation("splat", backend, device)
    tolerance = TOLERANCE[backend]
    w, h = size
    grid, K = scene_grid(size, kind, seed, device=device, **ldi_options)
    c2ws, Ks = batch_cameras(size, K, device, *cameras)
    acc, buf = impl.accumulate_frames(grid, c2ws, Ks, size)
    assert acc.shape == (len(c2ws), w * h, 4) and buf.shape == (len(c2ws), w * h)
    for f in range(len(c2ws)):
        acc1, buf1 = impl.accumulate_frames(grid, c2ws[f : f + 1], Ks[f : f + 1], size)
        assert torch.equal(buf[f], buf1[0])
        torch.testing.assert_close(acc[f], acc1[0], rtol=tolerance.acc_rtol, atol=1e-5)
    color, covered = impl.render_frames(grid, c2ws, Ks, size)
    assert color.shape == (len(c2ws), h, w, 3) and covered.shape == (len(c2ws), h, w)
    tolerance.frames(impl, grid, c2ws, Ks, size, buf, color, covered)


@pytest.mark.parametrize("backend, device", backend_devices(("triton", "cpu"), "cpp"))
def test_batched_frames_edge_cases(backend, device):
    impl = implementation("splat", backend, device)
    w, h = 9, 7
    grid, K = scene_grid((w, h), "mixed", 4)
    c2ws, Ks = batch_cameras((w, h), K)
    # no frames
    color, covered = impl.render_frames(grid, c2ws[:0], Ks[:0], (w, h))
    assert color.shape == (0, h, w, 3) and covered.shape == (0, h, w)
    # a camera that sees nothing (everything behind it) beside one that sees everything
    behind = pose_t(yaw=180.0)
    color, covered = impl.render_frames(grid, torch.stack([behind, c2ws[0]]), Ks[:2], (w, h))
    assert not covered[0].any() and covered[1].all()
    assert torch.equal(color[0], torch.zeros_like(color[0]))
    torch.testing.assert_close(color[1], ref.render_frame(grid, c2ws[0], Ks[0], (w, h))[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend, device", backend_devices("triton"))
def test_launches_under_the_grid_device(backend, device, monkeypatch):
    """Triton launches on torch's current device: accumulate_frames must enter the grid's
    device (kernels.on_device) around both passes, or `--device cuda:1` launches on cuda:0."""
    impl = implementation("splat", backend, device)
    w, h = 9, 7
    grid, K = scene_grid((w, h), "mixed", 4, device=device)
    c2ws, Ks = batch_cameras((w, h), K, device)
    spy = spy_device_guard(monkeypatch, impl, ["_zbuffer_kernel", "_resolve_kernel"])
    acc, zbuf = impl.accumulate_frames(grid, c2ws[:2], Ks[:2], (w, h))
    assert spy.launches == 2 and spy.devices == [grid.points.device]
    assert acc.shape == (2, w * h, 4) and (zbuf != EMPTY).any()
