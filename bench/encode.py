"""Encoder throughput: frames/s of each available encoder at 1080p (frames pre-generated,
encode alone), and render+encode vs encode alone at 540p (the writer thread should make
them close to max(render, encode), not their sum). Prints a table last, writes JSON.

    python bench/encode.py [--frames 24] [--json bench/encode.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from tempfile import TemporaryDirectory

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from photo3d_fast.encode import formats  # noqa: E402
from photo3d_fast.config import EncodeConfig  # noqa: E402
from photo3d_fast.encode.writers import open_video  # noqa: E402


def frames(n: int, w: int, h: int) -> list[np.ndarray]:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = []
    for i in range(n):  # smooth moving gradients: encodes like a parallax clip, not like noise
        r = 127 + 100 * np.sin((xx + 4 * i) / 97)
        g = 127 + 100 * np.cos((yy - 3 * i) / 71)
        b = 127 + 100 * np.sin((xx + yy + 5 * i) / 131)
        out.append(np.stack([r, g, b], -1).astype(np.uint8))
    return out


def time_encode(kind: str, ext: str, data: list[np.ndarray], fps: float = 30) -> float:
    with TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with open_video(Path(d) / f"c{ext}", fps, (data[0].shape[1], data[0].shape[0]),
                        EncodeConfig(encoder=kind), quiet=True) as w:
            for f in data:
                w.write(f)
        return len(data) / (time.perf_counter() - t0)


def end_to_end(n: int) -> dict:
    from photo3d_fast.io import load_image
    from photo3d_fast.config import ClipOptions
    from photo3d_fast.pipeline import SAMPLE_IMAGE, prepare_photo, render_into

    opts = ClipOptions.from_flat({"size": (960, 540), "duration": n / 30, "fps": 30, "encoder": "x264"})
    prepared = prepare_photo(load_image(SAMPLE_IMAGE), "coffee.jpg", opts.scene, opts.depth)

    class Keep:  # collects the rendered frames: render alone
        def __init__(self):
            self.frames = []

        def write(self, f):
            self.frames.append(np.asarray(f).copy())

    keep = Keep()
    t0 = time.perf_counter()
    render_into(prepared, opts, [keep], quiet=True)
    render = n / (time.perf_counter() - t0)
    encode = time_encode("x264", ".mp4", keep.frames)
    with TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with open_video(Path(d) / "c.mp4", 30, (960, 540), opts.encode, quiet=True) as w:
            render_into(prepared, opts, [w], quiet=True)
        both = n / (time.perf_counter() - t0)
    return {"render_fps": render, "encode_fps": encode, "render_encode_fps": both,
            "serial_fps": 1 / (1 / render + 1 / encode)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--json", type=Path, default=Path(__file__).with_name("encode.json"))
    args = ap.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()})"
    import os

    env = {"device": device, "cores": os.cpu_count(), "torch": torch.__version__,
           "ffmpeg": Path(formats.ffmpeg_exe()).name, "commit": commit, "load": os.getloadavg()[0]}
    data = frames(args.frames, 1920, 1080)
    rows = []
    for kind, ext in [("nvenc", ".mp4"), ("ffmpeg-nvenc", ".mp4"), ("x264", ".mp4"), ("x265", ".mp4"),
                      ("svtav1", ".mp4"), ("vpx", ".webm")]:
        codec = next(iter(formats.KINDS[kind]))
        ok, why = (formats.probe_nvenc(codec) if kind == "nvenc"
                   else formats.probe_ffmpeg_encoder(formats.KINDS[kind][codec]))
        if not ok:
            rows.append({"encoder": kind, "fps_1080p": None, "note": why})
            continue
        time_encode(kind, ext, data[:2])  # warm-up
        runs = [time_encode(kind, ext, data) for _ in range(3 if kind in ("nvenc", "ffmpeg-nvenc", "x264") else 1)]
        rows.append({"encoder": kind, "fps_1080p": float(np.median(runs)), "runs": len(runs), "note": ""})
    e2e = end_to_end(args.frames)
    args.json.write_text(json.dumps({"env": env, "encoders": rows, "end_to_end_540p": e2e}, indent=2))
    print(f"\n{env}\n")
    print("| encoder (1080p, preset medium, default quality) | frames/s | note |\n| --- | --- | --- |")
    for r in rows:
        fps = f"{r['fps_1080p']:.1f}" if r["fps_1080p"] else "n/a"
        print(f"| {r['encoder']} | {fps} | {r['note'][:90]} |")
    print("\n| 540p, x264 | frames/s |\n| --- | --- |")
    for k, v in e2e.items():
        print(f"| {k} | {v:.2f} |")


if __name__ == "__main__":
    main()
