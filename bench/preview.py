"""Live preview benchmark: the page's frame time in headless Chromium, and server-side
interactive frames per second.

    python bench/preview.py [--sizes 720p,1080p] [--kernels torch,triton,cuda] [--reps 10]
                            [--max-side 1024] [--seconds 8] [--no-browser] [--json out.json]

Scene: the bundled photo (photo3d_fast/data/coffee.jpg), depth "auto", inpaint "auto",
clean depth on (the page's defaults), LDI of the preview at --max-side (what ``photo3d
preview`` sends the page and renders server frames from).

- server: ``Renderer.render`` of a swing pose at each output size, plus the JPEG encoding
  the WebSocket stream sends (quality 85), for each available kernel implementation;
  median and p90 over --reps after 2 warm-up frames (perf_counter; CUDA synchronised).
- page: the preview page in headless Chromium (``?measure=1``: each frame ends with a
  1-pixel readPixels, so "draw" includes the GPU's work). The page splats every valid
  texel of the LDI as the renderer does (two passes over the texels, a resolve and a hole
  fill per pixel); ``--splat quads`` measures its fallback for GPUs without large point
  sprites. Without a GPU, WebGL2 is SwiftShader (software), which says nothing about a
  real browser on a real GPU. Reports the median/p90 interval between displayed frames
  and the draw time over --seconds of the looping swing path, at the canvas size the
  page chose, the texels drawn and the bytes of the LDI's layers the page loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photo3d_fast.pipeline import SAMPLE_IMAGE  # noqa: E402
from photo3d_fast.preview.previewer import Previewer  # noqa: E402
from photo3d_fast.preview.server import make_app  # noqa: E402

SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080)}


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(__file__).parent, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True,
                               cwd=Path(__file__).parent).stdout.strip()
        return out + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def bench_server(previewer: Previewer, sizes: list[str], kernels: list[str], reps: int) -> list[dict]:
    import torch

    from photo3d_fast.preview.options import check_request, frame_camera
    from photo3d_fast.preview.server import CAMERA_FIELDS
    from photo3d_fast.scene.paths import preset_path
    from photo3d_fast.render import Renderer
    from photo3d_fast.scene.camera import scale_intrinsics

    sc = previewer.scene("coffee.jpg")
    pose = preset_path("swing", 8, 1.0, sc.near, sc.focus).poses[2]
    rows = []
    for kernel in kernels:
        try:
            renderer = Renderer(sc.ldi, kernel)
        except Exception as e:  # absent implementation: a row that says why
            rows.append({"kernels": kernel, "error": str(e).splitlines()[0]})
            continue
        for name in sizes:
            size = SIZES[name]
            K = scale_intrinsics(sc.ldi.K, sc.ldi.size, size)
            request = check_request({"image": "coffee.jpg", "c2w": pose.ravel().tolist(), "K": K.ravel().tolist(),
                                     "width": size[0], "height": size[1]}, own=CAMERA_FIELDS)
            previewer.scene("coffee.jpg").renderer = renderer
            times, render_times = [], []
            for i in range(reps + 2):
                t0 = time.perf_counter()
                frame = renderer.render(pose, K, size)
                if frame.is_cuda:
                    torch.cuda.synchronize()
                t1 = time.perf_counter()
                previewer.frame_jpeg(request.image, request.scene, *frame_camera(request.own))
                t2 = time.perf_counter()
                if i >= 2:
                    render_times.append((t1 - t0) * 1e3)
                    times.append((t2 - t1) * 1e3)  # frame_jpeg: render + JPEG, what the stream sends
            med = float(np.median(times))
            rows.append({"kernels": renderer.kernels, "size": name, "render_ms": float(np.median(render_times)),
                         "frame_ms": med, "frame_p90_ms": float(np.percentile(times, 90)), "fps": 1e3 / med,
                         "device": str(sc.ldi.device)})
            print(f"  server {renderer.kernels} {name}: {med:.1f} ms/frame", file=sys.stderr)
    return rows


async def bench_page(previewer: Previewer, seconds: float, splat: str = "points") -> dict:
    from aiohttp.test_utils import TestServer

    from photo3d_fast.preview.chromium import Chromium, find_chromium

    if find_chromium() is None:
        return {"error": "Chromium not installed"}
    app = make_app(previewer, close_on_cleanup=False)
    async with TestServer(app, host="127.0.0.1") as server:
        async with Chromium(f"http://127.0.0.1:{server.port}/?measure=1&splat={splat}", size=(1600, 900)) as page:
            await page.wait_for("window.preview && window.preview.ready && window.preview.frames > 3", timeout=180)
            version = await page.evaluate("navigator.userAgent")
            renderer = await page.evaluate(
                "(() => { const gl = document.createElement('canvas').getContext('webgl2');"
                " if (!gl) return 'no webgl2'; const x = gl.getExtension('WEBGL_debug_renderer_info');"
                " return x ? gl.getParameter(x.UNMASKED_RENDERER_WEBGL) : gl.getParameter(gl.RENDERER); })()")
            await page.evaluate("window.preview.frameTimes.length = 0; window.preview.drawTimes.length = 0")
            await asyncio.sleep(seconds)
            stats = await page.evaluate("window.preview.stats()")
            stats["canvas"] = await page.evaluate("window.preview.canvasSize")
            stats["ldi"] = [previewer.scene("coffee.jpg").ldi.size[0], previewer.scene("coffee.jpg").ldi.size[1]]
            stats["texels"] = await page.evaluate("window.preview.texels")
            stats["load_bytes"] = await page.evaluate("window.preview.loadBytes")
            stats["splat"] = splat
            stats["browser"] = version.split(")")[-1].strip()
            stats["gl_renderer"] = renderer
            return stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="720p,1080p")
    ap.add_argument("--kernels", default="torch,triton,cuda")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--max-side", type=int, default=1024)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--no-browser", action="store_true")
    ap.add_argument("--splat", choices=("points", "quads"), default="points",
                    help="how the page draws texels: point sprites (default) or its instanced-quad fallback")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    import torch

    previewer = Previewer(photo=SAMPLE_IMAGE, max_side=args.max_side)
    try:
        t0 = time.perf_counter()
        previewer.scene("coffee.jpg")
        ldi_s = time.perf_counter() - t0
        server = bench_server(previewer, args.sizes.split(","), args.kernels.split(","), args.reps)
        page = None if args.no_browser else asyncio.run(bench_page(previewer, args.seconds, args.splat))
    finally:
        previewer.close()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    meta = {"device": device, "torch": torch.__version__, "commit": _commit(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average": list(__import__("os").getloadavg()), "scene_ldi_s": ldi_s}
    print(f"\npreview benchmark: {meta['device']}, torch {meta['torch']}, commit {meta['commit']}, {meta['date']}, "
          f"load {meta['load_average'][0]:.2f}; depth + LDI of the page {ldi_s:.1f} s")
    print("\n| server frames (render + JPEG) | kernels | render ms | frame ms (p90) | fps |\n| --- | --- | --- | --- | --- |")
    for r in server:
        if "error" in r:
            print(f"| - | {r['kernels']} | n/a | n/a | {r['error']} |")
        else:
            print(f"| {r['size']} {SIZES[r['size']][0]}x{SIZES[r['size']][1]} | {r['kernels']} ({r['device']}) | "
                  f"{r['render_ms']:.1f} | {r['frame_ms']:.1f} ({r['frame_p90_ms']:.1f}) | {r['fps']:.2f} |")
    if page is not None:
        if "error" in page:
            print(f"\npage: {page['error']}")
        else:
            print("\n| page (WebGL2) | canvas | LDI (texels splatted) | layers loaded | frame ms median (p90) "
                  "| draw ms median (p90) | frames |\n| --- | --- | --- | --- | --- | --- | --- |")
            print(f"| {page['browser']}, {page['gl_renderer']} | {page['canvas'][0]}x{page['canvas'][1]} | "
                  f"{page['ldi'][0]}x{page['ldi'][1]}x2 ({page['texels']} as {page['splat']}) | "
                  f"{page['load_bytes'] / 1e6:.2f} MB | {page['frame_ms']:.1f} ({page['frame_p90_ms']:.1f}) | "
                  f"{page['draw_ms']:.1f} ({page['draw_p90_ms']:.1f}) | {page['frames']} |")
    if args.json:
        args.json.write_text(json.dumps({"meta": meta, "server": server, "page": page}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
