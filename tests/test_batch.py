"""photo3d batch: folders and manifests, per-clip options, depth once per photo, resume
after a kill, clean Ctrl-C, worker processes and Ray giving the same clips."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from photo3d_fast.batch.cli import run_batch
from photo3d_fast.batch.manifest import REPORT_NAME, plan_batch
from photo3d_fast.cli import main

from helpers import gradient_photo

FAST = {"duration": 0.2, "fps": 10.0}  # 2 frames
FAST_ARGS = ["--duration", "0.2", "--fps", "10", "-q"]


def _folder(root: Path, n=3, size=(48, 32), corrupt=False) -> Path:
    for i in range(n):
        gradient_photo(root / ("sub" if i == n - 1 else "") / f"p{i}.png", size, seed=i)
    if corrupt:
        (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    return root


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _clips(outdir: Path) -> dict[str, Path]:
    """Finished clips: temporary files are hidden (.NAME.partial-PID.mp4)."""
    return {p.relative_to(outdir).as_posix(): p for p in sorted(outdir.rglob("*.mp4")) if not p.name.startswith(".")}


def _partials(outdir: Path) -> list[Path]:
    return [p for p in outdir.rglob("*") if ".partial-" in p.name]


def _report(outdir: Path) -> dict:
    return json.loads((outdir / REPORT_NAME).read_text())


def test_folder_with_a_corrupt_file_then_rerun_skips_everything(tmp_path, capsys):
    src = _folder(tmp_path / "in", n=3, corrupt=True)
    out = tmp_path / "out"
    assert main(["batch", str(src), "-o", str(out), *FAST_ARGS]) == 1  # some clips failed
    clips = _clips(out)
    assert sorted(Path(c).name.split(".")[0] for c in clips) == ["p0", "p1", "p2"]
    assert "sub/p2." in " ".join(clips)  # the folder's layout is kept
    for p in clips.values():
        frames = _decode(p)
        assert frames.shape == (2, 32, 48, 3)
    report = _report(out)
    assert report["exit_status"] == 1 and report["totals"] == {"ok": 3, "skipped": 0, "failed": 1, "interrupted": 0}
    bad = [c for c in report["clips"] if c["status"] == "failed"]
    assert bad[0]["photo"] == "broken.jpg" and "corrupt" in bad[0]["error"]
    assert all(c["seconds"]["depth"] > 0 and c["seconds"]["render_encode"] > 0
               for c in report["clips"] if c["status"] == "ok")
    assert not _partials(out)

    (src / "broken.jpg").unlink()
    mtimes = {c: p.stat().st_mtime_ns for c, p in clips.items()}
    t0 = time.perf_counter()
    assert main(["batch", str(src), "-o", str(out), *FAST_ARGS]) == 0
    assert time.perf_counter() - t0 < 5
    report = _report(out)
    assert report["totals"]["skipped"] == 3 and report["totals"]["ok"] == 0
    assert {c: p.stat().st_mtime_ns for c, p in _clips(out).items()} == mtimes


def test_same_options_same_name_and_a_changed_option_a_new_one(tmp_path):
    gradient_photo(tmp_path / "a.png")
    plain = plan_batch(tmp_path, tmp_path / "o").jobs[0]
    explicit = plan_batch(tmp_path, tmp_path / "o", {"duration": 5, "path": "swing", "amount": "1"}).jobs[0]
    other = plan_batch(tmp_path, tmp_path / "o", {"amount": 1.5}).jobs[0]
    assert plain.clip == explicit.clip and plain.normalized == {}
    assert other.clip != plain.clip and other.normalized == {"amount": 1.5}


def _manifest_rows(root: Path):
    gradient_photo(root / "a.png", (48, 32), seed=1)
    gradient_photo(root / "pics" / "b.png", (40, 40), seed=2)
    return [
        {"image": "a.png", "size": "32x24", "duration": "0.3", "fps": "10"},
        {"image": "a.png", "path": "circle", "duration": "0.2", "fps": "10", "output": "named"},
        {"image": "pics/b.png", "duration": "0.1", "fps": "20", "layers": "1"},
        {"image": "a.png", "amount": "lots"},  # bad option value: reported, skipped
        {"image": "missing.png", "duration": "0.2"},  # no such photo
    ]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_manifest_rows_with_their_own_options(tmp_path, kind, monkeypatch):
    import photo3d_fast.batch.worker as worker  # where the batch calls prepare_photo

    root = tmp_path / "m"
    rows = _manifest_rows(root)
    manifest = root / f"clips.{kind}"
    if kind == "csv":
        cols = ["image", "size", "duration", "fps", "path", "output", "layers", "amount"]
        manifest.write_text(",".join(cols) + "\n" + "".join(",".join(r.get(c, "") for c in cols) + "\n" for r in rows))
    else:
        lines = [json.dumps({k: (float(v) if k in ("duration", "fps") else v) for k, v in r.items()}) for r in rows]
        lines[0] = json.dumps({"image": "a.png", "size": [32, 24], "duration": 0.3, "fps": 10})
        manifest.write_text("\n".join(lines + ["{not json"]) + "\n")
    calls = []
    real = worker.prepare_photo
    monkeypatch.setattr(worker, "prepare_photo", lambda photo, name, *a, **k: calls.append(name) or real(photo, name, *a, **k))

    out = tmp_path / "out"
    report = run_batch(manifest, out, quiet=True)
    assert report["exit_status"] == 1
    by_row = {c["row"]: c for c in report["clips"]}
    first = 2 if kind == "csv" else 1  # CSV row numbers count the header line
    ok = [by_row[first + i] for i in range(3)]
    assert [c["status"] for c in ok] == ["ok"] * 3
    assert _decode(out / ok[0]["clip"]).shape == (3, 24, 32, 3)
    assert ok[1]["clip"] == "named.mp4" and _decode(out / "named.mp4").shape == (2, 32, 48, 3)
    assert _decode(out / ok[2]["clip"]).shape == (2, 40, 40, 3)
    assert "amount" in by_row[first + 3]["error"] and by_row[first + 3]["status"] == "failed"
    assert "does not exist" in by_row[first + 4]["error"]
    if kind == "jsonl":
        assert "JSON" in by_row[6]["error"]
    # a.png's depth once for its two clips, b.png once; missing.png tried once
    assert sorted(calls) == ["a.png", "b.png"]
    assert [c["depth_reused"] for c in ok] == [False, True, False]

    # An explicit name is remade when its row's options change (its sidecar records them).
    text = manifest.read_text().replace("circle", "dolly")
    manifest.write_text(text)
    report = run_batch(manifest, out, quiet=True)
    assert [report["clips"][i]["status"] for i in range(3)] == ["skipped", "ok", "skipped"]


def test_workers_2_make_the_same_clips_as_workers_1(tmp_path):
    src = _folder(tmp_path / "in", n=3)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["batch", str(src), "-o", str(one), "--workers", "1", *FAST_ARGS]) == 0
    assert main(["batch", str(src), "-o", str(two), "--workers", "2", *FAST_ARGS]) == 0
    assert _report(two)["runner"].startswith("2 CPU workers")
    c1, c2 = _clips(one), _clips(two)
    assert list(c1) == list(c2) and len(c1) == 3
    for name in c1:
        np.testing.assert_array_equal(_decode(c1[name]), _decode(c2[name]))


def _start_batch(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "photo3d_fast.cli", "batch", str(src), "-o", str(out),
           "--duration", "1", "--fps", "8", "-q", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait_first_clip(proc: subprocess.Popen, out: Path, timeout=60.0) -> None:
    deadline = time.monotonic() + timeout
    while not (out.exists() and _clips(out)):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no clip appeared"
        time.sleep(0.02)


def test_killed_midway_then_resumed_makes_exactly_the_missing_clips(tmp_path):
    src = _folder(tmp_path / "in", n=5, size=(64, 48))
    out = tmp_path / "out"
    proc = _start_batch(src, out)
    _wait_first_clip(proc, out)
    os.killpg(proc.pid, signal.SIGKILL)  # a crash: no cleanup at all
    proc.wait()
    time.sleep(0.3)  # an orphaned ffmpeg may still finish its temporary file
    before = _clips(out)
    assert 1 <= len(before) < 5
    assert main(["batch", str(src), "-o", str(out), "--duration", "1", "--fps", "8", "-q"]) == 0
    report = _report(out)
    assert report["totals"]["skipped"] == len(before) and report["totals"]["ok"] == 5 - len(before)
    after = _clips(out)
    assert len(after) == 5 and set(before) <= set(after)  # one clip per photo: no duplicates
    assert sorted(Path(c).name.split(".")[0] for c in after) == [f"p{i}" for i in range(5)]
    for p in after.values():
        assert _decode(p).shape == (8, 48, 64, 3)
    assert not _partials(out) and not (out / ".photo3d_batch.lock").exists()


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if text in (d / "cmdline").read_bytes().decode(errors="replace"):
                    pids.append(int(d.name))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to look for leftover processes")
def test_ctrl_c_stops_workers_cleanly(tmp_path):
    src = _folder(tmp_path / "in", n=5, size=(64, 48))
    out = tmp_path / "out"
    proc = _start_batch(src, out, "--workers", "2")
    _wait_first_clip(proc, out)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    # No worker left in its process group (multiprocessing's resource tracker, not a
    # worker, exits as its pipe closes and may take a moment to be reaped by init).
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail("processes of the batch are still running 10 s after it exited")
    assert not _processes_mentioning(str(out))  # no ffmpeg left writing into OUTDIR
    assert not _partials(out)
    report = _report(out)
    assert report["exit_status"] == 130 and report["totals"]["interrupted"] >= 1
    for p in _clips(out).values():
        assert _decode(p).shape == (8, 48, 64, 3)


def test_usage_errors_exit_2(tmp_path, capsys):
    gradient_photo(tmp_path / "in" / "a.png")
    (tmp_path / "m.csv").write_text("photo,duration\na.png,1\n")
    for args, match in [
        ([str(tmp_path / "nope"), "-o", str(tmp_path / "o")], "does not exist"),
        ([str(tmp_path / "m.csv"), "-o", str(tmp_path / "o")], "'image' column"),
        ([str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--workers", "0"], "--workers"),
        ([str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--gpus", "all"], "GPU"),
    ]:
        if "--gpus" in args:
            import torch

            if torch.cuda.is_available():
                continue
        assert main(["batch", *args, "-q"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("photo3d: error:") and match in err, err


def test_ray_local_mode_makes_the_same_clips(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'photo3d_fast[cluster]')")
    src = _folder(tmp_path / "in", n=3)
    local, viaray = tmp_path / "local", tmp_path / "ray"
    run_batch(src, local, quiet=True, **FAST)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report = run_batch(src, viaray, ray="local", workers=2, quiet=True, **FAST)
    finally:
        ray.shutdown()
    assert report["exit_status"] == 0 and report["runner"].startswith("Ray (local): 2 actors")
    c1, c2 = _clips(local), _clips(viaray)
    assert list(c1) == list(c2) and len(c1) == 3
    for name in c1:
        np.testing.assert_array_equal(_decode(c1[name]), _decode(c2[name]))


class _SpyProcess:
    """multiprocessing's Process as LocalRunner starts it: records the CUDA_VISIBLE_DEVICES
    a spawned child would inherit at start()."""

    started: list[str | None]
    pid = None  # never started

    def __init__(self, target, args, name, daemon):
        self.args = args

    def start(self):
        _SpyProcess.started.append(os.environ.get("CUDA_VISIBLE_DEVICES"))


@pytest.mark.parametrize("parent, want", [
    (None, ["0", "1"]),
    ("2,3", ["2", "3"]),
    ("GPU-aaaa,GPU-bbbb", ["GPU-aaaa", "GPU-bbbb"]),
    (" 5 , 7 ", ["5", "7"]),
])
def test_gpu_workers_get_the_parents_visible_gpus(monkeypatch, parent, want):
    import types

    import torch

    from photo3d_fast.batch import local
    from photo3d_fast.batch.cli import make_runner

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    if parent is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", parent)
    assert local.worker_visible_devices(["1", "0", None], os.environ) == [want[1], want[0], None]
    runner = make_runner(gpus="all")
    assert runner.slots == ["0", "1"] and runner.visible == want
    _SpyProcess.started = []
    ctx = types.SimpleNamespace(Process=_SpyProcess)
    for slot in range(2):
        runner._start(ctx, slot, None, None)
    assert _SpyProcess.started == want
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == parent  # the parent's own is restored
    # --gpus 1 with two workers: both on the parent's second visible GPU
    runner = make_runner(workers=2, gpus="1")
    _SpyProcess.started = []
    for slot in range(2):
        runner._start(ctx, slot, None, None)
    assert _SpyProcess.started == [want[1], want[1]]


def test_gpu_index_outside_the_parents_visible_gpus_is_a_clear_error():
    from photo3d_fast.batch.local import worker_visible_devices
    from photo3d_fast.errors import Photo3DError

    with pytest.raises(Photo3DError, match="not in this process's CUDA_VISIBLE_DEVICES='3'"):
        worker_visible_devices(["1"], {"CUDA_VISIBLE_DEVICES": "3"})
