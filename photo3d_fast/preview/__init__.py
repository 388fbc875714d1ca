"""``photo3d preview``: pick the motion of a clip in a browser, export it with the renderer.

The server (``server.py``, aiohttp, the ``[preview]`` extra) maps requests onto a
``previewer.Previewer``, which computes depth and the LDI of a photo once, as an export
builds it (the page's fov, depth, inpaint and clean_depth); the page (``static/``: no
build step, nothing loaded from elsewhere) renders that LDI in WebGL2 at display rate
with the renderer's own splatting, resolve, silhouette blending and hole fill (op
``splat``), so it shows the export's frames. Camera poses of a path come from the server (``pipeline.plan_clip``, as
``render_into`` uses it), so the page shows the motion the export renders. Export runs
``clip.write_clip`` in a background job (``jobs.py``). Options are checked by
``options.py``; photos and the ``--folder`` settings manifest are ``photos.py``'s.
Without WebGL2 the page asks the server for frames over a WebSocket (the same
``Renderer``).

This module imports nothing heavy: the CLI adds its parser from here and the server is
imported only when the command runs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import KERNEL_CHOICES

DEFAULT_PORT = 8765


def add_parser(sub) -> argparse.ArgumentParser:
    """Add the ``preview`` subcommand to the CLI's subparsers."""
    p = sub.add_parser(
        "preview",
        help="choose the motion in a browser (WebGL2 live preview), then export the clip",
        description="Serve a page on this machine that renders the photo's layered depth image live "
                    "while you drag the camera or pick a path, and exports the chosen clip with the "
                    "same renderer as `photo3d render`. Needs the [preview] extra (aiohttp).",
        epilog="examples:\n  photo3d preview photo.jpg\n  photo3d preview --sample --port 9000\n"
               "  photo3d preview --folder photos/   # tune several photos; saves photos/photo3d_manifest.jsonl "
               "for `photo3d batch`",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("image", nargs="?", type=Path, help="the photo")
    p.add_argument("--sample", action="store_true", help="use the photo bundled with photo3d_fast")
    p.add_argument("--folder", type=Path, metavar="DIR", help="browse and tune every photo in DIR (and below)")
    p.add_argument("--manifest", type=Path, metavar="FILE.jsonl",
                   help="where --folder saves per-photo settings (default DIR/photo3d_manifest.jsonl)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default %(default)s: this machine only; the page has no login)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)d; 0 picks a free one)")
    p.add_argument("--max-side", type=int, default=1024,
                   help="longer side of the LDI sent to the browser, pixels (default %(default)d); export uses full resolution")
    p.add_argument("--kernels", default="auto", choices=KERNEL_CHOICES,
                   help="renderer for export and server-side frames (default auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("-q", "--quiet", action="store_true", help="no request log")
    p.set_defaults(handler=_run)
    return p


def _run(args: argparse.Namespace) -> None:
    from .server import serve

    serve(args)
