"""Thin-lens depth of field (Triton): the op ``dof``'s scatter-as-gather in one pass.

Twin of ``photo3d_fast.ops.dof.depth_of_field`` (same lens model, same offsets in the same
order, same layers; see that module). The launcher computes each pixel's CoC radius with
the reference's ``coc_radius`` and the reference's offset table; one program handles BLOCK
pixels of one frame and loops over the table, reading each neighbour's colour, depth and
radius (indices clamped to the frame: the reference's replicated border).

Bytes moved: per pixel and offset 20 B read (3 colour floats, depth, radius), mostly from
L1/L2 as neighbouring programs share them; DRAM sees ~32 B per pixel (read colour, depth,
radius once, write colour): ~17 MB per 1080p frame. The loop is compute-bound: ~35 FLOP
per pixel and offset, a 24 px CoC bound has ~450 offsets.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

import photo3d_fast.kernels as _kernels
from photo3d_fast.ops.dof import DEFAULT_MAX_COC, DEPTH_TOLERANCE, check_bokeh, coc_radius, offsets

BLOCK = 128


@triton.jit
def _weight(r, d, AREA: tl.constexpr):
    cov = tl.minimum(tl.maximum(r - d + 0.5, 0.0), 1.0)
    return cov / tl.maximum(AREA * r * r, 1.0)


@triton.jit
def _dof_kernel(color, depth, radius, off_yx, off_d, out, H, W, n_offs, tol,
                AREA: tl.constexpr, BLOCK: tl.constexpr):
    f = tl.program_id(1)
    pix = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = pix < H * W
    y = pix // W
    x = pix % W
    base = f.to(tl.int64) * H * W
    zp = tl.load(depth + base + pix, mask=mask, other=1.0)
    rp = tl.load(radius + base + pix, mask=mask, other=0.5)
    z_front = zp * (1.0 - tol)
    z_behind = zp * (1.0 + tol)
    inv_ap = 1.0 / tl.maximum(AREA * rp * rp, 1.0)
    fr = tl.zeros([BLOCK], tl.float32)
    fg = tl.zeros([BLOCK], tl.float32)
    fb = tl.zeros([BLOCK], tl.float32)
    fw = tl.zeros([BLOCK], tl.float32)
    orr = tl.zeros([BLOCK], tl.float32)
    og = tl.zeros([BLOCK], tl.float32)
    ob = tl.zeros([BLOCK], tl.float32)
    ow = tl.zeros([BLOCK], tl.float32)
    hr = tl.zeros([BLOCK], tl.float32)
    hg = tl.zeros([BLOCK], tl.float32)
    hb = tl.zeros([BLOCK], tl.float32)
    hw = tl.zeros([BLOCK], tl.float32)
    for k in range(n_offs):
        dy = tl.load(off_yx + 2 * k)
        dx = tl.load(off_yx + 2 * k + 1)
        d = tl.load(off_d + k)
        yy = tl.minimum(tl.maximum(y + dy, 0), H - 1)
        xx = tl.minimum(tl.maximum(x + dx, 0), W - 1)
        q = base + yy * W + xx
        rq = tl.load(radius + q, mask=mask, other=0.5)
        zq = tl.load(depth + q, mask=mask, other=1.0)
        cr = tl.load(color + q * 3, mask=mask, other=0.0)
        cg = tl.load(color + q * 3 + 1, mask=mask, other=0.0)
        cb = tl.load(color + q * 3 + 2, mask=mask, other=0.0)
        front = zq < z_front
        wf = tl.where(front, _weight(rq, d, AREA), 0.0)
        wo = tl.where(front, 0.0, _weight(tl.minimum(rq, rp), d, AREA))
        wh = tl.where(zq > z_behind, tl.minimum(tl.maximum(rp - d + 0.5, 0.0), 1.0) * inv_ap, 0.0)
        fr += wf * cr
        fg += wf * cg
        fb += wf * cb
        fw += wf
        orr += wo * cr
        og += wo * cg
        ob += wo * cb
        ow += wo
        hr += wh * cr
        hg += wh * cg
        hb += wh * cb
        hw += wh
    alpha = tl.minimum(fw, 1.0)
    inv_f = 1.0 / tl.maximum(fw, 1e-12)
    # p's own layer's shortfall shows what lies behind (ops.dof: "hidden")
    deficit = tl.where(hw > 0.0, tl.minimum(tl.maximum(1.0 - ow, 0.0), 1.0), 0.0)
    inv_h = deficit / tl.maximum(hw, 1e-12)
    inv_o = 1.0 / (ow + deficit)
    o = out + (base + pix) * 3
    tl.store(o, alpha * fr * inv_f + (1.0 - alpha) * (orr + hr * inv_h) * inv_o, mask=mask)
    tl.store(o + 1, alpha * fg * inv_f + (1.0 - alpha) * (og + hg * inv_h) * inv_o, mask=mask)
    tl.store(o + 2, alpha * fb * inv_f + (1.0 - alpha) * (ob + hb * inv_h) * inv_o, mask=mask)


def depth_of_field(color: torch.Tensor, depth: torch.Tensor, focus: torch.Tensor | float,
                   aperture_px: torch.Tensor | float, max_coc: float = DEFAULT_MAX_COC,
                   bokeh: str = "disc") -> torch.Tensor:
    """Same contract as ``ops.dof.depth_of_field``: color (F, H, W, 3) float32, depth
    (F, H, W) float32 z-depth (scene units) on one device; returns (F, H, W, 3) float32."""
    check_bokeh(bokeh)
    n, h, w, c = color.shape
    if c != 3 or depth.shape != (n, h, w) or depth.device != color.device:
        raise ValueError(f"color must be (F, H, W, 3) and depth (F, H, W) on its device, got "
                         f"{tuple(color.shape)} and {tuple(depth.shape)}")
    radius = coc_radius(depth, focus, aperture_px, max_coc).contiguous()
    reach = int(math.ceil(float(radius.max()) - 1e-6)) if n else 0
    if reach < 1 or h * w == 0:
        return color.float().clone()
    table = offsets(reach, bokeh)
    off_yx = torch.tensor([(dy, dx) for dy, dx, _ in table], dtype=torch.int32, device=color.device)
    off_d = torch.tensor([d for _, _, d in table], dtype=torch.float32, device=color.device)
    color = color.float().contiguous()
    depth = depth.float().contiguous()
    out = torch.empty_like(color)
    area = math.pi if bokeh == "disc" else 1.5 * math.sqrt(3.0)
    with _kernels.on_device(color):
        _dof_kernel[(triton.cdiv(h * w, BLOCK), n)](color, depth, radius, off_yx, off_d, out, h, w, len(table),
                                                    DEPTH_TOLERANCE, AREA=area, BLOCK=BLOCK)
    return out
