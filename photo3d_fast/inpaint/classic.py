"""Back-layer colour without weights: fill what the foreground hides from the background side.

A back layer's band lies behind a foreground edge. Its colour must continue the
*background* next to it (its gradients and lines), never the foreground's colour, and never
draw a pattern. The fill here is Telea's fast-marching inpainting (A. Telea, "An Image
Inpainting Technique Based on the Fast Marching Method", JGT 2004; OpenCV's
``cv2.inpaint``): pixels are filled in order of their distance from the known boundary,
each from a gradient-extrapolated, distance- and direction-weighted average of the known
pixels around it, so smooth shading and straight edges that meet the hole continue into it.

Fast marching fills from every side of the unknown region. So that only the background
feeds the band, the foreground around it is made unknown too: every pixel within the
band's reach that lies in front of the nearest background by more than the edge threshold.
The marching then meets the band from the background side first; the foreground's own
boundary is farther away than the band is wide.
The masking of the foreground is ``inpaint.background_sources``; this module is the fill.
"""

from __future__ import annotations

import numpy as np

#: Telea's neighbourhood radius in pixels.
TELEA_RADIUS = 4


def telea(color: np.ndarray, unknown: np.ndarray) -> np.ndarray:
    """Telea's fill of ``unknown`` pixels of an image (module doc).

    color: (H, W, 3) uint8 sRGB; unknown: (H, W) bool. Returns (H, W, 3) uint8, equal to
    ``color`` where known. 8 bits per channel is what the photo had.
    """
    import cv2

    return cv2.inpaint(np.ascontiguousarray(color), unknown.astype(np.uint8), TELEA_RADIUS, cv2.INPAINT_TELEA)
