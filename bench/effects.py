"""Cost of the depth effects per frame (ops ``dof`` and ``grade``, ``render.effects``), and the
refocus contact sheet.

    python bench/effects.py [--photo PATH] [--size 960x540] [--kernels torch] [--device cpu]
                            [--repeat 3] [--threads 1] [--json out.json] [--sheet bench/out/refocus_sheet.png]

The photo (default: the bundled coffee.jpg) is resized to --size (center crop), its depth
estimated by the cue estimator (``--depth cues``) and mapped to the default near..far. Then,
median wall and CPU times over --repeat runs (after one warm-up) of one frame, in ms (on a
GPU, --device cuda: the wall time between synchronisations, the GPU's time):

- each op alone on the float frame: dof at f/2.8 and f/1.4 (the clip's CoC bound at this
  size, focus at the path's default focus depth), fog, falloff, vignette, all three graded
  in one call;
- the clip path: ``Renderer`` frames of the photo's LDI without effects, with a vignette
  only (no depth render), and with --dof 2.8 --fog 0.2 (the depth render, the sRGB <->
  linear conversions and both ops), so the table shows what each option adds per frame.

--sheet: the photo refocused (``effects.refocus.refocus_array``, f/1.4, 50 mm equivalent) at
the near, middle and far third of its depth range, beside the original. Not a test.
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

from photo3d_fast.config import DepthConfig, EffectsConfig, SceneConfig, parse_size
from photo3d_fast.depth import EngineOptions
from photo3d_fast.effects.refocus import refocus_array
from photo3d_fast.io import load_image
from photo3d_fast.ops.backends import select
from photo3d_fast.pipeline import SAMPLE_IMAGE, scene_depth
from photo3d_fast.render import Renderer
from photo3d_fast.render.effects import CLIP_MAX_COC_SHARE, FrameEffects, aperture_px
from photo3d_fast.scene.camera import scene_intrinsics
from photo3d_fast.scene.ldi import build_ldi, ldi_params_for_motion
from photo3d_fast.scene.paths import default_focus


def _sync() -> None:
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _timed(fn, repeat: int) -> tuple[float, float]:
    """(wall ms, CPU ms of this process) of fn, medians over ``repeat`` runs after a warm-up.
    On a shared machine the CPU time is the steadier number; wall = CPU / threads only
    when the cores are free. On a GPU the wall time spans the work (synchronised)."""
    fn()
    _sync()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        _sync()
        wall.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
    return statistics.median(wall), statistics.median(cpu)


def _cover(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """rgb scaled to cover (W, H) and centre-cropped."""
    h, w = rgb.shape[:2]
    s = max(size[0] / w, size[1] / h)
    im = Image.fromarray(rgb).resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
    x0, y0 = (im.width - size[0]) // 2, (im.height - size[1]) // 2
    return np.asarray(im.crop((x0, y0, x0 + size[0], y0 + size[1])))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=SAMPLE_IMAGE)
    ap.add_argument("--size", default="960x540")
    ap.add_argument("--kernels", default="torch")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steady numbers on a shared CPU)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--sheet", type=Path)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(args.threads)
    size = parse_size(args.size)
    rgb = _cover(load_image(args.photo).rgb, size).copy()
    w, h = size
    K, _ = scene_intrinsics(w, h, SceneConfig(), None)
    z, _ = scene_depth(rgb, DepthConfig("cues"), SceneConfig(), EngineOptions(fetch=False))
    focus = default_focus(z)
    dev = torch.device(args.device)
    color = (torch.from_numpy(rgb).float()[None] / 255.0).to(dev)
    depth = torch.from_numpy(z)[None].to(dev)
    Ks = torch.as_tensor(K, dtype=torch.float32)[None].to(dev)
    dof_name, dof = select("dof", args.kernels, dev)
    _, grade = select("grade", args.kernels, dev)
    max_coc = max(8.0, CLIP_MAX_COC_SHARE * max(size))
    rows: dict[str, tuple[float, float]] = {}
    for n in (2.8, 1.4):
        a = aperture_px(float(K[0, 0]), size, n)
        coc = a * np.abs(1.0 / focus - 1.0 / z)
        print(f"f/{n}: CoC diameter px: median {np.median(coc):.1f}, 99th pct {np.percentile(coc, 99):.1f} "
              f"(bound {max_coc:.0f})")
        rows[f"dof f/{n}"] = _timed(lambda: dof.depth_of_field(color, depth, focus, a, max_coc=max_coc), args.repeat)
    rows["fog"] = _timed(lambda: grade.grade(color, depth, Ks, fog_density=0.2, fog_color=(0.8, 0.8, 0.8)), args.repeat)
    rows["falloff"] = _timed(lambda: grade.grade(color, depth, Ks, falloff=2.0, falloff_ref=focus), args.repeat)
    rows["vignette"] = _timed(lambda: grade.grade(color, None, Ks, vignette=0.5), args.repeat)
    rows["fog+falloff+vignette"] = _timed(lambda: grade.grade(color, depth, Ks, fog_density=0.2, falloff=2.0,
                                                              falloff_ref=focus, vignette=0.5), args.repeat)
    band, edge = ldi_params_for_motion(K, z, 0.05, size)
    ldi = build_ldi(rgb, z, K, layers=2, band=band, edge_disparity=edge, device=dev, kernels="auto",
                    inpaint="classic")
    cams = (torch.eye(4, device=dev)[None], Ks)
    for label, cfg in (("frame, no effects", None), ("frame, --vignette 0.5", EffectsConfig(vignette=0.5)),
                       ("frame, --dof 2.8 --fog 0.2", EffectsConfig(dof=2.8, fog="0.2"))):
        fx = None if cfg is None else FrameEffects(cfg, focus, 1, size, args.kernels, dev)
        renderer = Renderer(ldi, "auto", 1, fx)
        rows[f"{label} (splat {renderer.kernels})"] = _timed(lambda: renderer._frames(*cams, size), args.repeat)
    print(f"\n{w}x{h} on {dev}, {torch.get_num_threads()} torch threads, ops: {dof_name}; "
          f"ms per frame (median of {args.repeat})")
    print(f"  {'':<42} {'wall':>9} {'CPU':>9}")
    for k, (wall, cpu) in rows.items():
        print(f"  {k:<42} {wall:9.1f} {cpu:9.1f}")
    if args.json:
        args.json.write_text(json.dumps({"size": size, "kernels": dof_name, "threads": args.threads,
                                         "ms_wall_cpu": rows}, indent=1))
    if args.sheet:
        full = load_image(args.photo).rgb
        fh, fw = full.shape[:2]
        Kf, _ = scene_intrinsics(fw, fh, SceneConfig(), None)
        zf, _ = scene_depth(full, DepthConfig("cues"), SceneConfig(), EngineOptions(fetch=False))
        lo, hi = np.percentile(zf, [2, 98])
        tiles = [full]
        for t in (0.0, 0.5, 1.0):
            fd = float(1.0 / ((1 - t) / lo + t / hi))  # evenly in disparity, as the blur goes
            tiles.append(refocus_array(full, zf, Kf, fd, 1.4, 50.0, kernels=args.kernels))
            print(f"sheet: focus at z={fd:.2f}")
        sheet = np.concatenate([np.concatenate(tiles[:2], 1), np.concatenate(tiles[2:], 1)], 0)
        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(sheet).save(args.sheet)
        print(f"wrote {args.sheet} (original | near; middle | far)")


if __name__ == "__main__":
    main()
