"""Cutout quality on ray-cast scenes with exact soft masks (photo3d_fast/synthetic/subjects.py)
and a contact sheet of cutouts over a checkerboard.

For each scene: mask IoU and boundary F-score (2 px) of alpha > 0.5 against the subject's
coverage > 0.5, and the mean absolute alpha error, for the subject from the exact depth
(depth-true), from the embedded cue depth (depth-cues), from U^2-Net-p alone (when
photo3d_fast[matte] is installed), and both fused. Then two "hairy" scenes (poles under a
pixel wide on a sphere): the alpha error on their fractional pixels, matte against the
coarse 0/1 mask.

    python bench/matte.py [--seeds 6] [--sheet bench/out/matte_sheet.png]
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from photo3d_fast.depth import estimate_disparity  # noqa: E402
from photo3d_fast.effects import matte as M  # noqa: E402
from photo3d_fast.effects import salient as S  # noqa: E402
from photo3d_fast.synthetic.subjects import (  # noqa: E402
    boundary_f, hairy_scene, mask_iou, render_subject, subject_scene)


def checker(h: int, w: int, cell: int = 12) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(np.float32)
    return (150 + 80 * board)[..., None].repeat(3, 2)


def over_checker(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float32) / 255.0
    out = a * rgba[..., :3].astype(np.float32) + (1 - a) * checker(*rgba.shape[:2])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--sheet", type=Path, default=Path("bench/out/matte_sheet.png"))
    args = ap.parse_args()
    have_model = S.u2netp_path() is not None
    methods = [("depth-true", "depth", True), ("depth-cues", "depth", False)]
    if have_model:
        methods += [("u2netp", "u2netp", None), ("fused-true", "auto", True), ("fused-cues", "auto", False)]
    scores: dict[str, list] = {m[0]: [] for m in methods}
    rows = []
    for seed in range(args.seeds):
        scene, subject = subject_scene(seed)
        rgb, disparity, truth, _ = render_subject(scene, subject)
        cues, _ = estimate_disparity(rgb, "cues")
        t = truth > 0.5
        line = [f"seed {seed} {scene.kind:15s}"]
        for name, model, exact in methods:
            t0 = time.perf_counter()
            alpha = M.matte_array(rgb, None if exact is None else (disparity if exact else cues), model)
            s = (mask_iou(alpha > 0.5, t), boundary_f(alpha > 0.5, t), float(np.abs(alpha - truth).mean()))
            scores[name].append(s)
            line.append(f"{name} IoU {s[0]:.3f} F {s[1]:.3f} MAE {100 * s[2]:.2f}% ({time.perf_counter() - t0:.1f} s)")
            if name == ("fused-cues" if have_model else "depth-true") and seed < 3:
                rows.append(np.concatenate([rgb, over_checker(M.cutout_rgba(rgb, alpha))], 1))
        print(" | ".join(line), flush=True)
    # Hair: a sphere with poles 0.3-1 px wide standing on it, from the exact depth.
    for seed in range(2):
        scene, ids = hairy_scene(seed)
        rgb, disparity, truth, _ = render_subject(scene, ids)
        hair = (truth > 0.02) & (truth < 0.98)
        coarse = M.matte_array(rgb, disparity, "depth", refine=False)
        alpha = M.matte_array(rgb, disparity, "depth")
        iou, iou_coarse = mask_iou(alpha > 0.5, truth > 0.5), mask_iou(coarse > 0.5, truth > 0.5)
        print(f"hairy {seed}: IoU {iou:.3f} (coarse {iou_coarse:.3f}), "
              f"alpha error on fractional pixels {np.abs(alpha - truth)[hair].mean():.3f} "
              f"(coarse mask {np.abs(coarse - truth)[hair].mean():.3f}), "
              f"{100 * ((alpha[hair] > 0.05) & (alpha[hair] < 0.95)).mean():.0f}% of them fractional")
        if seed == 0:
            rows.append(np.concatenate([rgb, over_checker(M.cutout_rgba(rgb, alpha))], 1))
    print("mean over scenes:")
    for name, s in scores.items():
        a = np.array(s)
        print(f"  {name:10s} IoU {a[:, 0].mean():.3f} (min {a[:, 0].min():.3f})  F {a[:, 1].mean():.3f} "
              f"(min {a[:, 1].min():.3f})  alpha MAE {100 * a[:, 2].mean():.2f}%")
    # The bundled photo, at the same width as the scenes' rows.
    from photo3d_fast.io import load_image
    from photo3d_fast.pipeline import SAMPLE_IMAGE

    photo = load_image(SAMPLE_IMAGE).rgb
    disp, _ = estimate_disparity(photo, "cues")
    alpha = M.matte_array(photo, disp, "auto")
    coffee = np.concatenate([photo, over_checker(M.cutout_rgba(photo, alpha))], 1)
    width = rows[0].shape[1]
    coffee = np.asarray(Image.fromarray(coffee).resize((width, round(coffee.shape[0] * width / coffee.shape[1])),
                                                       Image.Resampling.LANCZOS))
    args.sheet.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([*rows, coffee], 0)).save(args.sheet)
    print(f"wrote {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
