"""Side by side with a peer: the DepthFlow CLI (PyPI ``depthflow``, OpenGL) and ``photo3d
render`` on the same photo, the same depth map and the same clip settings.

Both run as child processes and are timed by wall clock from start to finished file, so
each pays its own start-up, image and depth-map reading, rendering and encoding. The
photo is the bundled sample fitted to the size; the depth map is our cue-based disparity
saved as a 16-bit PNG (white = near), which both read. Both encode with libx264 at
DepthFlow's defaults (preset slow, crf 20), 30 fps. The camera motion differs (each
tool's default animation; DepthFlow's shader cost per frame does not depend on it).

DepthFlow is used only as an installed program, in its own environment (e.g. a venv), so
it can never disturb ours; it wants an ``ffmpeg`` on PATH, for which the imageio-ffmpeg
binary is linked into a temporary directory.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..depth import estimate_disparity
from ..scene.camera import normalize_disparity
from .stages import size_label, write_photo


def _timed(cmd: list[str], env: dict, timeout: float) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    return time.perf_counter() - t0, proc


def _tail(text: str, n: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-n:])


def depthflow_side_by_side(exe: str, device: torch.device, size: tuple[int, int] = (960, 540),
                           seconds: float = 5.0, fps: float = 30.0, runs: int = 1, timeout: float = 900) -> dict:
    """Median wall seconds of DepthFlow and of photo3d over ``runs`` alternating runs, and
    their ratio (DepthFlow / photo3d: above 1 means photo3d is faster). On failure the
    record has "error": the command and what it said."""
    import imageio_ffmpeg
    from PIL import Image


    w, h = size
    result = {"name": "depthflow", "size": size_label(size), "frames": round(seconds * fps), "fps": fps,
              "x264": "preset slow, crf 20"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        photo = write_photo(size, tmp)
        rgb = np.asarray(Image.open(photo).convert("RGB"))
        disparity, _ = estimate_disparity(rgb, "cues")
        depth = tmp / "depth.png"
        Image.fromarray((normalize_disparity(disparity) * 65535.0 + 0.5).astype(np.uint16)).save(depth)
        bindir = tmp / "bin"
        bindir.mkdir()
        (bindir / "ffmpeg").symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
        env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
        peer_cmd = [exe, "input", "-i", str(photo), "-d", str(depth), "h264", "--preset", "slow", "--crf", "20",
                    "main", "-o", str(tmp / "peer.mp4"), "-w", str(w), "-h", str(h), "-f", f"{fps:g}",
                    "-t", f"{seconds:g}"]
        ours_cmd = [sys.executable, "-m", "photo3d_fast.cli", "render", str(photo), "-o", str(tmp / "ours.mp4"),
                    "--depth", str(depth), "--size", f"{w}x{h}", "--duration", f"{seconds:g}", "--fps", f"{fps:g}",
                    "--crf", "20", "--encoder-preset", "slow", "--device", str(device), "-q"]
        help_text = subprocess.run(ours_cmd[:5] + ["--help"], capture_output=True, text=True, env=env).stdout
        if "--encoder " in help_text or "--encoder\n" in help_text:
            ours_cmd += ["--encoder", "x264"]
        ours_env = {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2]),
                                                          env.get("PYTHONPATH", "")])}
        result["peer_command"] = " ".join(peer_cmd)
        result["ours_command"] = " ".join(ours_cmd)
        try:
            version = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env, timeout=120)
            result["version"] = _tail(version.stdout, 1)
        except (OSError, subprocess.SubprocessError) as e:
            return {**result, "error": f"cannot run {exe}: {e}"}
        peer_t, ours_t = [], []
        for _ in range(runs):
            t, proc = _timed(peer_cmd, env, timeout)
            if proc.returncode != 0 or not (tmp / "peer.mp4").exists():
                return {**result, "error": f"`{' '.join(peer_cmd)}` exited {proc.returncode}: {_tail(proc.stderr + proc.stdout)}"}
            peer_t.append(t)
            t, proc = _timed(ours_cmd, ours_env, timeout)
            if proc.returncode != 0:
                return {**result, "error": f"photo3d render exited {proc.returncode}: {_tail(proc.stderr)}"}
            ours_t.append(t)
    result.update(peer_s=statistics.median(peer_t), ours_s=statistics.median(ours_t), runs=runs,
                  peer_runs_s=peer_t, ours_runs_s=ours_t)
    result["ratio"] = result["peer_s"] / result["ours_s"]
    return result
