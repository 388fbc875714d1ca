"""Exemplar fill of a back layer: the background's own texture continued behind the foreground.

The classic inpainting method (no weights). It follows He and Sun, "Statistics of Patch
Offsets for Image Completion" (ECCV 2012): a textured background repeats itself, and the
few translations along which it repeats are found by matching patches of the background
near the hole against the rest of the background; the hole is then filled by copying along
one of those translations, the one whose copy agrees best with what is already there.

1. Offsets: ``SAMPLES`` patches of the known background near the hole are each matched
   (OpenCV's ``matchTemplate``, sum of squared differences) against the known pixels within
   reach, matches overlapping the patch excepted; the ``OFFSETS`` most frequent best-match
   translations are kept. On a regular texture they are its lattice vectors; on a smooth
   gradient, moves of about a patch along it.
2. Onion peel: pixels are filled from the known region inwards, one ring per pass. Each
   pixel of the ring takes the colour at p + o for the offset o whose source is known (or
   already filled), lies on the pixel's own surface (its disparity within ``edge`` of the
   layer's, so the foreground is never copied), and whose neighbourhood (the middle third
   of a patch) best matches the pixel's filled neighbourhood, if it matches within
   ``MAX_MISMATCH``. A pixel no offset can serve keeps the far-side fill it had
   (``ops/fill.py``).
3. Specks: a written pixel left as an isolated outlier (``outliers.py``) takes its median
   neighbour's colour.

Patches scale with the image (``PATCH_SHARE`` of its longer side), the offset search runs on
an image shrunk so that a patch is ``SEARCH_PATCH`` pixels, and everything is bounded by the
hole's bounding box plus its reach: once per LDI, on the CPU (OpenCV and NumPy).

Measured (bench/RESULTS.md, issue 19; bench/sheets/exemplar_sheet.jpg): on the ray-cast
scenes the disoccluded PSNR of 2-layer renders rises by 1 to 2 dB over the far-side fill
alone (most where the background is a regular texture behind large objects); on real
photos the band holds no more isolated outliers than the far-side fill leaves. At 1080p
it adds about 0.8 s to an LDI.
"""

from __future__ import annotations

import numpy as np
import torch

from ..outliers import isolated_outliers, luma

#: Patch side as a share of the image's longer side (odd, at least MIN_PATCH pixels).
PATCH_SHARE = 0.017
MIN_PATCH = 7
#: Patch side (pixels) at which the offsets are searched; larger patches search a shrunk image.
SEARCH_PATCH = 11
#: Background patches matched to find the offsets, and offsets kept.
SAMPLES = 200
#: How far offsets are searched, in depths of the hole.
REACH = 4
OFFSETS = 8
#: Samples per side, at most, of the neighbourhood compared when choosing an offset.
WINDOW = 7
#: A copy is taken only when its neighbourhood matches the pixel's this well: mean squared
#: colour difference per compared sample, summed over RGB (0.005: about 0.04 RMS a channel).
#: Worse matches, on irregular texture, put foreign pieces into the band; the far-side fill
#: stays there instead (bench/RESULTS.md, issue 19).
MAX_MISMATCH = 0.005


def patch_size(shape: tuple[int, int]) -> int:
    """The patch side (odd, pixels) for an image of (H, W) = shape."""
    p = max(MIN_PATCH, int(round(PATCH_SHARE * max(shape))))
    return p if p % 2 else p + 1


def find_offsets(image: np.ndarray, known: np.ndarray, near: np.ndarray, patch: int, reach: int,
                 rng: np.random.Generator) -> list[tuple[int, int]]:
    """The dominant translations (dy, dx) along which the known image repeats (step 1).

    image: (H, W, 3) float32; known: (H, W) bool, the pixels that may be matched; near:
    (H, W) bool, where the sampled patches may be centred; patch: patch side (odd); reach:
    the largest offset searched, in pixels. Returns up to OFFSETS translations, most
    frequent first, in the pixels of ``image``.
    """
    import cv2

    scale = min(1.0, SEARCH_PATCH / patch)
    if scale < 1.0:
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        img = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        # a shrunk pixel is known only if all it covers is
        kn = cv2.resize(known.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0.999
        nr = cv2.resize(near.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
        p = SEARCH_PATCH
        reach = max(p, round(reach * scale))
    else:
        img, kn, nr, p = image, known, near, patch
    r = p // 2
    h, w = kn.shape
    whole = cv2.boxFilter(kn.astype(np.float32), -1, (p, p), normalize=False, borderType=cv2.BORDER_CONSTANT)
    centres = np.argwhere((whole > p * p - 0.5) & nr)
    centres = centres[(centres[:, 0] >= r) & (centres[:, 0] < h - r) & (centres[:, 1] >= r) & (centres[:, 1] < w - r)]
    if len(centres) == 0:
        return []
    if len(centres) > SAMPLES:
        centres = centres[rng.choice(len(centres), SAMPLES, replace=False)]
    # Repetition is matched on luma: the structure is there, and OpenCV matches one channel
    # 5 to 15 times faster than three (bench/RESULTS.md, issue 19).
    img = luma(torch.from_numpy(np.ascontiguousarray(img))).numpy()
    # Unknown pixels get a value no patch can match, so no match overlaps them.
    target = np.where(kn, img, np.float32(1e3)).astype(np.float32)
    votes: dict[tuple[int, int], int] = {}
    for cy, cx in centres:
        y0, y1 = max(0, cy - reach - r), min(h, cy + reach + r + 1)
        x0, x1 = max(0, cx - reach - r), min(w, cx + reach + r + 1)
        score = cv2.matchTemplate(target[y0:y1, x0:x1], img[cy - r:cy + r + 1, cx - r:cx + r + 1], cv2.TM_SQDIFF)
        oy, ox = cy - r - y0, cx - r - x0  # the patch's own position in score
        # A match overlapping the patch is the patch itself or its smooth surroundings, not
        # a repetition: such short offsets chain copies of one pixel through the band in dots.
        score[max(0, oy - p + 1):oy + p, max(0, ox - p + 1):ox + p] = np.inf
        by, bx = np.unravel_index(int(np.argmin(score)), score.shape)
        if np.isfinite(score[by, bx]):
            key = (int(by) - oy, int(bx) - ox)
            votes[key] = votes.get(key, 0) + 1
    best = sorted(votes.items(), key=lambda kv: (-kv[1], kv[0]))[:OFFSETS]
    return [(round(dy / scale), round(dx / scale)) for (dy, dx), _ in best]


def exemplar_fill(image: np.ndarray, fill: np.ndarray, known: np.ndarray, disp: np.ndarray,
                  edge: float, seed: int = 0) -> np.ndarray:
    """Fill ``fill`` from ``known`` by copying along the background's own offsets (module doc).

    image: (H, W, 3) float32, the colours (``fill`` pixels hold a fallback, the far-side fill);
    fill: (H, W) bool, the pixels to fill; known: (H, W) bool, the pixels that may be copied
    (the background: never the foreground the hole hides behind); disp: (H, W) float32
    disparity of every pixel, the target surface's for the ``fill`` pixels; edge: the
    disparity difference within which a source lies on the pixel's surface. Returns (H, W, 3)
    float32: ``image`` with the ``fill`` pixels replaced where an offset served them.
    """
    import cv2

    out = image.astype(np.float32).copy()
    if not fill.any() or not known.any():
        return out
    h, w = fill.shape
    patch = patch_size((h, w))
    ys, xs = np.nonzero(fill)
    depth_of_hole = cv2.distanceTransform((~known).astype(np.uint8), cv2.DIST_L2, 3)
    hole = int(np.ceil(depth_of_hole[fill].max()))
    reach = max(REACH * hole, 2 * patch, 24)
    m = reach + patch
    y0, y1 = max(0, ys.min() - m), min(h, ys.max() + m + 1)
    x0, x1 = max(0, xs.min() - m), min(w, xs.max() + m + 1)
    img, todo, have, d = out[y0:y1, x0:x1], fill[y0:y1, x0:x1], known[y0:y1, x0:x1], disp[y0:y1, x0:x1]
    H, W = todo.shape
    near_hole = cv2.dilate(todo.astype(np.uint8), np.ones((2 * (3 * hole + patch) + 1,) * 2, np.uint8)) > 0
    offsets = find_offsets(img, have, near_hole & have, patch, reach, np.random.default_rng(seed))
    if not offsets:
        return out
    off = np.asarray(offsets)  # (K, 2)
    # the neighbourhood compared: the middle third of a patch, at most WINDOW samples a side
    half = max(2, patch // 3)
    grid = np.unique(np.round(np.linspace(-half, half, min(2 * half + 1, WINDOW))).astype(np.int64))
    wy, wx = (g.ravel() for g in np.meshgrid(grid, grid, indexing="ij"))
    # Neighbourhoods are gathered by flat index from copies padded by ``half`` (padding
    # unknown), so no window needs clipping; only the (pixel, offset) pairs that may copy are
    # compared.
    Wp = W + 2 * half
    flat = np.pad(img, ((half, half), (half, half), (0, 0))).reshape(-1, 3)
    known_p = np.pad(have, half).reshape(-1)
    window = wy * Wp + wx  # (N,)
    # onion peel: one pass per ring of distance from the known pixels, nearest first
    level = depth_of_hole[y0:y1, x0:x1]  # the crop holds every fill pixel's nearest known one
    ty, tx = np.nonzero(todo)
    order = np.argsort(level[ty, tx], kind="stable")
    ty, tx = ty[order], tx[order]
    rings = np.ceil(level[ty, tx]).astype(np.int64)
    bounds = np.flatnonzero(np.diff(rings)) + 1
    for fy, fx in zip(np.split(ty, bounds), np.split(tx, bounds)):
        sy, sx = fy[:, None] + off[:, 0], fx[:, None] + off[:, 1]  # (F, K) sources
        inside = (sy >= 0) & (sy < H) & (sx >= 0) & (sx < W)
        sy, sx = np.clip(sy, 0, H - 1), np.clip(sx, 0, W - 1)
        pix, src = (fy + half) * Wp + fx + half, (sy + half) * Wp + sx + half  # (F,), (F, K)
        ok = inside & known_p[src] & (np.abs(d[sy, sx] - d[fy, fx][:, None]) <= edge)
        f, k = np.nonzero(ok)
        p_win, q_win = pix[f, None] + window, src[f, k, None] + window  # (M, N)
        both = known_p[p_win] & known_p[q_win]
        diff = ((flat[p_win] - flat[q_win]) ** 2).sum(-1) * both
        mismatch = diff.sum(-1) / np.maximum(both.sum(-1), 1)
        cost = np.full(ok.shape, np.inf)
        cost[f, k] = np.where(mismatch <= MAX_MISMATCH, mismatch, np.inf)
        best = np.argmin(cost, 1)
        served = np.isfinite(cost[np.arange(len(fy)), best])
        flat[pix[served]] = flat[src[served, best[served]]]
        # the ring is done: the unserved keep their fallback, and all are sources from now on
        known_p[pix] = True
    img[:] = flat.reshape(H + 2 * half, Wp, 3)[half:-half, half:-half]  # img is out's crop
    despeckle(img, todo)
    return out


def despeckle(img: np.ndarray, written: np.ndarray, passes: int = 2) -> None:
    """Give the isolated outliers (``outliers.py``) among the ``written`` pixels the colour of
    their median neighbour, in place.

    img: (H, W, 3) float32 in [0, 1]; written: (H, W) bool, the pixels the fill wrote. A copy
    can put a lone pixel of an edge into a smooth area: a speck in the back layer that shows
    as one once the foreground uncovers it (bench/RESULTS.md, issue 19).
    """
    ys, xs = np.nonzero(written[1:-1, 1:-1])
    ys, xs = ys + 1, xs + 1  # the interior pixels written: only they can be judged
    dy, dx = (a.ravel() for a in np.indices((3, 3)) - 1)
    dy, dx = np.delete(dy, 4), np.delete(dx, 4)  # the 8 neighbours
    for _ in range(passes):
        y = luma(torch.from_numpy(img[ys, xs]))
        nb = luma(torch.from_numpy(img[ys[:, None] + dy, xs[:, None] + dx]))  # (N, 8)
        bad = isolated_outliers(y, nb).numpy()
        if not bad.any():
            return
        k = np.argsort(nb.numpy()[bad], 1, kind="stable")[:, 3]  # the lower median
        by, bx = ys[bad], xs[bad]
        img[by, bx] = img[by + dy[k], bx + dx[k]]
