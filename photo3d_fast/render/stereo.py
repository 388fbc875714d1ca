"""Stereo output: the two eyes' cameras of a path and the layouts that pack both eyes into
one video frame (``--stereo``).

Eyes: each frame's left and right cameras are the path's pose translated by -ipd/2 and
+ipd/2 (scene units) along that camera's own x axis (OpenCV: x right), both looking the
same way (parallel axes). Convergence is a shift of each eye's principal point: cx of the
left eye by -f * (ipd / 2) / convergence pixels, of the right eye by +f * (ipd / 2) /
convergence, so a point at z-depth ``convergence`` (scene units, along the camera's axis)
lands on the same pixel in both eyes (zero disparity: on the screen), a nearer point has
crossed disparity (x_left > x_right: in front of the screen) and a farther one uncrossed.
The disparity x_left - x_right of a point at depth z is f * ipd * (1/z - 1/convergence)
pixels; the output keeps its size (no crop).

Layouts (``compose``), frames (..., H, W, 3) uint8 per eye, on the renderer's device:

- ``sbs``: left | right, each eye at full size: (..., H, 2W, 3).
- ``half-sbs``: left | right, each eye squeezed to half width (area average in sRGB
  values): (..., H, W, 3).
- ``tb``: left over right, full size: (..., 2H, W, 3). ``half-tb``: each eye squeezed to
  half height: (..., H, W, 3).
- ``anaglyph``: red-cyan, Dubois' least-squares matrices, applied in linear light (sRGB
  decoded, mixed, clipped to [0, 1], encoded again): (..., H, W, 3).

VR180 (``--vr180``, with sbs or tb): each eye is resampled from its pinhole view onto an
equirectangular half sphere (``equirect_180``), S x S pixels covering 180 degrees of
longitude and of latitude in front of the eye; what the photo did not see is black. The
eyes are parallel (no convergence shift): a headset shows the sphere at infinity, so only
the ipd makes the depth.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..config import STEREO_CHOICES as STEREO_LAYOUTS
from ..config import stereo_output_size

#: Dubois' red-cyan anaglyph matrices (least-squares projection, E. Dubois, "A projection
#: method to generate anaglyph stereo images", ICASSP 2001; the values published on his
#: site for red-cyan): out_rgb = DUBOIS_LEFT @ left_rgb + DUBOIS_RIGHT @ right_rgb, linear
#: light. Each row of LEFT + RIGHT sums to 1 within 0.001, so grey stays grey.
DUBOIS_LEFT = ((0.437, 0.449, 0.164),
               (-0.062, -0.062, -0.024),
               (-0.048, -0.050, -0.017))
DUBOIS_RIGHT = ((-0.011, -0.032, -0.007),
                (0.377, 0.761, 0.009),
                (-0.026, -0.093, 1.234))


def stereo_size(size: tuple[int, int], layout: str) -> tuple[int, int]:
    """(W, H) of the composed frame for eyes of (W, H) = ``size`` (``config.stereo_output_size``:
    Photo3DError over MAX_OUTPUT_SIDE)."""
    return stereo_output_size(size, layout)


def eye_cameras(c2ws: torch.Tensor, Ks: torch.Tensor, ipd: float, convergence: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Both eyes of every frame, interleaved: (2F, 4, 4) camera-to-world and (2F, 3, 3) K,
    rows 2i (left) and 2i + 1 (right) for frame i.

    c2ws: (F, 4, 4) camera-to-world of the path (world = the photo's camera); Ks: (F, 3, 3)
    each frame's intrinsics (pixels, its zoom applied); ipd: eye baseline, scene units > 0;
    convergence: z-depth (scene units > 0) of zero disparity. Same dtype and device as the
    inputs.
    """
    half = 0.5 * float(ipd)
    sign = torch.tensor([-1.0, 1.0], dtype=c2ws.dtype, device=c2ws.device)  # left, right
    eyes = c2ws[:, None].repeat(1, 2, 1, 1)  # (F, 2, 4, 4)
    # The camera's own x axis in world coordinates is the first column of its rotation.
    eyes[..., :3, 3] = c2ws[:, None, :3, 3] + sign[None, :, None] * half * c2ws[:, None, :3, 0]
    Ks2 = Ks[:, None].repeat(1, 2, 1, 1)  # (F, 2, 3, 3)
    Ks2[..., 0, 2] = Ks[:, None, 0, 2] + sign.to(Ks.dtype)[None, :] * Ks[:, None, 0, 0] * (half / float(convergence))
    return eyes.reshape(-1, 4, 4), Ks2.reshape(-1, 3, 3)


def _squeeze(frames: torch.Tensor, axis: int, n: int) -> torch.Tensor:
    """``frames`` (B, H, W, 3) uint8 resized along ``axis`` (1 = rows, 2 = columns) to ``n``
    pixels by area averaging (sRGB values), uint8."""
    x = frames.permute(0, 3, 1, 2).float()
    size = (n, x.shape[3]) if axis == 1 else (x.shape[2], n)
    out = F.interpolate(x, size=size, mode="area")
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)


def _srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055)


def anaglyph(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """Dubois red-cyan anaglyph of two eyes (..., H, W, 3) uint8 sRGB -> (..., H, W, 3) uint8
    sRGB; the matrices are applied in linear light."""
    dev = left.device
    ml = torch.tensor(DUBOIS_LEFT, dtype=torch.float32, device=dev)
    mr = torch.tensor(DUBOIS_RIGHT, dtype=torch.float32, device=dev)
    lin_l = _srgb_to_linear(left.float() / 255.0)
    lin_r = _srgb_to_linear(right.float() / 255.0)
    mixed = (lin_l @ ml.T + lin_r @ mr.T).clamp_(0.0, 1.0)
    return (_linear_to_srgb(mixed) * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def compose(left: torch.Tensor, right: torch.Tensor, layout: str) -> torch.Tensor:
    """Both eyes (..., H, W, 3) uint8 (same shape and device) as one frame of ``layout``
    (module doc for each layout's shape); on their device. ``none`` returns ``left``.

    half-sbs gives the left eye ceil(W/2) columns and the right eye the rest (half-tb:
    rows), so the output keeps W (H) exactly.
    """
    if left.shape != right.shape or left.shape[-1] != 3:
        raise ValueError(f"eyes must be (..., H, W, 3) of one shape, got {tuple(left.shape)} and {tuple(right.shape)}")
    if layout == "none":
        return left
    if layout == "sbs":
        return torch.cat([left, right], dim=-2)
    if layout == "tb":
        return torch.cat([left, right], dim=-3)
    if layout == "anaglyph":
        return anaglyph(left, right)
    if layout in ("half-sbs", "half-tb"):
        lead = left.shape[:-3]
        h, w = left.shape[-3:-1]
        both = torch.stack([left, right]).reshape(-1, h, w, 3)  # (2B, H, W, 3)
        axis = 2 if layout == "half-sbs" else 1
        full = w if axis == 2 else h
        first = (full + 1) // 2
        a = _squeeze(both[: len(both) // 2], axis, first)
        b = _squeeze(both[len(both) // 2 :], axis, full - first)
        out = torch.cat([a, b], dim=axis)
        return out.reshape(*lead, h, w, 3)
    raise ValueError(f"unknown stereo layout {layout!r}; choose one of {', '.join(STEREO_LAYOUTS)}")


#: Largest side of one eye's VR180 half sphere when it follows the view's resolution: 2048
#: makes a 4096 x 2048 sbs frame, what headsets decode in hardware and NVENC's h264 takes.
VR180_MAX_SIDE = 2048


def vr180_side(fx: float) -> int:
    """S (pixels, even, 64..VR180_MAX_SIDE) of one eye's S x S half sphere for a pinhole view
    of focal length ``fx`` (pixels): pi * fx keeps the view's centre at its own resolution
    (a pixel of the sphere spans pi / S radians, one of the view about 1 / fx)."""
    return int(min(VR180_MAX_SIDE, max(64, 2 * round(math.pi * float(fx) / 2))))


@functools.lru_cache(maxsize=4)
def _half_sphere_rays(side: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(x / z, y / z) of the ray through each pixel of a side x side half sphere (``equirect_180``):
    the same for every frame of a clip, so computed once."""
    t = (torch.arange(side, device=device, dtype=torch.float32) + 0.5) / side - 0.5
    lon, lat = t[None, :] * math.pi, t[:, None] * math.pi
    z = (torch.cos(lat) * torch.cos(lon)).clamp_min(1e-6)  # the half sphere is in front of the eye
    return torch.cos(lat) * torch.sin(lon) / z, torch.sin(lat).expand(side, side) / z


def equirect_180(views: torch.Tensor, Ks: torch.Tensor, side: int) -> torch.Tensor:
    """Pinhole views (B, H, W, 3) uint8 with intrinsics Ks (B, 3, 3) (pixels, OpenCV axes:
    x right, y down, z forward) resampled onto equirectangular half spheres (B, side, side,
    3) uint8, on the views' device. Column i is longitude ((i + 0.5) / side - 0.5) * pi,
    row j latitude ((j + 0.5) / side - 0.5) * pi (down positive); a direction outside a
    view's frame is black. Bilinear."""
    dev = views.device
    h, w = views.shape[1:3]
    tx, ty = _half_sphere_rays(side, str(dev))
    Ks = Ks.to(dev, torch.float32)
    u = Ks[:, 0, 0, None, None] * tx[None] + Ks[:, 0, 2, None, None]  # (B, S, S) pixels
    v = Ks[:, 1, 1, None, None] * ty[None] + Ks[:, 1, 2, None, None]
    # grid_sample's align_corners=False: -1 and 1 are the outer edges of the border pixels.
    grid = torch.stack([u / w * 2.0 - 1.0, v / h * 2.0 - 1.0], dim=-1)
    src = views.permute(0, 3, 1, 2).float()
    out = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def default_ipd(near: float) -> float:
    """The eye baseline (scene units) when ``--ipd`` is not given: 1/30 of the depth of the
    nearest content (``near``, scene units), the stereographers' 1/30 rule, which keeps the
    nearest content's disparity comfortable. At the default --near 1 that is about 0.033,
    the same scale as the swing path's radius at --amount 1 (0.035 x near)."""
    return float(near) / 30.0

