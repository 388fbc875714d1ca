"""Encoders behind open_video: CPU round trips (decoded with PyAV), previews, the auto
choice, bad combinations, failure safety per encoder kind, and the NVENC writer's
plumbing against a stand-in PyNvVideoCodec (the real one needs an NVENC GPU)."""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import types
from fractions import Fraction

import av
import numpy as np
import pytest
import torch
from test_encode import child_pids, psnr, smooth_frames

from photo3d_fast.encode import formats, nvenc, pynvvideocodec
from photo3d_fast.config import EncodeConfig
from photo3d_fast.encode.sink import PinnedStaging
from photo3d_fast.encode.writers import VideoWriter, open_video
from photo3d_fast.errors import Photo3DError

W, H, N, FPS = 96, 64, 10, 24


def decode(path) -> tuple[np.ndarray, float, str, str]:
    """(n, H, W, 3) uint8 frames, fps, codec name and colour matrix, decoded by PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 0)
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return np.stack(frames), fps, stream.codec_context.name, str(stream.codec_context.colorspace)


def write_clip(path, frames, config=EncodeConfig(), fps=FPS, **kw):
    with open_video(path, fps, (frames.shape[2], frames.shape[1]), config, **kw) as w:
        for f in frames:
            w.write(f)
    return w


@pytest.fixture
def no_leaks(tmp_path):
    before = set(child_pids())
    yield tmp_path
    assert set(child_pids()) - before == set(), "encoder child left running or unreaped"


CPU = [("x264", ".mp4", "h264"), ("x265", ".mp4", "hevc"), ("svtav1", ".mp4", "av1"),
       ("svtav1", ".webm", "av1"), ("vpx", ".webm", "vp9"), ("x265", ".mkv", "hevc")]


@pytest.mark.parametrize("kind, ext, codec", CPU)
def test_cpu_encoder_round_trip(tmp_path, kind, ext, codec):
    if formats.KINDS[kind][codec] not in formats.ffmpeg_encoders():
        pytest.skip(f"this ffmpeg binary has no {formats.KINDS[kind][codec]}")
    frames = smooth_frames(N, W, H, seed=7)
    out = tmp_path / f"clip{ext}"
    write_clip(out, frames, EncodeConfig(encoder=kind))
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    got, fps, name, _ = decode(out)
    assert name in (codec, {"av1": "libdav1d", "vp9": "libvpx-vp9"}.get(codec, codec)) or codec in name
    assert got.shape == frames.shape  # frame count and size
    assert fps == pytest.approx(FPS, abs=0.01)
    assert psnr(got, frames) >= 35, f"{kind}: {psnr(got, frames):.1f} dB at default quality"


def test_webm_defaults_to_av1_and_bitrate_mode(tmp_path):
    frames = smooth_frames(6, W, H, seed=8)
    plan = formats.plan_output(tmp_path / "a.webm", EncodeConfig())
    assert plan.codec == ("av1" if "libsvtav1" in formats.ffmpeg_encoders() else "vp9")
    write_clip(tmp_path / "b.mp4", frames, EncodeConfig(encoder="x264", bitrate="400k"))
    got, _, _, _ = decode(tmp_path / "b.mp4")
    assert got.shape == frames.shape


@pytest.mark.parametrize("ext", [".gif", ".webp"])
def test_previews_decode_with_the_right_frame_count(tmp_path, ext):
    frames = smooth_frames(7, W, H, seed=9)
    out = tmp_path / f"preview{ext}"
    write_clip(out, frames, fps=12)
    assert [p.name for p in tmp_path.iterdir()] == [out.name]
    if ext == ".webp":  # FFmpeg (so PyAV) cannot decode animated WebP; Pillow can
        from PIL import Image, ImageSequence

        with Image.open(out) as im:
            got = np.stack([np.asarray(f.convert("RGB")) for f in ImageSequence.Iterator(im)])
    else:
        got, _, _, _ = decode(out)
    assert got.shape == frames.shape
    assert psnr(got, frames) >= 25  # a 256-colour palette / lossy WebP: a preview, not a master


@pytest.mark.parametrize("path, config, msg", [
    ("c.webm", EncodeConfig(codec="hevc"), r"hevc cannot go in a \.webm file.*\.mkv or \.mp4"),
    ("c.webm", EncodeConfig(encoder="x264"), r"x264 makes h264, which a \.webm file cannot hold"),
    ("c.mp4", EncodeConfig(encoder="x265", codec="h264"), "x265 cannot make h264"),
    ("c.mp4", EncodeConfig(encoder="nvenc", codec="av1"), "nvenc cannot make av1"),
    ("c.mp4", EncodeConfig(codec="vp9"), r"vp9 cannot go in a \.mp4"),
    ("c.gif", EncodeConfig(encoder="x264"), r"\.gif previews are made by ffmpeg's gif"),
    ("c.avi", EncodeConfig(), r"supported extensions are \.mp4"),
])
def test_impossible_combinations_are_clear_errors(tmp_path, path, config, msg):
    with pytest.raises(Photo3DError, match=msg):
        open_video(tmp_path / path, 30, (W, H), config)
    assert list(tmp_path.iterdir()) == []


def test_bad_options_are_clear_errors(tmp_path):
    with pytest.raises(Photo3DError, match="not both"):
        EncodeConfig(crf=20, bitrate="8M")
    with pytest.raises(Photo3DError, match="--bitrate"):
        EncodeConfig(bitrate="fast")
    with pytest.raises(Photo3DError, match="--encoder 'qsv'"):
        EncodeConfig(encoder="qsv")
    with pytest.raises(Photo3DError, match=r"out of range for libx264: 0\.\.51"):
        open_video(tmp_path / "c.mp4", 30, (W, H), EncodeConfig(encoder="x264", crf=60))
    assert list(tmp_path.iterdir()) == []


def _no_hardware_here() -> bool:
    return not (formats.probe_nvenc("h264")[0] or formats.probe_ffmpeg_encoder("h264_nvenc")[0])


@pytest.mark.skipif(not _no_hardware_here(), reason="this machine has a working NVENC")
def test_auto_without_nvenc_picks_x264_and_says_why(tmp_path, capsys):
    write_clip(tmp_path / "c.mp4", smooth_frames(3, W, H))
    err = capsys.readouterr().err
    assert "encoder: x264 (libx264, h264 in .mp4); no hardware encoder" in err
    assert "nvenc: " in err and "ffmpeg-nvenc: h264_nvenc did not open" in err


def test_auto_order(monkeypatch, tmp_path):
    monkeypatch.setattr(formats, "probe_nvenc", lambda codec: (False, "no PyNvVideoCodec"))
    monkeypatch.setattr(formats, "probe_ffmpeg_encoder", lambda name: (True, ""))
    plan = formats.plan_output(tmp_path / "c.mp4", EncodeConfig(codec="hevc"))
    assert (plan.kind, plan.encoder) == ("ffmpeg-nvenc", "hevc_nvenc")
    assert "encoded a test frame" in plan.why and "no PyNvVideoCodec" in plan.why
    monkeypatch.setattr(formats, "probe_nvenc", lambda codec: (True, ""))
    assert formats.plan_output(tmp_path / "c.mp4", EncodeConfig()).kind == "nvenc"
    # av1 has no PyNvVideoCodec path here; VideoWriter never takes nvenc
    assert formats.plan_output(tmp_path / "c.webm", EncodeConfig()).kind == "ffmpeg-nvenc"
    assert formats.plan_output(tmp_path / "c.mp4", EncodeConfig(), allow_nvenc=False).kind == "ffmpeg-nvenc"


def test_frames_over_nvencs_limit_skip_it_or_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(formats, "probe_nvenc", lambda codec: (True, ""))
    monkeypatch.setattr(formats, "probe_ffmpeg_encoder", lambda name: (True, ""))
    # an sbs stereo clip of 2560-wide eyes: 5120 wide, over NVENC's h264 limit (4096)
    plan = formats.plan_output(tmp_path / "c.mp4", EncodeConfig(), size=(5120, 1440))
    assert plan.kind == "x264" and "over NVENC's h264 limit of 4096" in plan.why
    assert formats.plan_output(tmp_path / "c.mp4", EncodeConfig(codec="hevc"), size=(5120, 1440)).kind == "nvenc"
    assert formats.plan_output(tmp_path / "c.mp4", EncodeConfig(), size=(4096, 2048)).kind == "nvenc"
    for kind in ("nvenc", "ffmpeg-nvenc"):
        with pytest.raises(Photo3DError, match="over NVENC's h264 limit of 4096.*hevc takes 8192.*--encoder x264"):
            formats.plan_output(tmp_path / "c.mp4", EncodeConfig(encoder=kind), size=(5120, 1440))
    with pytest.raises(Photo3DError, match="hevc limit of 8192"):
        formats.plan_output(tmp_path / "c.mp4", EncodeConfig(encoder="ffmpeg-nvenc", codec="hevc"), size=(8200, 64))


KINDS = ["x264", "x265", "svtav1", "vpx", "gif", "webp"]
EXT = {"vpx": ".webm", "gif": ".gif", "webp": ".webp"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exc", [KeyboardInterrupt, RuntimeError])
def test_interrupt_mid_clip_leaves_nothing(no_leaks, kind, exc):
    config = EncodeConfig() if kind in ("gif", "webp") else EncodeConfig(encoder=kind)
    with pytest.raises(exc):
        with open_video(no_leaks / f"clip{EXT.get(kind, '.mp4')}", 30, (W, H), config) as w:
            for f in smooth_frames(4, W, H):
                w.write(f)
            assert w._proc.poll() is None  # the encoder is really running
            raise exc("boom")
    assert list(no_leaks.iterdir()) == []


@pytest.mark.skipif(not _no_hardware_here(), reason="this machine has a working NVENC")
def test_ffmpeg_nvenc_failure_names_encoder_and_message(no_leaks):
    with pytest.raises(Photo3DError) as info:
        write_clip(no_leaks / "c.mp4", smooth_frames(3, W, H), EncodeConfig(encoder="ffmpeg-nvenc"))
    msg = str(info.value)
    assert msg.startswith("ffmpeg (h264_nvenc)") and "nothing was saved" in msg
    assert len(msg.split(":", 1)[1]) > 20  # ffmpeg's own reason (e.g. Cannot load libcuda.so.1)
    assert list(no_leaks.iterdir()) == []


def test_full_disk_leaves_nothing(no_leaks, monkeypatch):
    # ffmpeg fails writing (as on ENOSPC): the error names the encoder and the file is gone
    w = open_video(no_leaks / "c.mp4", 30, (W, H), EncodeConfig(encoder="x264"))
    w._proc.kill()  # stands in for ffmpeg dying on a write error
    with pytest.raises(Photo3DError, match=r"ffmpeg \(libx264\) was killed"):
        for f in smooth_frames(200, W, H):
            w.write(f)
        w.close()
    assert list(no_leaks.iterdir()) == []


def test_pinned_staging_recycles_a_bounded_pool():
    pool = PinnedStaging(count=2, pin=False)
    a = pool.stage(torch.full((4, 6, 3), 1, dtype=torch.uint8))
    b = pool.stage(torch.full((4, 6, 3), 2, dtype=torch.uint8))
    assert pool.allocated == 2 and a.wait()[0, 0, 0] == 1 and b.wait()[0, 0, 0] == 2
    a.release()
    c = pool.stage(torch.full((4, 6, 3), 3, dtype=torch.uint8))
    assert pool.allocated == 2 and c.buffer is a.buffer and c.wait()[0, 0, 0] == 3
    full = PinnedStaging(1, False, check=_raise)
    full.stage(torch.zeros(2))
    with pytest.raises(Photo3DError, match="writer failed"):  # all taken: waits, then sees the error
        full.stage(torch.zeros(2))


def _raise():
    raise Photo3DError("writer failed")


# -- NVENC -----------------------------------------------------------------------------
HAS_NVENC = importlib.util.find_spec("PyNvVideoCodec") is not None and torch.cuda.is_available()


@pytest.mark.skipif(not HAS_NVENC, reason="needs PyNvVideoCodec (photo3d_fast[nvenc]) and a CUDA GPU "
                    "with NVENC; none here, so the real nvenc path is not verified")
def test_real_nvenc_round_trip(tmp_path):
    if not formats.probe_nvenc("h264")[0]:
        pytest.skip(f"no NVENC session: {formats.probe_nvenc('h264')[1]}")
    frames = smooth_frames(N, W, H, seed=3)
    write_clip(tmp_path / "c.mp4", torch.from_numpy(frames).cuda(), EncodeConfig(encoder="nvenc"))
    got, fps, _, _ = decode(tmp_path / "c.mp4")
    assert got.shape == frames.shape and psnr(got, frames) >= 35


def test_nvenc_missing_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", None)  # import fails
    with pytest.raises(Photo3DError, match=r"photo3d_fast\[nvenc\].*not installed.*--encoder auto picks a working encoder"):
        open_video(tmp_path / "c.mp4", 30, (W, H), EncodeConfig(encoder="nvenc"))
    assert list(tmp_path.iterdir()) == []
    assert "not installed" in pynvvideocodec.probe("h264")[1]


class _StandInEncoder:
    """PyNvVideoCodec's encoder surface (CreateEncoder/Encode/EndEncode) backed by libx264,
    so the NVENC writer's plumbing runs on a CPU. Checks what the real one requires."""

    def __init__(self, width, height, fmt, usecpuinputbuffer, **options):
        assert fmt == "NV12" and usecpuinputbuffer is False
        assert all(isinstance(v, str) for v in options.values()), options
        self.width, self.height, self.options, self.pts = width, height, options, 0
        self.ctx = av.CodecContext.create({"h264": "libx264", "hevc": "libx265"}[options["codec"]], "w")
        self.ctx.width, self.ctx.height, self.ctx.pix_fmt = width, height, "yuv420p"
        self.ctx.time_base = Fraction(1, int(options["fps"]))
        self.ctx.options = {"qp": options.get("constqp", "21"), "preset": "ultrafast",
                            **({"bf": options["bf"]} if "bf" in options else {})}

    def Encode(self, nv12):  # noqa: N802 - PyNvVideoCodec's name
        assert tuple(nv12.shape) == (self.height * 3 // 2, self.width) and nv12.dtype == torch.uint8
        if self.options.get("fail_at") == str(self.pts):
            raise RuntimeError("NV_ENC_ERR_ENCODER_BUSY")
        frame = av.VideoFrame.from_ndarray(nv12.cpu().numpy(), format="nv12").reformat(format="yuv420p")
        frame.pts = self.pts
        self.pts += 1
        return b"".join(bytes(p) for p in self.ctx.encode(frame))

    def EndEncode(self):  # noqa: N802
        return b"".join(bytes(p) for p in self.ctx.encode(None))


@pytest.fixture
def stand_in_nvenc(monkeypatch):
    module = types.ModuleType("PyNvVideoCodec")
    module.CreateEncoder = _StandInEncoder
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", module)
    monkeypatch.setattr(nvenc, "encoder_device", lambda gpu_id=None: torch.device("cpu"))
    return module


@pytest.mark.parametrize("codec, ext", [("h264", ".mkv"), ("hevc", ".mp4")])
def test_nvenc_writer_plumbing_with_stand_in(no_leaks, stand_in_nvenc, codec, ext):
    frames = smooth_frames(N, W + 1, H, seed=5)  # odd width: cropped to even for NV12
    out = no_leaks / f"clip{ext}"
    w = write_clip(out, torch.from_numpy(frames), EncodeConfig(encoder="nvenc", codec=codec), fps=29.97)
    assert type(w).__name__ == "NvencWriter"
    assert [p.name for p in no_leaks.iterdir()] == [out.name]
    got, fps, name, matrix = decode(out)
    assert got.shape == (N, H, W, 3) and name == codec and fps == pytest.approx(29.97, abs=1e-3)
    assert matrix in ("1", "ITU709", "BT709")  # AVCOL_SPC_BT709: the VUI written by the mux's filter
    assert psnr(got, frames[:, :, :W]) >= 35


@pytest.mark.parametrize("exc", [KeyboardInterrupt, None])
def test_nvenc_failure_or_interrupt_leaves_nothing(no_leaks, stand_in_nvenc, monkeypatch, exc):
    monkeypatch.setattr(nvenc, "encoder_options", lambda *a: {"codec": "h264", "fps": "30", "fail_at": "3"})
    with pytest.raises(exc or Photo3DError) as info:
        with open_video(no_leaks / "c.mp4", 30, (W, H), EncodeConfig(encoder="nvenc")) as w:
            for f in smooth_frames(6 if exc is None else 2, W, H):
                w.write(f)
            if exc:
                raise exc()
    if exc is None:
        assert "NVENC (PyNvVideoCodec, h264) failed on frame 3" in str(info.value)
        assert "NV_ENC_ERR_ENCODER_BUSY" in str(info.value)
    assert list(no_leaks.iterdir()) == []


def test_video_writer_refuses_nvenc(tmp_path):
    with pytest.raises(Photo3DError, match="open_video"):
        VideoWriter(tmp_path / "c.mp4", 30, (W, H), EncodeConfig(encoder="nvenc"))


class _BrokenNvencFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """PyNvVideoCodec as found on a machine without libnvidia-encode: it imports, and its
    __init__ raises RuntimeError."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name == "PyNvVideoCodec" else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        raise RuntimeError("libnvidia-encode.so.1 not found")


@pytest.fixture
def broken_nvenc(monkeypatch):
    monkeypatch.delitem(sys.modules, "PyNvVideoCodec", raising=False)
    monkeypatch.setattr(sys, "meta_path", [_BrokenNvencFinder(), *sys.meta_path])
    formats.probe_nvenc.cache_clear()
    yield
    formats.probe_nvenc.cache_clear()


def test_nvenc_that_fails_to_load_moves_auto_on(tmp_path, broken_nvenc, monkeypatch):
    ok, why = pynvvideocodec.probe("h264")
    assert not ok and "did not load" in why and "libnvidia-encode.so.1 not found" in why
    monkeypatch.setattr(formats, "probe_ffmpeg_encoder", lambda name: (False, f"{name} did not open"))
    plan = formats.plan_output(tmp_path / "c.mp4", EncodeConfig())  # auto: no exception
    assert plan.kind == "x264" and "libnvidia-encode.so.1 not found" in plan.why
    monkeypatch.setattr(formats, "probe_ffmpeg_encoder", lambda name: (True, ""))
    formats.probe_nvenc.cache_clear()
    assert formats.plan_output(tmp_path / "c.mp4", EncodeConfig()).kind == "ffmpeg-nvenc"
    # an explicit --encoder nvenc: a clear error naming the extra, nothing on disk
    with pytest.raises(Photo3DError, match=r"photo3d_fast\[nvenc\].*did not load \(RuntimeError: libnvidia-encode"):
        open_video(tmp_path / "d.mp4", 30, (W, H), EncodeConfig(encoder="nvenc"))
    assert list(tmp_path.iterdir()) == []


def test_probe_failure_of_any_kind_moves_auto_on(tmp_path, monkeypatch):
    def boom(codec):
        raise OSError("driver went away")
    monkeypatch.setattr(pynvvideocodec, "probe", boom)
    monkeypatch.setattr(formats, "probe_ffmpeg_encoder", lambda name: (False, "no"))
    formats.probe_nvenc.cache_clear()
    try:
        plan = formats.plan_output(tmp_path / "c.mp4", EncodeConfig())
    finally:
        formats.probe_nvenc.cache_clear()
    assert plan.kind == "x264" and "driver went away" in plan.why


def test_nvenc_options_name_the_gpu_as_pynvvideocodec_2_does(tmp_path, monkeypatch):
    plan = formats.plan_output(tmp_path / "c.mp4", EncodeConfig(encoder="nvenc"))
    opts = nvenc.encoder_options(plan, EncodeConfig(encoder="nvenc"), 30, torch.device("cuda", 1))
    assert opts["gpu_id"] == "1" and "gpuid" not in opts
    # the probe opens its session with gpu_id too
    seen = {}

    def create(*args, **options):
        seen.update(options)
        raise RuntimeError("stand-in: stop after CreateEncoder")
    monkeypatch.setitem(sys.modules, "PyNvVideoCodec", types.SimpleNamespace(CreateEncoder=create))
    monkeypatch.setattr(pynvvideocodec, "encoder_device", lambda gpu_id=None: torch.device("cuda", 1))
    ok, why = pynvvideocodec.probe("h264")
    assert not ok and "stand-in: stop" in why
    assert seen["gpu_id"] == "1" and "gpuid" not in seen


def test_nvenc_writer_opens_on_the_frames_device(no_leaks, stand_in_nvenc, monkeypatch):
    asked = []
    monkeypatch.setattr(nvenc, "encoder_device", lambda gpu_id=None: asked.append(gpu_id) or torch.device("cpu"))
    created = []
    monkeypatch.setattr(stand_in_nvenc, "CreateEncoder",
                        lambda *a, **o: created.append(o) or _StandInEncoder(*a, **o))
    config = EncodeConfig(encoder="nvenc")
    w = nvenc.NvencWriter(no_leaks / "c.mp4", 30, (W, H), config, device=torch.device("cuda", 1))
    w.abort()
    assert asked == [1] and "gpuid" not in created[0]
    w = nvenc.NvencWriter(no_leaks / "c.mp4", 30, (W, H), config, gpu_id=2, device=torch.device("cuda", 1))
    w.abort()
    assert asked == [1, 2]  # an explicit gpu_id still wins
    assert list(no_leaks.iterdir()) == []


def test_nvenc_writer_cycles_a_ring_of_nv12_surfaces(no_leaks, stand_in_nvenc, monkeypatch):
    ptrs = []
    real = _StandInEncoder.Encode
    monkeypatch.setattr(_StandInEncoder, "Encode", lambda self, nv12: ptrs.append(nv12.data_ptr()) or real(self, nv12))
    n = 3 * nvenc.NV12_RING + 2
    write_clip(no_leaks / "c.mp4", torch.from_numpy(smooth_frames(n, W, H, seed=4)), EncodeConfig(encoder="nvenc"))
    assert len(ptrs) == n
    for i in range(n - nvenc.NV12_RING + 1):  # no surface is reused within the ring's depth
        assert len(set(ptrs[i:i + nvenc.NV12_RING])) == nvenc.NV12_RING
    assert len(set(ptrs)) == nvenc.NV12_RING  # bounded: the ring, not one per frame
