"""Time of ``photo3d export`` per stage and format, per megapixel of the photo.

    python bench/export.py [--photo PATH] [--heights 400 1080] [--depth cues] [--max-faces 500000]
                           [--repeat 3] [--json out.json]

The photo (default: the bundled coffee.jpg, 600x400) is resized to each height (aspect
kept; its own height is not resized), its depth estimated (``--depth cues`` by default) and
its LDI built once as ``export_scene`` builds it (``export.export_ldi``: the default
path's band and edge threshold, classic inpainting); then, per format, the median over
--repeat runs (after one warm-up) of the mesh (``scene.mesh.build_mesh``) and of writing
the files (``export.write_scene``, which builds the mesh again: the "write" column is the
whole export of an LDI, mesh included). Prints one row per height and format: the faces
and the quadtree's top block size, ms and ms per megapixel of the photo. Not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
from PIL import Image

from photo3d_fast.config import ClipOptions, ExportConfig
from photo3d_fast.export import FORMATS, export_ldi, write_scene
from photo3d_fast.io import Photo, load_image
from photo3d_fast.pipeline import SAMPLE_IMAGE, prepare_photo
from photo3d_fast.scene.mesh import build_mesh


def median_ms(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=SAMPLE_IMAGE)
    ap.add_argument("--heights", type=int, nargs="+", default=[400, 1080])
    ap.add_argument("--depth", default="cues")
    ap.add_argument("--max-faces", type=int, default=ExportConfig.max_faces)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    photo = load_image(args.photo)
    opts = ClipOptions.from_flat({"depth": args.depth, "inpaint": "classic", "offline": True, "kernels": "auto"})
    rows = []
    print(f"{'size':>10} {'MP':>5} {'format':>6} {'faces':>8} {'top':>4} {'depth ms':>9} {'LDI ms':>7} "
          f"{'mesh ms':>8} {'export ms':>10} {'export ms/MP':>13}")
    for height in args.heights:
        h0, w0 = photo.rgb.shape[:2]
        rgb = photo.rgb if height == h0 else np.asarray(
            Image.fromarray(photo.rgb).resize((round(w0 * height / h0), height), Image.Resampling.LANCZOS))
        sized = Photo(rgb, photo.exif_fov)
        t0 = time.perf_counter()
        prepared = prepare_photo(sized, args.photo.name, opts.scene, opts.depth)
        depth_ms = 1000 * (time.perf_counter() - t0)
        t0 = time.perf_counter()
        ldi = export_ldi(prepared, opts)
        ldi_ms = 1000 * (time.perf_counter() - t0)
        mp = rgb.shape[0] * rgb.shape[1] / 1e6
        mesh = build_mesh(ldi, args.max_faces)
        mesh_ms = median_ms(lambda: build_mesh(ldi, args.max_faces), args.repeat)
        with tempfile.TemporaryDirectory() as tmp:
            for suffix in FORMATS:
                config = ExportConfig(max_faces=args.max_faces)
                write_ms = median_ms(lambda: write_scene(ldi, Path(tmp) / f"scene{suffix}", config), args.repeat)
                row = {"size": f"{rgb.shape[1]}x{rgb.shape[0]}", "mp": mp, "format": suffix, "faces": len(mesh.faces),
                       "top": mesh.stride, "depth_ms": depth_ms, "ldi_ms": ldi_ms, "mesh_ms": mesh_ms,
                       "export_ms": write_ms, "export_ms_per_mp": write_ms / mp}
                rows.append(row)
                faces = "points" if suffix == ".ply" else str(row["faces"])
                print(f"{row['size']:>10} {mp:5.2f} {suffix:>6} {faces:>8} {row['top']:>4} {depth_ms:9.0f} "
                      f"{ldi_ms:7.0f} {mesh_ms:8.0f} {write_ms:10.0f} {write_ms / mp:13.0f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
