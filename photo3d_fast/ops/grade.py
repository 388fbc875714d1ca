"""Torch reference of the op ``grade``: depth fog, light falloff and vignetting in one pass.

Per pixel, in this order (surface light, then the air, then the lens):

1. falloff: c *= min(1, (z_ref / z) ** falloff). A light at the camera lights a surface at
   z with 1/z^2 (falloff 2: inverse square); z_ref is the depth that keeps its brightness
   (the focus depth); nearer content is not brightened (no clipping), farther darkens.
2. fog: c = c * T + fog_color * (1 - T), T = exp(-fog_density * max(0, z - fog_start)):
   Beer-Lambert transmittance of a homogeneous medium that starts at z-depth fog_start;
   density in 1 / scene units.
3. vignette: c *= 1 - vignette * (1 - cos^4 theta), theta the angle of the pixel's ray to
   the optical axis (from K): the cos^4 law of natural vignetting, scaled by ``vignette``
   in [0, 1] (1: the full law of this field of view; a 55-degree lens loses ~40% at the
   corners).

Values are blended as given (the clip effects pass linear light). z: z-depth, scene units.
"""

from __future__ import annotations

import torch


def _per_frame(value, n: int, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(value, dtype=torch.float32, device=device).reshape(-1)
    return (t.expand(n) if t.numel() == 1 else t)[:, None, None]


def vignette_gain(Ks: torch.Tensor, size: tuple[int, int], vignette: float) -> torch.Tensor:
    """(F, H, W) float32: 1 - vignette * (1 - cos^4 theta) of each pixel centre (x + 0.5,
    y + 0.5) for intrinsics Ks (F, 3, 3) (pixels) at size (W, H)."""
    w, h = size
    dev = Ks.device
    x = torch.arange(w, device=dev, dtype=torch.float32) + 0.5
    y = torch.arange(h, device=dev, dtype=torch.float32) + 0.5
    Ks = Ks.float()
    fx, fy = Ks[:, 0, 0, None, None], Ks[:, 1, 1, None, None]
    cx, cy = Ks[:, 0, 2, None, None], Ks[:, 1, 2, None, None]
    tx = (x[None, None, :] - cx) / fx
    ty = (y[None, :, None] - cy) / fy
    cos2 = 1.0 / (1.0 + tx * tx + ty * ty)
    return 1.0 - vignette * (1.0 - cos2 * cos2)


def grade(color: torch.Tensor, depth: torch.Tensor | None, Ks: torch.Tensor, *, fog_density: float = 0.0,
          fog_start: float = 0.0, fog_color: tuple[float, float, float] = (1.0, 1.0, 1.0), falloff: float = 0.0,
          falloff_ref: torch.Tensor | float = 1.0, vignette: float = 0.0) -> torch.Tensor:
    """F frames graded: (F, H, W, 3) float32.

    color: (F, H, W, 3) float32; depth: (F, H, W) float32 z-depth, scene units (> 0; may be
    None when fog_density and falloff are 0); Ks: (F, 3, 3) intrinsics, pixels;
    fog_density: 1 / scene units (0: off); fog_start: z-depth, scene units; fog_color: 3
    floats, the same space as color; falloff: exponent (0: off); falloff_ref: z-depth kept
    as is, a float or (F,); vignette: in [0, 1] (0: off).
    """
    n, h, w, _ = color.shape
    out = color.float()
    if falloff > 0.0 or fog_density > 0.0:
        if depth is None:
            raise ValueError("fog and falloff need the frames' depth")
        z = depth.float().clamp_min(1e-6)
    if falloff > 0.0:
        ref = _per_frame(falloff_ref, n, color.device)
        out = out * (ref / z).pow(falloff).clamp(max=1.0)[..., None]
    if fog_density > 0.0:
        t = torch.exp(-fog_density * (z - fog_start).clamp_min(0.0))[..., None]
        fog = torch.as_tensor(fog_color, dtype=torch.float32, device=color.device)
        out = out * t + fog * (1.0 - t)
    if vignette > 0.0:
        out = out * vignette_gain(Ks, (w, h), vignette)[..., None]
    return out
