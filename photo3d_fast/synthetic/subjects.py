"""Ray-cast scenes with one subject and its exact soft mask, for cutouts (effects/matte.py):
the subject's coverage of each pixel from a supersampled cast, and the scores a mask is
measured by (IoU, boundary F-score).
"""

from __future__ import annotations

import cv2
import numpy as np

from .generate import reference_camera
from .primitives import Box, Cylinder, Plane, Rect, Sphere, random_texture
from .raycast import Scene

SUBJECT_KINDS = ("sphere", "box", "plate")


def subject_scene(seed: int) -> tuple[Scene, int]:
    """(scene, object id of its subject): a textured back wall at z 6.5-8, the subject
    near the centre at z ~2.4-2.8 (a sphere, a turned box or a turned plate, by seed % 3)
    and a smaller distractor sphere at z 5, off to one side, which may overlap the subject
    in the image (it is salient, but it is not the subject)."""
    rng = np.random.default_rng([seed, 14])
    prims = [Plane((0.0, 0.0, -1.0), -float(rng.uniform(6.5, 8.0)), random_texture(rng, (0.3, 0.9)))]
    kind = SUBJECT_KINDS[seed % 3]
    if kind == "sphere":
        prims.append(Sphere((float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.2, 0.2)), 2.6),
                            float(rng.uniform(0.6, 0.9)), random_texture(rng)))
    elif kind == "box":
        prims.append(Box((float(rng.uniform(-0.3, 0.3)), 0.0, 2.8), (0.5, 0.7, 0.4), float(rng.uniform(-0.7, 0.7)),
                         random_texture(rng)))
    else:
        prims.append(Rect((0.0, 0.0, 2.4), (0.9, 0.0, 0.44), (0.0, -1.0, 0.0), (0.55, 0.45), random_texture(rng)))
    prims.append(Sphere((float(rng.choice([-1.8, 1.8])), float(rng.uniform(-0.5, 0.5)), 5.0), 0.4, random_texture(rng)))
    return Scene(prims, kind=f"subject-{kind}", seed=seed), 1


def hairy_scene(seed: int, hairs: int = 9) -> tuple[Scene, tuple[int, ...]]:
    """(scene, object ids of its subject): a sphere at z 2.6 with ``hairs`` thin vertical
    poles standing on its top (radius 0.004-0.012: 0.3-1 px wide at 320 px, so most of
    their pixels are fractional, like hair against the sky), in front of a textured wall."""
    rng = np.random.default_rng([seed, 15])
    z_wall = float(rng.uniform(6.5, 8.0))
    prims = [Plane((0.0, 0.0, -1.0), -z_wall, random_texture(rng, (0.3, 0.9))),
             Sphere((0.0, 0.35, 2.6), 0.6, random_texture(rng))]
    hair_texture = random_texture(rng)
    for x in np.linspace(-0.4, 0.4, hairs):
        # From inside the sphere to 0.25-0.5 above its surface.
        top = 0.35 - np.sqrt(0.36 - x * x) - float(rng.uniform(0.25, 0.5))
        prims.append(Cylinder(float(x), 2.6, float(top), 0.35, float(rng.uniform(0.004, 0.012)), hair_texture))
    return Scene(prims, kind="subject-hairy", seed=seed), tuple(range(1, len(prims)))


def render_subject(scene: Scene, subject: int | tuple[int, ...], size: tuple[int, int] = (320, 240),
                   supersample: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A supersampled view of the reference camera: (rgb (H, W, 3) uint8, disparity (H, W)
    float32 = mean of 1/z over each pixel's samples, alpha (H, W) float32 = the subject's
    (one object id or several) coverage of each pixel, K (3, 3) of the (W, H) = size image). ``supersample`` ^ 2
    rays per pixel, box-filtered: edges are anti-aliased as a camera's are."""
    w, h = size
    s = supersample
    rgb, depth, oid = scene.render(np.eye(4), reference_camera((w * s, h * s)), (w * s, h * s))

    def down(x: np.ndarray) -> np.ndarray:
        return x.reshape(h, s, w, s, *x.shape[2:]).mean(axis=(1, 3))

    rgb_s = np.clip(down(rgb.astype(np.float32)) + 0.5, 0, 255).astype(np.uint8)
    alpha = down(np.isin(oid, subject).astype(np.float32)).astype(np.float32)
    disparity = down((1.0 / depth).astype(np.float32)).astype(np.float32)
    return rgb_s, disparity, alpha, reference_camera((w, h))


def mask_iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union of two (H, W) bool masks (1 when both are empty)."""
    union = int((pred | truth).sum())
    return int((pred & truth).sum()) / union if union else 1.0


def _boundary(mask: np.ndarray) -> np.ndarray:
    m = mask.astype(np.uint8)
    return (m - cv2.erode(m, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)) > 0


def boundary_f(pred: np.ndarray, truth: np.ndarray, tolerance: float = 2.0) -> float:
    """Boundary F-score of two (H, W) bool masks (Perazzi et al., DAVIS 2016): precision =
    share of the prediction's boundary pixels within ``tolerance`` px of the truth's
    boundary, recall the converse, F their harmonic mean."""
    bp, bt = _boundary(pred), _boundary(truth)
    if not bp.any() or not bt.any():
        return float(bp.any() == bt.any())
    to_truth = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, 3)
    to_pred = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    precision = float((to_truth[bp] <= tolerance).mean())
    recall = float((to_pred[bt] <= tolerance).mean())
    return 2 * precision * recall / max(precision + recall, 1e-12)
