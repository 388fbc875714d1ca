"""RGB -> NV12 (BT.709, limited range, 4:2:0 with "left" chroma siting): the torch reference
of the op ``nv12`` (twins: ``kernels/nv12.py``, ``csrc/nv12.cu``; selected by
``ops.backends``) and its inverse for tests.

NV12 is what hardware encoders eat: a (H, W) luma plane followed by a (H/2, W) plane of
interleaved Cb, Cr samples, one pair per 2x2 block of pixels. As one uint8 tensor it is
(H * 3 / 2, W): rows [0, H) are Y, rows [H, 3H/2) are U0 V0 U1 V1 ...

Colour: BT.709 matrix (Kr = 0.2126, Kb = 0.0722), limited ("TV") range: Y in [16, 235],
Cb/Cr in [16, 240]; white -> (235, 128, 128), black -> (16, 128, 128), red -> (63, 102, 240).
The encoder tags the stream with the same matrix and range, so players undo it exactly.

Chroma siting: "left" (H.264/HEVC chroma_sample_loc_type 0, the default every decoder
assumes): each chroma sample sits on the luma column 2i (co-sited horizontally) and
half-way between luma rows 2j and 2j+1 (centred vertically). So the 2x subsampling filter
is the two-row average vertically and [1, 2, 1] / 4 around column 2i horizontally (column
-1 is replicated from column 0). A plain 2x2 box would put chroma half a pixel to the
right of where the decoder puts it back, a visible colour fringe on sharp edges.
"""

from __future__ import annotations

import torch

from ..errors import Photo3DError

KR, KB = 0.2126, 0.0722
KG = 1.0 - KR - KB

# Rows: Y, Cb, Cr (without offsets) from R, G, B in [0, 255]. Limited range: 219 luma
# steps and 224 chroma steps over the 255 of full-range RGB.
_Y = (219 / 255 * KR, 219 / 255 * KG, 219 / 255 * KB)
_CB = (-112 / 255 * KR / (1 - KB), -112 / 255 * KG / (1 - KB), 112 / 255)
_CR = (112 / 255, -112 / 255 * KG / (1 - KR), -112 / 255 * KB / (1 - KR))
MATRIX = (_Y, _CB, _CR)
OFFSET = (16.0, 128.0, 128.0)


def check_rgb(rgb: torch.Tensor) -> tuple[int, int]:
    """(H, W) of an (H, W, 3) uint8 or floating tensor with even H and W, or Photo3DError."""
    if not isinstance(rgb, torch.Tensor) or rgb.ndim != 3 or rgb.shape[2] != 3:
        shape = tuple(rgb.shape) if hasattr(rgb, "shape") else type(rgb).__name__
        raise Photo3DError(f"RGB->NV12 needs an (H, W, 3) tensor, got {shape}")
    if not (rgb.dtype == torch.uint8 or rgb.dtype.is_floating_point):
        raise Photo3DError(f"RGB->NV12 needs uint8 or float RGB, got {rgb.dtype}")
    h, w = rgb.shape[:2]
    if h % 2 or w % 2 or h == 0 or w == 0:
        raise Photo3DError(f"NV12 needs an even width and height (2x2 chroma blocks); got {w}x{h}; "
                           f"crop the frame to {w - w % 2}x{h - h % 2}")
    return h, w


def _to_255(rgb: torch.Tensor) -> torch.Tensor:
    """float32 RGB in [0, 255]: uint8 as is, floats (sRGB / 255) clamped to [0, 1] and scaled."""
    if rgb.dtype == torch.uint8:
        return rgb.to(torch.float32)
    return rgb.to(torch.float32).clamp(0.0, 1.0) * 255.0


def _dot(m: tuple[float, float, float], r: torch.Tensor, g: torch.Tensor, b: torch.Tensor, offset: float) -> torch.Tensor:
    # Written out term by term, in the order the Triton kernel uses, so that both round
    # the same float32 values (a matmul may sum in another order).
    return r * m[0] + g * m[1] + b * m[2] + offset


def _round_u8(v: torch.Tensor) -> torch.Tensor:
    return torch.floor(v + 0.5).clamp(0.0, 255.0).to(torch.uint8)


def rgb_to_nv12(rgb: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """RGB (H, W, 3) uint8, or float in [0, 1], on any device -> NV12 (H * 3 / 2, W) uint8.

    BT.709 limited range, left chroma siting (module docstring). H and W must be even.
    out: an (H * 3 / 2, W) uint8 tensor on the input's device to write into (reused by a
    video writer across frames), or None for a new one.
    """
    h, w = check_rgb(rgb)
    x = _to_255(rgb)
    r, g, b = x.unbind(-1)
    if out is None:
        out = torch.empty((h * 3 // 2, w), dtype=torch.uint8, device=rgb.device)
    out[:h] = _round_u8(_dot(_Y, r, g, b, OFFSET[0]))
    # Vertical pair sums (H/2, W, 3), then [1, 2, 1] around each even column: one weighted
    # sum of 8 pixels, / 8. Integer inputs stay exact in float32 (at most 8 * 255).
    pair = x[0::2] + x[1::2]
    center, right = pair[:, 0::2], pair[:, 1::2]
    left = torch.cat([pair[:, :1], pair[:, 1:-1:2]], dim=1)  # column 2i - 1, clamped at 0
    s = (left + center * 2.0 + right) * 0.125
    sr, sg, sb = s.unbind(-1)
    uv = out[h:].view(h // 2, w // 2, 2)
    uv[..., 0] = _round_u8(_dot(_CB, sr, sg, sb, OFFSET[1]))
    uv[..., 1] = _round_u8(_dot(_CR, sr, sg, sb, OFFSET[2]))
    return out


def nv12_to_rgb(nv12: torch.Tensor) -> torch.Tensor:
    """NV12 (H * 3 / 2, W) uint8 -> RGB (H, W, 3) uint8, BT.709 limited range, left siting.

    The decoder's side, for tests: chroma is repeated over its two rows and, horizontally,
    taken at even columns and averaged with the next sample at odd columns.
    """
    if nv12.ndim != 2 or nv12.shape[0] % 3 or nv12.shape[1] % 2 or nv12.dtype != torch.uint8:
        raise Photo3DError(f"NV12 must be (H * 3 / 2, W) uint8 with even H, W; got "
                           f"{tuple(nv12.shape)} {nv12.dtype}")
    h, w = nv12.shape[0] * 2 // 3, nv12.shape[1]
    y = nv12[:h].to(torch.float32) - OFFSET[0]
    uv = nv12[h:].view(h // 2, w // 2, 2).to(torch.float32) - 128.0
    nxt = torch.cat([uv[:, 1:], uv[:, -1:]], dim=1)
    full = torch.stack([uv, (uv + nxt) * 0.5], dim=2).reshape(h // 2, w, 2)
    full = full.repeat_interleave(2, dim=0)
    yuv = torch.stack([y, full[..., 0], full[..., 1]], dim=-1)
    inverse = torch.linalg.inv(torch.tensor(MATRIX, dtype=torch.float64)).to(torch.float32)
    rgb = yuv @ inverse.to(nv12.device).T
    return torch.floor(rgb + 0.5).clamp(0, 255).to(torch.uint8)
