"""Time of the LDI build (scene.ldi.build_ldi: the op ``grow`` per back layer) on a real photo.

    python bench/grow.py [--photo PATH] [--heights 540 1080] [--layers 2] [--kernels torch]
                         [--repeat 3] [--json out.json]

The photo (default: the bundled coffee.jpg) is resized to each height (aspect kept), its
depth estimated by the cue estimator (``--depth cues``), and the clip planned as
bench/artifacts.py plans it (path circle, amount 1.5, the photo's own size); band and
edge threshold come from ``ldi_params_for_motion`` for that path. Prints, per height: the
working size, band (px), edge threshold, back-layer pixels per layer, and the median wall
time of build_ldi over --repeat runs (after one warm-up run) on the CPU. Not a test.
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
from photo3d_fast.pipeline import SAMPLE_IMAGE, engine_options, plan_clip, prepare_photo
from photo3d_fast.scene.ldi import build_ldi, ldi_params_for_motion


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photo", default=str(SAMPLE_IMAGE))
    ap.add_argument("--heights", type=int, nargs="+", default=[540, 1080])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--kernels", default="torch")
    ap.add_argument("--path", default="circle")
    ap.add_argument("--amount", type=float, default=1.5)
    ap.add_argument("--depth", default="cues")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    options = ClipOptions.from_flat({"preset": args.path, "amount": args.amount, "depth": args.depth,
                                     "kernels": args.kernels, "device": "cpu", "duration": 4.0, "fps": 30.0})
    photo = load_image(args.photo)
    rows = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; kernels={args.kernels}, layers={args.layers}")
    print(f"{'height':>6} {'size':>10} {'band':>5} {'edge':>8} {'layer px':>18} {'ldi ms':>9}")
    for height in args.heights:
        h0, w0 = photo.rgb.shape[:2]
        size = (round(w0 * height / h0), height)
        rgb = np.asarray(Image.fromarray(photo.rgb).resize(size, Image.Resampling.LANCZOS))
        prepared = prepare_photo(Photo(rgb=rgb, exif_fov=photo.exif_fov), "bench", options.scene, options.depth,
                                 engine_options(options.engine, options.render))
        plan = plan_clip(prepared, options)
        work = (plan.rgb.shape[1], plan.rgb.shape[0])
        band, edge = ldi_params_for_motion(plan.K, plan.depth, plan.path.max_translation(), work)

        def build():
            return build_ldi(plan.rgb, plan.depth, plan.K, layers=args.layers, band=band, edge_disparity=edge,
                             device="cpu", kernels=args.kernels)

        ldi = build()  # warm-up
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            build()
            times.append(1000 * (time.perf_counter() - t0))
        px = [int(v.sum()) for v in ldi.valid[1:]]
        ms = statistics.median(times)
        rows.append({"height": height, "size": list(work), "band": band, "edge_disparity": edge, "layer_px": px,
                     "ldi_ms": ms, "ldi_ms_all": times})
        print(f"{height:>6} {'x'.join(map(str, work)):>10} {band:>5} {edge:8.5f} {px!s:>18} {ms:9.0f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"options": {k: str(v) for k, v in vars(args).items()}, "rows": rows},
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
