"""Inpainting of what the photo's foreground hides: the LDI's back layers, in colour.

``fill_behind`` colours a back layer's band from the background around it, never from the
foreground in front of it (``background_sources`` masks the foreground out first):
"classic" (no weights) is the exemplar fill of ``exemplar.py``, the background's texture
copied along the translations it repeats along, over the far-side fill of ``ops/fill.py``
(each band pixel takes the nearest pixels along its row and column, the farther surface
winning) where no copy fits; a learned model (``learned.py``: LaMa, MI-GAN through
``engines/``) fills from context. With an exact depth map, ``bridge.py`` gives the band the
depth and colour of a surface seen on both its sides (the floor on either side of a box),
and ``surface_fill`` the colour of its own surface beside it.

Measured (bench/RESULTS.md, issue 19): on the ray-cast scenes Telea's fast-marching fill
(OpenCV), Navier-Stokes and a harmonic fill were 1 to 2 dB worse in disoccluded pixels than
the far-side fill alone; the exemplar fill is better than it. The rim of mixed colour
around the band is filled on the way into it, but only a learned model's fill replaces the
photo's pixels there.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..depth.backends import EngineOptions
from ..engines.weights import resolve_auto
from ..ops.fill import fill_from_background, side_neighbours
from .exemplar import exemplar_fill
from .learned import INPAINT_MODELS, inpaint_learned

#: Context (pixels) beyond the band's reach that a learned model sees around it.
CONTEXT_PX = 4
#: A pixel the classic fill copies lies on the band's surface: its disparity within this
#: share of the edge threshold of the band's. The edge threshold itself let the wall above a
#: floor's horizon be copied into the floor behind a pole (bench/RESULTS.md, issue 19).
SURFACE_SHARE = 0.1
#: Known pixels this close to a band are left out of its sources: the photo's silhouette
#: pixels mix foreground and background colour (anti-aliasing, blur), and fed into the
#: band they draw a faint copy of the foreground's outline behind it.
MIXED_PX = 1
#: The far-side fill repeats the pixels at the ends of each band pixel's row and column
#: across the band; where no copy fits, their blend is a plaid of row and column streaks.
#: A mean over the band's own pixels within this radius softens it before the copies (1:
#: every real photo's artifact ratio lower, the ray-cast scenes +0.07 dB disoccluded;
#: 2 and 3 smooth more but raised rocket-night's; bench/RESULTS.md, issue 19).
FALLBACK_MEAN_PX = 1


def _square(r: int) -> np.ndarray:
    return np.ones((2 * r + 1, 2 * r + 1), np.uint8)


def background_sources(disp: np.ndarray, hole: np.ndarray, edge: float, reach: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels allowed to feed a back layer's fill, and the background's mixed rim:
    two (H, W) bool.

    disp: (H, W) float32 disparity of the surface the layer is grown behind; hole: (H, W) bool,
    the layer's band; edge: the LDI's edge threshold; reach: how far from the band the
    foreground is kept out, in pixels. A known pixel within ``reach`` of the band is left
    out when it lies in front of the farthest pixel within ``2 * reach`` of it by more than
    ``edge`` (it is the foreground the band hides behind), and so is the ``MIXED_PX`` ring
    around the band. The rim is that ring's background part: the photo's pixels there mix
    the foreground's colour into the background's, and carried at the background's depth
    they float as a dotted fringe beside the foreground once it moves.
    """
    import cv2

    # OpenCV's rectangular morphology costs O(1) per pixel whatever the radius.
    # The band's own background lies within its width of it, so within 2 * reach of any
    # pixel that is within reach of the band.
    back = cv2.erode(np.where(hole, np.float32(np.inf), disp).astype(np.float32), _square(2 * reach),
                     borderType=cv2.BORDER_REPLICATE)
    front = disp > back + edge
    hole8 = hole.astype(np.uint8)
    near = cv2.dilate(hole8, _square(reach)) > 0
    ring = (cv2.dilate(hole8, _square(MIXED_PX)) > 0) & ~hole
    return ~ring & ~hole & ~(near & front), ring & ~front


def band_mean(image: np.ndarray, band: np.ndarray, r: int) -> np.ndarray:
    """image (H, W, 3) float32 with each pixel of ``band`` ((H, W) bool) replaced by the mean
    of the band's pixels in its (2r + 1)^2 window; the pixels outside the band neither change
    nor count."""
    import cv2

    if r <= 0:
        return image
    inside = band.astype(np.float32)
    size = (2 * r + 1, 2 * r + 1)
    total = cv2.blur(image * inside[..., None], size, borderType=cv2.BORDER_CONSTANT)
    count = cv2.blur(inside, size, borderType=cv2.BORDER_CONSTANT)
    return np.where(band[..., None], total / np.maximum(count, 1e-6)[..., None], image).astype(np.float32)


def surface_fill(color: torch.Tensor, disp: torch.Tensor, hole: torch.Tensor, hole_disp: torch.Tensor,
                 tol: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Each band pixel's colour from the nearest pixels outside the band along its row and
    column that lie on its own surface.

    color: (H, W, 3) float; disp: (H, W) float disparity; hole: (H, W) bool, the band;
    hole_disp: (H, W) float, the band's disparity (the layer's); tol: how far a pixel's
    disparity may lie from the band pixel's to count as its surface. Of the four nearest
    pixels outside the band (left, right, up, down) those on the surface are averaged,
    weighted by 1 / distance. Returns the colours (H, W, 3) and (H, W) bool, the band
    pixels that had such a pixel. Behind a pole standing on a floor the far-side fill
    (``fill_from_background``: the farther side wins) paints the wall above the horizon
    down the pole's whole length; the pole's own depth is the floor's there, and the floor
    lies beside it in the same row.
    """
    h, w = hole.shape
    flat_c, flat_d = color.reshape(-1, 3), disp.reshape(-1)
    total = torch.zeros(h, w, 3, device=color.device)
    weight = torch.zeros(h, w, device=color.device)
    for ok, flat, dist in side_neighbours(~hole):
        flat = flat.reshape(-1)
        same = ok & ((flat_d[flat].reshape(h, w) - hole_disp).abs() <= tol)
        wt = same.float() / dist
        total += flat_c[flat].reshape(h, w, 3) * wt[..., None]
        weight += wt
    served = hole & (weight > 0)
    return total / weight.clamp_min(1e-12)[..., None], served


def resolve_inpaint(method: str, engine: EngineOptions = EngineOptions(), quiet: bool = True) -> str:
    """The method ``--inpaint`` runs: "classic" or a learned model. "auto" is the best
    learned model whose weights are here, else the default one fetched once when downloads
    are allowed and the hub answers (``engines.resolve_auto``), else classic."""
    if method != "auto":
        return method
    # resolve_auto says why when it could not fetch; the clip's summary line names the method
    return resolve_auto("inpaint", fetch=engine.fetch, quiet=quiet, fallback="classic") or "classic"


def fill_behind(color: torch.Tensor, disp: torch.Tensor, hole: torch.Tensor, edge: float,
                method: str = "classic", engine: EngineOptions | None = None, fallback: torch.Tensor | None = None,
                hole_disp: torch.Tensor | None = None, exact: bool = False,
                bridged: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The colour of a back layer's band, continued from the background around it.

    color: (H, W, 3) float sRGB/255 and disp: (H, W) float disparity of the surface the
    layer is grown behind (the photo for the first back layer); hole: (H, W) bool, the
    band; edge: the LDI's disparity edge threshold; method: "classic" (the exemplar fill)
    or a learned model of ``INPAINT_MODELS``, run as ``engine`` says. For "classic":
    fallback, (H, W, 3) the band's far-side fill where the op ``grow`` already made it
    (None: made here), and hole_disp, (H, W) the layer's disparity in the band (None: the
    far side's, continued as the far-side fill continues colour), which a copied source
    must lie within ``edge`` of; exact, the depth map is exact (``scene.ldi``), so where the
    far side is another surface than hole_disp's, the band's own surface beside it in its
    row or column (``surface_fill``) gives the fallback; bridged, (H, W) bool and (H, W, 3)
    colour of the band pixels bridged across it with an exact map (``inpaint.bridge``),
    whose colour is the fallback where the far side is off their surface. Returns the filled colour (H, W, 3) float32 on color's
    device (the band filled, and for a learned model the background's mixed rim too;
    ``color`` elsewhere) and that rim (H, W) bool (``background_sources``; none for
    "classic"), whose filled colour is the background without the foreground mixed in. Only the bounding box of the
    band (plus its reach) is processed, on the CPU (a learned model on engine's device).
    """
    import cv2

    out = color.float().clone()
    if not bool(hole.any()):
        return out, torch.zeros_like(hole)
    if method != "classic" and method not in INPAINT_MODELS:
        raise ValueError(f"unknown inpainting method {method!r}; resolve 'auto' with resolve_inpaint first")
    if method == "classic" and (fallback is None or hole_disp is None or exact):
        # the background's disparity (and colour, unless the op grow made it) continued into
        # the band from its far side; channels are filled independently
        values = disp.float()[None] if fallback is not None else torch.cat([disp.float()[None], out.permute(2, 0, 1)])
        far = fill_from_background(values, ~hole, 1.0 / disp.float())
        far_disp = far[0]
        fallback = far[1:].permute(1, 2, 0) if fallback is None else fallback
        hole_disp = far_disp if hole_disp is None else hole_disp
        if exact:
            # Where that far side is another surface than the band's own (the wall above a
            # floor, behind a pole standing on it), the band's own surface in its row or
            # column gives the colour instead. Only an exact map says which surface a band
            # pixel is on: on cue depth this made thin struts' clips worse (bench/RESULTS.md).
            same, served = surface_fill(out, disp.float(), hole, hole_disp.float(), edge)
            other = served & ((far_disp - hole_disp.float()).abs() > edge)
            if bridged is not None:
                # Near a horizon the wall above and the floor below lie within ``edge`` of
                # each other: a bridged pixel takes its two sides' colour wherever the far
                # side is off its surface by more than the copies' tolerance.
                across, across_c = bridged
                across = across & ((far_disp - hole_disp.float()).abs() > SURFACE_SHARE * edge)
                other &= ~across
                fallback = torch.where(across[..., None], across_c, fallback.float())
            fallback = torch.where(other[..., None], same, fallback.float())
    hole_np = hole.cpu().numpy()
    # The foreground is kept out to twice the band's half-width plus the context: then
    # its own boundary is always farther from a band pixel than the background is.
    half = float(cv2.distanceTransform(hole_np.astype(np.uint8), cv2.DIST_L2, 3).max())
    reach = int(np.ceil(2.0 * half)) + CONTEXT_PX + MIXED_PX
    ys, xs = np.nonzero(hole_np)
    h, w = hole_np.shape
    pad = reach + CONTEXT_PX + 1
    crop = (slice(max(0, ys.min() - pad), min(h, ys.max() + pad + 1)),
            slice(max(0, xs.min() - pad), min(w, xs.max() + pad + 1)))
    disp_np = disp[crop].float().cpu().numpy()
    sources, rim_np = background_sources(disp_np, hole_np[crop], edge, reach)
    if method == "classic":
        image = torch.where(hole[..., None], fallback.float(), out)[crop].cpu().numpy()
        image = band_mean(image, hole_np[crop], FALLBACK_MEAN_PX)
        target = np.where(hole_np[crop], hole_disp[crop].float().cpu().numpy(), disp_np)
        filled = exemplar_fill(image, hole_np[crop] | rim_np, sources, target, SURFACE_SHARE * edge)
        # The rim is filled as the way into the band, but the photo keeps its own pixels
        # there: each copied on its own, they were isolated outliers in the moving frames
        # (2-layer clips of real photos scored worse than 1-layer ones, bench/RESULTS.md).
        rim_np = np.zeros_like(rim_np)
    else:
        img8 = (out[crop].cpu().numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
        # --weights names the depth model's file; an inpainting model comes from the cache
        filled = inpaint_learned(img8, ~sources, method, replace(engine or EngineOptions(), weights=None))
        filled = filled.astype(np.float32) / 255.0
    write = torch.from_numpy(hole_np[crop] | rim_np).to(out.device)
    region = out[crop]
    region[write] = torch.from_numpy(filled).to(out.device)[write]
    rim = torch.zeros_like(hole)
    rim[crop] = torch.from_numpy(rim_np).to(hole.device)
    return out, rim
