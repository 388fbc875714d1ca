"""LDI construction in Triton: depth-edge seeds, their surfaces, the nearest seed behind each
pixel by jump flooding, the reach of the layer by pointer jumping, the layer.

Same contract as ``photo3d_fast.ops.grow.grow_back_layer`` (torch reference, whose module
doc defines the op), same results:

- ``_seeds_kernel``: a pixel is a background seed when a 4-neighbour is nearer by more than
  the edge threshold in disparity (``ops.grow.discontinuities``).
- ``_surface_kernel``: at each seed, the mean disparity of the seeds of its (2R + 1)^2 window
  within the threshold of its own (``ops.grow.seed_surfaces``), summed in the same order.
- ``_jump_kernel``: one jump-flooding pass of step k (``ops.grow.nearest_seed_behind``).
  Each pixel compares what it holds with what its 8 neighbours at +-k offer, in
  ``ops.grow.DIRECTIONS`` order as the reference does, and writes its new holding and its
  offer for the next pass (a seed offers itself, any other pixel its holding);
  double-buffered, as the reference reads the previous pass only. One launch per step of
  ``ops.grow.jump_steps(band)``: ceil(log2(band + 1)) + 1 launches, 10 for a band of 300.
- ``_reach_start_kernel``, ``_reach_kernel``: ``ops.grow.reach``. The first finds each
  held pixel's neighbour toward its seed and whether that step holds (ok, up); the second
  is one pointer-jumping pass (ok, up) <- (ok & ok[up], up[up]), double-buffered, counting
  the pointers that still move: the launcher stops when none does (one sync per pass,
  about log2(band) + 1 passes), as the reference stops.
- ``_layer_kernel``: the depth of the reached pixels, 1 / the held seed's surface disparity.

Colors of the band are then drawn by ``fill_from_background`` (shared with the reference).

Disparities 1/z, the seeds' disparities (inf off seeds) and the per-pixel limit 1/z - edge
are computed once by torch in the launcher, as the reference computes them, so the kernels
compare the same float32 values; squared distances and steps are exact int32. Divisions
in kernels are IEEE (``tl.math.div_rn``, as torch divides; Triton's ``/`` is approximate
on a GPU).

Bytes per pixel: a jump pass reads its holding and limit (16 B) and what 8 neighbours
offer (8 x 12 B; a neighbour at +-k rows is another cache line, shared by the block's
pixels, so about 3 x 12 B per pixel come from DRAM), and writes holding and offer (24 B):
about 75 B of DRAM traffic per pixel and pass, 0.16 GB a pass at 1080p. A reach pass
reads ok and up of the pixel and of its ``up`` (10 B, the latter scattered) and writes
5 B. The surface stencil reads 25 x 4 B, mostly from cache, once.
"""

from __future__ import annotations

import photo3d_fast.kernels as _kernels
import torch
import triton
import triton.language as tl

from photo3d_fast.ops.fill import fill_from_background
from photo3d_fast.ops.grow import SURFACE_RADIUS, jump_steps, reach_rounds

#: Pixels per program on a GPU (the jump pass uses ~56 registers a thread at 256; 1024
#: would take ~150, the surface stencil ~240).
BLOCK = 256
#: Pixels per program for CPU tensors, which run under the interpreter (TRITON_INTERPRET=1):
#: its cost is per program and op, not per pixel. Results do not depend on the block.
INTERPRETER_BLOCK = 4096


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
def _surface_kernel(seed_disp_ptr, surface_ptr, H, W, edge, R: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < H * W
    x = offs % W
    y = offs // W
    # seed_disp: the disparity at seeds, inf elsewhere (never within edge of anything)
    d = tl.load(seed_disp_ptr + offs, mask=inside, other=float("inf"))
    seed = inside & (d < float("inf"))
    d = tl.where(seed, d, 0.0)  # no inf - inf below
    total = tl.zeros([BLOCK], dtype=tl.float32)
    count = tl.zeros([BLOCK], dtype=tl.float32)
    # row-major over the window, as the reference sums
    for k in tl.static_range((2 * R + 1) * (2 * R + 1)):
        dy = k // (2 * R + 1) - R
        dx = k % (2 * R + 1) - R
        ok = seed & (x + dx >= 0) & (x + dx < W) & (y + dy >= 0) & (y + dy < H)
        other = tl.load(seed_disp_ptr + offs + dy * W + dx, mask=ok, other=float("inf"))
        take = ok & (tl.abs(other - d) <= edge)
        total += tl.where(take, other, 0.0)
        count += tl.where(take, 1.0, 0.0)
    mean = tl.math.div_rn(total, tl.maximum(count, 1.0))
    tl.store(surface_ptr + offs, tl.where(seed, mean, float("inf")), mask=inside)


@triton.jit
def _jump_kernel(seed_disp_ptr, limit_ptr, hy_in, hx_in, hd_in, oy_in, ox_in, od_in,
                 hy_out, hx_out, hd_out, oy_out, ox_out, od_out, H, W, step, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < H * W
    x = offs % W
    y = offs // W
    limit = tl.load(limit_ptr + offs, mask=inside, other=0.0)
    # the seed this pixel holds: row, column, disparity (inf: none yet) and squared distance
    by = tl.load(hy_in + offs, mask=inside, other=0)
    bx = tl.load(hx_in + offs, mask=inside, other=0)
    bd = tl.load(hd_in + offs, mask=inside, other=float("inf"))
    bd2 = tl.where(bd < float("inf"), (by - y) * (by - y) + (bx - x) * (bx - x), 2147483647)
    # what the 8 neighbours at +-step offer, in ops.grow.DIRECTIONS order (row-major, center skipped)
    for k in tl.static_range(9):
        if k != 4:
            qy = y + (k // 3 - 1) * step
            qx = x + (k % 3 - 1) * step
            ok = inside & (qx >= 0) & (qx < W) & (qy >= 0) & (qy < H)
            n = qy * W + qx
            cy = tl.load(oy_in + n, mask=ok, other=0)
            cx = tl.load(ox_in + n, mask=ok, other=0)
            cd = tl.load(od_in + n, mask=ok, other=float("inf"))
            d2 = (cy - y) * (cy - y) + (cx - x) * (cx - x)
            better = (cd < limit) & ((d2 < bd2) | ((d2 == bd2) & (cd > bd)))
            by = tl.where(better, cy, by)
            bx = tl.where(better, cx, bx)
            bd = tl.where(better, cd, bd)
            bd2 = tl.where(better, d2, bd2)
    tl.store(hy_out + offs, by, mask=inside)
    tl.store(hx_out + offs, bx, mask=inside)
    tl.store(hd_out + offs, bd, mask=inside)
    # next pass's offer: a seed offers itself, any other pixel what it holds
    sd = tl.load(seed_disp_ptr + offs, mask=inside, other=float("inf"))
    seed = sd < float("inf")
    tl.store(oy_out + offs, tl.where(seed, y, by), mask=inside)
    tl.store(ox_out + offs, tl.where(seed, x, bx), mask=inside)
    tl.store(od_out + offs, tl.where(seed, sd, bd), mask=inside)


@triton.jit
def _held(hy_ptr, hx_ptr, hd_ptr, allowed_ptr, n, y, x, valid, band2, HAS_ALLOWED: tl.constexpr):
    """(row, column, disparity of the seed pixel n holds, and whether it holds one within
    band where it is allowed: ops.grow.grow_back_layer's ``held``)."""
    sy = tl.load(hy_ptr + n, mask=valid, other=0)
    sx = tl.load(hx_ptr + n, mask=valid, other=0)
    sd = tl.load(hd_ptr + n, mask=valid, other=float("inf"))
    held = valid & (sd < float("inf")) & ((sy - y) * (sy - y) + (sx - x) * (sx - x) <= band2)
    if HAS_ALLOWED:
        held = held & (tl.load(allowed_ptr + n, mask=valid, other=0) != 0)
    return sy, sx, sd, held


@triton.jit
def _reach_start_kernel(hy_ptr, hx_ptr, hd_ptr, limit_ptr, allowed_ptr, ok_out, up_out, H, W, band2,
                        HAS_ALLOWED: tl.constexpr, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < H * W
    x = offs % W
    y = offs // W
    sy, sx, sd, held = _held(hy_ptr, hx_ptr, hd_ptr, allowed_ptr, offs, y, x, inside, band2, HAS_ALLOWED)
    # the neighbour one step toward the seed (ops.grow.toward)
    vy = sy - y
    vx = sx - x
    ay = tl.abs(vy)
    ax = tl.abs(vx)
    ty = y + tl.where(12 * ay > 5 * ax, tl.where(vy > 0, 1, tl.where(vy < 0, -1, 0)), 0)
    tx = x + tl.where(12 * ax > 5 * ay, tl.where(vx > 0, 1, tl.where(vx < 0, -1, 0)), 0)
    root = (ty == sy) & (tx == sx)
    n = tl.minimum(tl.maximum(ty, 0), H - 1) * W + tl.minimum(tl.maximum(tx, 0), W - 1)
    _, _, nd, n_held = _held(hy_ptr, hx_ptr, hd_ptr, allowed_ptr, n, ty, tx, held & ~root, band2, HAS_ALLOWED)
    limit = tl.load(limit_ptr + offs, mask=inside, other=0.0)
    ok = held & (root | (n_held & (nd < limit)))
    tl.store(ok_out + offs, ok.to(tl.int8), mask=inside)
    tl.store(up_out + offs, tl.where(held & ~root, n, offs), mask=inside)


@triton.jit
def _reach_kernel(ok_in, up_in, ok_out, up_out, count_ptr, N, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < N
    up = tl.load(up_in + offs, mask=inside, other=0)
    ok = tl.load(ok_in + offs, mask=inside, other=0) & tl.load(ok_in + up, mask=inside, other=0)
    further = tl.load(up_in + up, mask=inside, other=0)
    tl.store(ok_out + offs, ok, mask=inside)
    tl.store(up_out + offs, further, mask=inside)
    tl.atomic_add(count_ptr, tl.sum((inside & (further != up)).to(tl.int32), axis=0), sem="relaxed")


@triton.jit
def _layer_kernel(ok_ptr, hy_ptr, hx_ptr, surface_ptr, depth_out, N, W, BLOCK: tl.constexpr):
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    inside = offs < N
    ok = inside & (tl.load(ok_ptr + offs, mask=inside, other=0) != 0)
    seed = tl.load(hy_ptr + offs, mask=ok, other=0) * W + tl.load(hx_ptr + offs, mask=ok, other=0)
    surface = tl.load(surface_ptr + seed, mask=ok, other=1.0)
    tl.store(depth_out + offs, tl.where(ok, tl.math.div_rn(1.0, surface), 0.0), mask=inside)


def _block(t: torch.Tensor) -> int:
    return BLOCK if t.device.type == "cuda" else INTERPRETER_BLOCK


def seeds(depth: torch.Tensor, edge_disparity: float) -> torch.Tensor:
    """(H, W) bool background seeds of a (H, W) float32 z-depth map (ops.grow.discontinuities' second output)."""
    h, w = depth.shape
    out = torch.empty((h, w), dtype=torch.int8, device=depth.device)
    block = _block(depth)
    with _kernels.on_device(depth):
        _seeds_kernel[(triton.cdiv(h * w, block),)](depth.contiguous(), out, h, w, float(edge_disparity),
                                                    BLOCK=block)
    return out.bool()


def grow_back_layer(
    color: torch.Tensor,
    depth: torch.Tensor,
    band: int,
    edge_disparity: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Triton twin of ``photo3d_fast.ops.grow.grow_back_layer``: same arguments and results.

    color: (H, W, 3) float32; depth: (H, W) float32 z-depth; band: pixels (Euclidean);
    allowed: (H, W) bool or None. Returns (color (H, W, 3), depth (H, W), mask (H, W) bool).
    """
    h, w = depth.shape
    band = min(int(band), h + w)  # no two pixels lie farther apart (as the reference clamps)
    depth = depth.float().contiguous()
    disp = (1.0 / depth).contiguous()
    limit = (disp - edge_disparity).contiguous()
    seed = seeds(depth, edge_disparity)
    seed_disp = torch.where(seed, disp, float("inf"))  # the disparity at seeds, inf elsewhere
    surface = torch.empty_like(disp)
    # holdings (none yet) and offers (each seed itself): rows, columns int32, disparities
    hold = (torch.zeros((h, w), dtype=torch.int32, device=depth.device),
            torch.zeros((h, w), dtype=torch.int32, device=depth.device), torch.full_like(disp, float("inf")))
    offer = (torch.arange(h, dtype=torch.int32, device=depth.device)[:, None].expand(h, w) * seed,
             torch.arange(w, dtype=torch.int32, device=depth.device)[None, :].expand(h, w) * seed,
             seed_disp.clone())  # a buffer the passes overwrite: not seed_disp itself
    nxt = tuple(torch.empty_like(t) for t in hold + offer)
    layer_depth = torch.empty_like(disp)
    reach = (torch.empty((h, w), dtype=torch.int8, device=depth.device),
             torch.empty((h, w), dtype=torch.int32, device=depth.device))
    reach_nxt = tuple(torch.empty_like(t) for t in reach)
    allowed_i8 = allowed.to(torch.int8).contiguous() if allowed is not None else reach[0]
    counter = torch.zeros(1, dtype=torch.int32, device=depth.device)
    block = _block(depth)
    grid = (triton.cdiv(h * w, block),)
    with _kernels.on_device(depth):
        _surface_kernel[grid](seed_disp, surface, h, w, float(edge_disparity), R=SURFACE_RADIUS, BLOCK=block)
        state = hold + offer
        for k in jump_steps(band):
            _jump_kernel[grid](seed_disp, limit, *state, *nxt, h, w, k, BLOCK=block)
            state, nxt = nxt, state
        hold = state[:3]
        _reach_start_kernel[grid](*hold, limit, allowed_i8, *reach, h, w, band * band,
                                  HAS_ALLOWED=allowed is not None, BLOCK=block)
        for _ in range(reach_rounds(h, w)):
            counter.zero_()
            _reach_kernel[grid](*reach, *reach_nxt, counter, h * w, BLOCK=block)
            reach, reach_nxt = reach_nxt, reach
            if int(counter.item()) == 0:  # every line followed to its end (a sync per pass)
                break
        _layer_kernel[grid](reach[0], hold[0], hold[1], surface, layer_depth, h * w, w, BLOCK=block)
    band_mask = reach[0].bool()
    rgb = fill_from_background(color.permute(2, 0, 1).float(), ~band_mask, depth).permute(1, 2, 0)
    return rgb * band_mask[..., None], layer_depth, band_mask
