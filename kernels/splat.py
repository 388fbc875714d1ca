"""Fused splat and resolve of LDI texels in Triton: the renderer's per-frame hot path.

Same contract as ``photo3d_fast.ops.splat`` (``prepare`` and ``render_frame``),
same math, in two passes over the texels instead of ~60 tensor passes:

1. ``_zbuffer_kernel``: per texel, read its world point and its four surface neighbours,
   transform and project all five (camera = R^T (X - t), OpenCV pinhole), derive the
   per-side footprint exactly as ``ops.splat.footprints`` does, and ``atomic_min`` the key
   (float bits of z << 32 | texel id) into every covered pixel of an int64 z-buffer.
2. ``_resolve_kernel``: recompute the same footprint (cheaper than storing it), read the
   winner of each covered pixel, and ``atomic_add`` the tent-weighted color of texels
   within the resolve tolerance into a (pixels, 4) float32 accumulator.

Normalisation is shared with the reference (``ops.splat.finish_frames``); silhouettes are
blended by ``antialias_silhouettes`` below (``_antialias_kernel``: one program per block of
pixels, reading each pixel's and its 4 neighbours' colour, weight and disparity) and holes are
filled by the Triton twin of the fill (``kernels/fill.py``).

Batching: ``render_frames`` renders F cameras with one launch of each kernel (the launch
grid's second axis is the frame, each frame with its own camera block, z-buffer and
accumulator). Per frame the work and bytes are unchanged; what batching saves is the
fixed cost of a frame: a dozen-odd launches (buffer fills, both passes, normalisation, the three
fill passes) and the two host synchronisations of the single-frame path (its "any hole?"
and "any orphan?" checks), which leave the GPU idle while the host queues the next frame.

Bytes per frame, both passes (T texels, P covered (pixel, texel) pairs, N output pixels):
each pass reads 5 points (60 B, neighbours mostly from cache: ~12 B from DRAM) + 4 link
bytes + the texel id (8 B); pass 1 does P int64 atomics (16 B each), pass 2 reads P
z-buffer entries (8 B), 3 color floats per texel (12 B) and does P 16-byte atomic adds.
Roughly 2 * 24 * T + 40 * P + 16 * N bytes from DRAM, with P ~ 1.3 T for a swing.

Floating-point: the transform is written as multiply-adds, the reference as a matmul; a
texel whose footprint boundary falls within rounding of a pixel center may cover one
pixel more or less than in the reference (the tests bound how often), and the float
atomic adds make color sums order-dependent on a GPU (differences of ~1e-7).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

import photo3d_fast.kernels as _kernels
from photo3d_fast.config import MAX_FRAMES_PER_LAUNCH
from photo3d_fast.kernels.fill import fill_frames
from photo3d_fast.ops.splat import (
    COVERAGE_FULL,
    FOOTPRINT_MARGIN,
    MAX_HALF_EXTENT,
    RESOLVE_SHARE,
    Z_NEAR,
    SurfaceGrid,
    cameras,
    finish_frames,
    prepare,
)

__all__ = ["prepare", "render_frame", "render_frames", "accumulate", "accumulate_frames", "antialias_silhouettes"]

BLOCK = 128
# Module-level constexprs: @triton.jit helpers see these, not their caller's parameters.
Z_NEAR_C = tl.constexpr(Z_NEAR)
MARGIN_C = tl.constexpr(FOOTPRINT_MARGIN)
MAX_EXT_C = tl.constexpr(MAX_HALF_EXTENT)
# z-buffer key of depth 1.0 (float bits 0x3F800000 << 32): what masked lanes read, so
# they never divide by zero
ONE_KEY = tl.constexpr(0x3F800000 << 32)


@triton.jit
def _project(points_ptr, idx, cam_ptr, mask):
    """Camera-space point and pixel coords of grid point ``idx`` (3 floats at idx*3)."""
    x = tl.load(points_ptr + idx * 3 + 0, mask=mask, other=1.0)
    y = tl.load(points_ptr + idx * 3 + 1, mask=mask, other=1.0)
    z = tl.load(points_ptr + idx * 3 + 2, mask=mask, other=1.0)
    # cam_ptr: R (row-major 3x3), t (3), fx, fy, cx, cy
    dx = x - tl.load(cam_ptr + 9)
    dy = y - tl.load(cam_ptr + 10)
    dz = z - tl.load(cam_ptr + 11)
    # R^T (X - t): column j of R dotted with (X - t)
    cx_ = tl.load(cam_ptr + 0) * dx + tl.load(cam_ptr + 3) * dy + tl.load(cam_ptr + 6) * dz
    cy_ = tl.load(cam_ptr + 1) * dx + tl.load(cam_ptr + 4) * dy + tl.load(cam_ptr + 7) * dz
    cz_ = tl.load(cam_ptr + 2) * dx + tl.load(cam_ptr + 5) * dy + tl.load(cam_ptr + 8) * dz
    inv_z = 1.0 / tl.maximum(cz_, Z_NEAR_C)
    u = tl.load(cam_ptr + 12) * cx_ * inv_z + tl.load(cam_ptr + 14)
    v = tl.load(cam_ptr + 13) * cy_ * inv_z + tl.load(cam_ptr + 15)
    return u, v, cz_, z


@triton.jit
def _side(near, far, shear, code, first: tl.constexpr, has_far, own):
    """Extent of one footprint side, as ops.splat.footprints. code: the link byte on this
    side (SurfaceGrid.links_u8: 0 none, 1 a link, 2 / 3 a step whose first / second texel is
    the nearer); first: this texel is the link's first (the side after it)."""
    nearer = code == (2 if first else 3)
    farther = code == (3 if first else 2)
    reach = tl.where(farther, MARGIN_C * near - 0.5, 0.5 * MARGIN_C * tl.maximum(near, shear))
    linked = tl.minimum(tl.maximum(reach, 0.5), MAX_EXT_C)
    silhouette = tl.minimum(tl.where(has_far, 0.5 * far, own), MAX_EXT_C)
    return tl.where((code != 0) & ~nearer, linked, silhouette)


@triton.jit
def _footprint(points_ptr, link_x_ptr, link_y_ptr, cam_ptr, tex, mask, H, W, out_w, out_h, grid_focal):
    """Projected center, depth and per-side extents of texels ``tex`` (flat L*H*W ids)."""
    x = tex % W
    y = (tex // W) % H
    k = tex // (W * H)
    u, v, z, z_src = _project(points_ptr, tex, cam_ptr, mask)
    has_l = mask & (x > 0)
    has_r = mask & (x < W - 1)
    has_t = mask & (y > 0)
    has_b = mask & (y < H - 1)
    # links: link_x (L, H, W-1) between x and x+1; link_y (L, H-1, W) between y and y+1
    lx = k * H * (W - 1) + y * (W - 1) + x
    ly = k * (H - 1) * W + y * W + x
    code_l = tl.load(link_x_ptr + lx - 1, mask=has_l, other=0)
    code_r = tl.load(link_x_ptr + lx, mask=has_r, other=0)
    code_t = tl.load(link_y_ptr + ly - W, mask=has_t, other=0)
    code_b = tl.load(link_y_ptr + ly, mask=has_b, other=0)
    has_l = has_l & (code_l != 0)
    has_r = has_r & (code_r != 0)
    has_t = has_t & (code_t != 0)
    has_b = has_b & (code_b != 0)
    ul, vl, _, _ = _project(points_ptr, tex - 1, cam_ptr, has_l)
    ur, vr, _, _ = _project(points_ptr, tex + 1, cam_ptr, has_r)
    ut, vt, _, _ = _project(points_ptr, tex - W, cam_ptr, has_t)
    ub, vb, _, _ = _project(points_ptr, tex + W, cam_ptr, has_b)
    du_l = tl.where(has_l, tl.abs(u - ul), 0.0)
    du_r = tl.where(has_r, tl.abs(ur - u), 0.0)
    dv_t = tl.where(has_t, tl.abs(v - vt), 0.0)
    dv_b = tl.where(has_b, tl.abs(vb - v), 0.0)
    shear_u = tl.maximum(tl.where(has_t, tl.abs(u - ut), 0.0), tl.where(has_b, tl.abs(ub - u), 0.0))
    shear_v = tl.maximum(tl.where(has_l, tl.abs(v - vl), 0.0), tl.where(has_r, tl.abs(vr - v), 0.0))
    # output fx over the LDI's fx: the magnification of an isolated texel at equal depth
    own = 0.5 * tl.load(cam_ptr + 12) / grid_focal * z_src / tl.maximum(z, Z_NEAR_C)
    left = _side(du_l, du_r, shear_u, code_l, False, has_r, own)
    right = _side(du_r, du_l, shear_u, code_r, True, has_l, own)
    up = _side(dv_t, dv_b, shear_v, code_t, False, has_b, own)
    down = _side(dv_b, dv_t, shear_v, code_b, True, has_t, own)
    x0 = tl.maximum(tl.ceil(u - left - 0.5), 0.0).to(tl.int32)
    x1 = tl.minimum(tl.floor(u + right - 0.5), (out_w - 1).to(tl.float32)).to(tl.int32)
    y0 = tl.maximum(tl.ceil(v - up - 0.5), 0.0).to(tl.int32)
    y1 = tl.minimum(tl.floor(v + down - 0.5), (out_h - 1).to(tl.float32)).to(tl.int32)
    ok = mask & (z > Z_NEAR_C)
    nx = tl.where(ok, tl.maximum(x1 - x0 + 1, 0), 0)
    ny = tl.where(ok, tl.maximum(y1 - y0 + 1, 0), 0)
    return u, v, z, left, right, up, down, x0, y0, nx, ny


@triton.jit
def _zbuffer_kernel(points_ptr, link_x_ptr, link_y_ptr, cam_ptr, texels_ptr, zbuf_ptr,
                    n_texels, H, W, OUT_W, OUT_H, grid_focal, BLOCK: tl.constexpr):
    # axis 1 is the frame: one launch renders a batch, each frame its own camera and buffer
    frame = tl.program_id(1).to(tl.int64)
    cam_ptr += frame * 16
    zbuf_ptr += frame * OUT_W * OUT_H
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_texels
    tex = tl.load(texels_ptr + offs, mask=mask, other=0)
    u, v, z, left, right, up, down, x0, y0, nx, ny = _footprint(
        points_ptr, link_x_ptr, link_y_ptr, cam_ptr, tex, mask, H, W, OUT_W, OUT_H, grid_focal)
    # Positive float bits order like the floats, so the integer minimum is the nearest
    # texel, ties broken by the lower id, whatever order the atomics land in.
    key = (z.to(tl.int32, bitcast=True).to(tl.int64) << 32) | tex
    # relaxed: nothing is read back within the pass (the launch boundary orders the passes),
    # so the default acq_rel's fences would only slow every update; relaxed with an unused
    # result compiles to a fire-and-forget `red` (tests/test_kernels_aot.py checks the PTX)
    for j in range(0, tl.max(ny, axis=0)):
        for i in range(0, tl.max(nx, axis=0)):
            hit = (i < nx) & (j < ny)
            pix = (y0 + j).to(tl.int64) * OUT_W + (x0 + i)
            tl.atomic_min(zbuf_ptr + pix, key, mask=hit, sem="relaxed")


@triton.jit
def _resolve_kernel(points_ptr, link_x_ptr, link_y_ptr, cam_ptr, texels_ptr, colors_ptr, zbuf_ptr,
                    acc_ptr, n_texels, H, W, OUT_W, OUT_H, grid_focal, tolerance, BLOCK: tl.constexpr):
    frame = tl.program_id(1).to(tl.int64)
    cam_ptr += frame * 16
    zbuf_ptr += frame * OUT_W * OUT_H
    acc_ptr += frame * OUT_W * OUT_H * 4
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_texels
    tex = tl.load(texels_ptr + offs, mask=mask, other=0)
    u, v, z, left, right, up, down, x0, y0, nx, ny = _footprint(
        points_ptr, link_x_ptr, link_y_ptr, cam_ptr, tex, mask, H, W, OUT_W, OUT_H, grid_focal)
    r = tl.load(colors_ptr + offs * 3 + 0, mask=mask, other=0.0)
    g = tl.load(colors_ptr + offs * 3 + 1, mask=mask, other=0.0)
    b = tl.load(colors_ptr + offs * 3 + 2, mask=mask, other=0.0)
    # div_rn: IEEE division as torch's ('/' is approximate on a GPU), so the keep test at the
    # tolerance matches the reference
    inv_z = tl.math.div_rn(1.0, z)
    for j in range(0, tl.max(ny, axis=0)):
        for i in range(0, tl.max(nx, axis=0)):
            hit = (i < nx) & (j < ny)
            px = x0 + i
            py = y0 + j
            pix = py.to(tl.int64) * OUT_W + px
            win = tl.load(zbuf_ptr + pix, mask=hit, other=ONE_KEY)
            z_win = (win >> 32).to(tl.int32).to(tl.float32, bitcast=True)
            keep = hit & (inv_z >= tl.math.div_rn(1.0, z_win) - tolerance)  # false for NaN (empty pixel)
            dx = px.to(tl.float32) + 0.5 - u
            dy = py.to(tl.float32) + 0.5 - v
            wx = 1.0 - tl.abs(dx) / (tl.where(dx < 0, left, right) + 0.5)
            wy = 1.0 - tl.abs(dy) / (tl.where(dy < 0, up, down) + 0.5)
            w = wx * wy
            tl.atomic_add(acc_ptr + pix * 4 + 0, r * w, mask=keep, sem="relaxed")
            tl.atomic_add(acc_ptr + pix * 4 + 1, g * w, mask=keep, sem="relaxed")
            tl.atomic_add(acc_ptr + pix * 4 + 2, b * w, mask=keep, sem="relaxed")
            tl.atomic_add(acc_ptr + pix * 4 + 3, w, mask=keep, sem="relaxed")


def accumulate_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                      size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both passes for F frames in two launches: (acc (F, W*H, 4) float32, zbuf (F, W*H) int64).

    c2ws: (F, 4, 4), Ks: (F, 3, 3), on the grid's device; size: (W, H) of every frame.
    Frame f is ``accumulate(grid, c2ws[f], Ks[f], size)``: the same z-buffer bit for bit (the
    launch grid only gains a frame axis), colors up to the order of float atomic adds.
    """
    w, h = size
    n_frames = c2ws.shape[0]
    if n_frames > MAX_FRAMES_PER_LAUNCH:
        raise ValueError(f"at most {MAX_FRAMES_PER_LAUNCH} frames per launch (the grid's second axis), got {n_frames}")
    L, H, W = grid.points.shape[:3]
    dev = grid.points.device
    points = grid.points.reshape(-1, 3).contiguous()
    link_x, link_y = grid.links_u8
    cam = cameras(c2ws, Ks)
    n = grid.texels.numel()
    zbuf = torch.full((n_frames, w * h), torch.iinfo(torch.int64).max, dtype=torch.int64, device=dev)
    acc = torch.zeros(n_frames, w * h, 4, dtype=torch.float32, device=dev)
    if n == 0 or n_frames == 0:
        return acc, zbuf
    grid_size = (triton.cdiv(n, BLOCK), n_frames)
    colors = grid.colors.contiguous()
    with _kernels.on_device(points):
        _zbuffer_kernel[grid_size](points, link_x, link_y, cam, grid.texels, zbuf, n, H, W, w, h, grid.focal,
                                   BLOCK=BLOCK)
        _resolve_kernel[grid_size](points, link_x, link_y, cam, grid.texels, colors, zbuf, acc, n, H, W, w, h,
                                   grid.focal, RESOLVE_SHARE * grid.edge_disparity, BLOCK=BLOCK)
    return acc, zbuf


def accumulate(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both passes: (acc (W*H, 4) float32, zbuf (W*H,) int64), as ops.splat.render_frame builds them."""
    acc, zbuf = accumulate_frames(grid, c2w[None], K[None], size)
    return acc[0], zbuf[0]


@triton.jit
def _antialias_kernel(color_ptr, weight_ptr, disp_ptr, out_ptr, H, W, edge, coverage_full,
                      BLOCK: tl.constexpr):
    """One block of pixels of one frame (grid axis 1); color (F, 3, H, W), weight and disp
    (F, H, W), all float32 contiguous."""
    f = tl.program_id(1).to(tl.int64)
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    n = H * W
    inb = offs < n
    y = offs // W
    x = offs % W
    base = f * n
    wt = tl.load(weight_ptr + base + offs, mask=inb, other=0.0)
    d = tl.load(disp_ptr + base + offs, mask=inb, other=0.0)
    known = wt > 0
    r_acc = tl.zeros([BLOCK], tl.float32)
    g_acc = tl.zeros([BLOCK], tl.float32)
    b_acc = tl.zeros([BLOCK], tl.float32)
    count = tl.zeros([BLOCK], tl.float32)
    for k in tl.static_range(4):
        dy = 1 if k == 0 else (-1 if k == 1 else 0)
        dx = 1 if k == 2 else (-1 if k == 3 else 0)
        ny = y + dy
        nx = x + dx
        ok = inb & (ny >= 0) & (ny < H) & (nx >= 0) & (nx < W)
        q = ny * W + nx
        wq = tl.load(weight_ptr + base + q, mask=ok, other=0.0)
        dq = tl.load(disp_ptr + base + q, mask=ok, other=0.0)
        behind = ok & known & (wq > 0) & (d - dq > edge)
        r_acc += tl.where(behind, tl.load(color_ptr + 3 * base + q, mask=behind, other=0.0), 0.0)
        g_acc += tl.where(behind, tl.load(color_ptr + 3 * base + n + q, mask=behind, other=0.0), 0.0)
        b_acc += tl.where(behind, tl.load(color_ptr + 3 * base + 2 * n + q, mask=behind, other=0.0), 0.0)
        count += tl.where(behind, 1.0, 0.0)
    alpha = tl.minimum(tl.maximum(wt / coverage_full, 0.0), 1.0)
    inv = 1.0 / tl.maximum(count, 1.0)
    blend = count > 0
    for c in tl.static_range(3):
        v = tl.load(color_ptr + 3 * base + c * n + offs, mask=inb, other=0.0)
        acc = r_acc if c == 0 else (g_acc if c == 1 else b_acc)
        out = tl.where(blend, v * alpha + acc * inv * (1.0 - alpha), v)
        tl.store(out_ptr + 3 * base + c * n + offs, out, mask=inb)


def antialias_silhouettes(color: torch.Tensor, weight: torch.Tensor, disp: torch.Tensor, edge: float) -> torch.Tensor:
    """Same contract as ops.splat.antialias_silhouettes: color (F, 3, H, W), weight and disp
    (F, H, W) float32 -> (F, 3, H, W). Bytes: 5 reads of weight and disparity (mostly
    cache hits: ~8 B from DRAM per pixel), 12 B of colour read and 12 B written."""
    n, _, h, w = color.shape
    color, weight, disp = color.float().contiguous(), weight.float().contiguous(), disp.float().contiguous()
    out = torch.empty_like(color)
    if n == 0 or h * w == 0:
        return out
    grid = (triton.cdiv(h * w, BLOCK), n)
    with _kernels.on_device(color):
        _antialias_kernel[grid](color, weight, disp, out, h, w, float(edge), COVERAGE_FULL, BLOCK=BLOCK)
    return out


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frame: (H, W, 3) float32 color and (H, W) bool coverage.

    A batch of one: the batched path asks the device one question per frame (any orphan
    holes?) where ``finish`` with the single-frame fill asks three, at the price of running
    the fill's passes on a frame without holes too (~50 B per pixel, ~30 us at 1080p on an
    H100), which a host round trip and the idle GPU behind it cost about as much as.
    """
    color, covered = render_frames(grid, c2w[None], K[None], size)
    return color[0], covered[0]


def render_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frames, F frames per launch of each kernel:
    (F, H, W, 3) float32 color and (F, H, W) bool coverage."""
    acc, zbuf = accumulate_frames(grid, c2ws, Ks, size)
    return finish_frames(acc, zbuf, size, grid.edge_disparity, fill=fill_frames, antialias=antialias_silhouettes)
