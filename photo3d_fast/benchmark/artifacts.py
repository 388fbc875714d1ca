"""Artifact scores of real photos: what a user sees in the clip, with no ground truth.

    python bench/artifacts.py [--photos coffee chelsea ...] [--json out.json] [--sheet DIR]

For each photo: cue depth (or --depth), the path (--path circle --amount 1.5 by default)
rendered at the photo's own size, so no resampling enters the scores, with 1 and 2 LDI
layers. Per frame, on luma Y (BT.709, sRGB / 255):

- outliers: the share of *isolated outlier pixels* (``outliers.py``): a pixel whose 8
  neighbours agree (the spread of the 8 values with the lowest and highest dropped is
  under SMOOTH) while the pixel lies more than OUTLIER from their median. Dotted halos, speckle of another
  layer and torn slivers are made of such pixels; real texture rarely is. ``ratio`` is
  the moving frames' mean share over the rest frame's (the same renderer at the photo's
  viewpoint and the clip's zoom): what the motion adds.
- sharpness: mean gradient magnitude of the frames over the photo's (central
  differences; the photo zoomed like the clip, Lanczos). A renderer that blurs everything lowers the outlier ratio and fails this:
  it has to stay near 1.
- flicker: the share of pixels that blink: differ from the mean of the previous and next
  frame by more than OUTLIER while those two agree within SMOOTH.

The photos: the bundled sample (coffee) and, when scikit-image is installed, its CC0 /
public-domain photos: astronaut (a person), chelsea (a cat), rocket (a launch tower's
thin struts), and a night version of rocket (gamma 2.2 darkened, blue tint, noise), since
scikit-image has no night photo. Not a test: prints a table, writes JSON and PNG crops.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..config import ClipOptions
from ..io import Photo, load_image
from ..outliers import OUTLIER, SMOOTH, luma, outlier_map
from ..pipeline import SAMPLE_IMAGE, engine_options, plan_clip, prepare_photo
from ..render import Renderer
from ..scene.ldi import build_ldi, ldi_params_for_motion

PHOTOS = ("coffee", "astronaut", "chelsea", "rocket", "rocket-night")


def gradient(y: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N,) mean central-difference gradient magnitude."""
    gx = 0.5 * (y[:, 1:-1, 2:] - y[:, 1:-1, :-2])
    gy = 0.5 * (y[:, 2:, 1:-1] - y[:, :-2, 1:-1])
    return (gx * gx + gy * gy).sqrt().mean((1, 2))


def flicker(y: torch.Tensor) -> float:
    """(F, H, W) consecutive frames -> share of pixels that blink (module doc)."""
    if len(y) < 3:
        return 0.0
    prev, cur, nxt = y[:-2], y[1:-1], y[2:]
    blink = ((prev - nxt).abs() < SMOOTH) & ((cur - 0.5 * (prev + nxt)).abs() > OUTLIER)
    return float(blink.float().mean())


def photo_named(name: str) -> tuple[Photo, str]:
    """A benchmark photo by name and its source line."""
    if name == "coffee":
        return load_image(SAMPLE_IMAGE), "bundled sample (CC0)"
    if Path(name).exists():
        return load_image(name), name
    try:
        from skimage import data
    except ImportError as exc:
        raise SystemExit(f"photo {name!r} needs scikit-image (pip install scikit-image)") from exc
    base = name.removesuffix("-night")
    rgb = np.ascontiguousarray(getattr(data, base)()[..., :3])
    if name.endswith("-night"):
        rng = np.random.default_rng(0)
        x = (rgb / 255.0) ** 2.2 * np.array([0.35, 0.4, 0.6])
        x = x + rng.normal(0, 0.01, x.shape)
        rgb = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    return Photo(rgb=rgb, exif_fov=None), f"scikit-image data.{base}" + (" (darkened)" if name.endswith("-night") else "")


def render_photo(photo: Photo, options: ClipOptions, layers: int, frames: int) -> tuple[torch.Tensor, dict]:
    """(F, H, W, 3) uint8 frames of the whole path at the photo's size, and timings."""
    t0 = time.perf_counter()
    prepared = prepare_photo(photo, "bench", options.scene, options.depth, engine_options(options.engine, options.render))
    t1 = time.perf_counter()
    opts = replace(options, render=replace(options.render, layers=layers))
    plan = plan_clip(prepared, opts)
    work = (plan.rgb.shape[1], plan.rgb.shape[0])
    band, edge = ldi_params_for_motion(plan.K, plan.depth, plan.path.max_translation(), work)
    ldi = build_ldi(plan.rgb, plan.depth, plan.K, layers=layers, band=band, edge_disparity=edge, device="cpu",
                    kernels=opts.render.kernels)
    t2 = time.perf_counter()
    renderer = Renderer(ldi, opts.render.kernels)
    picks = np.linspace(0, len(plan.path) - 1, frames).round().astype(int)
    out = []
    rest = plan.K_out.copy()
    rest[:2, :2] *= float(plan.path.zoom.mean())
    rest_frame = renderer.render(np.eye(4), rest, plan.size)
    for i in picks:
        K_f = plan.K_out.copy()
        K_f[0, 0] *= plan.path.zoom[i]
        K_f[1, 1] *= plan.path.zoom[i]
        out.append(renderer.render(plan.path.poses[i], K_f, plan.size))
    t3 = time.perf_counter()
    return torch.stack(out), {"rest": rest_frame, "zoom": float(plan.path.zoom.mean()), "depth_s": t1 - t0, "ldi_s": t2 - t1, "render_ms": 1000 * (t3 - t2) / len(picks),
                              "band": band, "prepared": prepared, "plan": plan}


def zoomed_photo(rgb: np.ndarray, zoom: float) -> torch.Tensor:
    """The photo magnified ``zoom`` times about its center (Lanczos), as a clip's camera
    with that zoom sees it from the photo's viewpoint."""
    if zoom == 1.0:
        return torch.from_numpy(rgb)
    h, w = rgb.shape[:2]
    ch, cw = h / zoom, w / zoom
    box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
    return torch.from_numpy(np.array(Image.fromarray(rgb).resize((w, h), Image.Resampling.LANCZOS, box=box)))


def score(photo_rgb: np.ndarray, frames: torch.Tensor, rest: torch.Tensor, zoom: float) -> dict:
    """Scores of moving frames (module doc). Outliers are counted against the rest frame
    (the renderer at the photo's own viewpoint and the clip's zoom), so what the ratio
    shows is what the motion adds; sharpness is measured against the photo itself, zoomed
    like the clip (Lanczos), so a renderer that blurs fails it even at rest."""
    photo = zoomed_photo(photo_rgb, zoom)
    y_photo, y_rest, y = luma(photo)[None], luma(rest)[None], luma(frames)
    base = float(outlier_map(y_rest).float().mean())
    share = outlier_map(y).float().mean((1, 2))
    return {
        "photo_outliers": float(outlier_map(y_photo).float().mean()),
        "rest_outliers": base,
        "outliers": float(share.mean()),
        "ratio": float(share.mean()) / max(base, 1e-6),
        "ratio_worst": float(share.max()) / max(base, 1e-6),
        "sharpness": float(gradient(y).mean() / gradient(y_photo)[0]),
        "flicker": flicker(y),
    }


def save_sheet(folder: Path, name: str, layers: int, frames: torch.Tensor, crops: int = 3, size: int = 96) -> None:
    """The frame with the most outliers, whole, and 4x crops around its densest outlier
    spots, for people to look at."""
    folder.mkdir(parents=True, exist_ok=True)
    y = luma(frames)
    out = outlier_map(y).float()
    worst = int(out.mean((1, 2)).argmax())
    frame = frames[worst].numpy()
    Image.fromarray(frame).save(folder / f"{name}-L{layers}-frame.png")
    density = F.avg_pool2d(out[worst][None, None], size, stride=size // 2)[0, 0]
    tiles = []
    for _ in range(crops):
        k = int(density.argmax())
        ty, tx = divmod(k, density.shape[1])
        density[max(0, ty - 1):ty + 2, max(0, tx - 1):tx + 2] = -1
        y0, x0 = ty * (size // 2), tx * (size // 2)
        tile = frame[y0:y0 + size, x0:x0 + size]
        tiles.append(np.asarray(Image.fromarray(tile).resize((size * 4, size * 4), Image.Resampling.NEAREST)))
    Image.fromarray(np.concatenate(tiles, 1)).save(folder / f"{name}-L{layers}-crops.png")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", nargs="+", default=list(PHOTOS))
    ap.add_argument("--path", default="circle")
    ap.add_argument("--amount", type=float, default=1.5)
    ap.add_argument("--depth", default="cues")
    ap.add_argument("--frames", type=int, default=24, help="frames evenly spread over the path (default 24)")
    ap.add_argument("--layers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--kernels", default="torch")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sheet", type=Path, help="write the worst frame and crops per photo here")
    args = ap.parse_args(argv)
    options = ClipOptions.from_flat({"preset": args.path, "amount": args.amount, "depth": args.depth,
                                     "kernels": args.kernels, "device": "cpu", "duration": 4.0, "fps": 30.0})
    rows = []
    print(f"{'photo':14} {'L':>2} {'size':>9} {'band':>5} {'ldi s':>6} {'ms/fr':>6} {'photo%':>7} "
          f"{'rest%':>7} {'ratio':>6} {'worst':>6} {'sharp':>6} {'flick%':>7}")
    for name in args.photos:
        photo, source = photo_named(name)
        for layers in args.layers:
            frames, t = render_photo(photo, options, layers, args.frames)
            s = score(t["plan"].rgb, frames, t["rest"], t["zoom"])
            row = {"photo": name, "source": source, "layers": layers, "size": list(t["plan"].size),
                   "band": t["band"], "ldi_s": t["ldi_s"], "render_ms": t["render_ms"], **s}
            rows.append(row)
            print(f"{name:14} {layers:>2} {'x'.join(map(str, row['size'])):>9} {row['band']:>5} {row['ldi_s']:6.2f} "
                  f"{row['render_ms']:6.0f} {100 * s['photo_outliers']:7.3f} {100 * s['rest_outliers']:7.3f} {s['ratio']:6.2f} {s['ratio_worst']:6.2f} "
                  f"{s['sharpness']:6.3f} {100 * s['flicker']:7.3f}", flush=True)
            if args.sheet:
                save_sheet(args.sheet, name, layers, frames)
    if args.json:
        args.json.write_text(json.dumps({"options": vars(args) | {"json": str(args.json), "sheet": str(args.sheet)},
                                         "rows": rows}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
