"""``photo3d engines ...`` (list, fetch, build, clear) and ``photo3d doctor``."""

from __future__ import annotations

import argparse
import sys
import time

from ..config import parse_size
from ..depth.backends import network_input_shape
from ..errors import Photo3DError
from ..inpaint.learned import engine_input_shape
from . import PRECISIONS, RUNTIMES, load_engine
from .cache import cache_dir, clear
from .doctor import main
from .registry import MODELS, get_spec
from .weights import available_locally, weight_files

ENGINES_EPILOG = """\
examples:
  photo3d engines list
  photo3d engines fetch depth-anything-v2-small          # download the weights once
  photo3d engines build depth-anything-v2-small --size 4032x3024   # engine for 4:3 photos
  photo3d engines build realesrgan-x4plus --tile 256 --precision fp16
  photo3d engines clear

An engine is compiled for one input shape: a depth engine for the network input that photos
of --size (their aspect ratio, really) resize to; an upscale engine for --batch tiles of
--tile x --tile pixels. Render builds what it lacks on first use; build does it ahead of time.
Cache: $PHOTO3D_CACHE (default ~/.cache/photo3d_fast).
"""


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = parse_size(text)
    except Photo3DError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be 16..16384")
    return w, h


def add_engine_options(group: argparse._ArgumentGroup) -> None:
    """--runtime/--precision, shared by render, depth, batch and engines build."""

    group.add_argument("--runtime", default="auto", choices=RUNTIMES,
                       help="how learned models run (default auto: TensorRT on a GPU if installed, else "
                            "ONNX Runtime (CUDA provider on a GPU), else torch.compile fp16; on the CPU ONNX "
                            "Runtime, else torch)")
    group.add_argument("--precision", default="auto", choices=PRECISIONS,
                       help="learned models' precision (default auto: fp16 on a GPU, fp32 on the CPU)")


def add_engines_parser(sub) -> None:

    names = ", ".join(MODELS)
    p = sub.add_parser("engines", help="list, fetch, prebuild or clear learned-model engines",
                       description=f"Learned models: {names}.", epilog=ENGINES_EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = p.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", help="models, licences, whether their weights are here").set_defaults(handler=_list)
    f = verbs.add_parser("fetch", help="download a model's weights into the cache")
    f.add_argument("model", help=names)
    f.set_defaults(handler=_fetch)
    b = verbs.add_parser("build", help="build (export/compile) a model's engine now",
                         epilog=ENGINES_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("model", help=names)
    b.add_argument("--size", type=_size, default=(1920, 1080), metavar="WxH",
                   help="depth models: the photo size (aspect ratio) the engine serves (default 1920x1080)")
    b.add_argument("--tile", type=int, default=256, help="upscale models: tile size in pixels (default %(default)d)")
    b.add_argument("--batch", type=int, default=1, help="upscale models: tiles per call (default %(default)d)")
    b.add_argument("--weights", help="weights file (default: the cache, else download)")
    b.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    add_engine_options(b)
    b.add_argument("-q", "--quiet", action="store_true")
    b.set_defaults(handler=_build)
    c = verbs.add_parser("clear", help="remove cached engines (ONNX exports, TensorRT plans); --weights too")
    c.add_argument("--weights", action="store_true", help="also remove downloaded weights")
    c.set_defaults(handler=_clear)

    d = sub.add_parser("doctor", help="what this machine can run: GPUs, runtimes, kernels, encoders, models",
                       description="Report GPUs, engine runtimes (torch, ONNX Runtime, TensorRT), renderer "
                                   "kernels, video encoders (NVENC probed with a test frame) and model weights.")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.add_argument("--no-probe", dest="probe", action="store_false", help="do not open encoder sessions")
    d.set_defaults(handler=_doctor)


def _list(args: argparse.Namespace) -> None:

    print(f"{'model':26} {'task':8} {'weights':8} licence")
    for spec in MODELS.values():
        print(f"{spec.name:26} {spec.task:8} {'here' if available_locally(spec) else '-':8} {spec.licence}")
        print(f"{'':26} {spec.description}; from {spec.source.home()}")


def _fetch(args: argparse.Namespace) -> None:

    spec = get_spec(args.model)
    files = weight_files(spec, fetch=True)
    for f in files:
        print(f)


def engine_shape(spec, size: tuple[int, int], tile: int = 256, batch: int = 1) -> tuple[int, int, int, int]:
    """The input shape of ``spec``'s engine for photos of ``size`` (W, H) or for tiles."""
    if spec.task == "depth":
        return network_input_shape(spec, size[1], size[0])
    if spec.task == "inpaint":
        return engine_input_shape(spec.name, size[1], size[0])
    if tile < 16 or batch < 1:
        raise Photo3DError("--tile must be >= 16 and --batch >= 1")
    return (batch, 3, tile, tile)


def _build(args: argparse.Namespace) -> None:

    spec = get_spec(args.model)
    shape = engine_shape(spec, args.size, args.tile, args.batch)
    t0 = time.perf_counter()
    engine = load_engine(spec.name, shape, runtime=args.runtime, precision=args.precision, device=args.device,
                         weights=args.weights, quiet=args.quiet)
    import torch

    x = torch.rand(shape, device=engine.device)
    engine(x)  # a first run: torch.compile compiles here, and a broken engine fails now
    print(f"{engine.describe()}; input {'x'.join(map(str, shape))}; ready in {time.perf_counter() - t0:.1f} s"
          + (f"; {engine.artifact}" if engine.artifact else ""))


def _clear(args: argparse.Namespace) -> None:

    what = ("onnx", "tensorrt") + (("hub", "weights") if args.weights else ())
    n = clear(what=what)
    print(f"removed {n} entries from {cache_dir()}", file=sys.stderr)


def _doctor(args: argparse.Namespace) -> None:

    main(as_json=args.json, probe=args.probe)
