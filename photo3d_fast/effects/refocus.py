"""Refocus a still photo: thin-lens depth of field from its depth map (op ``dof``).

``refocus(image_path, out_path, **options)`` is ``photo3d refocus``; ``refocus_array`` is
the same on arrays, for other effects (background blur of a cutout). The lens: an
f-number N and a 35 mm-equivalent focal length f (mm; default: the one of the photo's
field of view, 36 mm across its longer side) give the entrance pupil D = f / N; scene
units are read as metres, so D = f / N / 1000 scene units and the CoC diameter in pixels
is fx * D * |1/focus - 1/z| (``ops.dof``). The blur runs in linear light (sRGB decoded,
blurred, encoded), as light adds up on a sensor: bright bokeh stays bright.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..config import MAX_DEPTH, MIN_DEPTH, PHOTO_OPTIONS, ClipOptions, check_number
from ..device import resolve_device
from ..errors import Photo3DError, notice
from ..io import check_image_output, load_image, write_image
from ..ops.backends import select
from ..ops.dof import BOKEH_SHAPES, DEFAULT_MAX_COC
from ..pipeline import engine_options, scene_depth
from ..render.effects import aperture_px, equivalent_focal_mm, linear_to_srgb, srgb_to_linear
from ..scene.camera import scene_intrinsics

#: The largest CoC diameter of a still, per pixel of its longer side (60 px at 1500 px): the
#: gather is bounded for speed; a wider blur is clipped to it.
MAX_COC_SHARE = 0.04


#: Longer side (pixels) above which a still is blurred at this size and upsampled.
WORK_SIDE = 1024
#: --focus auto: this percentile of the depths of the central third.
AUTO_PERCENTILE = 10.0


def check_lens(f_number: float, focal_length_mm: float | None, bokeh: str) -> None:
    """Photo3DError for an f-number, focal length or bokeh shape that is not one."""
    check_number("--f-number", f_number, 0, 1000, above=True, unit=" (e.g. 1.8)")
    if focal_length_mm is not None:
        check_number("--focal-length", focal_length_mm, 1, 5000, unit=" mm (35 mm equivalent)")
    if bokeh not in BOKEH_SHAPES:
        raise Photo3DError(f"--bokeh {bokeh!r}: choose one of {', '.join(BOKEH_SHAPES)}")


def refocus_array(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, focus_depth: float, f_number: float,
                  focal_length_mm: float | None = None, bokeh: str = "disc", kernels: str = "auto",
                  max_coc: float | None = None, device: str = "auto") -> np.ndarray:
    """Thin-lens depth of field of one image.

    rgb: (H, W, 3) uint8 sRGB; depth: (H, W) z-depth, scene units (> 0; read as metres);
    K: (3, 3) intrinsics of rgb, pixels; focus_depth: z-depth of the sharp plane, scene
    units; f_number: > 0; focal_length_mm: 35 mm equivalent (None: K's); bokeh: "disc" |
    "hexagon"; kernels: the op ``dof``'s implementation (``ops.backends.select``);
    max_coc: largest CoC diameter, pixels of rgb (None: MAX_COC_SHARE of the longer side,
    at least ops.dof.DEFAULT_MAX_COC). Returns (H, W, 3) uint8 sRGB.

    An image whose longer side is over WORK_SIDE is blurred at that size (the gather's
    cost grows with pixels times CoC area) and the result upsampled; where the lens keeps
    the photo sharp (CoC under ~1 working pixel) the photo's own pixels are kept, blended
    by the CoC, so the focus plane keeps its full resolution.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise Photo3DError(f"image must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    h, w = rgb.shape[:2]
    depth = np.asarray(depth, np.float32)
    if depth.shape != (h, w):
        raise Photo3DError(f"depth must be (H, W) = {(h, w)}, got {depth.shape}")
    check_lens(f_number, focal_length_mm, bokeh)
    check_number("focus depth", focus_depth, MIN_DEPTH, MAX_DEPTH, unit=" (scene units)")
    dev = resolve_device(device)
    _, impl = select("dof", kernels, dev)
    if max_coc is None:
        max_coc = max(DEFAULT_MAX_COC, MAX_COC_SHARE * max(w, h))
    aperture = aperture_px(float(K[0, 0]), (w, h), f_number, focal_length_mm)
    color = srgb_to_linear(torch.tensor(rgb, device=dev).float()[None] / 255.0)  # a copy: rgb may be read-only
    z = torch.tensor(np.maximum(depth, MIN_DEPTH), device=dev)[None]
    scale = min(1.0, WORK_SIDE / max(w, h))
    if scale == 1.0:
        out = impl.depth_of_field(color, z, float(focus_depth), aperture, max_coc=float(max_coc), bokeh=bokeh)[0]
    else:
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
        small = F.interpolate(color.permute(0, 3, 1, 2), size=size, mode="area").permute(0, 2, 3, 1)
        # area-averaged disparity: a mixed pixel at an edge gets a depth between its sides'
        z_small = 1.0 / F.interpolate(1.0 / z[:, None], size=size, mode="area")[:, 0]
        blurred = impl.depth_of_field(small.contiguous(), z_small.contiguous(), float(focus_depth), aperture * scale,
                                      max_coc=float(max_coc) * scale, bokeh=bokeh)
        up = F.interpolate(blurred.permute(0, 3, 1, 2), size=(h, w), mode="bilinear", align_corners=False)
        coc_small = scale * aperture * (1.0 / float(focus_depth) - 1.0 / z[0]).abs()  # working pixels
        keep = (1.5 - coc_small).clamp(0.0, 1.0)[..., None]
        out = keep * color[0] + (1.0 - keep) * up[0].permute(1, 2, 0)
    return (linear_to_srgb(out) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


def parse_focus(text: str | float | tuple) -> str | float | tuple[float, float]:
    """--focus of refocus: "auto", "X,Y" (pixel coordinates) or a z-depth (scene units)."""
    if isinstance(text, tuple):
        return text
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip().lower()
    if s == "auto":
        return "auto"
    m = re.fullmatch(r"\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*", s)
    try:
        if m:
            return float(m[1]), float(m[2])
        return float(s)
    except ValueError:
        pass
    raise Photo3DError(f"--focus {text!r}: give auto, X,Y (pixel coordinates) or a depth (scene units)")


def focus_depth_of(focus: str | float | tuple[float, float], depth: np.ndarray) -> float:
    """The z-depth (scene units) to focus on: auto = the 10th percentile of the depths of the
    image's central third, the nearest content around the centre, where a subject usually
    is (even one that fills a tenth of it); X,Y = the depth at that pixel (a 5x5 median, so
    that an edge pixel does not pick the wrong side); a number = that depth."""
    h, w = depth.shape
    if focus == "auto":
        return float(np.percentile(depth[h // 3 : max(h // 3 + 1, 2 * h // 3), w // 3 : max(w // 3 + 1, 2 * w // 3)],
                                   AUTO_PERCENTILE))
    if isinstance(focus, tuple):
        x, y = focus
        if not (math.isfinite(x) and math.isfinite(y) and 0 <= x < w and 0 <= y < h):
            raise Photo3DError(f"--focus {x:g},{y:g} is outside the {w}x{h} image; give 0 <= X < {w}, 0 <= Y < {h}")
        xi, yi = int(x), int(y)
        return float(np.median(depth[max(0, yi - 2) : yi + 3, max(0, xi - 2) : xi + 3]))
    check_number("--focus", focus, MIN_DEPTH, MAX_DEPTH, unit=" (a depth, scene units)")
    return float(focus)


#: The clip options (flat names) a refocus takes: the photo's depth and camera, and the
#: kernels of the op ``dof``.
REFOCUS_OPTIONS = (*PHOTO_OPTIONS, "kernels")


def refocus(image_path: str | Path, out_path: str | Path, *, focus: str | float | tuple = "auto",
            f_number: float = 2.0, focal_length_mm: float | None = None, bokeh: str = "disc",
            quiet: bool = False, **options: Any) -> Path:
    """Refocus a photo and write it (PNG/JPEG/WebP by ``out_path``'s extension), atomically.

    focus: "auto", (x, y) pixel coordinates or "X,Y", or a z-depth (scene units: the photo's
    depth spans near..far); f_number, focal_length_mm (35 mm equivalent; None: from the
    field of view), bokeh: the lens (``refocus_array``); options: ``REFOCUS_OPTIONS`` by their
    flat names, as ``render_clip`` takes them (depth, depth_kind, weights, fov, near, far,
    device, runtime, precision, offline, kernels). Returns the output path.
    """
    opts = ClipOptions.from_flat_only(options, REFOCUS_OPTIONS, "refocus")
    check_lens(f_number, focal_length_mm, bokeh)
    focus = parse_focus(focus)
    out_path = check_image_output(out_path, [image_path], "refocus output", (".png", ".jpg", ".jpeg", ".webp"))
    scene, device = opts.scene, opts.render.device
    photo = load_image(image_path)
    h, w = photo.rgb.shape[:2]
    if isinstance(focus, tuple):  # refuse before the depth stage
        focus_depth_of(focus, np.ones((h, w), np.float32))
    K, fov_note = scene_intrinsics(w, h, scene, photo.exif_fov)
    engine = engine_options(opts.engine, opts.render)
    z, depth_note = scene_depth(photo.rgb, opts.depth, scene, engine, quiet)
    z_focus = focus_depth_of(focus, z)
    out = refocus_array(photo.rgb, z, K, z_focus, f_number, focal_length_mm, bokeh, opts.render.kernels,
                        device=device)
    write_image(out_path, out)
    notice(f"wrote {out_path} (focus at z={z_focus:.4g}, f/{f_number:g}, "
           f"{focal_length_mm or equivalent_focal_mm(float(K[0, 0]), (w, h)):.0f} mm equivalent; depth: {depth_note}; "
           f"fov: {fov_note})", quiet)
    return out_path


def add_parser(sub, add_clip_options: Callable[..., None]) -> None:
    """``photo3d refocus``: its parser and handler, registered by ``cli``, whose
    ``add_clip_options`` adds the photo's options (``REFOCUS_OPTIONS``)."""
    p = sub.add_parser(
        "refocus",
        help="refocus a photo: thin-lens depth of field from its depth",
        description="Refocus a photo as a thin lens would: sharp at the focus depth, blurred before and behind "
                    "it by the circle of confusion of the f-number (occlusion-aware, no halos). Scene units are "
                    "read as metres (the photo's depth spans --near..--far).",
    )
    p.add_argument("image", type=Path, help="the photo")
    p.add_argument("-o", "--output", type=Path, required=True, help="output .png, .jpg or .webp")
    p.add_argument("--focus", default="auto", metavar="auto|X,Y|DEPTH",
                   help="what is sharp: auto (the centre's depth), X,Y (a pixel), or a depth in scene units "
                        "(default auto)")
    p.add_argument("--f-number", type=float, default=2.0, help="the lens's f-number; smaller blurs more (default 2)")
    p.add_argument("--focal-length", type=float, metavar="MM",
                   help="35 mm-equivalent focal length (default: from the field of view)")
    p.add_argument("--bokeh", choices=BOKEH_SHAPES, default="disc", help="aperture shape (default disc)")
    add_clip_options(p, only=REFOCUS_OPTIONS)
    p.add_argument("-q", "--quiet", action="store_true", help="no notes")
    p.set_defaults(handler=_run)


def _run(args) -> None:
    refocus(args.image, args.output, focus=args.focus, f_number=args.f_number, focal_length_mm=args.focal_length,
            bokeh=args.bokeh, quiet=args.quiet, **{name: getattr(args, name) for name in REFOCUS_OPTIONS})
