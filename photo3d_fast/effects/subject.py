"""The coarse subject of a photo from its depth: the nearest coherent object. Disparity
(1 = near) is split in two by Otsu's threshold; of the near region's connected components
the one holding ``point`` is kept (cut at depth edges), else the one with the best score of
size, nearness and closeness to the centre. Masks are (H, W) bool; disparity (H, W)
float32, larger = nearer (any scale)."""

from __future__ import annotations

import cv2
import numpy as np

from ..errors import Photo3DError


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


def check_point(point: tuple[float, float] | None, w: int, h: int) -> tuple[int, int] | None:
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
    p = check_point(point, w, h)
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


def best_component(mask: np.ndarray, disparity: np.ndarray) -> np.ndarray:
    """The component of ``mask`` (H, W) bool that ``_best_label`` ranks first."""
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    return labels == _best_label(_normalized(disparity), n, labels, stats, centroids)


def largest_overlapping(mask: np.ndarray, reference: np.ndarray) -> np.ndarray:
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
