"""Time of the LDI build (scene.ldi.build_ldi: the op ``grow`` per back layer) on a real photo.

    python bench/grow.py [--photo PATH] [--heights 540 1080] [--layers 2] [--kernels torch,cpp]
                         [--repeat 3] [--json out.json]

The photo (default: the bundled coffee.jpg) is resized to each height (aspect kept), its
depth estimated by the cue estimator (``--depth cues``), and the clip planned as
bench/artifacts.py plans it (path circle, amount 1.5, the photo's own size); band and
edge threshold come from ``ldi_params_for_motion`` for that path. ``--kernels``: one
implementation or several, comma-separated, each timed on the same inputs in the same run.
Prints one row per height and implementation: the working size, band (px), edge threshold,
the backend ``select("grow", ...)`` picked (``select("snap", ...)`` picks the same for the
conditioning), back-layer pixels per layer, and the median wall times over --repeat runs
(after one warm-up run) on the CPU of the op ``grow`` alone (its grow_back_layer calls within
build_ldi, summed over layers), of the depth conditioning (``condition_disparity`` within
build_ldi: three passes of the op ``snap``, the smoothing and the rest) and of the whole
build_ldi. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import torch
from PIL import Image

from photo3d_fast.config import ClipOptions
from photo3d_fast.io import Photo, load_image
from photo3d_fast.ops.backends import check_kernels, select
from photo3d_fast.pipeline import SAMPLE_IMAGE, engine_options, plan_clip, prepare_photo
from photo3d_fast.scene import ldi as ldi_module
from photo3d_fast.scene.ldi import build_ldi, ldi_params_for_motion


class GrowTimer:
    """Times the calls of ``module.name`` while active (build_ldi calls grow_back_layer through
    the implementation module, condition_disparity through scene.ldi): ``ms`` sums them."""

    def __init__(self, module, name: str = "grow_back_layer") -> None:
        self.module, self.name, self.ms = module, name, 0.0

    def __enter__(self):
        self.original = getattr(self.module, self.name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return self.original(*args, **kwargs)
            finally:
                self.ms += 1000 * (time.perf_counter() - t0)

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc) -> None:
        setattr(self.module, self.name, self.original)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default=str(SAMPLE_IMAGE))
    ap.add_argument("--heights", type=int, nargs="+", default=[540, 1080])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--kernels", default="torch", help="implementations, comma-separated (torch,cpp)")
    ap.add_argument("--path", default="circle")
    ap.add_argument("--amount", type=float, default=1.5)
    ap.add_argument("--depth", default="cues")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    kernels = [k.strip() for k in args.kernels.split(",") if k.strip()]
    for k in kernels:
        check_kernels(k)
    options = ClipOptions.from_flat({"preset": args.path, "amount": args.amount, "depth": args.depth,
                                     "kernels": kernels[0], "device": "cpu", "duration": 4.0, "fps": 30.0})
    photo = load_image(args.photo)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; kernels={','.join(kernels)}, "
          f"layers={args.layers}")
    print(f"{'height':>6} {'size':>10} {'band':>5} {'edge':>8} {'kernels':>8} {'layer px':>18} {'grow ms':>9} "
          f"{'cond ms':>9} {'ldi ms':>9}")
    for height in args.heights:
        h0, w0 = photo.rgb.shape[:2]
        size = (round(w0 * height / h0), height)
        rgb = np.asarray(Image.fromarray(photo.rgb).resize(size, Image.Resampling.LANCZOS))
        prepared = prepare_photo(Photo(rgb=rgb, exif_fov=photo.exif_fov), "bench", options.scene, options.depth,
                                 engine_options(options.engine, options.render))
        plan = plan_clip(prepared, options)
        work = (plan.rgb.shape[1], plan.rgb.shape[0])
        band, edge = ldi_params_for_motion(plan.K, plan.depth, plan.path.max_translation(), work)
        for k in kernels:
            backend, module = select("grow", k, "cpu")

            def build():
                with GrowTimer(module) as timer, GrowTimer(ldi_module, "condition_disparity") as cond:
                    t0 = time.perf_counter()
                    ldi = build_ldi(plan.rgb, plan.depth, plan.K, layers=args.layers, band=band,
                                    edge_disparity=edge, device="cpu", kernels=k)
                    return ldi, 1000 * (time.perf_counter() - t0), timer.ms, cond.ms

            ldi, _, _, _ = build()  # warm-up
            times, grow_times, cond_times = [], [], []
            for _ in range(args.repeat):
                _, ms, grow_ms, cond_ms = build()
                times.append(ms)
                grow_times.append(grow_ms)
                cond_times.append(cond_ms)
            px = [int(v.sum()) for v in ldi.valid[1:]]
            ms, grow_ms = statistics.median(times), statistics.median(grow_times)
            cond_ms = statistics.median(cond_times)
            rows.append({"height": height, "size": list(work), "band": band, "edge_disparity": edge, "kernels": k,
                         "backend": backend, "snap_backend": select("snap", k, "cpu")[0], "layer_px": px,
                         "grow_ms": grow_ms, "grow_ms_all": grow_times, "condition_ms": cond_ms,
                         "condition_ms_all": cond_times, "ldi_ms": ms, "ldi_ms_all": times})
            print(f"{height:>6} {'x'.join(map(str, work)):>10} {band:>5} {edge:8.5f} {backend:>8} {px!s:>18} "
                  f"{grow_ms:9.0f} {cond_ms:9.0f} {ms:9.0f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"options": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
