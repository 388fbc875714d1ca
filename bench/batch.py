"""Batch throughput: clips per hour of `photo3d batch` with 1 and 2 workers.

    python bench/batch.py [--photos 6] [--clips-per-photo 1] [--size 960x540]
                          [--duration 1] [--fps 30] [--workers 1,2] [--json out.json]

Photos are the bundled sample (coffee.jpg) cropped, flipped and tinted differently for
each photo and fitted to --size, so every photo has its own depth. Each run is a fresh
`photo3d batch` in a child process into an empty OUTDIR, so its wall time includes
process start, torch import and spawning the workers. The stage split comes from the
batch report: depth (load + prepare_photo, in the prefetch thread, overlapping the
rendering of the previous photo) and render+encode per clip. Clips per hour are measured
for the clip length asked for; "video s/h" is seconds of finished video per hour. "CPU
s/clip" is the CPU time of the child and its workers and ffmpeg per clip: on a shared,
loaded machine it says what a clip costs when wall time cannot.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photo3d_fast.config import parse_size  # noqa: E402
from photo3d_fast.errors import Photo3DError  # noqa: E402


def _photos(folder: Path, n: int, size: tuple[int, int]) -> None:
    src = Image.open(ROOT / "photo3d_fast" / "data" / "coffee.jpg").convert("RGB")
    rng = np.random.default_rng(0)
    for i in range(n):
        w, h = src.size
        f = 0.7 + 0.3 * rng.random()
        x0, y0 = int(rng.random() * w * (1 - f)), int(rng.random() * h * (1 - f))
        im = src.crop((x0, y0, x0 + int(w * f), y0 + int(h * f)))
        if i % 2:
            im = ImageOps.mirror(im)
        tint = np.asarray(im, np.float32) * (0.85 + 0.3 * rng.random(3))
        im = Image.fromarray(np.clip(tint, 0, 255).astype(np.uint8))
        ImageOps.fit(im, size, Image.Resampling.LANCZOS).save(folder / f"photo{i:03d}.jpg", quality=92)


def _manifest(folder: Path, n: int, per_photo: int) -> Path:
    presets = ["swing", "circle", "dolly", "zoom", "vertigo"]
    path = folder / "clips.csv"
    rows = [f"photo{i:03d}.jpg,{presets[k % len(presets)]}" for i in range(n) for k in range(per_photo)]
    path.write_text("image,path\n" + "\n".join(rows) + "\n")
    return path


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True).stdout.strip() or "?"
    except OSError:
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=6)
    parser.add_argument("--clips-per-photo", type=int, default=1)
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    try:
        w, h = parse_size(args.size)
    except Photo3DError as e:
        parser.error(f"--size {e}")
    import torch

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        _photos(tmp, args.photos, (w, h))
        manifest = _manifest(tmp, args.photos, args.clips_per_photo)
        for workers in (int(v) for v in args.workers.split(",")):
            out = tmp / f"out{workers}"
            cmd = [sys.executable, "-m", "photo3d_fast.cli", "batch", str(manifest), "-o", str(out), "-q",
                   "--workers", str(workers), "--duration", str(args.duration), "--fps", str(args.fps)]
            load = os.getloadavg()[0]
            ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            wall = time.perf_counter() - t0
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)  # workers and ffmpeg included
            if proc.returncode != 0:
                sys.exit(f"photo3d batch failed ({proc.returncode}):\n{proc.stderr}")
            report = json.loads((out / "photo3d_batch_report.json").read_text())
            clips = [c for c in report["clips"] if c["status"] == "ok"]
            n = len(clips)
            video_s = sum(c["frames"] for c in clips) / args.fps
            rows.append({
                "workers": workers, "clips": n, "photos": args.photos, "size": f"{w}x{h}",
                "clip_s": args.duration, "fps": args.fps, "wall_s": wall,
                "batch_s": report["seconds"], "clips_per_hour": n / wall * 3600,
                "video_s_per_hour": video_s / wall * 3600,
                "depth_s_per_photo": report["stage_seconds"]["depth"] / args.photos,
                "render_encode_s_per_clip": report["stage_seconds"]["render_encode"] / n,
                "load_before": load, "cpu_s": cpu, "cpu_s_per_clip": cpu / n,
            })
    device = f"{platform.machine()}, {os.cpu_count()} cores, " + (
        torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU")
    print(f"device: {device}; torch {torch.__version__}; commit {_commit()}; "
          f"{time.strftime('%Y-%m-%d')}; load average before each run: "
          + ", ".join(f"{r['load_before']:.2f}" for r in rows))
    print(f"{args.photos} photos x {args.clips_per_photo} clips, {w}x{h}, {args.duration:g} s at {args.fps:g} fps\n")
    print("| workers | clips | wall s | clips/h | video s/h | depth s/photo | render+encode s/clip | CPU s/clip |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['workers']} | {r['clips']} | {r['wall_s']:.1f} | {r['clips_per_hour']:.0f} | "
              f"{r['video_s_per_hour']:.0f} | {r['depth_s_per_photo']:.2f} | {r['render_encode_s_per_clip']:.2f} | {r['cpu_s_per_clip']:.1f} |")
    if args.json:
        args.json.write_text(json.dumps({"device": device, "torch": torch.__version__, "commit": _commit(),
                                         "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
