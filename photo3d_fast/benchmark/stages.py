"""One measurement per stage of the pipeline, on generated inputs.

Every function returns a row (a dict, see ``row``) or, for whole clips, a clip record.
Inputs are generated, so any machine measures the same work:

- the *photo* of decode, depth and the end-to-end clip is the bundled sample photo
  (coffee.jpg, a real photo) fitted (resized, center-cropped) to the size and saved as a
  JPEG of quality 95;
- the *scene* of the LDI and render rows is ``synthetic_scene``: random texture (so no
  cache or compression helps), a slanted floor and two boxes in front of a wall, about a
  fifth of the texels in the back layer; the camera swings as in a default clip.

Render rows carry a memory floor: a fused kernel must at least read each texel's world
point and colour (3 + 3 float32 = 24 B), update the z-buffer once per covered pixel
(8 B read + 8 B write of an int64) and write the output (3 B per pixel), so
bytes = 24 * texels + 19 * pixels. "GB/s" is that floor over the measured time; GB/s
over the device's measured copy bandwidth is the fraction of the memory-bound ideal.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..config import BACKENDS, EncodeConfig, PathConfig, RenderConfig
from ..config import parse_size as parse_wxh
from ..depth import estimate_disparity, local_depth_methods
from ..encode.writers import open_video
from ..errors import Photo3DError
from ..io import load_image
from ..ops.backends import select
from ..pipeline import SAMPLE_IMAGE, ClipOptions, DepthConfig, prepare_photo, render_into
from ..scene.camera import intrinsics_from_fov
from ..scene.ldi import build_ldi, ldi_params_for_motion
from ..scene.paths import default_focus, preset_path
from .timing import measure, summary

#: Named sizes (W, H); any WxH is accepted too.
SIZES = {"360p": (640, 360), "540p": (960, 540), "720p": (1280, 720), "1080p": (1920, 1080),
         "1440p": (2560, 1440), "4k": (3840, 2160)}
#: Bytes of the renderer's memory floor per LDI texel and per output pixel (see above).
FLOOR_BYTES_PER_TEXEL = 24
FLOOR_BYTES_PER_PIXEL = 19


def parse_size(text: str) -> tuple[str, tuple[int, int]]:
    """("540p", (960, 540)) from "540p" or "960x540"."""
    text = text.strip().lower()
    if text in SIZES:
        return text, SIZES[text]
    try:
        w, h = parse_wxh(text)
    except Photo3DError:
        raise Photo3DError(f"size {text!r} is neither WxH nor one of {', '.join(SIZES)}") from None
    if w < 16 or h < 16:
        raise Photo3DError(f"size {text!r} is too small; at least 16x16")
    name = next((n for n, s in SIZES.items() if s == (w, h)), f"{w}x{h}")
    return name, (w, h)


def size_label(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def row(stage: str, impl: str, size: tuple[int, int], times: list[float], work: float, unit: str,
        floor_bytes: int | None = None, copy_gbps: float | None = None, note: str = "") -> dict:
    """One table row. times: seconds per call; work: units of ``unit`` done per call (so
    throughput = work / median time); floor_bytes: bytes a memory-bound ideal moves per call."""
    r = {"stage": stage, "impl": impl, "size": size_label(size), **summary(times)}
    med = r["median_ms"] / 1e3
    r["throughput"] = work / med
    r["unit"] = unit
    r["gbps"] = floor_bytes / med / 1e9 if floor_bytes else None
    r["of_copy"] = r["gbps"] / copy_gbps if floor_bytes and copy_gbps else None
    r["note"] = note
    return r


# ----------------------------------------------------------------------------- inputs


def sample_photo(size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: the bundled sample photo fitted to size (W, H)."""
    from PIL import Image, ImageOps


    with Image.open(SAMPLE_IMAGE) as im:
        return np.asarray(ImageOps.fit(im.convert("RGB"), size, Image.Resampling.LANCZOS))


def write_photo(size: tuple[int, int], directory: Path) -> Path:
    """The sample photo fitted to size, saved as a quality-95 JPEG in directory."""
    from PIL import Image

    path = Path(directory) / f"photo_{size_label(size)}.jpg"
    Image.fromarray(sample_photo(size)).save(path, quality=95)
    return path


def synthetic_scene(w: int, h: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 random texture and (H, W) float32 z-depth: wall at 6, floor, two boxes."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ys = (np.arange(h)[:, None] + 0.5) / h
    depth = np.where(ys > 0.55, 1.2 / np.maximum(ys - 0.45, 1e-3) * 0.1, 6.0) * np.ones((1, w))
    depth = np.minimum(depth, 6.0)
    depth[int(0.2 * h) : int(0.7 * h), int(0.15 * w) : int(0.35 * w)] = 2.0
    depth[int(0.3 * h) : int(0.9 * h), int(0.6 * w) : int(0.8 * w)] = 1.2
    return image, depth.astype(np.float32)


def _scene_setup(size: tuple[int, int], n_frames: int):
    w, h = size
    image, depth = synthetic_scene(w, h)
    K = intrinsics_from_fov(w, h, 55)
    # near and focus as the pipeline derives them from the depth
    path = preset_path("swing", max(n_frames, 2), 1.0, float(np.percentile(depth, 1.0)), default_focus(depth))
    band, edge = ldi_params_for_motion(K, depth, path.max_translation(), size)
    return image, depth, K, path, {"band": band, "edge_disparity": edge}


# ----------------------------------------------------------------------------- stages


def bench_decode(size: tuple[int, int], reps: int, directory: Path) -> dict:
    """JPEG decode + EXIF orientation + RGB conversion (io.load_image), host."""

    path = write_photo(size, directory)
    times = measure(lambda: load_image(path), "cpu", reps=reps, warmup=1)
    return row("decode", "pillow", size, times, size[0] * size[1] / 1e6, "MP/s", note="JPEG q95")


def depth_methods() -> list[str]:
    """Every depth backend that runs here without a download (cues, and the learned models
    whose weights are here): a benchmark must never start fetching gigabytes."""

    return local_depth_methods()


def bench_depth(method: str, size: tuple[int, int], reps: int, device: torch.device) -> dict | str:
    """Disparity of the sample photo by one backend; a string saying why when it cannot run."""
    image = sample_photo(size)
    try:
        estimate_disparity(image, method)
    except Photo3DError as e:
        return f"depth {method}: unavailable ({e})"
    times = measure(lambda: estimate_disparity(image, method), device, reps=reps, warmup=0, events=False)
    return row("depth", method, size, times, size[0] * size[1] / 1e6, "MP/s")


def bench_ldi(size: tuple[int, int], layers: int, reps: int, device: torch.device) -> dict:
    """LDI build (edges, occlusion masks, background growth, inpainting, upload) of the
    synthetic scene, host clock with the device synchronised."""
    image, depth, K, _, kw = _scene_setup(size, 2)
    times = measure(lambda: build_ldi(image, depth, K, layers=layers, device=device, **kw), device,
                    reps=reps, warmup=1, events=False)
    return row("ldi", f"L={layers}", size, times, size[0] * size[1] / 1e6, "MP/s")


def render_impls(device: torch.device) -> tuple[list[str], list[str]]:
    """(renderer implementations that load on device, notes on those that do not)."""
    ok, skipped = [], []
    for name in reversed(BACKENDS):
        try:
            select("splat", name, device)
        except Photo3DError as e:
            skipped.append(f"render {name}: unavailable ({e})")
            continue
        if name not in ("torch", "cpp") and device.type != "cuda":
            skipped.append(f"render {name}: GPU kernel, not timed on {device.type}")
            continue
        ok.append(name)
    return ok, skipped


def bench_render(impl_name: str, size: tuple[int, int], device: torch.device, reps: int,
                 copy_gbps: float | None, keep_frames: int = 0,
                 frames_per_launch: int = 1) -> tuple[dict, list[np.ndarray]]:
    """Per-frame render (splat + resolve + fill, on the device, no encode) of the synthetic
    scene along a swing path, CUDA events on GPU. Returns the row and up to ``keep_frames``
    rendered frames (host uint8), which the encode stage reuses.

    frames_per_launch > 1 times ``render_frames`` on batches of that many consecutive poses
    and reports the time per frame (the row's impl reads e.g. "triton x8")."""
    w, h = size
    warmup = 3
    n = max(1, frames_per_launch)
    # one scene and path whatever the batch size, so rows of different batch sizes compare
    image, depth, K, path, kw = _scene_setup(size, reps + warmup)
    ldi = build_ldi(image, depth, K, layers=2, device=device, **kw)
    _, impl = select("splat", impl_name, device)
    grid = impl.prepare(ldi)
    Kt = torch.tensor(K, dtype=torch.float32, device=device)
    poses = torch.tensor(np.asarray(path.poses), dtype=torch.float32, device=device)
    if n == 1:
        times = measure(impl.render_frame, device, reps=reps, warmup=warmup,
                        args=lambda i: (grid, poses[i % len(poses)], Kt, size))
    else:
        Ks = Kt.expand(n, 3, 3).contiguous()
        batches = [poses[torch.arange(i * n, (i + 1) * n, device=device) % len(poses)] for i in range(reps + warmup)]
        batch = measure(impl.render_frames, device, reps=reps, warmup=warmup,
                        args=lambda i: (grid, batches[i], Ks, size))
        times = [t / n for t in batch]
    texels = int(ldi.valid.sum())
    floor = FLOOR_BYTES_PER_TEXEL * texels + FLOOR_BYTES_PER_PIXEL * w * h
    label = impl_name if n == 1 else f"{impl_name} x{n}"
    r = row("render", label, size, times, 1.0, "fps", floor, copy_gbps, note=f"{texels:,} texels")
    r["texels"], r["floor_bytes"], r["frames_per_launch"] = texels, floor, n
    frames = []
    for pose in poses[:keep_frames]:
        color, _ = impl.render_frame(grid, pose, Kt, size)
        frames.append((color * 255.0 + 0.5).to(torch.uint8).cpu().numpy())
    return r, frames


def encode_config(encoder: str = "x264") -> EncodeConfig:
    """Encoder settings of the encode and clip rows. "x264": ffmpeg libx264, crf 18, preset
    medium, the CPU encoder every machine has, so rows compare across machines; "auto": what
    ``photo3d render`` picks on this machine (NVENC where it works)."""
    names = {f.name for f in dataclasses.fields(EncodeConfig)}
    if "encoder" not in names:  # an EncodeConfig without encoder choice: ffmpeg libx264 only
        return EncodeConfig(codec="libx264", crf=18, encoder_preset="medium")
    return EncodeConfig(encoder=encoder, crf=18 if encoder == "x264" else None, encoder_preset="medium")


def encoder_label(config: EncodeConfig) -> str:
    name = getattr(config, "encoder", None) or config.codec
    return f"{name} {config.encoder_preset}" if name in ("x264", "x265", "libx264", "libx265") else name


def bench_encode(frames: list[np.ndarray], n_frames: int, runs: int, fps: float = 30.0,
                 config: EncodeConfig | None = None) -> dict:
    """Encoder cost per frame: ``n_frames`` frames (cycling through ``frames``, host
    uint8) written to a clip, from opening the writer to the finished file, divided by
    the frame count; one time per run."""
    config = config or encode_config()
    h, w = frames[0].shape[:2]
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(runs):
            t0 = time.perf_counter()
            with open_video(Path(tmp) / "clip.mp4", fps, (w, h), config, quiet=True) as writer:
                for i in range(n_frames):
                    writer.write(frames[i % len(frames)])
            times.append((time.perf_counter() - t0) / n_frames)
    crf = f", crf {config.crf}" if config.crf is not None else ""
    return row("encode", encoder_label(config), (w, h), times, 1.0, "fps", note=f"{n_frames} frames/run{crf}")


class _Stamp:
    """A frame sink that notes when the first and the last frame arrived and passes frames on."""

    def __init__(self, sink) -> None:
        self.sink, self.first, self.last = sink, None, None

    def write(self, frame) -> None:
        self.sink.write(frame)
        self.last = time.perf_counter()
        if self.first is None:
            self.first = self.last


def bench_clip(size: tuple[int, int], seconds: float, fps: float, measure_frames: int | None,
               device: torch.device, directory: Path, label: str,
               encode: EncodeConfig | None = None) -> tuple[dict, dict]:
    """End to end, in process: decode the JPEG, depth (auto), LDI, render, encode to .mp4
    (``encode``, default ``encode_config("auto")``: what ``photo3d render`` uses here).

    measure_frames: render this many frames of the same path shape and extrapolate to the
    clip's ``seconds * fps`` frames per frame: clip = (time to the first frame: decode,
    depth, LDI, one frame) + (frames - 1) * (time per later frame, from the first to the
    last frame handed to the encoder) + (encoder flush after the last frame). Frames are
    handed to the encoder through a bounded queue, so once it is full the per-frame time
    is the slower of render and encode; measure at least ~20 frames for a steady rate.
    None measures the whole clip. Returns (row, clip record)."""

    n_total = round(seconds * fps)
    n = n_total if not measure_frames or measure_frames >= n_total else max(2, measure_frames)
    photo_path = write_photo(size, directory)
    opts = ClipOptions(path=PathConfig(duration=n / fps, fps=fps),
                       render=RenderConfig(size=size, device=str(device)), encode=encode or encode_config("auto"))
    t0 = time.perf_counter()
    with open_video(Path(directory) / "clip.mp4", fps, size, opts.encode, quiet=True) as writer:
        stamp = _Stamp(writer)
        prepared = prepare_photo(load_image(photo_path), photo_path.name, opts.scene, DepthConfig())
        n_done = render_into(prepared, opts, [stamp], quiet=True)
    t_end = time.perf_counter()
    per_frame = (stamp.last - stamp.first) / max(1, n_done - 1)
    first, flush = stamp.first - t0, t_end - stamp.last
    clip_s = first + (n_total - 1) * per_frame + flush
    extrapolated = n_done < n_total
    note = f"{n_done} frames measured, extrapolated per frame to {n_total}" if extrapolated else f"{n_done} frames measured"
    clip = {"clip": label, "size": size_label(size), "fps": fps, "seconds": seconds, "frames": n_total,
            "measured_frames": n_done, "extrapolated": extrapolated, "first_frame_s": first, "flush_s": flush,
            "encoder": encoder_label(opts.encode), "per_frame_ms": per_frame * 1e3, "clip_s": clip_s, "clips_per_hour": 3600.0 / clip_s,
            "note": note}
    r = row("end-to-end", "clip", size, [clip_s / n_total], 1.0, "fps",
            note=f"{label}, {encoder_label(opts.encode)}: {note}")
    return r, clip
