"""Far-first hole filling in Triton: ``fill_from_background`` without the ~40 tensor passes.

Same contract as ``photo3d_fast.ops.fill.fill_from_background`` (the torch reference),
same math, in three passes:

1. ``_nearest_kernel`` along rows (4 per program): per row, the index of the nearest
   covered pixel at or before each pixel (left) and at or after it (right), -1 where
   there is none. A row is
   scanned in blocks, a block by ``tl.associative_scan`` (cumulative max), the last
   covered index carried from block to block; the right-hand scan runs the same code on
   mirrored positions.
2. ``_nearest_kernel`` along columns: the same (top, bottom), a tile of columns per program
   so that each load is a contiguous run of a row.
3. ``_blend_kernel``, elementwise: gathers the four candidates' depth and values, weights
   them by (z / z_farthest) ** FAR_POWER / distance, writes the blend (values where covered)
   and the total weight, which is 0 exactly where the reference falls back to push-pull.

The fallback (hole pixels with no covered pixel in their row and column, rare) is the torch
``push_pull`` on the result, as in the reference.

Shapes and dtypes: values (C, H, W) float32, covered (H, W) bool, depth (H, W) float32
z-depth (any unit; only ratios matter), meaningful where covered. Returns (C, H, W) float32.
``fill_frames`` takes a leading frame axis on all three and fills F frames with one launch
of each pass: the scans run over F*H rows and F*W columns, the blend over F*H*W pixels.

Bytes per pixel (P = H*W pixels, C channels, h = fraction of pixels that are holes):
passes 1 and 2 each read the mask twice (2 B) and write two int32 indices (8 B); pass 3
reads the mask (1 B) and the values (4C B), for holes also four indices (16 B), four
depths (16 B, gathered) and four value vectors (16C B, gathered, mostly from cache since
neighbours' candidates coincide), and writes the result (4C B) and the total (4 B).
The per-frame "anything covered?" flag reads the mask once more (1 B).
Roughly (26 + 8C + h * (32 + 16C)) B per pixel: 50 + 80 h B for RGB.

Floating point: the weights are computed in float32 as in the reference, but the power is
repeated multiplication where torch calls pow, so results differ by a few ulp (tests: 1e-5).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

import photo3d_fast.kernels as _kernels
from photo3d_fast.ops.fill import FAR_POWER, check_fill_args, push_pull

__all__ = ["nearest_covered", "fill_from_background", "fill_frames"]

if float(FAR_POWER) != int(FAR_POWER) or FAR_POWER < 1:
    # the kernel raises to the power by repeated multiplication (exact order, no libdevice)
    raise ValueError(f"kernels.fill needs an integer FAR_POWER >= 1, got {FAR_POWER}; "
                     "use photo3d_fast.ops.fill.fill_from_background instead")
FAR_POWER_C = tl.constexpr(int(FAR_POWER))

# (lines, elements) tile of a scan: rows 4 per program along contiguous memory (1 KiB
# loads), columns 32 at a time so that a tile row is one contiguous 128-byte load.
ROW_TILE = (4, 256)
COL_TILE = (32, 32)
BLOCK = 256


@triton.jit
def _max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _nearest_kernel(covered_ptr, before_ptr, after_ptr, n_lines, n, lines_per_frame, frame_stride,
                    line_stride, elem_stride, LINES: tl.constexpr, BLOCK: tl.constexpr):
    """Per line: before[p] = max covered index <= p, after[p] = min covered index >= p (-1: none).

    Line l of a batch is line l % lines_per_frame of frame l // lines_per_frame.
    """
    lines = tl.program_id(0) * LINES + tl.arange(0, LINES)
    line_ok = lines < n_lines
    lines64 = lines.to(tl.int64)
    frame = lines64 // lines_per_frame
    base = (frame * frame_stride + (lines64 - frame * lines_per_frame) * line_stride)[:, None]
    k0 = tl.arange(0, BLOCK)
    for direction in tl.static_range(2):
        carry = tl.full((LINES,), -1, tl.int32)
        for start in range(0, n, BLOCK):
            k = start + k0  # scan order; position p = k forwards, n - 1 - k backwards
            p = k if direction == 0 else n - 1 - k
            mask = line_ok[:, None] & (k < n)[None, :]
            ptr_off = base + p.to(tl.int64)[None, :] * elem_stride
            cov = tl.load(covered_ptr + ptr_off, mask=mask, other=0) != 0
            last = tl.where(cov, k[None, :], -1)
            last = tl.maximum(tl.associative_scan(last, 1, _max), carry[:, None])
            carry = tl.max(last, axis=1)
            if direction == 0:
                tl.store(before_ptr + ptr_off, last, mask=mask)
            else:
                tl.store(after_ptr + ptr_off, tl.where(last >= 0, n - 1 - last, -1), mask=mask)


@triton.jit
def _blend_kernel(values_ptr, covered_ptr, frame_any_ptr, depth_ptr, left_ptr, right_ptr, top_ptr, bottom_ptr,
                  out_ptr, total_ptr, n_all, n_pix, W, C, BLOCK: tl.constexpr):
    """Elementwise over the F*H*W pixels of a batch; values and out are (F, C, H, W).

    frame_any: (F,) uint8, 0 for a frame with nothing covered, which keeps its values (as
    the reference returns them) instead of filling from nowhere.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_all
    frame = offs // n_pix
    keep_all = tl.load(frame_any_ptr + frame, mask=mask, other=1) == 0
    cov = (tl.load(covered_ptr + offs, mask=mask, other=1) != 0) | keep_all
    hole = mask & ~cov
    within = offs - frame * n_pix  # pixel index inside its frame
    row = (within // W).to(tl.int32)
    col = (within - row * W).to(tl.int32)
    jl = tl.load(left_ptr + offs, mask=hole, other=-1)
    jr = tl.load(right_ptr + offs, mask=hole, other=-1)
    jt = tl.load(top_ptr + offs, mask=hole, other=-1)
    jb = tl.load(bottom_ptr + offs, mask=hole, other=-1)
    ok_l = jl >= 0
    ok_r = jr >= 0
    ok_t = jt >= 0
    ok_b = jb >= 0
    # pixel index of each candidate inside the frame (int64: C*H*W may pass 2**31)
    fl = row.to(tl.int64) * W + tl.maximum(jl, 0)
    fr = row.to(tl.int64) * W + tl.maximum(jr, 0)
    ft = tl.maximum(jt, 0).to(tl.int64) * W + col
    fb = tl.maximum(jb, 0).to(tl.int64) * W + col
    # depth where covered, 0 where there is no candidate, as the reference's flat_z
    zbase = frame * n_pix
    zl = tl.load(depth_ptr + zbase + fl, mask=ok_l, other=0.0)
    zr = tl.load(depth_ptr + zbase + fr, mask=ok_r, other=0.0)
    zt = tl.load(depth_ptr + zbase + ft, mask=ok_t, other=0.0)
    zb = tl.load(depth_ptr + zbase + fb, mask=ok_b, other=0.0)
    zmax = tl.maximum(tl.maximum(tl.maximum(zl, zr), tl.maximum(zt, zb)), 1e-12)
    # distance clamps to 1 as in the reference (only a covered pixel is its own candidate)
    dl = tl.maximum(tl.abs(jl - col), 1).to(tl.float32)
    dr = tl.maximum(tl.abs(jr - col), 1).to(tl.float32)
    dt = tl.maximum(tl.abs(jt - row), 1).to(tl.float32)
    db = tl.maximum(tl.abs(jb - row), 1).to(tl.float32)
    rl = zl / zmax
    rr = zr / zmax
    rt = zt / zmax
    rb = zb / zmax
    pl = rl
    pr = rr
    pt = rt
    pb = rb
    for _ in tl.static_range(FAR_POWER_C - 1):
        pl = pl * rl
        pr = pr * rr
        pt = pt * rt
        pb = pb * rb
    wl = pl / dl
    wr = pr / dr
    wt = pt / dt
    wb = pb / db
    # summation order as the reference: left, right, top, bottom
    total = wl + wr + wt + wb
    inv_den = tl.maximum(total, 1e-30)
    tl.store(total_ptr + offs, tl.where(cov, 1.0, total), mask=mask)
    vbase = frame * C * n_pix  # frame's first plane
    for c in range(0, C):
        plane = vbase + c * n_pix
        own = tl.load(values_ptr + plane + within, mask=mask & cov, other=0.0)
        vl = tl.load(values_ptr + plane + fl, mask=hole & ok_l, other=0.0)
        vr = tl.load(values_ptr + plane + fr, mask=hole & ok_r, other=0.0)
        vt = tl.load(values_ptr + plane + ft, mask=hole & ok_t, other=0.0)
        vb = tl.load(values_ptr + plane + fb, mask=hole & ok_b, other=0.0)
        filled = (vl * wl + vr * wr + vt * wt + vb * wb) / inv_den
        tl.store(out_ptr + plane + within, tl.where(cov, own, filled), mask=mask)


def nearest_covered(covered: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """(4, H, W) int32: per pixel, the index of the nearest covered pixel to its left, right
    (columns), top and bottom (rows), itself included; -1 where there is none.

    covered: (H, W) bool, or (F, H, W) for F frames, giving (4, F, H, W). Matches
    ``ops.fill.nearest_covered`` for (dim, forward) = (1, False), (1, True), (0, False),
    (0, True) on each frame. ``out``: optional int32 tensor of the result's shape to write.
    """
    if covered.dim() not in (2, 3) or covered.dtype != torch.bool:
        raise ValueError(f"covered must be an (H, W) or (F, H, W) bool tensor, got {tuple(covered.shape)} {covered.dtype}")
    shape = (4, *covered.shape)
    if out is None:
        out = torch.empty(shape, dtype=torch.int32, device=covered.device)
    elif tuple(out.shape) != shape or out.dtype != torch.int32 or out.device != covered.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {shape} int32 tensor on {covered.device}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")
    frames = covered.shape[0] if covered.dim() == 3 else 1
    h, w = covered.shape[-2:]
    if frames == 0 or h == 0 or w == 0:
        return out
    cov = covered.contiguous().view(torch.uint8)
    # rows: F*H lines of W contiguous elements; columns: F*W lines of H elements W apart
    with _kernels.on_device(covered):
        lines, block = ROW_TILE
        _nearest_kernel[(triton.cdiv(frames * h, lines),)](
            cov, out[0], out[1], frames * h, w, h, h * w, w, 1, LINES=lines, BLOCK=block)
        lines, block = COL_TILE
        _nearest_kernel[(triton.cdiv(frames * w, lines),)](
            cov, out[2], out[3], frames * w, h, w, h * w, 1, w, LINES=lines, BLOCK=block)
    return out


def _fill(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The three passes on (F, C, H, W) values into ``out``, then push-pull for orphans."""
    f, c, h, w = values.shape
    idx = nearest_covered(covered)
    total = torch.empty((f, h, w), dtype=torch.float32, device=values.device)
    frame_any = covered.flatten(1).any(1).view(torch.uint8)
    n = h * w
    with _kernels.on_device(values):
        _blend_kernel[(triton.cdiv(f * n, BLOCK),)](
            values.contiguous(), covered.contiguous().view(torch.uint8), frame_any, depth.contiguous(),
            idx[0], idx[1], idx[2], idx[3], out, total, f * n, n, w, c, BLOCK=BLOCK)
    # Orphans: holes with no covered pixel in their row or column (kept pixels got total 1)
    orphan = total <= 0
    # one host sync per call, whatever the number of frames
    for i in torch.nonzero(orphan.flatten(1).any(1)).flatten().tolist():
        out[i] = torch.where(orphan[i], push_pull(out[i], (~orphan[i]).float()), out[i])
    return out


def fill_from_background(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, *,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as ``photo3d_fast.ops.fill.fill_from_background``: each hole pixel takes
    the nearest covered pixel to its left, right, top and bottom, weighted by
    (z / z_farthest) ** FAR_POWER / distance; covered pixels keep their values; hole pixels
    with no covered pixel in their row or column fall back to push-pull.

    values: (C, H, W) float32; covered: (H, W) bool; depth: (H, W) float32, all on one device.
    Returns (C, H, W) float32. As the reference, returns ``values`` itself when every pixel
    or no pixel is covered (a copy in ``out`` if given). ``out``: optional (C, H, W) float32.
    """
    check_fill_args(values, covered, depth, out, batched=False)
    if bool(covered.all()) or not bool(covered.any()):
        return values if out is None else out.copy_(values)
    if out is None:
        out = torch.empty_like(values, memory_format=torch.contiguous_format)
    _fill(values[None], covered[None], depth[None], out[None])
    return out


def fill_frames(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, *,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """``fill_from_background`` of F frames in one launch of each pass (the Triton twin of
    ``ops.fill.fill_frames``): values (F, C, H, W) float32, covered (F, H, W) bool, depth
    (F, H, W) float32. Returns (F, C, H, W) float32, a new tensor (or ``out``), frame f equal
    to the single-frame fill of frame f. It does not ask the device whether frames have
    holes first: fully covered frames are copied through, so a batch costs one host sync
    (the orphan check), not two per frame.
    """
    check_fill_args(values, covered, depth, out, batched=True)
    if out is None:
        out = torch.empty_like(values, memory_format=torch.contiguous_format)
    if values.numel() == 0:
        return out
    return _fill(values, covered, depth, out)
