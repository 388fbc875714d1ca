"""The ``photo3d`` command: a thin layer over the Python API.

A user error (Photo3DError) is one line on stderr and exit status 2; Ctrl-C exits 130
and SIGTERM 143, both after the writers have removed their partial files; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .batch.cli import add_batch_parser
from .benchmark.cli import add_bench_parser
from .clip import render_clip
from .config import (
    BOKEH_CHOICES,
    CODEC_CHOICES,
    DEFAULT_FAR,
    DEFAULT_FOV_DEG,
    DEFAULT_NEAR,
    DEPTH_KINDS,
    ENCODER_CHOICES,
    INPAINT_CHOICES,
    KERNEL_CHOICES,
    MAX_OUTPUT_SIDE,
    OPTIONS,
    STEREO_CHOICES,
    UPSCALE_CHOICES,
    UPSCALE_MODES,
    ClipOptions,
    DepthConfig,
    EffectsConfig,
    EncodeConfig,
    EngineConfig,
    FOG_COLORS,
    PathConfig,
    RenderConfig,
    SceneConfig,
    parse_size,
)
from .engines.cli import add_engine_options, add_engines_parser
from .effects.matte_cli import add_parsers as add_matte_parsers
from .effects.refocus import add_parser as add_refocus_parser
from .errors import Photo3DError, notice
from .export import add_export_parser
from .photo_args import add_photo_arguments, image_argument
from .pipeline import SAMPLE_IMAGE, write_depth
from .stereo_still import render_stereo, still_options
from .preview import add_parser as add_preview_parser
from .scene.paths import ALIASES, PRESETS

DESCRIPTION = """\
Turn one photo into a 3D parallax clip.

photo3d reads depth out of the photo, builds a layered depth image whose back layer is
inpainted where the foreground hid it, and renders a camera moving through that scene
into an H.264 .mp4. The same scene makes stereo images and VR180 (stereo), a 3D file for
Blender or a browser (export), and edits of the photo by depth (refocus, matte, composite).

Depth: --depth auto uses the best learned model whose weights are on this machine
(Depth Anything V2 large/base/small, MiDaS DPT-Large: `photo3d engines list`, fetched
once with `photo3d engines fetch MODEL`), else an embedded cue-based estimator (vertical
position, defocus, haze, edge-aware smoothing) that needs no weights and no network. A
depth map of your own can be given with --depth FILE. `photo3d doctor` says what this
machine can run.
"""

RENDER_EXAMPLES = f"""\
examples:
  photo3d render photo.jpg -o clip.mp4
  photo3d render photo.jpg -o clip.mp4 --path circle --amount 1.5 --duration 4
  photo3d render photo.jpg -o clip.mp4 --depth photo_depth.png --size 1280x720
  photo3d render --sample -o sample.mp4           # the bundled photo, no input needed

path presets: {", ".join(PRESETS)} (aliases: {", ".join(f"{a}={p}" for a, p in ALIASES.items())}),
or a .json keyframe file (format: photo3d_fast/paths.py). Every preset starts at the
photo's own view; swing, circle, dolly and vertigo loop seamlessly.

scene units: the nearest content sits at --near (default {DEFAULT_NEAR:g}) and the farthest
at --far (default {DEFAULT_FAR:g}); --amount 1 moves the camera by a few percent of --near.
"""


def _size(text: str) -> tuple[int, int]:
    """``--size``: ``config.parse_size``, a bad value reported as argparse reports one."""
    try:
        return parse_size(text)
    except Photo3DError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _add_encoder_flags(out) -> None:
    """The encoder's flags (clips only) into the help group ``out``."""
    out.add_argument("--encoder", choices=ENCODER_CHOICES,
                     help="auto (default): NVENC via PyNvVideoCodec if a session opens, else ffmpeg's "
                          "h264/hevc/av1_nvenc if it encodes a test frame, else the CPU encoder (x264 "
                          "for h264); says on stderr what it chose and why. nvenc needs "
                          "photo3d_fast[nvenc] and a GPU with NVENC (not A100/H100/H200)")
    out.add_argument("--codec", choices=CODEC_CHOICES,
                     help="auto (default): h264 for .mp4/.mov/.mkv, av1 for .webm (vp9 without "
                          "SVT-AV1); the output extension picks the container, .gif/.webp make previews")
    out.add_argument("--crf", "--quality", dest="crf", type=int,
                     help="quality, lower is better: crf of x264/x265/SVT-AV1/VP9, constant QP/CQ of "
                          "NVENC (default per encoder: x264 18, x265 20, SVT-AV1 30, VP9 31, NVENC 21)")
    out.add_argument("--bitrate", metavar="RATE",
                     help="target bitrate such as 8M or 2500k instead of constant quality")
    out.add_argument("--pix-fmt",
                     help=f"output pixel format (default {EncodeConfig.pix_fmt}; NVENC: yuv420p only)")
    out.add_argument("--encoder-preset",
                     help="speed preset, x264 names ultrafast..veryslow, mapped for SVT-AV1, VP9 "
                          f"and NVENC (which also takes p1..p7) (default {EncodeConfig.encoder_preset})")


class _Only:
    """An argument group that adds only the flags whose destination is in ``names``."""

    def __init__(self, group, names: tuple[str, ...]) -> None:
        self.group, self.names = group, names

    def add_argument(self, *flags: str, **kwargs) -> None:
        if (kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")) in self.names:
            self.group.add_argument(*flags, **kwargs)


#: The clip options of a stereo still (``photo3d stereo``): all but the motion's (its one frame
#: is the photo's own view; --focus stays), the PNG frames' and the encoder's.
STILL_OPTIONS = tuple(name for name in OPTIONS if name not in (
    "path", "duration", "fps", "amount", "frames", "encoder", "codec", "crf", "bitrate", "pix_fmt", "encoder_preset"))


def add_clip_options(parser: argparse.ArgumentParser, title: str | None = None, frames: bool = True,
                     only: tuple[str, ...] | None = None) -> None:
    """The options of one clip as flags of ``parser``: render's, offered by batch too.

    Every flag defaults to None, "not given": ``ClipOptions.from_flat`` then takes the
    dataclass's default, so defaults live only in ``config``, and a batch flag not given
    leaves a manifest row's value alone. title: one help group for all (batch) instead of
    render's groups; frames: offer ``--frames DIR`` (one clip's PNG frames); only: just these
    options (flat names: ``STILL_OPTIONS`` of ``photo3d stereo``, the photo's options of
    export, refocus, matte).
    """
    one = parser.add_argument_group(title) if title else None

    def group(name: str):
        g = one or parser.add_argument_group(name)
        return g if only is None else _Only(g, only)

    motion = group("motion")
    motion.add_argument("--path", metavar="PRESET|FILE.json", help=f"camera path (default {PathConfig.preset})")
    motion.add_argument("--duration", type=float, help=f"seconds (default {PathConfig.duration:g})")
    motion.add_argument("--fps", type=float, help=f"frames per second (default {PathConfig.fps:g})")
    motion.add_argument("--amount", type=float,
                        help=f"parallax strength; 1 shifts near against far by ~3%% of the width (default {PathConfig.amount:g})")
    motion.add_argument("--focus", type=float, help="depth that stays still (default: the median-disparity depth)")
    scene = group("scene")
    scene.add_argument("--depth", metavar="auto|cues|MODEL|FILE",
                       help="depth source: auto (best learned model with weights here, else cues), cues "
                            "(embedded), a model (depth-anything-v2-small/-base/-large, midas-dpt-large; "
                            f"weights downloaded once), or a depth map (8/16-bit PNG or TIFF, .npy) (default {DepthConfig.source})")
    scene.add_argument("--weights", metavar="FILE", help="weights of the --depth model (default: the cache, else download)")
    scene.add_argument("--depth-kind", choices=DEPTH_KINDS,
                       help="how to read a depth-map file: disparity (white = near, any scale) or "
                            f"depth (z-depth, larger = farther) (default {DepthConfig.kind})")
    scene.add_argument("--fov", type=float,
                       help=f"field of view across the longer side, degrees (default: EXIF focal length, else {DEFAULT_FOV_DEG:g})")
    scene.add_argument("--near", type=float, help=f"depth of the nearest content (default {SceneConfig.near:g})")
    scene.add_argument("--far", type=float, help=f"depth of the farthest content (default {SceneConfig.far:g})")
    out = group("output")
    out.add_argument("--size", type=_size, metavar="WxH", help="output size (default: the photo's); other aspect ratios are center-cropped")
    if frames:
        out.add_argument("--frames", type=Path, metavar="DIR", help="also write every frame as PNG into DIR")
    out.add_argument("--no-overscan", dest="overscan", action="store_false",
                     help="do not zoom in to keep the photo's border out of frame (default: zoom up to 25%%)")
    out.add_argument("--stereo", choices=STEREO_CHOICES,
                     help="both eyes in each frame: sbs (left|right, each eye full size: width doubled), half-sbs "
                          "(each eye squeezed to half width, size kept), tb / half-tb (left over right, likewise), "
                          "anaglyph (Dubois red-cyan, mixed in linear light); the doubled side of sbs/tb may be at "
                          f"most {MAX_OUTPUT_SIDE} pixels (NVENC: h264 4096, hevc/av1 8192; auto then encodes on the CPU) "
                          f"(default {RenderConfig.stereo})")
    out.add_argument("--ipd", type=float, metavar="UNITS",
                     help="eye baseline in scene units: each eye sits ipd/2 left or right of the path's camera "
                          "(default: 1/30 of the nearest content's depth, ~0.033 at --near 1)")
    out.add_argument("--convergence", type=float, metavar="DEPTH",
                     help="z-depth in scene units that sits on the screen (zero disparity); nearer content "
                          "comes out of it (default: the path's focus depth, --focus)")
    out.add_argument("--vr180", action="store_true", default=None,
                     help="with --stereo sbs or tb: each eye as an equirectangular half sphere (180x180 degrees, "
                          "parallel eyes, S x S with S = pi x the view's focal length, at most 2048), with the "
                          "spherical-video metadata headsets read; .mp4/.mov only")
    _add_encoder_flags(out)
    eng = group("engine")
    eng.add_argument("--layers", type=int, help=f"LDI layers, 1..8 (default {RenderConfig.layers:d})")
    eng.add_argument("--inpaint", choices=INPAINT_CHOICES,
                     help="how what the foreground hides is filled: classic (no weights), lama, migan, or "
                          "auto: the best learned model whose weights are here or can be fetched once, "
                          f"else classic (default {EngineConfig.inpaint})")
    eng.add_argument("--no-clean-depth", dest="clean_depth", action="store_false",
                     help="render the depth map exactly as given (default: smooth it within surfaces and "
                          "snap its edges onto the photo's, so depth noise does not tear surfaces)")
    eng.add_argument("--kernels", choices=KERNEL_CHOICES,
                     help=f"renderer implementation (default {RenderConfig.kernels}: the fastest available)")
    eng.add_argument("--device", help=f"auto, cpu, cuda or cuda:N (default {RenderConfig.device})")
    eng.add_argument("--frames-per-launch", type=int, metavar="N",
                     help="frames one kernel launch renders (default: by output size, up to 8 with the "
                          "triton/cuda kernels, 1 with torch); the same frames with fewer launches and syncs")
    add_engine_options(eng)
    eng.add_argument("--offline", action="store_true", help="never download weights (as PHOTO3D_OFFLINE=1): auto uses the cache, else cues")
    eng.add_argument("--upscale", choices=UPSCALE_CHOICES,
                     help="super-resolution when the output needs more pixels than the photo has: "
                          "x4plus (Real-ESRGAN x4plus, photos) or animevideov3 (fast, drawings); weights "
                          f"from photo3d_fast[upscale] (default {EngineConfig.upscale})")
    eng.add_argument("--upscale-mode", choices=UPSCALE_MODES,
                     help="texture (default): once, on the photo the scene is built from; frames: every "
                          "frame is rendered at 1/4 size and super-resolved (slow, sharpest)")
    fx = group("depth effects (off by default; scene units read as metres)")
    fx.add_argument("--dof", type=float, metavar="F_NUMBER",
                    help="depth of field of a thin lens at this f-number, focused at --focus (or --focus-pull)")
    fx.add_argument("--focus-pull", metavar="A:B", help="with --dof: animate the focus from depth A to depth B")
    fx.add_argument("--focal-length", type=float, metavar="MM",
                    help="35 mm-equivalent focal length of the --dof lens (default: from the field of view)")
    fx.add_argument("--bokeh", choices=BOKEH_CHOICES, help=f"aperture shape (default {EffectsConfig.bokeh})")
    fx.add_argument("--fog", metavar="DENSITY[,COLOR]",
                    help="exponential fog, density per scene unit, colour #RRGGBB or " + ", ".join(FOG_COLORS))
    fx.add_argument("--fog-start", type=float, metavar="DEPTH", help="depth where the fog begins (default 0)")
    fx.add_argument("--falloff", type=float, metavar="K",
                    help="light falloff (z_focus / z)^K beyond the focus depth; 2 = inverse square (default 0: off)")
    fx.add_argument("--vignette", type=float, metavar="S", help="cos^4 vignetting strength 0..1 (default 0: off)")
    # only: the command's own flags may share a name with a clip option it does not take
    parser.set_defaults(**dict.fromkeys(OPTIONS if only is None else only))


def clip_options(args: argparse.Namespace) -> dict:
    """The clip options of parsed arguments, by flat name (those not given are None)."""
    return {name: value for name, value in vars(args).items() if name in OPTIONS}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="photo3d", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"photo3d_fast {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser(
        "render",
        help="render a parallax clip of a photo",
        description="Render a parallax clip of a photo.",
        epilog=RENDER_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_photo_arguments(r, "output .mp4/.mov/.mkv/.webm, or .gif/.webp previews (default: IMAGE name with .mp4, here)")
    add_clip_options(r)
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")

    d = sub.add_parser(
        "depth",
        help="estimate a photo's depth and save it as a map",
        description="Estimate a photo's disparity and save it as a 16-bit PNG (white = near) or a .npy "
                    "float32 array in [0, 1]. Edit it and give it back with render --depth FILE.",
    )
    add_photo_arguments(d, "output .png or .npy (default: IMAGE_depth.png, here)")
    d.add_argument("--depth", default="auto", metavar="auto|cues|MODEL",
                   help="depth method: auto, cues or a model (see `photo3d engines list`) (default auto)")
    d.add_argument("--weights", metavar="FILE", help="weights of the --depth model (default: the cache, else download)")
    d.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_engine_options(d)
    d.add_argument("-q", "--quiet", action="store_true", help="no notes")

    st = sub.add_parser(
        "stereo",
        help="render a stereo image of a photo (side by side, top/bottom, anaglyph, VR180)",
        description="Render both eyes of a photo at its own viewpoint, ipd/2 to each side of it, packed "
                    "as --stereo (default sbs here), or as VR180 half spheres with --vr180 (sbs or tb).",
    )
    add_photo_arguments(st, "output .png, .jpg, .webp or .tif (default: IMAGE_LAYOUT.png, here)")
    add_clip_options(st, only=STILL_OPTIONS)
    st.add_argument("-q", "--quiet", action="store_true", help="no notes")

    r.set_defaults(handler=_render)
    d.set_defaults(handler=_depth)
    st.set_defaults(handler=_stereo)
    # Other subcommands live in their own modules: each adds its parser here and sets
    # its own handler(args) with set_defaults.
    add_preview_parser(sub)
    add_batch_parser(sub, add_clip_options)
    add_bench_parser(sub)
    add_engines_parser(sub)
    add_export_parser(sub, add_clip_options)
    add_refocus_parser(sub, add_clip_options)
    add_matte_parsers(sub, add_clip_options)
    return parser


def _depth(args: argparse.Namespace) -> None:

    image = image_argument(args)
    out = args.output or Path(f"{(image or SAMPLE_IMAGE).stem}_depth.png")
    write_depth(image, out, depth=args.depth, quiet=args.quiet, runtime=args.runtime, precision=args.precision,
                device=args.device, weights=args.weights)


def _render(args: argparse.Namespace) -> None:

    image = image_argument(args)
    render_clip(image, args.output or Path(f"{(image or SAMPLE_IMAGE).stem}.mp4"), quiet=args.quiet,
                options=ClipOptions.from_flat(clip_options(args)))


def _stereo(args: argparse.Namespace) -> None:

    image = image_argument(args)
    flat = clip_options(args)
    flat["stereo"] = flat.get("stereo") or "sbs"  # before the checks: --ipd alone is fine here
    opts = still_options(ClipOptions.from_flat(flat))
    vr = "_vr180" if opts.render.vr180 else ""
    render_stereo(image, args.output or Path(f"{(image or SAMPLE_IMAGE).stem}_{opts.render.stereo}{vr}.png"),
                  quiet=args.quiet, options=opts)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, a service manager, a scheduler's time limit): raised where Ctrl-C's
    KeyboardInterrupt would be, so the writers remove their partial files the same way."""


_terminating = False


def _terminate(signum, frame) -> None:
    # Once: a second SIGTERM must not interrupt the writers while they remove their files.
    # A flag, not SIG_IGN, as in batch.local: that would race with a pending signal.
    global _terminating
    if not _terminating:
        _terminating = True
        raise Terminated


def main(argv: list[str] | None = None) -> int:
    global _terminating
    args = _parser().parse_args(argv)
    handles = threading.current_thread() is threading.main_thread()  # signals reach only the main thread
    if handles:
        _terminating = False
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        code = args.handler(args)  # None: success; batch returns 1 when some clips failed
    except Photo3DError as e:
        notice(f"error: {e}")
        return 2
    except KeyboardInterrupt as e:
        terminated = isinstance(e, Terminated)
        notice(f"{'terminated' if terminated else 'interrupted'}; no partial output was kept")
        return 128 + signal.SIGTERM if terminated else 130
    finally:
        if handles:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
