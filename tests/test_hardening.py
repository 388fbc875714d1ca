"""Issue 16, hardening: the input is never destroyed, killed runs leave nothing behind,
limits are checked before the work they protect, and every bad number, name or write is
one line with exit status 2."""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photo3d_fast import Photo3DError, load_image
from photo3d_fast.batch.cli import run_batch
from photo3d_fast.batch.manifest import REPORT_NAME, plan_batch
from photo3d_fast.cli import main
from photo3d_fast.config import EncodeConfig, PathConfig, RenderConfig, SceneConfig

from helpers import gradient_photo

FAST = ["--duration", "0.3", "--fps", "10", "--depth", "cues", "-q"]  # 3 frames


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _user_error(args, capsys, match: str) -> str:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("photo3d: error:"), err
    assert match in lines[0], lines[0]
    return lines[0]


def _partials(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".partial-" in p.name]


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def live_pid():
    """The pid of a running process that is not this one."""
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield p.pid
    p.kill()
    p.wait()


@pytest.fixture
def no_depth_stage(monkeypatch):
    """Fail the test if a render reaches the depth stage: checks must come before it."""
    import photo3d_fast.clip as clip

    def refuse(*args, **kwargs):
        raise AssertionError("the depth stage ran before the options were checked")

    monkeypatch.setattr(clip, "prepare_photo", refuse)


# -- 6. the output is never the input -----------------------------------------------------

def test_output_that_is_the_input_is_refused(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.webp")
    data = photo.read_bytes()
    _user_error(["render", photo, "-o", photo, *FAST], capsys, "is the input")
    os.link(photo, tmp_path / "same.webp")  # another name of the same file
    _user_error(["render", photo, "-o", tmp_path / "same.webp", *FAST], capsys, "is the input")
    png = gradient_photo(tmp_path / "q.png")
    _user_error(["depth", png, "-o", png, "-q"], capsys, "is the input")
    assert photo.read_bytes() == data and Image.open(png).mode == "RGB"
    assert not _partials(tmp_path)


def test_batch_row_whose_output_is_its_photo_fails(tmp_path):
    gradient_photo(tmp_path / "a.webp")
    (tmp_path / "m.csv").write_text("image,output\na.webp,a.webp\n")
    plan = plan_batch(tmp_path / "m.csv", tmp_path)
    assert not plan.jobs and "is the input" in plan.results[0]["error"]


# -- 7. SIGTERM and stale partial files ----------------------------------------------------

@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_sigterm_removes_partial_files(tmp_path):
    photo = gradient_photo(tmp_path / "p.png", (160, 120))
    out, frames = tmp_path / "out.mp4", tmp_path / "frames"
    proc = subprocess.Popen([sys.executable, "-m", "photo3d_fast.cli", "render", str(photo), "-o", str(out),
                             "--frames", str(frames), "--duration", "60", "--fps", "30", "--depth", "cues", "-q"],
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (list(frames.glob("frame_*.png")) and _partials(tmp_path)):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the render never started writing"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err.decode()
    assert "Traceback" not in err.decode()
    time.sleep(0.3)  # an orphaned ffmpeg would finish its temporary file now
    assert not _partials(tmp_path) and not out.exists() and not frames.exists()


def test_a_stopped_worker_removes_only_its_own_partials(tmp_path):
    """What a worker runs when a stop lands before its writer registered its temporary file:
    its own temporary files go, another live process's and the finished files stay."""
    from photo3d_fast.io import remove_own_partials

    mine = tmp_path / f".a.mp4.partial-{os.getpid()}.mp4"
    theirs = tmp_path / f".b.mp4.partial-{os.getppid()}.mp4"
    done = tmp_path / "c.mp4"
    for p in (mine, theirs, done):
        p.write_bytes(b"x")
    assert remove_own_partials(tmp_path) == 1
    assert not mine.exists() and theirs.exists() and done.exists()
    assert remove_own_partials(tmp_path / "missing") == 0


def test_stale_partials_of_dead_processes_are_removed(tmp_path, capsys, live_pid):
    photo = gradient_photo(tmp_path / "p.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    dead = _dead_pid()
    stale = [tmp_path / f".out.mp4.partial-{dead}.mp4", frames / f".frame_00000.png.partial-{dead}"]
    kept = [tmp_path / f".out.mp4.partial-{live_pid}.mp4",  # another process is writing it
            tmp_path / f".other.mp4.partial-{dead}.mp4"]  # not this output's
    for p in stale + kept:
        p.write_bytes(b"partial")
    assert main(["render", str(photo), "-o", str(tmp_path / "out.mp4"), "--frames", str(frames), *FAST]) == 0
    assert [p for p in stale if p.exists()] == [] and all(p.exists() for p in kept)
    assert len(list(frames.glob("frame_*.png"))) == 3


# -- 8. the pixel limit before decoding ----------------------------------------------------

def _png_header_only(path: Path, w: int, h: int) -> Path:
    """A PNG that declares w x h RGBA; its pixel data is a few bytes (never decoded)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 6, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 1000))
                     + chunk(b"IEND", b""))
    return path


def test_pixel_limit_is_checked_before_decoding(tmp_path, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    bomb = _png_header_only(tmp_path / "bomb.png", 16384, 18000)  # 295 MP, 1.2 GB of RGBA
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Pillow's DecompressionBombWarning must not leak
        with pytest.raises(Photo3DError, match=r"16384x18000; the limit is .*150 MP"):
            load_image(bomb)
        with pytest.raises(Photo3DError, match="20000x16; the limit is 16384 pixels a side"):
            load_image(_png_header_only(tmp_path / "wide.png", 20000, 16))


# -- 9. numbers: finite and in range, checked once in the config layer -------------------

@pytest.mark.parametrize("make", [
    lambda: SceneConfig(far=math.inf),
    lambda: SceneConfig(near=1e-300, far=1e300),
    lambda: SceneConfig(near=math.nan),
    lambda: SceneConfig(fov=math.nan),
    lambda: PathConfig(focus=math.inf),
    lambda: PathConfig(focus=1e300),
    lambda: PathConfig(focus=math.nan),
    lambda: PathConfig(duration=math.nan),
    lambda: PathConfig(duration=math.inf),
    lambda: PathConfig(fps=math.nan),
    lambda: PathConfig(amount=math.nan),
    lambda: RenderConfig(layers=2.5),
    lambda: RenderConfig(size=(64.5, 32)),
    lambda: EncodeConfig(crf=math.nan),
])
def test_every_number_is_checked_by_the_dataclasses(make):
    with pytest.raises(Photo3DError):
        make()


def _keyframes(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text('{"keyframes": [{"t": 0, "position": [0, 0, 0]}, ' + text + "]}")
    return path


@pytest.mark.parametrize("text, match", [
    ('{"t": 1, "position": [NaN, 0, 0]}', "position"),
    ('{"t": 1, "position": [1e308, 0, 0]}', "position"),
    ('{"t": 1, "rotation": [0, Infinity, 0]}', "rotation"),
    ('{"t": 1, "rotation": [0, 1e308, 0]}', "rotation"),
    ('{"t": NaN}', "t="),
    ('{"t": 1, "zoom": NaN}', "zoom"),
    ('{"t": 1, "look_at": [0, 0, Infinity]}', "look_at"),
])
def test_bad_keyframes_are_refused_before_the_depth_stage(tmp_path, capsys, no_depth_stage, text, match):
    keys = _keyframes(tmp_path, "k.json", text)
    with pytest.raises(Photo3DError, match=match):
        PathConfig(preset=str(keys))
    _user_error(["render", gradient_photo(tmp_path / "p.png"), "-o", tmp_path / "c.mp4", "--path", keys, *FAST], capsys, match)


@pytest.mark.parametrize("args, match", [
    (["--focus", "1e300"], "--focus"),
    (["--near", "1e-300", "--far", "1e300"], "near"),
    (["--far", "inf"], "far"),
    (["--path", "wobble"], "unknown path preset"),
])
def test_bad_numbers_and_presets_on_the_command_line(tmp_path, capsys, no_depth_stage, args, match):
    _user_error(["render", gradient_photo(tmp_path / "p.png"), "-o", tmp_path / "c.mp4", *args, *FAST], capsys, match)


def test_extreme_but_valid_scene_renders(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png")
    for args in (["--near", "1e-3", "--far", "1e6", "--focus", "1e6"], ["--near", "1e5", "--far", "1e6"]):
        assert main(["render", str(photo), "-o", str(tmp_path / "c.mp4"), *args, *FAST]) == 0, capsys.readouterr().err
        video = _decode(tmp_path / "c.mp4")
        assert video.shape[0] == 3 and video.mean() > 10  # not an all-black clip


def test_batch_row_with_bad_keyframes_fails_at_planning(tmp_path):
    gradient_photo(tmp_path / "a.png")
    _keyframes(tmp_path, "k.json", '{"t": 1, "rotation": [0, Infinity, 0]}')
    (tmp_path / "m.csv").write_text("image,path\na.png,k.json\n")
    plan = plan_batch(tmp_path / "m.csv", tmp_path / "out")
    assert not plan.jobs and "rotation" in plan.results[0]["error"]


# -- 10. outputs checked before the work; write errors are one line ------------------------

def test_output_naming_a_directory_is_refused_before_rendering(tmp_path, capsys, no_depth_stage):
    photo = gradient_photo(tmp_path / "p.png")
    (tmp_path / "clip.mp4").mkdir()
    _user_error(["render", photo, "-o", tmp_path / "clip.mp4", *FAST], capsys, "is a directory")
    (tmp_path / "d.png").mkdir()
    _user_error(["depth", photo, "-o", tmp_path / "d.png", "-q"], capsys, "is a directory")
    assert not _partials(tmp_path)


def test_clip_that_cannot_be_renamed_into_place_is_one_line(tmp_path, capsys, monkeypatch):
    from photo3d_fast.encode import sink

    real = os.replace

    def replace(src, dst):
        if ".partial-" in str(src) and str(dst).endswith(".mp4"):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR))  # made a directory meanwhile
        return real(src, dst)

    monkeypatch.setattr(sink.os, "replace", replace)
    photo = gradient_photo(tmp_path / "p.png")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", *FAST], capsys, "Is a directory")
    assert not _partials(tmp_path)


@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_depth_onto_a_full_disk(tmp_path, capsys, monkeypatch, suffix):
    photo = gradient_photo(tmp_path / "p.png")

    def full_disk(self_or_file, *args, **kwargs):
        target = args[0] if suffix == ".png" else self_or_file
        with open(target, "wb") as f:
            f.write(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if suffix == ".png":
        monkeypatch.setattr(Image.Image, "save", full_disk)
    else:
        monkeypatch.setattr(np, "save", full_disk)
    _user_error(["depth", photo, "-o", tmp_path / f"d{suffix}", "-q"], capsys, "No space left on device")
    assert not _partials(tmp_path) and not (tmp_path / f"d{suffix}").exists()


def test_report_onto_a_full_disk_is_one_line(tmp_path, monkeypatch):
    from photo3d_fast.batch import manifest

    def full_disk(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(Photo3DError, match="No space left on device"):
        manifest.write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert not _partials(tmp_path)


# -- 11. --frames DIR reused ---------------------------------------------------------------

def test_frames_of_an_earlier_longer_run_are_removed_and_said(tmp_path, capsys):
    photo = gradient_photo(tmp_path / "p.png")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "notes.txt").write_text("mine")
    args = ["render", str(photo), "-o", str(tmp_path / "c.mp4"), "--frames", str(frames), "--depth", "cues", "--fps", "10"]
    assert main([*args, "--duration", "0.5", "-q"]) == 0
    assert len(list(frames.glob("frame_*.png"))) == 5
    capsys.readouterr()
    assert main([*args, "--duration", "0.3"]) == 0
    assert sorted(p.name for p in frames.iterdir()) == ["frame_00000.png", "frame_00001.png", "frame_00002.png",
                                                        "notes.txt"]
    assert "removed 5 frames of an earlier run" in capsys.readouterr().err


# -- 12, 13. batch: names confined to OUTDIR, its own hidden files left alone --------------

def test_batch_frames_column_is_confined_to_outdir(tmp_path):
    gradient_photo(tmp_path / "a.png")
    outside = tmp_path / "outside"
    (tmp_path / "m.csv").write_text(f"image,frames,output\na.png,{outside},x1\na.png,../../x,x2\na.png,f/ok,x3\n")
    plan = plan_batch(tmp_path / "m.csv", tmp_path / "out")
    errors = {r["clip"] or r["row"]: r.get("error") for r in plan.results.values()}
    assert len(plan.jobs) == 1 and plan.jobs[0].options["frames"] == str((tmp_path / "out" / "f" / "ok").resolve())
    assert len(errors) == 2 and all("frames" in e and "inside OUTDIR" in e for e in errors.values()), errors
    with pytest.raises(Photo3DError, match="inside OUTDIR"):
        plan_batch(tmp_path / "m.csv", tmp_path / "out", {"frames": str(outside)})


@pytest.mark.parametrize("name", [".", "./", ".x.mp4.partial-123.mp4", "sub/.hidden.mp4", REPORT_NAME])
def test_batch_output_names_that_cannot_be_clips_fail_their_row(tmp_path, name):
    gradient_photo(tmp_path / "a.png")
    (tmp_path / "m.jsonl").write_text(json.dumps({"image": "a.png", "output": name}) + "\n"
                                      + json.dumps({"image": "a.png", "output": "fine"}) + "\n")
    plan = plan_batch(tmp_path / "m.jsonl", tmp_path / "out")
    assert [j.clip for j in plan.jobs] == ["fine.mp4"]
    assert plan.results[0]["status"] == "failed" and "output" in plan.results[0]["error"]


def test_batch_removes_only_partials_of_dead_processes(tmp_path, live_pid):
    src = tmp_path / "in"
    gradient_photo(src / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    dead = _dead_pid()
    live = [out / f".render.mp4.partial-{live_pid}.mp4", out / "sub" / f".frame_00001.png.partial-{live_pid}"]
    stale = out / f".old.mp4.partial-{dead}.mp4"
    for p in (*live, stale):
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x")
    report = run_batch(src, out, quiet=True, duration=0.2, fps=10.0, depth="cues")
    assert report["totals"]["ok"] == 1
    assert all(p.exists() for p in live) and not stale.exists()


# -- 14. workers die with their parent ------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
                cmdline = (d / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid and "multiprocessing" in cmdline and "resource_tracker" not in cmdline:
                kids.append(int(d.name))
    return kids


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent (here init) may not reap it


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the workers")
def test_workers_exit_when_their_parent_is_killed(tmp_path):
    src = tmp_path / "in"
    for i in range(20):  # about 20 s of work left when the parent dies
        gradient_photo(src / f"p{i}.png", (128, 96), seed=i)
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "photo3d_fast.cli", "batch", str(src), "-o", str(out),
                             "--workers", "2", "--duration", "6", "--fps", "10", "--depth", "cues", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 120
    while not (out.exists() and _partials(out) and len(_children(proc.pid)) == 2):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "the workers never started a clip"
        time.sleep(0.05)
    workers = _children(proc.pid)
    proc.kill()  # kill -9 of the parent alone
    proc.wait()
    deadline = time.monotonic() + 8
    while any(_running(w) for w in workers):
        assert time.monotonic() < deadline, "a worker outlived its parent by 8 s"
        time.sleep(0.1)
    time.sleep(0.5)  # an orphaned ffmpeg would finish its temporary file now
    assert not _partials(out)
    made = {p.name for p in out.glob("*.mp4")}
    time.sleep(2)
    assert {p.name for p in out.glob("*.mp4")} == made  # nothing renamed into place later


# -- 15. resume follows the photo's content -------------------------------------------------

def test_replaced_photo_is_made_again(tmp_path):
    photo = gradient_photo(tmp_path / "a.png", seed=1)
    (tmp_path / "m.csv").write_text("image,output\na.png,\na.png,named.mp4\n")
    out = tmp_path / "out"
    out.mkdir()
    first = plan_batch(tmp_path / "m.csv", out)
    for job in first.jobs:  # as if made
        Path(job.output).write_bytes(b"clip")
        from photo3d_fast.batch.manifest import record_finished

        record_finished(job)
    assert all(r["status"] == "skipped" for r in plan_batch(tmp_path / "m.csv", out).results.values())
    stat = photo.stat()
    gradient_photo(photo, seed=2)  # same name and times, new pixels
    os.utime(photo, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = plan_batch(tmp_path / "m.csv", out)
    assert len(again.jobs) == 2 and not again.results


# -- 16. usage errors leave nothing; empty files say so -------------------------------------

def test_batch_usage_errors_leave_no_outdir(tmp_path, capsys):
    gradient_photo(tmp_path / "in" / "a.png")
    (tmp_path / "m.csv").write_text("photo,duration\na.png,1\n")
    for args, match in [
        ([tmp_path / "in", "-o", tmp_path / "o", "--workers", "0"], "--workers"),
        ([tmp_path / "m.csv", "-o", tmp_path / "o"], "'image' column"),
        ([tmp_path / "nope", "-o", tmp_path / "o" / "deeper"], "does not exist"),
    ]:
        _user_error(["batch", *args, "-q"], capsys, match)
        assert not (tmp_path / "o").exists()


def test_empty_files_say_they_are_empty(tmp_path, capsys):
    (tmp_path / "empty.jpg").write_bytes(b"")
    _user_error(["render", tmp_path / "empty.jpg", "-o", tmp_path / "c.mp4"], capsys, "is empty")
    photo = gradient_photo(tmp_path / "p.png")
    (tmp_path / "d.png").write_bytes(b"")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", *FAST, "--depth", tmp_path / "d.png"], capsys, "is empty")
    (tmp_path / "m.csv").write_text("")
    _user_error(["batch", tmp_path / "m.csv", "-o", tmp_path / "o", "-q"], capsys, "is empty")
    (tmp_path / "k.json").write_text("")
    _user_error(["render", photo, "-o", tmp_path / "c.mp4", "--path", tmp_path / "k.json", *FAST], capsys, "is empty")
