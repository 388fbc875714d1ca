"""Render quality against exact ground truth, and depth accuracy of every depth backend.

    python bench/quality.py [--quick] [--json out.json] [--frames-dir DIR]   (this module's main)

Novel views. For each scene (photo3d_fast.synthetic.make_scene) the ray caster renders the
reference photo and its true z-depth at the identity pose; our renderer builds an LDI from
that true depth (so every error below is the renderer's, not a depth model's) and renders
a few frames evenly spaced along each preset path; the ray caster renders the true views
of the same cameras (with the path's per-frame zoom). Frame 0 (the identity) is left out.

Masks, over the novel view's pixels (synthetic.visibility / near_depth_edges):
- disocc: the true surface point is hidden from the reference camera behind geometry:
  what the LDI's back layer exists for;
- border: it lies outside the reference image (the frame edge after a lateral move or
  zoom-out), which only hole filling can invent;
- edges: within 3 px of a depth discontinuity of the true novel depth.

PSNR is pooled: one mean squared error over all pixels of the mask in all frames of the
row, so a row's PSNR is not dominated by a frame with a handful of masked pixels. SSIM
(11x11 gaussian window, sigma 1.5, on RGB in [0, 1], mean over channels and the valid
window positions) is averaged over frames. "%" columns are mean fractions of the image.
Each configuration runs with layers=1 (front layer only) and layers=2 (with the back
layer), so the back layer's value shows in the disocc column.

Depth. Each depth backend available here (depth.local_depth_methods) estimates disparity from the
same ray-cast photos; its prediction is aligned to the true disparity 1/z by least squares
in disparity space (scale and shift, the ambiguity of a relative-depth model), turned back
into depth, and compared with the true z-depth: AbsRel = mean |z - z*| / z*, and
delta<1.25 = fraction of pixels with max(z / z*, z* / z) < 1.25.

Not a test: it prints tables (and writes JSON with --json). Default: 640x480, all scene
kinds, seed 0, 8 frames per path (under 2 minutes on 2 CPU cores); --quick: 320x240,
4 frames (about 10 s). More seeds: --seeds 0 1 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import KERNEL_CHOICES, parse_size
from ..depth import estimate_disparity, local_depth_methods
from ..device import resolve_device
from ..errors import Photo3DError
from ..render import Renderer
from ..scene import ldi as ldi_mod
from ..scene.camera import zoom_intrinsics
from ..scene.paths import PRESETS, default_focus, preset_path
from ..synthetic import KINDS, make_scene, near_depth_edges, reference_camera, visibility
from .timing import environment

#: Frames of the whole path the benchmark frames are picked from (a 2 s clip at 24 fps).
PATH_FRAMES = 48
MASKS = ("all", "disocc", "edges", "border")


# ------------------------------------------------------------------------- metrics


def _gaussian(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(a: np.ndarray, b: np.ndarray, window: int = 11, sigma: float = 1.5) -> float:
    """Mean SSIM (Wang et al. 2004) of two (H, W, 3) uint8 images, per channel in [0, 1],
    gaussian window, no padding (valid positions only), averaged over channels."""
    x = torch.from_numpy(a).permute(2, 0, 1).float() / 255.0
    y = torch.from_numpy(b).permute(2, 0, 1).float() / 255.0
    g = _gaussian(window, sigma)
    stats = torch.cat([x, y, x * x, y * y, x * y], 0)[None]  # (1, 15, H, W)
    n = stats.shape[1]
    # Separable and depthwise (groups = channels): several times faster on CPU than a
    # dense 11x11 or a batched single-channel 1-D convolution.
    stats = F.conv2d(stats, g.view(1, 1, 1, -1).expand(n, 1, 1, window), groups=n)
    stats = F.conv2d(stats, g.view(1, 1, -1, 1).expand(n, 1, window, 1), groups=n)[0]
    c1, c2 = 0.01**2, 0.03**2
    mx, my, xx, yy, xy = stats.chunk(5, 0)
    sxx, syy, sxy = xx - mx * mx, yy - my * my, xy - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return float(s.double().mean())


def psnr_from(sse: float, count: int) -> float:
    """PSNR in dB of a pooled sum of squared errors over ``count`` values (uint8 scale);
    nan when the mask was empty, inf when the error is zero."""
    if count == 0:
        return math.nan
    mse = sse / count
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def align_disparity(pred: np.ndarray, true_depth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """z-depth (H, W) float64 from a relative disparity ``pred`` (H, W), aligned to the true
    disparity 1 / true_depth by least squares (scale s, shift t: min sum (s pred + t - 1/z*)^2
    over ``mask``, default every finite positive true depth). Aligned disparities are
    clamped to at least half the smallest true disparity, so a prediction that goes
    negative reads as a far (not infinite or negative) depth."""
    z = np.asarray(true_depth, np.float64)
    valid = np.isfinite(z) & (z > 0) if mask is None else mask
    d = np.asarray(pred, np.float64)
    target = 1.0 / z[valid]
    A = np.stack([d[valid], np.ones(int(valid.sum()))], 1)
    (s, t), *_ = np.linalg.lstsq(A, target, rcond=None)
    aligned = np.maximum(s * d + t, 0.5 * target.min())
    return 1.0 / aligned


def depth_errors(pred_disparity: np.ndarray, true_depth: np.ndarray) -> dict:
    """AbsRel and delta<1.25 of a relative disparity against true z-depth (H, W), after
    scale-and-shift alignment in disparity space (``align_disparity``), over the pixels
    whose true depth is finite and positive. A perfect disparity up to any affine map
    gives AbsRel 0 and delta 1."""
    z = np.asarray(true_depth, np.float64)
    valid = np.isfinite(z) & (z > 0)
    zp = align_disparity(pred_disparity, z, valid)[valid]
    zt = z[valid]
    ratio = np.maximum(zp / zt, zt / zp)
    return {"absrel": float(np.mean(np.abs(zp - zt) / zt)), "delta1": float(np.mean(ratio < 1.25)),
            "pixels": int(valid.sum())}


# ------------------------------------------------------------------------ the run


def sample_frames(n_path: int, n: int) -> list[int]:
    """``n`` frame indices evenly spaced along a path of ``n_path`` frames, frame 0 excluded."""
    return sorted({int(round(i)) for i in np.linspace(0, n_path - 1, n + 1)[1:]})


def evaluate_view(scene, renderers: dict, pose: np.ndarray, K_f: np.ndarray, ref_K: np.ndarray,
                  size: tuple[int, int]) -> tuple[np.ndarray, dict, dict[int, np.ndarray], dict[int, dict]]:
    """Render one camera (pose (4, 4) camera-to-world, K_f (3, 3)) with each renderer
    (layers -> Renderer) and compare with the ray-cast truth.

    Returns (truth (H, W, 3) uint8, masks name -> (H, W) bool, renders layers -> uint8
    image, metrics layers -> {"ssim", "sse_<mask>", "n_<mask>"})."""
    hits = scene.cast(pose, K_f, size)
    truth, true_depth, _ = scene.images(hits, size)
    vis = visibility(scene, pose, K_f, size, ref_K=ref_K, ref_size=size, hits=hits)
    masks = {
        "all": np.ones(truth.shape[:2], bool),
        "disocc": vis.occluded,
        "edges": near_depth_edges(true_depth, radius=3),
        "border": vis.outside,
    }
    outs, metrics = {}, {}
    for L, renderer in renderers.items():
        out = renderer.render(pose, K_f, size).cpu().numpy()
        outs[L] = out
        se = ((out.astype(np.float64) - truth) ** 2).mean(-1)
        m = {"ssim": ssim(out, truth)}
        for name, mask in masks.items():
            m[f"sse_{name}"] = float(se[mask].sum())
            m[f"n_{name}"] = int(mask.sum())
        metrics[L] = m
    return truth, masks, outs, metrics


def run(size: tuple[int, int], kinds: list[str], seeds: list[int], presets: list[str], n_frames: int,
        amount: float, layer_set: list[int], kernels: str, frames_dir: Path | None) -> list[dict]:
    """One record per (kind, seed, preset, layers, frame)."""
    device = resolve_device("auto")
    K = reference_camera(size)
    eye = np.eye(4)
    records = []
    for kind in kinds:
        for seed in seeds:
            scene = make_scene(seed, kind)
            image, depth, _ = scene.render(eye, K, size)
            # As the pipeline does: near = 1st percentile of depth, focus at the median disparity.
            near, focus = float(np.percentile(depth, 1.0)), default_focus(depth)
            for preset in presets:
                path = preset_path(preset, PATH_FRAMES, amount, near, focus)
                band, edge = ldi_mod.ldi_params_for_motion(K, depth, path.max_translation(), size)
                renderers = {
                    L: Renderer(ldi_mod.build_ldi(image, depth, K, layers=L, band=band, edge_disparity=edge,
                                                  device=device), kernels)
                    for L in layer_set
                }
                picks = sample_frames(PATH_FRAMES, n_frames)
                for fi in picks:
                    pose, zoom = path.poses[fi], float(path.zoom[fi])
                    K_f = zoom_intrinsics(K, zoom, size)
                    truth, masks, outs, metrics = evaluate_view(scene, renderers, pose, K_f, K, size)
                    for L, m in metrics.items():
                        records.append({
                            "kind": kind, "seed": seed, "preset": preset, "layers": L, "frame": fi,
                            "zoom": zoom, "translation": float(np.linalg.norm(pose[:3, 3])), "band": band, **m,
                        })
                    if frames_dir is not None and fi == _widest(path, picks):
                        _save_panel(frames_dir / f"{kind}_s{seed}_{preset}_f{fi}.png", truth, outs, masks)
    return records


def depth_accuracy(size: tuple[int, int], kinds: list[str], seeds: list[int],
                   methods: list[str] | None = None) -> tuple[list[dict], list[str]]:
    """Depth accuracy of each backend on the ray-cast photos of (kind, seed).

    Returns (rows: one per method with mean AbsRel, mean delta<1.25 over scenes, scenes,
    seconds per image; notes on backends that could not run)."""

    methods = methods or local_depth_methods()  # never a download inside a benchmark
    K = reference_camera(size)
    photos = []
    for kind in kinds:
        for seed in seeds:
            image, depth, _ = make_scene(seed, kind).render(np.eye(4), K, size)
            photos.append((kind, image, depth))
    rows, notes = [], []
    for method in methods:
        per_scene, seconds = [], []
        try:
            for kind, image, depth in photos:
                t0 = time.perf_counter()
                disparity, _ = estimate_disparity(image, method)
                seconds.append(time.perf_counter() - t0)
                per_scene.append({"kind": kind, **depth_errors(disparity, depth)})
        except Photo3DError as e:
            notes.append(f"depth {method}: unavailable ({e})")
            continue
        rows.append({"method": method, "absrel": float(np.mean([r["absrel"] for r in per_scene])),
                     "delta1": float(np.mean([r["delta1"] for r in per_scene])), "scenes": len(per_scene),
                     "s_per_image": float(np.median(seconds)), "per_scene": per_scene})
    return rows, notes


def _widest(path, picks: list[int]) -> int:
    """The picked frame farthest from the photo's camera (largest translation, then zoom change)."""
    return max(picks, key=lambda i: (np.linalg.norm(path.poses[i, :3, 3]), abs(1 - path.zoom[i])))


def _save_panel(file: Path, truth: np.ndarray, outs: dict[int, np.ndarray], masks: dict[str, np.ndarray]) -> None:
    """truth | render per layer count | |error| x4 of the last | masks (R disocc, G border, B edges)."""
    from PIL import Image

    file.parent.mkdir(parents=True, exist_ok=True)
    last = outs[max(outs)]
    err = np.clip(np.abs(last.astype(np.int16) - truth) * 4, 0, 255).astype(np.uint8)
    m = (np.stack([masks["disocc"], masks["border"], masks["edges"]], -1) * 255).astype(np.uint8)
    Image.fromarray(np.concatenate([truth, *outs.values(), err, m], 1)).save(file)
    for L, out in outs.items():
        Image.fromarray(out).save(file.with_name(file.stem + f"_L{L}.png"))
    Image.fromarray(truth).save(file.with_name(file.stem + "_truth.png"))


def summarize(records: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """Pool records by ``keys``: pooled PSNR per mask, mean SSIM, mean mask fractions."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    rows = []
    for key, rs in groups.items():
        row = dict(zip(keys, key))
        for m in MASKS:
            row[f"psnr_{m}"] = psnr_from(sum(r[f"sse_{m}"] for r in rs), sum(r[f"n_{m}"] for r in rs))
        row["ssim"] = float(np.mean([r["ssim"] for r in rs]))
        n_all = sum(r["n_all"] for r in rs)
        row["pct_disocc"] = 100.0 * sum(r["n_disocc"] for r in rs) / n_all
        row["pct_border"] = 100.0 * sum(r["n_border"] for r in rs) / n_all
        row["frames"] = len(rs)
        rows.append(row)
    return rows


def _fmt(x: float) -> str:
    return "    -" if math.isnan(x) else ("  inf" if math.isinf(x) else f"{x:5.1f}")


def print_table(rows: list[dict], lead: tuple[str, ...], file=None) -> None:
    head = "".join(f"{k:<9}" for k in lead) + "  L  psnr:all disocc edges border   ssim  %disocc %border"
    print(head, file=file)
    print("-" * len(head), file=file)
    for r in rows:
        print(
            "".join(f"{str(r.get(k, 'all')):<9}" for k in lead)
            + f"  {r['layers']}      {_fmt(r['psnr_all'])}  {_fmt(r['psnr_disocc'])} {_fmt(r['psnr_edges'])}"
            + f"  {_fmt(r['psnr_border'])}  {r['ssim']:.4f}  {r['pct_disocc']:6.2f}  {r['pct_border']:6.2f}",
            file=file,
        )


def print_depth_table(rows: list[dict], notes: list[str], file=None) -> None:
    print("depth     AbsRel  d<1.25  scenes  s/image   (scale+shift aligned in disparity)", file=file)
    print("-" * 75, file=file)
    for r in rows:
        print(f"{r['method']:<9} {r['absrel']:6.3f}  {r['delta1']:6.3f}  {r['scenes']:6d}  {r['s_per_image']:7.3f}",
              file=file)
    for n in notes:
        print(n, file=file)


def finite(x):
    """JSON has no nan/inf: empty masks (nan) and exact matches (inf) become null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


def quality_suite(size: tuple[int, int], kinds: list[str], seeds: list[int], presets: list[str], n_frames: int,
                  amount: float = 1.0, kernels: str = "auto", frames_dir: Path | None = None) -> dict:
    """Everything this module measures, as one dict (the JSON payload minus env)."""
    t0 = time.perf_counter()
    records = run(size, kinds, seeds, presets, n_frames, amount, [1, 2], kernels, frames_dir)
    depth_rows, depth_notes = depth_accuracy(size, kinds, seeds)
    return {"size": list(size), "frames_per_path": n_frames, "amount": amount, "seeds": seeds, "kinds": kinds,
            "presets": presets, "elapsed_s": time.perf_counter() - t0,
            "summary": summarize(records, ("preset", "kind", "layers")),
            "by_preset": summarize(records, ("preset", "layers")), "by_layers": summarize(records, ("layers",)),
            "depth": depth_rows, "depth_notes": depth_notes, "records": records}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/quality.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="320x240, 4 frames per path (< 30 s)")
    ap.add_argument("--json", type=Path, help="write records and summaries here")
    ap.add_argument("--frames-dir", type=Path, help="save truth/render/error PNGs of the widest frame per path")
    ap.add_argument("--size", type=str, help="WxH (default 640x480, 320x240 with --quick)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    ap.add_argument("--presets", nargs="+", default=list(PRESETS), choices=PRESETS)
    ap.add_argument("--frames", type=int, help="frames per path (default 8, 4 with --quick)")
    ap.add_argument("--amount", type=float, default=1.0, help="path amount (parallax strength)")
    ap.add_argument("--kernels", default="auto", choices=KERNEL_CHOICES)
    args = ap.parse_args(argv)

    if args.size:
        try:
            size = parse_size(args.size)
        except Photo3DError as e:
            print(f"--size {e}", file=sys.stderr)
            return 2
    else:
        size = (320, 240) if args.quick else (640, 480)
    n_frames = args.frames or (4 if args.quick else 8)

    env = environment(resolve_device("auto"))
    result = quality_suite(size, args.kinds, args.seeds, args.presets, n_frames, args.amount, args.kernels,
                           args.frames_dir)
    print(f"\nrender quality vs exact ray-cast truth, {size[0]}x{size[1]}, {n_frames} frames/path, "
          f"amount {args.amount:g}, seeds {args.seeds}")
    print(f"device {env['device']}, torch {env['torch']}, numpy {env['numpy']}, commit {env['commit']}, "
          f"{result['elapsed_s']:.0f} s\n")
    print_table(result["summary"], ("preset", "kind"))
    print()
    print_table(result["by_preset"], ("preset", "kind"))
    print()
    print_table(result["by_layers"], ())
    print()
    print_depth_table(result["depth"], result["depth_notes"])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"env": env, **result}
        args.json.write_text(json.dumps(finite(payload), indent=1))
        print(f"\nwrote {args.json}")
    return 0
