"""VideoWriter (ffmpeg pipe) and PngFrameWriter: round trips, atomicity, failure paths."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from photo3d_fast.config import EncodeConfig
from photo3d_fast.encode.writers import PngFrameWriter, VideoWriter
from photo3d_fast.errors import Photo3DError


def smooth_frames(n: int, w: int, h: int, seed: int = 0) -> np.ndarray:
    """(n, h, w, 3) uint8: colour gradients plus low-frequency noise that drifts per frame."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = np.stack([xx / w, yy / h, 1 - (xx + yy) / (w + h)], axis=-1) * 160 + 40
    noise = rng.uniform(-40, 40, size=(8, 8, 3)).astype(np.float32)
    big = np.stack([np.asarray(Image.fromarray(noise[..., c], "F").resize((w + n, h), Image.BICUBIC))
                    for c in range(3)], axis=-1)
    frames = [np.clip(base + big[:, i:i + w], 0, 255) for i in range(n)]
    return np.round(frames).astype(np.uint8)


def decode(path: Path) -> tuple[dict, np.ndarray]:
    """meta {"size": (W, H), "fps": float} and (n, H, W, 3) uint8 frames, decoded by ffmpeg.

    (imageio_ffmpeg.read_frames leaks its pipes, which fails a run with -W error.)
    """
    exe = imageio_ffmpeg.get_ffmpeg_exe()
    probe = subprocess.run([exe, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    m = re.search(r"Video: .*?, (\d+)x(\d+)[, ].*?([\d.]+) fps", probe.stderr)
    assert m, probe.stderr
    w, h = int(m[1]), int(m[2])
    raw = subprocess.run([exe, "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt",
                          "rgb24", "-"], capture_output=True, check=True).stdout
    meta = {"size": (w, h), "fps": float(m[3]), "stream": m[0]}
    return meta, np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def child_pids() -> list[int]:
    """Processes (zombies included) whose parent is this process, from /proc."""
    me, out = os.getpid(), []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == me:
                out.append(int(d))
    return out


@pytest.fixture
def no_leaks(tmp_path):
    """The test's directory and process table must be as clean afterwards as before."""
    before = set(child_pids())
    yield tmp_path
    assert set(child_pids()) - before == set(), "ffmpeg child left running or unreaped"


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".mkv"])
@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_round_trip(tmp_path, ext, kind):
    frames = smooth_frames(12, 64, 48, seed=1)
    out = tmp_path / f"clip{ext}"
    with VideoWriter(out, 24, (64, 48)) as w:
        for f in frames:
            w.write(torch.from_numpy(f) if kind == "torch" else f)
    assert w.close() == out.absolute()
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temp file left
    meta, got = decode(out)
    assert got.shape == frames.shape
    assert meta["fps"] == pytest.approx(24, abs=0.01)
    assert "bt709" in meta["stream"]  # colour matrix tagged, so players do not guess
    assert psnr(got, frames) >= 35
    # each decoded frame matches its own source better than its neighbour: order is kept
    assert psnr(got[5], frames[5]) > psnr(got[5], frames[9]) + 3
    if ext == ".mp4":
        data = out.read_bytes()
        assert data.index(b"moov") < data.index(b"mdat"), "+faststart should put the index first"


def test_ntsc_rate_and_caller_buffer_reuse(tmp_path):
    frames = smooth_frames(6, 64, 48, seed=2)
    buf = np.empty_like(frames[0])
    with VideoWriter(tmp_path / "c.mp4", 29.97, (64, 48), queue_size=8) as w:
        for f in frames:
            buf[:] = f  # the caller reuses one buffer: the writer must have copied
            w.write(buf)
    meta, got = decode(tmp_path / "c.mp4")
    assert meta["fps"] == pytest.approx(29.97, abs=1e-3)
    timebase = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "c.mp4"),
                               "-f", "framemd5", "-"], capture_output=True, text=True).stdout
    assert "#tb 0: 1001/30000" in timebase  # exact NTSC rate, not 2997/100
    assert psnr(got, frames) >= 35


def test_odd_size_is_cropped_and_warns_once(tmp_path, capsys):
    frames = smooth_frames(5, 65, 49, seed=3)
    with VideoWriter(tmp_path / "odd.mp4", 30, (65, 49)) as w:
        for f in frames:
            w.write(f)
    err = capsys.readouterr().err
    assert err.count("cropped to 64x48") == 1
    meta, got = decode(tmp_path / "odd.mp4")
    assert meta["size"] == (64, 48) and len(got) == 5
    assert psnr(got, frames[:, :48, :64]) >= 35


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_exception_in_with_leaves_nothing(no_leaks, exc):
    with pytest.raises(exc):
        with VideoWriter(no_leaks / "clip.mp4", 30, (64, 48)) as w:
            for f in smooth_frames(4, 64, 48):
                w.write(f)
            assert w._proc.poll() is None  # ffmpeg is really running at this point
            raise exc("boom")
    assert list(no_leaks.iterdir()) == []
    w.abort()  # idempotent


def test_killed_ffmpeg_surfaces_as_photo3d_error(no_leaks):
    frames = smooth_frames(3, 64, 48)
    with pytest.raises(Photo3DError) as info:
        with VideoWriter(no_leaks / "clip.mp4", 30, (64, 48), queue_size=2) as w:
            w.write(frames[0])
            w._proc.kill()
            for i in range(500):  # the pipe error reaches write() within a few frames
                w.write(frames[i % 3])
    msg = str(info.value)
    assert "ffmpeg (libx264)" in msg and "signal 9" in msg, msg
    assert list(no_leaks.iterdir()) == []


def test_ffmpeg_error_message_is_kept(no_leaks):
    with pytest.raises(Photo3DError) as info:
        with VideoWriter(no_leaks / "clip.mp4", 30, (64, 48), EncodeConfig(codec="nope264")) as w:
            for f in smooth_frames(3, 64, 48):
                w.write(f)
    assert "ffmpeg (nope264)" in str(info.value) and "nope264" in str(info.value).split(":", 1)[1]
    assert list(no_leaks.iterdir()) == []


@pytest.mark.parametrize("bad", [
    np.zeros((48, 64, 4), np.uint8), np.zeros((64, 48, 3), np.uint8),
    np.zeros((48, 64, 3), np.float32), torch.zeros(48, 64, 3, dtype=torch.int16),
])
def test_bad_frame_raises_and_leaves_nothing(no_leaks, bad):
    with pytest.raises(Photo3DError, match=r"expected \(48, 64, 3\) uint8"):
        with VideoWriter(no_leaks / "clip.mp4", 30, (64, 48)) as w:
            w.write(smooth_frames(1, 64, 48)[0])
            w.write(bad)
    assert list(no_leaks.iterdir()) == []
    with pytest.raises(Photo3DError):
        w.write(smooth_frames(1, 64, 48)[0])  # aborted writers refuse more frames


def test_zero_frames(no_leaks):
    w = VideoWriter(no_leaks / "clip.mp4", 30, (64, 48))
    with pytest.raises(Photo3DError, match="no frames were written"):
        w.close()
    assert list(no_leaks.iterdir()) == []


def test_bad_destination_fails_before_ffmpeg_starts(tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: started.append(a))
    (tmp_path / "afile").write_text("x")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    cases = [(tmp_path / "missing" / "c.mp4", "does not exist"),
             (tmp_path / "afile" / "c.mp4", "is not a directory"),
             (tmp_path / "c.avi", r"\.mp4, \.mov, \.mkv")]
    if not os.access(ro, os.W_OK):  # root may write anyway
        cases.append((ro / "c.mp4", "cannot write to"))
    if Path("/sys").is_dir() and not os.access("/sys", os.W_OK):
        cases.append((Path("/sys/c.mp4"), "cannot write to"))
    for path, msg in cases:
        with pytest.raises(Photo3DError, match=msg):
            VideoWriter(path, 30, (64, 48))
    assert started == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "ro"]


def test_png_writer_round_trip(tmp_path):
    frames = smooth_frames(7, 65, 49, seed=4)
    out = tmp_path / "frames" / "deep"
    buf = np.empty_like(frames[0])
    with PngFrameWriter(out) as w:
        for f in frames:
            buf[:] = f
            w.write(torch.from_numpy(buf))  # a CPU tensor shares the reused buffer
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"frame_{i:05d}.png" for i in range(7)]
    for i, name in enumerate(names):
        img = Image.open(out / name)
        assert img.mode == "RGB" and img.size == (65, 49)
        np.testing.assert_array_equal(np.asarray(img), frames[i])


def test_png_writer_failure_removes_its_frames(tmp_path):
    out = tmp_path / "frames"
    with pytest.raises(Photo3DError, match="expected"):
        with PngFrameWriter(out, size=(64, 48)) as w:
            for f in smooth_frames(3, 64, 48):
                w.write(f)
            w.write(np.zeros((48, 64), np.uint8))
    assert not out.exists()
    with pytest.raises(Photo3DError, match="no frames were written"):
        PngFrameWriter(out).close()
    assert not out.exists()
