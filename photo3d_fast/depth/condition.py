"""Depth conditioning: a disparity map whose edges mean something, before the LDI is built.

An estimated depth map (cues or a network) has three faults that the renderer turns into
visible artifacts once the camera moves:

- noise within a surface (cue depth copies texture: wood grain becomes depth grain): each
  texel shifts by its own sub-pixel amount, so fine texture breaks into dots, and steps
  above the edge threshold tear the surface into slivers;
- soft edges: a discontinuity spread over a ramp of several pixels. Each ramp pixel is a
  *flying pixel* between two surfaces, belonging to neither: it either stretches the
  foreground over the background (no cut) or, cut, floats as a sliver in the gap;
- edges that miss the photo's edges by a pixel or two: foreground colour on background
  depth, a dotted fringe around every silhouette.

The conditioning, in disparity (what parallax is linear in), for a cut threshold ``edge``
(the disparity jump the LDI treats as a discontinuity):

1. Snap edges onto the photo: where a window holds both sides of a jump, each pixel takes
   the colour-weighted median of its window's disparities (a joint weighted median; the
   weights are the colour similarity to the pixel), ``SNAP_PASSES`` times: a ramp
   collapses into one step, placed where the colour changes, and a pixel takes the depth
   of the surface it looks like. The weighted median can only return values present in
   the window, so no new intermediate depths appear. This is the op ``snap``
   (``ops/snap.py`` defines it; its C++ CPU twin runs on the CPU where it loads, picked by
   ``ops.backends.select("snap", kernels, device)``).
2. Smooth within surfaces: the guided filter of the disparity with itself as the guide
   (edge-preserving: windows whose variance is well below ``edge``^2 are averaged, windows
   holding a jump of more than ``edge`` are kept as they are), ``SMOOTH_PASSES`` times;
   then one more snap for the pixels it moved. Only a map with noise to remove is smoothed
   (``noise_level`` at least ``CLEAN_NOISE``): an exact map (a 3D renderer's, the quality
   benchmark's ray-cast depth) has steps below the edge threshold that are real, a pole
   standing on a floor, and smoothing turns them into ramps whose texels smear the
   foreground over the background (measured: bench/RESULTS.md, issue 19).
3. Flying pixels left over (``join_foreground``): a pixel more than ``edge`` from both the
   nearest and the farthest disparity of its 3x3 window still lies between two surfaces
   (hair and fur fringes, blurred silhouettes, where the colours themselves are mixed and
   the median has no clean side to pick). It joins the foreground: its colour carries
   the foreground's, so moving with it is right, and the silhouette blend softens it. Left
   in between, it floats alone in the gap the moving foreground opens, a dotted line in
   front of the back layer (measured: the artifact ratio of 2-layer clips of a portrait
   fell from 1.27 to 1.16, bench/RESULTS.md).

All whole-tensor torch ops, on the device of the input, but for the snap, which runs the
implementation the selector picks (the C++ twin on the CPU, else the torch reference); the
weighted median runs only on the pixels next to a jump.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..ops.backends import select

#: Passes of the self-guided smoothing.
SMOOTH_PASSES = 2
#: Passes of the joint weighted median at jumps before the smoothing (one more after it).
SNAP_PASSES = 2
#: Window half-size of the weighted median: ramps up to about twice as wide collapse.
SNAP_RADIUS = 3
#: An edge shorter than this share of the image diagonal (pixels, at least 8) is noise.
MIN_EDGE_SHARE = 0.03
#: A map whose ``noise_level`` is below this is exact and is not smoothed. Measured: ray-cast
#: depth 0 to 0.0004 at 320x240 to 1280x960; cue depth of real photos 0.004 to 0.017.
CLEAN_NOISE = 0.0015
#: Residuals of noise_level at least this share of the edge threshold are steps, not noise.
NOISE_SHARE = 0.25


def _box(x: torch.Tensor, r: int) -> torch.Tensor:
    """(N, 1, H, W) -> mean over (2r+1)^2 windows, borders replicated; two 1-D pools."""
    x = F.avg_pool2d(F.pad(x, (r, r, 0, 0), mode="replicate"), (1, 2 * r + 1), stride=1)
    return F.avg_pool2d(F.pad(x, (0, 0, r, r), mode="replicate"), (2 * r + 1, 1), stride=1)


def window_max(x: torch.Tensor, r: int) -> torch.Tensor:
    """(H, W) maximum over each (2r+1)^2 window (outside the image ignored), as
    ``F.max_pool2d(x, 2r+1, 1, r)``. On the CPU through OpenCV's dilation: O(1) per pixel
    whatever r and vectorised, where torch's CPU max pool took 50-230 ms at 1080p."""
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return F.max_pool2d(x[None, None], 2 * r + 1, 1, r)[0, 0]
    import cv2

    out = cv2.dilate(x.contiguous().numpy(), np.ones((2 * r + 1, 2 * r + 1), np.uint8),
                     borderType=cv2.BORDER_CONSTANT, borderValue=float("-inf"))
    return torch.from_numpy(out)


def long_edges(disp: torch.Tensor, edge: float, min_length: int) -> torch.Tensor:
    """(H, W) bool: pixels on either side of a disparity jump of more than ``edge`` that
    belong to a connected (8-neighbour) run of such pixels at least ``min_length`` long
    (the longer side of its bounding box). Silhouettes and poles are long runs; the
    fragments an estimator's texture noise makes are short."""
    import cv2

    jump = torch.zeros_like(disp, dtype=torch.bool)
    for dim in (0, 1):
        n = disp.shape[dim] - 1
        step = (disp.narrow(dim, 0, n) - disp.narrow(dim, 1, n)).abs() > edge
        jump.narrow(dim, 0, n).logical_or_(step)
        jump.narrow(dim, 1, n).logical_or_(step)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(jump.cpu().numpy().astype(np.uint8), connectivity=8)
    extent = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
    keep = extent >= min_length
    keep[0] = False  # the background label
    return torch.from_numpy(keep[labels]).to(disp.device)


def smooth_within_surfaces(disp: torch.Tensor, radius: int, eps: float, keep: torch.Tensor | None = None,
                           edge: float = float("inf"), subsample: int = 1) -> torch.Tensor:
    """One pass of the guided filter of ``disp`` guided by itself (module doc, step 1).

    disp: (H, W) float; radius: window half-size in pixels; eps: variance (disparity^2)
    below which a window is averaged; keep: (H, W) bool, pixels whose windows are left as
    they are (``long_edges``); edge: other windows spanning more than this take their plain
    mean (only with ``keep``); subsample: solve at 1/subsample resolution and apply
    the bilinearly upsampled coefficients at full resolution (He & Sun's fast guided
    filter: the output's steps stay where the full-resolution disparity has them).
    Float32 throughout: values are centred first and window means are pooled (not prefix
    sums), so the variances keep ~1e-7 absolute accuracy.
    """
    centre = disp.mean()
    x = (disp - centre)[None, None]
    lo = F.avg_pool2d(x, subsample, ceil_mode=True) if subsample > 1 else x
    r = max(1, round(radius / subsample))
    mean = _box(lo, r)
    var = (_box(lo * lo, r) - mean * mean).clamp_min(0)
    a = var / (var + eps)
    if keep is not None:
        # A window that holds a long edge is left alone (a = 1, b = 0): the variance of a
        # thin pole's window is mostly its background's, and the plain filter would melt
        # the pole into it. A window that holds only short fragments of jumps is noise, and
        # the self-guided filter would keep exactly those jumps (its variance is large):
        # it takes the plain window mean (a = 0), which spreads a fragment's step out.
        held = keep[None, None].float()
        held = F.max_pool2d(held, subsample, ceil_mode=True) if subsample > 1 else held
        spread = (window_max(lo[0, 0], r) + window_max(-lo[0, 0], r))[None, None]
        a = torch.where(window_max(held[0, 0], r)[None, None] > 0, 1.0, torch.where(spread > edge, 0.0, a))
    b = mean * (1 - a)
    a, b = _box(a, r), _box(b, r)
    if subsample > 1:
        a = F.interpolate(a, size=x.shape[-2:], mode="bilinear", align_corners=False)
        b = F.interpolate(b, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return (a * x + b)[0, 0] + centre


def noise_level(disp: torch.Tensor, edge: float) -> float:
    """How noisy a (H, W) disparity map is for the edge threshold ``edge``: the mean absolute
    difference between each inner pixel and the median of its 3x3 window, over the pixels
    where it is below ``NOISE_SHARE * edge`` (steps left out), in units of ``edge``. A plane, however
    slanted, and a smooth curved surface give about 0; an estimator's texture noise does not.
    """
    if disp.shape[0] < 3 or disp.shape[1] < 3:
        return 0.0
    windows = F.unfold(disp[None, None].float(), 3)[0]  # (9, (H-2)*(W-2))
    residual = (windows[4] - windows.median(0).values).abs()
    # steps of a quarter of the edge and more are geometry (a pole's side, a floor's
    # contact), not noise; noise is what is left
    inner = residual[residual < NOISE_SHARE * edge]
    return float(inner.mean()) / edge if inner.numel() else 0.0


def join_foreground(disp: torch.Tensor, edge: float) -> torch.Tensor:
    """Step 3 of the module doc: (H, W) disparity with each flying pixel (more than ``edge``
    from both extremes of its 3x3 window) set to its window's largest disparity."""
    hi = window_max(disp, 1)
    lo = -window_max(-disp, 1)
    return torch.where((hi - disp > edge) & (disp - lo > edge), hi, disp)


def condition_disparity(rgb: torch.Tensor, disp: torch.Tensor, edge: float, radius: int | None = None,
                        kernels: str = "auto", smooth: bool | None = None) -> torch.Tensor:
    """Condition a disparity map for an LDI whose cut threshold is ``edge`` (module doc).

    rgb: (H, W, 3) uint8 or float sRGB in [0, 1]; disp: (H, W) float disparity (1 / z-depth);
    edge: the LDI's edge_disparity; radius: smoothing window half-size in pixels (None:
    0.4% of the longer side, at least 2); kernels: the implementation of the op ``snap``
    (``ops.backends.select``: "auto", "torch", "cpp", ...); smooth: run step 2 (None: when
    ``noise_level`` is at least ``CLEAN_NOISE``). Returns (H, W) float32 disparity on disp's
    device, within disp's range.
    """
    d = disp.float()
    if not (edge > 0) or d.numel() == 0 or not bool(torch.isfinite(torch.as_tensor(edge))):
        return d.clone()
    img = rgb.to(d.device)
    img = (img.float() / 255.0 if img.dtype == torch.uint8 else img.float()).permute(2, 0, 1).contiguous()
    _, snap = select("snap", kernels, d.device)
    if radius is None:
        radius = max(2, round(0.004 * max(d.shape)))
    out = d
    eps = (0.25 * edge) ** 2  # noise well below the edge threshold; steps near it survive
    # Above ~1 MP the coefficients are solved at half resolution: 4x less work, same steps.
    subsample = 2 if d.numel() > 1_000_000 else 1
    # Snap first, while the ramps are as narrow as the depth map made them (smoothing would
    # widen them), then smooth (steps well above the edge threshold survive it), then snap
    # the few pixels the smoothing moved.
    for _ in range(SNAP_PASSES):
        out = snap.snap_to_color_edges(img, out, edge, SNAP_RADIUS)
    if smooth if smooth is not None else noise_level(d, edge) >= CLEAN_NOISE:
        h, w = d.shape
        keep = long_edges(out, edge, max(8, round(MIN_EDGE_SHARE * (h * h + w * w) ** 0.5)))
        for _ in range(SMOOTH_PASSES):
            out = smooth_within_surfaces(out, radius, eps, keep, edge, subsample)
        out = snap.snap_to_color_edges(img, out, edge, SNAP_RADIUS)
    out = join_foreground(out, edge)
    return out.clamp(float(d.min()), float(d.max()))
