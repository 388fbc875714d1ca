"""End-to-end clip benchmark: `photo3d render` of one photo, wall time and peak memory.

    python bench/clip.py [--size 960x540] [--duration 5] [--fps 30] [--json out.json]

The photo is the bundled sample (coffee.jpg) resized and center-cropped to --size, so
the numbers measure a real photo through every stage: decode, cue depth, LDI, render,
x264 encode. It runs the installed `photo3d` CLI in a child process and reads the
child's peak resident memory from the OS.

Then, in this process, the same clip's frames are rendered into memory (the same options,
through ``pipeline.render_into``) and handed to the same video writer alone (``open_video``,
the clip's encoder and settings, frames from memory): ``encode_s`` is what encoding those
frames costs by itself, measured in the same run, and ``clip / encode`` the ratio issue 18
asks about (a shared machine's load moves both alike). ``--kernels`` is passed to both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photo3d_fast.config import parse_size  # noqa: E402
from photo3d_fast.errors import Photo3DError  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--path", default="swing")
    parser.add_argument("--kernels", default="auto")
    parser.add_argument("--no-encode-alone", action="store_true", help="skip the x264-alone measurement")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        w, h = parse_size(args.size)
    except Photo3DError as e:
        parser.error(f"--size {e}")
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "photo.jpg"
        ImageOps.fit(Image.open(ROOT / "photo3d_fast" / "data" / "coffee.jpg"), (w, h), Image.Resampling.LANCZOS).save(photo, quality=95)
        out = Path(tmp) / "clip.mp4"
        cmd = [sys.executable, "-m", "photo3d_fast.cli", "render", str(photo), "-o", str(out),
               "--duration", str(args.duration), "--fps", str(args.fps), "--path", args.path,
               "--kernels", args.kernels]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"photo3d failed:\n{proc.stderr}")
        peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        notes = [line for line in proc.stderr.splitlines() if line.startswith("photo3d:")]
        result = {"size": f"{w}x{h}", "frames": round(args.duration * args.fps), "path": args.path,
                  "wall_s": wall, "peak_rss_mib": peak_mib, "clip_bytes": out.stat().st_size,
                  "cpus": os.cpu_count(), "kernels": args.kernels, "log": notes}
        if not args.no_encode_alone:
            result["encode_s"] = encode_alone(photo, Path(tmp) / "alone.mp4", args)
            result["clip_over_encode"] = wall / result["encode_s"]
    print("\n".join(notes))
    print(f"{result['size']} {result['frames']} frames ({args.path}): {wall:.1f} s wall, "
          f"{wall / result['frames'] * 1e3:.0f} ms/frame end to end, peak RSS {peak_mib:.0f} MiB, "
          f"{result['clip_bytes'] / 1e6:.2f} MB clip, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    if "encode_s" in result:
        print(f"encoding the same frames alone: {result['encode_s']:.1f} s; "
              f"clip / encode = {result['clip_over_encode']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


class _Frames:
    """A sink that keeps the frames (host uint8 arrays) it is given."""

    def __init__(self) -> None:
        self.frames: list = []

    def write(self, frame) -> None:
        self.frames.append(frame.cpu().numpy().copy())


def encode_alone(photo: Path, out: Path, args) -> float:
    """Seconds the clip's video writer takes for the clip's frames alone, from memory."""
    from photo3d_fast.config import ClipOptions
    from photo3d_fast.encode.writers import open_video
    from photo3d_fast.io import load_image
    from photo3d_fast.pipeline import engine_options, output_size, prepare_photo, render_into

    opts = ClipOptions.from_flat({"duration": args.duration, "fps": args.fps, "preset": args.path,
                                  "kernels": args.kernels})
    prepared = prepare_photo(load_image(photo), photo.name, opts.scene, opts.depth,
                             engine_options(opts.engine, opts.render), quiet=True)
    keep = _Frames()
    render_into(prepared, opts, [keep], quiet=True)
    t0 = time.perf_counter()
    with open_video(out, opts.path.fps, output_size(prepared, opts), opts.encode, quiet=True) as video:
        for frame in keep.frames:
            video.write(frame)
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
