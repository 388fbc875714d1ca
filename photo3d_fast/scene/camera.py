"""From pixels to a 3D scene: intrinsics, and disparity to z-depth.

Camera: OpenCV pinhole, x right, y down, z forward, pixel (i, j) has its center at
(i + 0.5, j + 0.5) in the coordinates where K is defined.
"""

from __future__ import annotations

import math

import numpy as np

from ..config import DEFAULT_FOV_DEG, SceneConfig
from ..errors import Photo3DError


def intrinsics_from_fov(width: int, height: int, fov_deg: float) -> np.ndarray:
    """K (3, 3) float64 of a centered pinhole with square pixels.

    fov_deg is the field of view across the longer side of the (width x height) image.
    """
    f = 0.5 * max(width, height) / math.tan(math.radians(fov_deg) * 0.5)
    return np.array([[f, 0.0, width * 0.5], [0.0, f, height * 0.5], [0.0, 0.0, 1.0]])


def _rescaled(K: np.ndarray, s: float, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """K scaled by s about the image center, the center moved from src to dst's."""
    (w0, h0), (w1, h1) = src_size, dst_size
    K2 = np.array(K, np.float64, copy=True)
    K2[0, 0] *= s
    K2[1, 1] *= s
    K2[0, 2] = w1 * 0.5 + (K[0, 2] - w0 * 0.5) * s
    K2[1, 2] = h1 * 0.5 + (K[1, 2] - h0 * 0.5) * s
    return K2


def scale_intrinsics(K: np.ndarray, src_size: tuple[int, int], dst_size: tuple[int, int]) -> np.ndarray:
    """K of an image resized from src_size=(W, H) to dst_size=(W', H') and center-cropped.

    The image is scaled to cover the new size (one uniform scale, no stretching), then
    the overflow is cropped equally from both sides, as a video crop would.
    """
    s = max(dst_size[0] / src_size[0], dst_size[1] / src_size[1])
    return _rescaled(K, s, src_size, dst_size)


def zoom_intrinsics(K: np.ndarray, zoom: float, size: tuple[int, int]) -> np.ndarray:
    """K with the focal length multiplied by ``zoom`` about the center of a (W, H) image."""
    return _rescaled(K, zoom, size, size)


def scene_intrinsics(width: int, height: int, config: SceneConfig, exif_fov: float | None) -> tuple[np.ndarray, str]:
    """K for the photo and a short note of where its field of view came from."""
    if config.fov is not None:
        return intrinsics_from_fov(width, height, config.fov), f"--fov {config.fov:g} deg"
    if exif_fov is not None:
        return intrinsics_from_fov(width, height, exif_fov), f"EXIF focal length ({exif_fov:.1f} deg)"
    return intrinsics_from_fov(width, height, DEFAULT_FOV_DEG), f"default {DEFAULT_FOV_DEG:g} deg"


def normalize_disparity(disparity: np.ndarray) -> np.ndarray:
    """Affine-normalise a relative disparity map to [0, 1] (1 = nearest), robustly.

    The 0.5th and 99.5th percentiles map to 0 and 1 so that a few outliers (specular
    highlights in a model's output, a stray pixel in a user's map) do not squash the rest.
    A constant map becomes all 0.5: a flat scene, which renders as a plane.
    """
    d = np.asarray(disparity, np.float32)
    lo, hi = np.percentile(d, [0.5, 99.5])
    if not hi - lo > 1e-6 * max(1.0, abs(hi)):
        return np.full_like(d, 0.5)
    return np.clip((d - lo) / (hi - lo), 0.0, 1.0)


def disparity_to_depth(disparity: np.ndarray, near: float, far: float) -> np.ndarray:
    """z-depth (H, W) float32 from relative disparity (H, W) in [0, 1].

    Linear in inverse depth: 1 maps to ``near``, 0 to ``far``. Inverse depth is what the
    models predict up to scale and shift, and what parallax is proportional to.
    """
    d = np.clip(np.asarray(disparity, np.float32), 0.0, 1.0)
    inv = d * (1.0 / near - 1.0 / far) + 1.0 / far
    return (1.0 / inv).astype(np.float32)


def validate_depth(depth: np.ndarray, image_shape: tuple[int, int]) -> np.ndarray:
    """Check a z-depth map given through the API: (H, W), finite, positive."""
    z = np.asarray(depth, np.float32)
    if z.shape != tuple(image_shape):
        raise Photo3DError(f"depth is {z.shape} but the image is {tuple(image_shape)}; they must match")
    if not np.isfinite(z).all() or not (z > 0).all():
        raise Photo3DError("depth must be finite and positive everywhere (z-depth in scene units)")
    return z
