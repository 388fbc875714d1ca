"""Per-frame renderer benchmark: ms per frame, fps, and distance from the memory floor.

    python bench/render.py [--sizes 720p,1080p] [--kernels torch] [--reps 20] [--json out.json]

For each implementation and resolution it builds a two-layer LDI of a synthetic scene
(random texture, a slanted floor, boxes in front of a wall: about a fifth of the texels in
the back layer), renders frames along a swing path and reports median and p90 ms per
frame (splat + resolve + fill, on the device, no encode), frames per second, and the
achieved bandwidth against the device's measured copy bandwidth.

The floor: a fused kernel must at least read each texel's world point and color
(3 + 3 float32 = 24 B), update the z-buffer once per covered pixel (8 B read + 8 B
write of an int64) and write the output (3 B per pixel): bytes = 24 * texels +
19 * pixels. "GB/s" is that floor divided by the measured time, so GB/s over copy GB/s
is the fraction of the memory-bound ideal achieved. On CPU, timings use perf_counter; on
GPU, CUDA events after warm-up.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from photo3d_fast.ldi import build_ldi, ldi_params_for_motion  # noqa: E402
from photo3d_fast.paths import default_focus, preset_path  # noqa: E402
from photo3d_fast.render.dispatch import select_kernels  # noqa: E402
from photo3d_fast.scene import intrinsics_from_fov  # noqa: E402

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080), "4k": (3840, 2160)}


def synthetic_scene(w: int, h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 texture and (H, W) float32 z-depth: wall at 6, floor, two boxes."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ys = (np.arange(h)[:, None] + 0.5) / h
    depth = np.where(ys > 0.55, 1.2 / np.maximum(ys - 0.45, 1e-3) * 0.1, 6.0) * np.ones((1, w))
    depth = np.minimum(depth, 6.0)
    depth[int(0.2 * h) : int(0.7 * h), int(0.15 * w) : int(0.35 * w)] = 2.0
    depth[int(0.3 * h) : int(0.9 * h), int(0.6 * w) : int(0.8 * w)] = 1.2
    return image, depth.astype(np.float32)


def copy_bandwidth(device: torch.device) -> float:
    """Measured device-to-device copy bandwidth in GB/s (read + write counted)."""
    n = (256 << 20) // 4 if device.type == "cuda" else (64 << 20) // 4
    src = torch.empty(n, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = []
    for _ in range(10):
        t = _timer(device)
        dst.copy_(src)
        times.append(t())
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def _timer(device: torch.device):
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()

        def stop() -> float:
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3

        return stop
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0


def bench_one(impl_name: str, size: tuple[int, int], device: torch.device, reps: int) -> dict:
    w, h = size
    image, depth = synthetic_scene(w, h)
    K = intrinsics_from_fov(w, h, 55)
    # near and focus as the pipeline derives them from the depth
    path = preset_path("swing", reps, 1.0, float(np.percentile(depth, 1.0)), default_focus(depth))
    band, edge = ldi_params_for_motion(K, depth, path.max_translation(), size)
    ldi = build_ldi(image, depth, K, layers=2, band=band, edge_disparity=edge, device=device)
    _, impl = select_kernels(impl_name, device)
    grid = impl.prepare(ldi)
    Kt = torch.tensor(K, dtype=torch.float32, device=device)
    poses = [torch.tensor(p, dtype=torch.float32, device=device) for p in path.poses]
    for pose in poses[:3]:  # warm-up (allocator, caches, lazy init)
        impl.render_frame(grid, pose, Kt, size)
    times = []
    for pose in poses:
        stop = _timer(device)
        impl.render_frame(grid, pose, Kt, size)
        times.append(stop())
    texels = int(ldi.valid.sum())
    floor_bytes = 24 * texels + 19 * w * h
    med = statistics.median(times)
    return {
        "impl": impl_name,
        "size": f"{w}x{h}",
        "texels": texels,
        "median_ms": med * 1e3,
        "p90_ms": float(np.percentile(times, 90)) * 1e3,
        "fps": 1.0 / med,
        "floor_bytes": floor_bytes,
        "gbps": floor_bytes / med / 1e9,
    }


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=None, help="comma list of " + ",".join(SIZES) + " (default: 540p,720p on CPU; 720p,1080p,4k on GPU)")
    parser.add_argument("--kernels", default="torch", help="comma list of implementations (torch, triton, cuda)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    sizes = args.sizes or ("720p,1080p,4k" if device.type == "cuda" else "540p,720p")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    copy = copy_bandwidth(device)
    rows = [bench_one(k, SIZES[s], device, args.reps) for k in args.kernels.split(",") for s in sizes.split(",")]
    print(f"device: {name}; torch {torch.__version__}; commit {_commit()}; copy bandwidth {copy:.1f} GB/s")
    print(f"{'impl':<8}{'size':>11}{'texels':>11}{'median ms':>11}{'p90 ms':>9}{'fps':>9}{'GB/s':>8}{'of copy':>9}")
    for r in rows:
        print(f"{r['impl']:<8}{r['size']:>11}{r['texels']:>11}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}"
              f"{r['fps']:>9.1f}{r['gbps']:>8.2f}{r['gbps'] / copy:>9.1%}")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "torch": torch.__version__, "commit": _commit(),
                                         "copy_gbps": copy, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
