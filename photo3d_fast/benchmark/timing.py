"""Timers, repeated measurement, copy bandwidth and the environment record.

On a CUDA device, work launched on the current stream is timed with CUDA events after
warm-up (``elapsed_time`` between two recorded events, synchronised once per repetition);
on the CPU, with ``time.perf_counter``. Host stages that feed a GPU (decode, LDI upload)
are timed on the host clock after a ``torch.cuda.synchronize()``, so queued work is not
left out.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from .. import __version__

ROOT = Path(__file__).resolve().parents[2]


class Timer:
    """``t = Timer(device, events=True); t.start(); ...; seconds = t.stop()``.

    events: time with CUDA events (device work only) when the device is CUDA; otherwise
    the host clock, with the device synchronised before both readings.
    """

    def __init__(self, device: torch.device | str = "cpu", events: bool = True) -> None:
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.events = events and self.cuda
        if self.events:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.events:
            self._start.record()
            return
        if self.cuda:
            torch.cuda.synchronize(self.device)
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        """Seconds since start()."""
        if self.events:
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) / 1e3
        if self.cuda:
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - self._t0


def measure(fn: Callable[[], object], device: torch.device | str = "cpu", reps: int = 10, warmup: int = 1,
            events: bool = True, args: Callable[[int], tuple] | None = None) -> list[float]:
    """Seconds per call of ``fn`` over ``reps`` timed calls after ``warmup`` untimed ones.

    args: optional ``i -> tuple`` giving the arguments of call i (e.g. the pose of frame i),
    so a loop over distinct inputs is timed call by call."""
    call = (lambda i: fn(*args(i))) if args else (lambda i: fn())
    for i in range(warmup):
        call(i)
    timer = Timer(device, events)
    times = []
    for i in range(reps):
        timer.start()
        call(warmup + i)
        times.append(timer.stop())
    return times


def summary(times: list[float]) -> dict:
    """median_ms, p90_ms and reps of a list of seconds."""
    return {"median_ms": statistics.median(times) * 1e3, "p90_ms": float(np.percentile(times, 90)) * 1e3,
            "reps": len(times)}


def copy_bandwidth(device: torch.device | str, mib: int | None = None, reps: int = 10) -> float:
    """Measured device-to-device copy bandwidth in GB/s (bytes read + bytes written).

    mib: buffer size (default 256 MiB on CUDA, 64 MiB on CPU: well past the caches)."""
    device = torch.device(device)
    mib = mib or (256 if device.type == "cuda" else 64)
    src = torch.empty((mib << 20) // 4, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    times = measure(lambda: dst.copy_(src), device, reps=reps, warmup=2)
    return 2 * src.numel() * 4 / statistics.median(times) / 1e9


def _run(cmd: list[str], cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def git_commit() -> str:
    """Short commit of the source tree, with "+dirty" when it has uncommitted changes
    (the numbers then belong to the working tree, not the commit); "unknown" outside git."""
    commit = _run(["git", "rev-parse", "--short", "HEAD"], ROOT)
    if commit is None:
        return "unknown"
    dirty = _run(["git", "status", "--porcelain", "--untracked-files=no"], ROOT)
    return commit + ("+dirty" if dirty else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({cpu_name()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def environment(device: torch.device | str) -> dict:
    """Where numbers were taken: device, driver, library versions, commit, date (UTC)."""
    import PIL


    device = torch.device(device)
    env = {
        "device": device_name(device),
        "device_type": device.type,
        "driver": None,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pillow": PIL.__version__,
        "python": platform.python_version(),
        "photo3d_fast": __version__,
        "commit": git_commit(),
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        env["compute_capability"] = f"{props.major}.{props.minor}"
        env["driver"] = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader",
                              f"--id={device.index or 0}"])
    try:
        import imageio_ffmpeg

        env["ffmpeg"] = imageio_ffmpeg.get_ffmpeg_version()
    except Exception:  # an environment record must never fail the benchmark
        env["ffmpeg"] = None
    try:
        load = os.getloadavg()[0]
        env["load_1min"] = round(load, 2)
    except OSError:
        pass
    return env
