"""The arguments every command on one photo shares: the photo (or ``--sample``, the bundled
one) and ``-o``, declared and read in one place for ``cli`` and the subcommands' modules."""

from __future__ import annotations

import argparse
from pathlib import Path

from .errors import Photo3DError


def add_photo_arguments(parser: argparse.ArgumentParser, output_help: str) -> None:
    """The photo (or --sample) and -o of a command on one photo (``image_argument`` reads them)."""
    parser.add_argument("image", nargs="?", type=Path, help="the photo (JPEG, PNG, WebP, TIFF...)")
    parser.add_argument("--sample", action="store_true", help="use the photo bundled with photo3d_fast")
    parser.add_argument("-o", "--output", type=Path, help=output_help)


def image_argument(args: argparse.Namespace) -> Path | None:
    """The photo of parsed arguments: a path, or None for --sample (the bundled photo);
    Photo3DError when both or neither are given."""
    if args.sample and args.image is not None:
        raise Photo3DError("give either an image or --sample, not both")
    if not args.sample and args.image is None:
        raise Photo3DError(f"no image given; usage: photo3d {args.command} photo.jpg (or --sample)")
    return args.image
