"""RGB -> NV12 in one pass (Triton): BT.709 limited range, "left" chroma siting.

Twin of ``photo3d_fast.ops.nv12.rgb_to_nv12`` (same math, same float32 operation
order; see that module for the colour and siting conventions).

One program handles BLOCK chroma sites. Site (j, i) reads the 2x3 pixel window rows
2j..2j+1, columns 2i-1..2i+1 (column -1 clamped to 0), writes the four luma samples of
its 2x2 block and the Cb, Cr pair. Bytes moved per pixel: 3 read for uint8 input (12 for
float32; the column 2i-1 re-read of the neighbouring site hits cache) + 1.5 written, so
4.5 B/pixel, 9.3 MB per 1080p frame: about 3 us at 3 TB/s, nothing next to rendering.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

import photo3d_fast.kernels as _kernels
from photo3d_fast.ops.nv12 import MATRIX, OFFSET, check_rgb

(_Y0, _Y1, _Y2), (_U0, _U1, _U2), (_V0, _V1, _V2) = MATRIX


@triton.jit
def _round_u8(v):
    return tl.minimum(tl.maximum(tl.floor(v + 0.5), 0.0), 255.0).to(tl.uint8)


@triton.jit
def _load(rgb, row, col, sy, sx, sc, mask, IS_FLOAT: tl.constexpr):
    p = rgb + row * sy + col * sx
    r = tl.load(p, mask=mask, other=0).to(tl.float32)
    g = tl.load(p + sc, mask=mask, other=0).to(tl.float32)
    b = tl.load(p + 2 * sc, mask=mask, other=0).to(tl.float32)
    if IS_FLOAT:
        r = tl.minimum(tl.maximum(r, 0.0), 1.0) * 255.0
        g = tl.minimum(tl.maximum(g, 0.0), 1.0) * 255.0
        b = tl.minimum(tl.maximum(b, 0.0), 1.0) * 255.0
    return r, g, b


@triton.jit
def _luma(r, g, b, Y0: tl.constexpr, Y1: tl.constexpr, Y2: tl.constexpr, OY: tl.constexpr):
    return _round_u8(r * Y0 + g * Y1 + b * Y2 + OY)


@triton.jit
def _nv12_kernel(rgb, out, H, W, sy, sx, sc, n_sites,
                 Y0: tl.constexpr, Y1: tl.constexpr, Y2: tl.constexpr,
                 U0: tl.constexpr, U1: tl.constexpr, U2: tl.constexpr,
                 V0: tl.constexpr, V1: tl.constexpr, V2: tl.constexpr,
                 OY: tl.constexpr, OC: tl.constexpr,
                 IS_FLOAT: tl.constexpr, BLOCK: tl.constexpr):
    site = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = site < n_sites
    wc = W // 2
    j = site // wc
    i = site % wc
    y0 = 2 * j
    x0 = 2 * i
    xl = tl.maximum(x0 - 1, 0)

    r00, g00, b00 = _load(rgb, y0, x0, sy, sx, sc, mask, IS_FLOAT)
    r01, g01, b01 = _load(rgb, y0, x0 + 1, sy, sx, sc, mask, IS_FLOAT)
    r10, g10, b10 = _load(rgb, y0 + 1, x0, sy, sx, sc, mask, IS_FLOAT)
    r11, g11, b11 = _load(rgb, y0 + 1, x0 + 1, sy, sx, sc, mask, IS_FLOAT)
    rl0, gl0, bl0 = _load(rgb, y0, xl, sy, sx, sc, mask, IS_FLOAT)
    rl1, gl1, bl1 = _load(rgb, y0 + 1, xl, sy, sx, sc, mask, IS_FLOAT)

    o = out + y0 * W + x0
    tl.store(o, _luma(r00, g00, b00, Y0, Y1, Y2, OY), mask=mask)
    tl.store(o + 1, _luma(r01, g01, b01, Y0, Y1, Y2, OY), mask=mask)
    tl.store(o + W, _luma(r10, g10, b10, Y0, Y1, Y2, OY), mask=mask)
    tl.store(o + W + 1, _luma(r11, g11, b11, Y0, Y1, Y2, OY), mask=mask)

    # vertical pair sums, then [1, 2, 1] / 4 horizontally around column 2i: / 8 in all
    sr = ((rl0 + rl1) + (r00 + r10) * 2.0 + (r01 + r11)) * 0.125
    sg = ((gl0 + gl1) + (g00 + g10) * 2.0 + (g01 + g11)) * 0.125
    sb = ((bl0 + bl1) + (b00 + b10) * 2.0 + (b01 + b11)) * 0.125
    c = out + (H + j) * W + x0
    tl.store(c, _round_u8(sr * U0 + sg * U1 + sb * U2 + OC), mask=mask)
    tl.store(c + 1, _round_u8(sr * V0 + sg * V1 + sb * V2 + OC), mask=mask)


def rgb_to_nv12(rgb: torch.Tensor, out: torch.Tensor | None = None, block: int = 256) -> torch.Tensor:
    """RGB (H, W, 3) uint8, or float in [0, 1], any strides -> NV12 (H * 3 / 2, W) uint8.

    H and W must be even (Photo3DError otherwise). ``out``: an optional preallocated
    contiguous (H * 3 / 2, W) uint8 tensor on the same device (reused across frames).
    """
    h, w = check_rgb(rgb)
    if out is None:
        out = torch.empty((h * 3 // 2, w), dtype=torch.uint8, device=rgb.device)
    elif out.shape != (h * 3 // 2, w) or out.dtype != torch.uint8 or not out.is_contiguous() \
            or out.device != rgb.device:
        raise ValueError(f"out must be a contiguous ({h * 3 // 2}, {w}) uint8 tensor on {rgb.device}")
    is_float = rgb.dtype.is_floating_point
    if is_float and rgb.dtype != torch.float32:
        rgb = rgb.to(torch.float32)
    n_sites = (h // 2) * (w // 2)
    grid = (triton.cdiv(n_sites, block),)
    with _kernels.on_device(rgb):
        _nv12_kernel[grid](rgb, out, h, w, rgb.stride(0), rgb.stride(1), rgb.stride(2), n_sites,
                           _Y0, _Y1, _Y2, _U0, _U1, _U2, _V0, _V1, _V2, OFFSET[0], OFFSET[1],
                           IS_FLOAT=is_float, BLOCK=block)
    return out
