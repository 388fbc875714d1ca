"""``photo3d matte`` and ``photo3d composite``: the flags and handlers over
``effects.matte``'s ``matte`` and ``composite``."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from ..config import DEFAULT_FAR, DEFAULT_NEAR, PHOTO_OPTIONS
from ..photo_args import add_photo_arguments, image_argument
from ..pipeline import SAMPLE_IMAGE
from .matte import EXTRA, MATTE_MODELS, composite, matte


def _subject_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="auto", choices=MATTE_MODELS,
                   help="how the subject is found: depth (the nearest coherent object), u2netp (salient-object "
                        f"network, needs photo3d_fast[{EXTRA}]), auto (both fused when installed, else depth) "
                        "(default auto)")
    p.add_argument("--point", metavar="X,Y",
                   help="a pixel on the subject (default: the nearest object near the centre)")
    p.add_argument("--mask", type=Path, metavar="MASK.png",
                   help="the subject as a mask of the photo's size (white or opaque = subject); its edge is "
                        "still matted")


def _common(args: argparse.Namespace) -> dict:
    return dict(model=args.model, point=args.point, mask=args.mask, quiet=args.quiet, image_path=image_argument(args),
                **{name: getattr(args, name) for name in PHOTO_OPTIONS})


def _matte_cmd(args: argparse.Namespace) -> None:
    kw = _common(args)
    image = kw.pop("image_path")

    out = args.output or Path(f"{(image or SAMPLE_IMAGE).stem}_cutout.png")
    matte(image, out, mask_out=args.mask_out, **kw)


def _composite_cmd(args: argparse.Namespace) -> None:
    kw = _common(args)
    image = kw.pop("image_path")

    out = args.output or Path(f"{(image or SAMPLE_IMAGE).stem}_composite.png")
    composite(image, out, args.background, background_depth=args.background_depth, f_number=args.f_number, **kw)


def add_parsers(sub, add_clip_options: Callable[..., None]) -> None:
    """``photo3d matte`` and ``photo3d composite``; ``add_clip_options`` (``cli``'s) adds the
    photo's options (``config.PHOTO_OPTIONS``)."""
    m = sub.add_parser("matte", help="cut the photo's subject out as an RGBA PNG",
                       description="Cut the photo's subject out: an RGBA PNG with a soft, edge-accurate alpha "
                                   "and the background's colour removed from the edge.")
    add_photo_arguments(m, "output .png (default: IMAGE_cutout.png, here)")
    _subject_flags(m)
    m.add_argument("--mask-out", type=Path, metavar="MASK.png", help="also write the alpha alone (8-bit PNG)")
    m.add_argument("-q", "--quiet", action="store_true", help="no notes")
    add_clip_options(m, only=PHOTO_OPTIONS)
    m.set_defaults(handler=_matte_cmd)

    c = sub.add_parser("composite", help="put the photo's subject over a new background",
                       description="Put the photo's subject over a new background, which is scaled to cover the "
                                   "photo and blurred for the subject's focus (depth of field).")
    add_photo_arguments(c, "output .png or .jpg (default: IMAGE_composite.png, here)")
    _subject_flags(c)
    c.add_argument("--background", type=Path, required=True, metavar="IMAGE", help="the new background")
    c.add_argument("--background-depth", type=float, metavar="Z",
                   help="the background as a plane at z-depth Z, scene units (the photo's nearest content is at "
                        f"{DEFAULT_NEAR:g}, its farthest at {DEFAULT_FAR:g}) (default: its own depth estimate, "
                        "behind the subject)")
    c.add_argument("--f-number", type=float, default=2.8, metavar="N",
                   help="aperture of the background's blur, lower = more blur (default 2.8)")
    c.add_argument("-q", "--quiet", action="store_true", help="no notes")
    add_clip_options(c, only=PHOTO_OPTIONS)
    c.set_defaults(handler=_composite_cmd)
