"""The embedded depth backend: monocular cues, no learned weights.

This is the fallback that always works: it needs nothing but torch and the photo. Learned
models (Depth Anything V2, MiDaS; ``photo3d_fast.engines``) are *much* better at depth:
they recognise objects and surfaces. This module only combines classic pictorial cues, so
expect plausible layering on ordinary photos (a subject standing out from its surroundings,
ground receding towards a horizon), not metric depth, and wrong answers on scenes that
break the cues (a sharp background behind a blurred foreground, a ceiling read as ground, a
subject that has the colour of the frame's border).

Pipeline (whole-tensor torch ops on CPU, float32 unless noted; maps are (h, w)). Cues 1-5
are computed in ``pictorial_cues.py``; this module does steps 0, 6 and 7 around them.

0. Working resolution. The photo is box-downsampled (Pillow, on uint8, so a 48 Mpx photo is
   never a float tensor) to a longer side ``s`` of at most ``WORK_LONG_SIDE`` = 512 pixels.
   Every radius below is a fraction of ``s``.

1. Ground plane / vertical position, ``W_GROUND`` = 0.25. For a camera above flat ground,
   disparity is linear in the image row below the horizon and zero at it. The horizon is
   the split of the row profile of the sky score (cue 3) that best separates a sky-like top
   from the rest (upper 70% of the frame only); when no split is convincing, the horizon is
   the top edge and the prior is a plain ramp "lower in the frame = nearer". Above it: 0.

2. Defocus / texture, ``W_FOCUS`` = 0.15. The mean of two measures, each normalised to
   [0, 1] by its 2nd/98th percentiles:
   * edge sharpness, simplified from Zhuo & Sim 2011 ("Defocus map estimation from a single
     image"): re-blur the luminance by a ~1 px kernel; the ratio of gradient magnitudes
     before/after is large where detail was sharp and near 1 where it was already blurred.
     It is known only at edges, so it is spread by an edge-weighted local mean (radius 6%),
     falling back to the image's mean sharpness far from any edge;
   * band-pass texture energy: local mean (2%) of |differences of blurs| at 1, 2 and 4 px,
     divided by local mean luminance + 0.1 (Weber: dark texture counts, noise in black
     regions does not explode), in log units.
   In-focus, detailed regions tend to be the subject, so near; smooth, blurred ones far.

3. Haze / aerial perspective, ``W_CLEAR`` = 0.10 on ``1 - haze``. Distant outdoor content
   is veiled by airlight: high dark channel (He et al. 2009: min over RGB, then min over a
   1.5% patch), low local contrast (luminance std over 2%), desaturated, blue-tinted.
   ``haze = 0.55 * dark * low_contrast + 0.30 * blue + 0.15 * low_contrast * desaturation``.
   The dark channel and grey terms are gated by low contrast, so a textured white object or
   a plain red one is not called haze. Its bright, flat part ("sky") drives cue 1's horizon.

4. Figure / ground by the border, ``W_FIGURE`` = 0.35. The background prior of salient-
   object work (Wei et al. 2012, "Geodesic saliency using background priors"): what touches
   the frame's edges is usually background. Each pixel's CIE Lab colour (blurred 1%) is
   compared with 64 samples along the border (blurred 2%); its 10th-percentile distance is
   the cue, so an object that touches the border in a sample or two still stands out. In
   the bundled coffee photo this is the cue that lifts the cup and saucer off the table.

5. Centre prior, ``W_CENTRE`` = 0.10: a broad Gaussian (sigma 0.3 of each side) at
   (x, y) = (0.5, 0.55); photographers put subjects near the middle, a bit low. Saturation,
   ``W_SAT`` = 0.05: (max - min) / (max + 0.05) per pixel, blurred 1%; distance desaturates.

6. Combination and edge-aware smoothing. ``d = sum_i W_i * cue_i`` (weights sum to 1). Then
   two guided filters (``guided.py``, colour guide = the working image): a wide one (radius
   6%, eps 1e-3, solved at 1/4 resolution) makes the map piecewise smooth with its steps on
   the image's edges; a narrow one (1.5%, eps 3e-3) tightens those steps. The renderer finds
   occlusion boundaries from jumps in neighbouring disparities, so steps that sit on object
   outlines matter more than absolute accuracy.

   Night scenes (median luminance under 0.15): lamps are emitters at the depth of what
   holds them, but the figure and saturation cues make each the nearest thing in the
   frame, and the guided filters cut a star-shaped near object out of its glare that tears
   as the camera moves. Small bright blobs and the glare connected to them
   (``pictorial_cues._lights``) take the mean disparity of their surroundings, before and
   after the filters. On the darkened rocket photo this took the artifact ratio of a circle
   path from 1.54 to 1.08 (bench/RESULTS.md).

7. Full resolution and range. The fast guided filter (He & Sun 2015; radius 0.5%, eps 3e-3)
   solves at working resolution and applies its coefficients to the full photo in strips of
   rows, so the output's edges are the photo's own. The result is mapped by its 1st/99th
   percentiles (of a strided sample of <= ~1M pixels) to [0, 1] and clipped:
   1 = nearest, 0 = farthest.

Robustness: a cue with no spread (a constant image) becomes a constant, so a flat image gets
the vertical ramp plus the centre prior; every division has a floor; box windows clamp to the
image, so 1x1 and 1xN work; the output goes through ``nan_to_num``. Deterministic: same input,
same bits (no randomness, exact order statistics, one torch thread; see below).

Speed on a 2-core CPU (torch 2.13, other jobs sharing the cores): 960x540 in about 0.2 s
(min 0.19 s, median 0.21 s over 15 runs after warm-up); 8000x6000 in about 2.2 s with about
0.3 GB of extra memory (the float32 output, 256-row strips). The estimator runs torch on a
single intra-op thread (``_one_torch_thread``): its ops are small, and on shared cores
OpenMP's spin-waiting made two threads 25x slower.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from ..errors import Photo3DError
from .guided import guided_filter, guided_upsample
from .pictorial_cues import (
    _centre,
    _figure,
    _focus,
    _ground,
    _haze,
    _horizon,
    _lights,
    _luminance,
    _max_filter,
    _quantiles,
    _radius,
    _saturation,
    flatten_lights,
)

__all__ = ["estimate_disparity_cues", "cue_maps", "WORK_LONG_SIDE"]

#: Longer side, in pixels, at which the cues are computed.
WORK_LONG_SIDE = 512

# Cue weights (sum 1), tuned by eye on the bundled coffee photo and synthetic scenes. Figure
# and ground carry most of it: they are right on most photos, while focus and haze are right
# only on photos that have depth of field or distance in them.
W_GROUND = 0.25
W_FIGURE = 0.35
W_FOCUS = 0.15
W_CLEAR = 0.10
W_CENTRE = 0.10
W_SAT = 0.05

# Guided-filter passes at working resolution: (radius as a fraction of the longer side, eps,
# subsample). The wide pass solves at 1/4 resolution (fast guided filter): its window is
# ~60 px wide, so a coarser solve costs 16x less and its steps still land on the working
# image's edges (the coefficients are applied to the full working-resolution guide).
SMOOTH_PASSES = ((0.06, 1e-3, 4), (0.015, 3e-3, 1))
# Final fast guided upsampling to full resolution.
UPSAMPLE_PASS = (0.005, 3e-3)


def _as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or a.shape[0] < 1 or a.shape[1] < 1:
        raise Photo3DError(
            f"cue depth needs an (H, W, 3) uint8 image; got shape {a.shape}. "
            "Decode the photo to RGB first (photo3d_fast reads files with Pillow)."
        )
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    if a.dtype != np.uint8:
        f = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        # Float images follow the package convention (sRGB / 255); wider ints are rescaled.
        if np.issubdtype(a.dtype, np.floating):
            f = f * 255.0
        elif np.iinfo(a.dtype).max > 255:
            f = f * (255.0 / np.iinfo(a.dtype).max)
        a = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a)


def _working_image(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, h, w) float32 in [0, 1], longer side <= WORK_LONG_SIDE."""
    H, W = rgb.shape[:2]
    scale = WORK_LONG_SIDE / max(H, W)
    if scale < 1.0:
        from PIL import Image

        w = max(1, int(round(W * scale)))
        h = max(1, int(round(H * scale)))
        # BOX is an exact area average: no aliasing of fine texture into the focus cue.
        rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BOX))
    return torch.from_numpy(np.array(rgb, dtype=np.float32)).permute(2, 0, 1).div_(255.0)


@contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread for the duration, then restore the caller's setting.

    The working-resolution ops are small (~150k pixels) and many, so extra threads buy little,
    and on a shared machine they cost a lot: OpenMP threads spin-wait for a sibling that the OS
    has descheduled. Measured on a loaded 2-core box, 960x540: 0.21 s on one thread, 5.5 s on
    two. One thread also makes the bits independent of the machine's core count. The setting
    is process-wide, so another Python thread running torch meanwhile is slowed, never wrong.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def cue_maps(image: np.ndarray) -> dict[str, np.ndarray]:
    """Every cue at working resolution, for inspection and tuning.

    image: (H, W, 3) uint8 sRGB. Returns name -> (h, w) float32 in [0, 1] for "ground",
    "focus", "haze", "sky", "centre", "saturation", "lights" (``_lights``), "combined"
    (weighted sum, lights flattened, before smoothing) and "smoothed" (after the guided filters), plus "image" (h, w, 3) float32.
    """
    with torch.no_grad(), _one_torch_thread():
        img = _working_image(_as_rgb_uint8(image))
        maps, _ = _cues(img)
    out = {k: v.numpy().astype(np.float32) for k, v in maps.items()}
    out["image"] = img.permute(1, 2, 0).numpy()
    return out


def _cues(img: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    _, h, w = img.shape
    s = max(h, w)
    lum = _luminance(img)
    haze, sky = _haze(img, lum, s)
    maps = {
        "ground": _ground(h, w, _horizon(sky)),
        "figure": _figure(img, s),
        "focus": _focus(lum, s),
        "haze": haze,
        "sky": sky,
        "centre": _centre(h, w),
        "saturation": _saturation(img, s),
    }
    d = (
        W_GROUND * maps["ground"]
        + W_FIGURE * maps["figure"]
        + W_FOCUS * maps["focus"]
        + W_CLEAR * (1.0 - maps["haze"])
        + W_CENTRE * maps["centre"]
        + W_SAT * maps["saturation"]
    )
    maps["lights"] = lights = _lights(lum, s)
    d = flatten_lights(d, lights, s)
    maps["combined"] = d
    for frac, eps, sub in SMOOTH_PASSES:
        d = guided_filter(img, d, _radius(frac, s), eps, subsample=sub)
    if bool(lights.any()):
        # The filters' colour guide draws the lamps' glare back into the map: flatten again,
        # a little wider.
        d = flatten_lights(d, _max_filter(lights, 2), s)
    maps["smoothed"] = d
    return maps, d


def estimate_disparity_cues(image: np.ndarray) -> np.ndarray:
    """image: (H, W, 3) uint8 sRGB. Returns (H, W) float32 relative disparity in [0, 1],
    1 = nearest, 0 = farthest. Affine-invariant like a learned model's output: only order and
    ratios matter."""
    rgb = _as_rgb_uint8(image)
    H, W = rgb.shape[:2]
    with torch.no_grad(), _one_torch_thread():
        img = _working_image(rgb)
        _, d = _cues(img)
        s = max(img.shape[1:])
        frac, eps = UPSAMPLE_PASS
        if img.shape[1:] == (H, W):
            out = guided_filter(img, d, _radius(frac, s), eps)
        else:
            out = guided_upsample(img, d, rgb, _radius(frac, s), eps)
        out.nan_to_num_(nan=0.0, posinf=0.0, neginf=0.0)
        flat = out.flatten()
        # A strided sample of ~1M pixels pins the percentiles well enough and stays cheap.
        step = max(1, flat.numel() // 1_000_000)
        lo, hi = _quantiles(flat[::step], (0.01, 0.99))
        if hi - lo > 1e-6:
            out.sub_(lo).div_(hi - lo).clamp_(0.0, 1.0)
        else:
            out.fill_(0.5)
    return out.numpy().astype(np.float32, copy=False)
