"""Triton splat + resolve against the torch reference (TRITON_INTERPRET=1 on CPU, see conftest).

Tolerances: the z-buffer winner must be the same texel wherever the two winners' depths
differ by more than the resolve tolerance (a footprint boundary within float rounding
of a pixel center may flip coverage of that one pixel, since the kernel multiplies-adds
where the reference uses a matmul: at most 0.5% of pixels); where the winners agree, colors
agree to 1e-5 (float atomic adds sum in another order).
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from photo3d_fast.scene.ldi import build_ldi
from photo3d_fast.ops import splat as ref
from photo3d_fast.scene.camera import intrinsics_from_fov

from conftest import INTERPRETED

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")
interpreted = pytest.mark.skipif(not INTERPRETED, reason="compiled Triton needs CUDA tensors: see the *_on_gpu test")


def _pose(tx=0.0, ty=0.0, tz=0.0, yaw=0.0) -> torch.Tensor:
    a = np.radians(yaw)
    p = np.eye(4)
    p[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    p[:3, 3] = [tx, ty, tz]
    return torch.tensor(p, dtype=torch.float32)


def _scene(w, h, kind, seed):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    if kind == "background":  # one far plane: no edges at all
        depth = np.full((h, w), 7.0, np.float32)
    elif kind == "foreground":  # everything near, slanted
        depth = (0.6 + 0.2 * np.linspace(0, 1, w)[None, :] * np.ones((h, 1))).astype(np.float32)
    elif kind == "extreme":  # depths from 1e-2 to 1e4
        depth = np.exp(rng.uniform(np.log(1e-2), np.log(1e4), (h, w))).astype(np.float32)
    else:  # boxes in front of a wall, random rough depth
        depth = rng.uniform(4.0, 6.0, (h, w)).astype(np.float32)
        depth[h // 4 : 3 * h // 4, w // 4 : w // 2] = 1.5
        depth[h // 3 :, 2 * w // 3 :] = 0.9
    return image, depth


def _grid(size, kind, seed, **ldi_options):
    """(surface grid of a two-layer LDI of _scene, K (3, 3) float64) for an output of ``size``."""
    w, h = size
    image, depth = _scene(w, h, kind, seed)
    K = intrinsics_from_fov(w, h, 55)
    return ref.prepare(build_ldi(image, depth, K, **ldi_options)), K


def _compare(grid, c2w, K, size):
    from photo3d_fast.kernels import splat

    w, h = size
    acc, buf = splat.accumulate(grid, c2w, K, size)
    pix, tex, z, _ = ref.splat_pairs(grid, c2w, K, size)
    rbuf = ref.zbuffer(pix, grid.texels[tex], z, w * h)
    empty = torch.iinfo(torch.int64).max
    both = (buf != empty) & (rbuf != empty)
    z_t = (buf[both] >> 32).to(torch.int32).view(torch.float32)
    z_r = (rbuf[both] >> 32).to(torch.int32).view(torch.float32)
    tol = ref.RESOLVE_SHARE * grid.edge_disparity
    differ = (buf[both] != rbuf[both]) & ((1 / z_t - 1 / z_r).abs() > tol)
    assert int(differ.sum()) <= max(1, 0.005 * w * h), "z-buffer winners disagree beyond the tolerance"
    coverage_flips = int(((buf == empty) != (rbuf == empty)).sum())
    assert coverage_flips <= max(1, 0.005 * w * h)
    color_t, cov_t = ref.finish(acc, buf, size)
    color_r, cov_r = ref.render_frame(grid, c2w, K, size)
    same = (buf == rbuf).reshape(h, w) & cov_t & cov_r
    torch.testing.assert_close(color_t[same], color_r[same], rtol=0, atol=1e-5)
    return buf, rbuf


@interpreted
@pytest.mark.parametrize("size", [(1, 1), (7, 5), (33, 17)])
@pytest.mark.parametrize("kind", ["mixed", "background", "foreground", "extreme"])
def test_triton_matches_reference(size, kind):
    w, h = size
    grid, K = _grid((w, h), kind, w * 7 + h, layers=2, band=4)
    Kt = torch.tensor(K, dtype=torch.float32)
    for c2w in (_pose(), _pose(0.08, -0.03), _pose(tz=0.3), _pose(0.05, yaw=5.0)):
        _compare(grid, c2w, Kt, size)


@interpreted
def test_identity_is_exact_and_layers_three():
    w, h = 40, 30
    grid, K = _grid((w, h), "mixed", 1, layers=3, band=5)
    buf, rbuf = _compare(grid, _pose(), torch.tensor(K, dtype=torch.float32), (w, h))
    assert torch.equal(buf, rbuf)  # at the identity every texel lands on its own pixel center
    _compare(grid, _pose(-0.1, 0.05, 0.1, yaw=-3.0), torch.tensor(K, dtype=torch.float32), (w, h))


@interpreted
def test_other_output_size_and_zoom():
    w, h = 32, 24
    grid, K = _grid((w, h), "mixed", 2)
    from photo3d_fast.scene.camera import scale_intrinsics, zoom_intrinsics

    K_out = zoom_intrinsics(scale_intrinsics(K, (w, h), (50, 40)), 1.3, (50, 40))
    _compare(grid, _pose(0.05), torch.tensor(K_out, dtype=torch.float32), (50, 40))


@interpreted
def test_renderer_dispatch_uses_triton():
    from photo3d_fast import render_views

    w, h = 24, 16
    image, depth = _scene(w, h, "mixed", seed=3)
    K = intrinsics_from_fov(w, h, 55)
    poses = np.stack([np.eye(4), _pose(0.04).numpy().astype(np.float64)])
    fast = render_views(image, depth, K, poses, kernels="triton")
    slow = render_views(image, depth, K, poses, kernels="torch")
    assert fast.shape == slow.shape == (2, h, w, 3)
    assert np.abs(fast.astype(int) - slow).max() <= 1
    assert np.array_equal(fast[0], image)


def _batch_poses(size, K, device="cpu"):
    """Five cameras of one batch, each with its own pose and zoom."""
    from photo3d_fast.scene.camera import zoom_intrinsics

    poses = [_pose(), _pose(0.08, -0.03), _pose(tz=0.3), _pose(0.05, yaw=5.0), _pose(-0.06, 0.02, -0.1)]
    Ks = [zoom_intrinsics(K, z, size) for z in (1.0, 1.0, 1.2, 1.1, 0.9)]
    return (torch.stack(poses).to(device), torch.tensor(np.stack(Ks), dtype=torch.float32, device=device))


def _check_batch(impl, grid, c2ws, Ks, size):
    """A batch equals its frames rendered one by one: z-buffers bit for bit, colors to 1e-5
    (float atomic adds may land in another order on a GPU); and each frame matches the
    reference as _compare does."""
    w, h = size
    acc, buf = impl.accumulate_frames(grid, c2ws, Ks, size)
    assert acc.shape == (len(c2ws), w * h, 4) and buf.shape == (len(c2ws), w * h)
    for f in range(len(c2ws)):
        acc1, buf1 = impl.accumulate_frames(grid, c2ws[f : f + 1], Ks[f : f + 1], size)
        assert torch.equal(buf[f], buf1[0])
        torch.testing.assert_close(acc[f], acc1[0], rtol=0, atol=1e-5)
    color, covered = impl.render_frames(grid, c2ws, Ks, size)
    assert color.shape == (len(c2ws), h, w, 3) and covered.shape == (len(c2ws), h, w)
    ref_color, ref_covered = ref.render_frames(grid, c2ws, Ks, size)
    for f in range(len(c2ws)):
        rbuf = _compare(grid, c2ws[f], Ks[f], size)[1]
        same = (buf[f] == rbuf).reshape(h, w) & covered[f] & ref_covered[f]
        torch.testing.assert_close(color[f][same], ref_color[f][same], rtol=0, atol=1e-5)
        if torch.equal(buf[f], rbuf):  # same winners everywhere: the filled holes agree too
            torch.testing.assert_close(color[f], ref_color[f], rtol=0, atol=1e-4)


@interpreted
@pytest.mark.parametrize("size", [(1, 1), (19, 11)])
@pytest.mark.parametrize("kind", ["mixed", "extreme"])
def test_batched_frames_match_single_frames_and_reference(size, kind):
    from photo3d_fast.kernels import splat

    w, h = size
    grid, K = _grid((w, h), kind, w + 5 * h, layers=2, band=4)
    _check_batch(splat, grid, *_batch_poses(size, K), size)


@interpreted
def test_renderer_batches_triton_launches():
    """The Renderer's batched path (3 frames per launch, a last batch of 2) yields what one
    frame per launch does: uint8 frames equal to within one level (colors differ by float
    rounding only)."""
    from photo3d_fast.scene.paths import CameraPath
    from photo3d_fast.render import Renderer

    w, h = 20, 14
    image, depth = _scene(w, h, "mixed", seed=8)
    K = intrinsics_from_fov(w, h, 55)
    ldi = build_ldi(image, depth, K, kernels="torch")
    path = CameraPath(np.stack([_pose(0.02 * i, yaw=i).numpy() for i in range(5)]), np.linspace(1.0, 1.15, 5))
    one = list(Renderer(ldi, "triton", frames_per_launch=1).render_path(path, K, (w, h)))
    three = list(Renderer(ldi, "triton", frames_per_launch=3).render_path(path, K, (w, h)))
    assert len(three) == 5
    for a, b in zip(one, three):
        assert (a.int() - b.int()).abs().max() <= 1


@interpreted
def test_batched_frames_edge_cases():
    from photo3d_fast.kernels import splat

    w, h = 9, 7
    grid, K = _grid((w, h), "mixed", 4)
    c2ws, Ks = _batch_poses((w, h), K)
    # no frames
    color, covered = splat.render_frames(grid, c2ws[:0], Ks[:0], (w, h))
    assert color.shape == (0, h, w, 3) and covered.shape == (0, h, w)
    # a camera that sees nothing (everything behind it) beside one that sees everything
    behind = _pose(yaw=180.0)
    color, covered = splat.render_frames(grid, torch.stack([behind, c2ws[0]]), Ks[:2], (w, h))
    assert not covered[0].any() and covered[1].all()
    assert torch.equal(color[0], torch.zeros_like(color[0]))
    torch.testing.assert_close(color[1], ref.render_frame(grid, c2ws[0], Ks[0], (w, h))[0], rtol=0, atol=1e-5)


@pytest.mark.skipif(INTERPRETED or not torch.cuda.is_available(),
                    reason="needs a CUDA GPU and TRITON_INTERPRET=0 (compiled kernels)")
@pytest.mark.parametrize("size", [(33, 17), (640, 360), (1920, 1080)])
def test_triton_on_gpu_matches_reference(size):
    w, h = size
    grid, K = _grid((w, h), "mixed", w, layers=2, band=8, device="cuda", kernels="torch")
    Kt = torch.tensor(K, dtype=torch.float32, device="cuda")
    for c2w in (_pose(), _pose(0.08, -0.03), _pose(tz=0.3), _pose(0.05, yaw=5.0)):
        _compare(grid, c2w.cuda(), Kt, size)


@pytest.mark.skipif(INTERPRETED or not torch.cuda.is_available(),
                    reason="needs a CUDA GPU and TRITON_INTERPRET=0 (compiled kernels)")
@pytest.mark.parametrize("size", [(33, 17), (1920, 1080)])
def test_triton_batched_on_gpu(size):
    from photo3d_fast.kernels import splat

    w, h = size
    grid, K = _grid((w, h), "mixed", w + 1, layers=2, band=8, device="cuda", kernels="torch")
    _check_batch(splat, grid, *_batch_poses(size, K, "cuda"), size)
