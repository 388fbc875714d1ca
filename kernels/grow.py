"""LDI construction in Triton: depth-edge seeds and the back-layer growth, one launch per ring.

Same contract as ``photo3d_fast.ops.grow.grow_back_layer`` (torch reference), same results:

- ``_seeds_kernel``: a pixel is a background seed when a 4-neighbour is nearer by more than
  the edge threshold in disparity (``ops.grow.discontinuities``).
- ``_grow_kernel``: one growth ring. Every pixel reads its 8 neighbours' state from the
  previous ring (double-buffered, as the reference updates all pixels at once), joins when
  a known neighbour lies behind it by more than the threshold, and takes the mean color and
  depth of the known neighbours within the threshold of the nearest such one. An atomic
  counter of newcomers lets the launcher stop early, as the reference does.

Colors of the band are then drawn by ``fill_from_background`` (shared with the reference).

Disparities (1/z) are kept in a plane of their own, written once per newcomer with IEEE
division (``tl.math.div_rn``, as torch divides; Triton's ``/`` is approximate on a GPU and
would move masks decided at the threshold), so the stencil compares loads, not quotients.

Bytes per ring and pixel: 9 x (disparity + 1 known byte) read, the 4 values of the taken
neighbours, mostly from cache (the 3x3 stencil re-reads its neighbours' rows), about 24 B
from DRAM; 5 floats + 2 bytes written.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

import photo3d_fast.kernels as _kernels
from photo3d_fast.ops.fill import fill_from_background

BLOCK = 256


@triton.jit
def _seeds_kernel(depth_ptr, seeds_ptr, H, W, edge, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < H * W
    x = offs % W
    y = offs // W
    # div_rn: IEEE division as torch's (the default '/' is approximate on a GPU), so masks
    # decided at the threshold match the reference
    disp = tl.math.div_rn(1.0, tl.load(depth_ptr + offs, mask=mask, other=1.0))
    seed = tl.zeros([BLOCK], dtype=tl.int1)
    for k in tl.static_range(4):
        dx = (k == 0) * -1 + (k == 1) * 1
        dy = (k == 2) * -1 + (k == 3) * 1
        ok = mask & (x + dx >= 0) & (x + dx < W) & (y + dy >= 0) & (y + dy < H)
        other = tl.math.div_rn(1.0, tl.load(depth_ptr + offs + dy * W + dx, mask=ok, other=1.0))
        seed = seed | (ok & (other - disp > edge))
    tl.store(seeds_ptr + offs, seed.to(tl.int8), mask=mask)


@triton.jit
def _grow_kernel(values_in, known_in, mask_in, disp_in, values_out, known_out, mask_out, disp_out, limit_ptr,
                 allowed_ptr, count_ptr, H, W, edge, HAS_ALLOWED: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < H * W
    x = offs % W
    y = offs // W
    limit = tl.load(limit_ptr + offs, mask=inside, other=0.0)
    # pass 1: the nearest known neighbour behind this pixel (largest disparity below limit)
    nearest = tl.zeros([BLOCK], dtype=tl.float32)
    for k in tl.static_range(9):
        dx = k % 3 - 1
        dy = k // 3 - 1
        if k != 4:
            ok = inside & (x + dx >= 0) & (x + dx < W) & (y + dy >= 0) & (y + dy < H)
            n = offs + dy * W + dx
            kn = tl.load(known_in + n, mask=ok, other=0) != 0
            d = tl.load(disp_in + n, mask=ok & kn, other=1.0)
            d = tl.where(ok & kn & (d < limit), d, 0.0)
            nearest = tl.maximum(nearest, d)
    was = tl.load(mask_in + offs, mask=inside, other=0) != 0
    accept = inside & ~was & (nearest > 0)
    if HAS_ALLOWED:
        accept = accept & (tl.load(allowed_ptr + offs, mask=inside, other=0) != 0)
    # pass 2: mean of the known neighbours within the threshold of the nearest
    c0 = tl.zeros([BLOCK], dtype=tl.float32)
    c1 = tl.zeros([BLOCK], dtype=tl.float32)
    c2 = tl.zeros([BLOCK], dtype=tl.float32)
    c3 = tl.zeros([BLOCK], dtype=tl.float32)
    count = tl.zeros([BLOCK], dtype=tl.float32)
    cutoff = nearest - edge
    for k in tl.static_range(9):
        dx = k % 3 - 1
        dy = k // 3 - 1
        if k != 4:
            ok = accept & (x + dx >= 0) & (x + dx < W) & (y + dy >= 0) & (y + dy < H)
            n = offs + dy * W + dx
            kn = tl.load(known_in + n, mask=ok, other=0) != 0
            d = tl.load(disp_in + n, mask=ok & kn, other=1.0)
            take = ok & kn & (d < limit) & (d >= cutoff)
            z = tl.load(values_in + 3 * H * W + n, mask=take, other=0.0)
            c0 += tl.where(take, tl.load(values_in + n, mask=take, other=0.0), 0.0)
            c1 += tl.where(take, tl.load(values_in + H * W + n, mask=take, other=0.0), 0.0)
            c2 += tl.where(take, tl.load(values_in + 2 * H * W + n, mask=take, other=0.0), 0.0)
            c3 += tl.where(take, z, 0.0)
            count += tl.where(take, 1.0, 0.0)
    inv = 1.0 / tl.maximum(count, 1.0)
    for c in tl.static_range(4):
        old = tl.load(values_in + c * H * W + offs, mask=inside, other=0.0)
        acc = c0 if c == 0 else (c1 if c == 1 else (c2 if c == 2 else c3))
        tl.store(values_out + c * H * W + offs, tl.where(accept, acc * inv, old), mask=inside)
    # the newcomer's disparity, once per pixel: div_rn is IEEE division as torch's (the
    # default '/' is approximate on a GPU), so masks decided at the threshold match the reference
    old_disp = tl.load(disp_in + offs, mask=inside, other=1.0)
    new_disp = tl.math.div_rn(1.0, tl.where(accept, c3 * inv, 1.0))
    tl.store(disp_out + offs, tl.where(accept, new_disp, old_disp), mask=inside)
    known = tl.load(known_in + offs, mask=inside, other=0) != 0
    tl.store(known_out + offs, (known | accept).to(tl.int8), mask=inside)
    tl.store(mask_out + offs, (was | accept).to(tl.int8), mask=inside)
    tl.atomic_add(count_ptr, tl.sum(accept.to(tl.int32), axis=0), sem="relaxed")


def seeds(depth: torch.Tensor, edge_disparity: float) -> torch.Tensor:
    """(H, W) bool background seeds of a (H, W) float32 z-depth map (ops.grow.discontinuities' second output)."""
    h, w = depth.shape
    out = torch.empty((h, w), dtype=torch.int8, device=depth.device)
    with _kernels.on_device(depth):
        _seeds_kernel[(triton.cdiv(h * w, BLOCK),)](depth.contiguous(), out, h, w, float(edge_disparity),
                                                    BLOCK=BLOCK)
    return out.bool()


def grow_back_layer(
    color: torch.Tensor,
    depth: torch.Tensor,
    band: int,
    edge_disparity: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton twin of ``photo3d_fast.ops.grow.grow_back_layer``: same arguments and results.

    color: (H, W, 3) float32; depth: (H, W) float32 z-depth; band: rings; allowed: (H, W)
    bool or None. Returns (color (H, W, 3), depth (H, W), mask (H, W) bool).
    """
    h, w = depth.shape
    depth = depth.float().contiguous()
    known = seeds(depth, edge_disparity).to(torch.int8)
    values = torch.cat([color.permute(2, 0, 1), depth[None]], 0).float().contiguous()
    mask = torch.zeros((h, w), dtype=torch.int8, device=depth.device)
    # disparity of every known pixel (the seeds' from their depth; rings write their
    # newcomers'), read by the neighbours instead of dividing 16 times per pixel and ring
    disp = (1.0 / depth).contiguous()
    limit = (disp - edge_disparity).contiguous()
    allowed_i8 = allowed.to(torch.int8).contiguous() if allowed is not None else mask
    nxt = (torch.empty_like(values), torch.empty_like(known), torch.empty_like(mask), torch.empty_like(disp))
    counter = torch.zeros(1, dtype=torch.int32, device=depth.device)
    grid = (triton.cdiv(h * w, BLOCK),)
    with _kernels.on_device(depth):
        for _ in range(band):
            counter.zero_()
            _grow_kernel[grid](values, known, mask, disp, *nxt, limit, allowed_i8, counter, h, w,
                               float(edge_disparity), HAS_ALLOWED=allowed is not None, BLOCK=BLOCK)
            (values, known, mask, disp), nxt = nxt, (values, known, mask, disp)
            if int(counter.item()) == 0:  # once per ring: the LDI is built once per photo
                break
    band_mask = mask.bool()
    rgb = fill_from_background(color.permute(2, 0, 1).float(), ~band_mask, depth).permute(1, 2, 0)
    return rgb * band_mask[..., None], values[3] * band_mask, band_mask
