"""The C++ CPU implementations (``csrc/cpu/``: plain C++17 on its own threads, loaded through
ctypes) of the ops ``splat``, ``fill``, ``grow``, ``snap`` and ``dof``: the same contracts and
math as their torch references ``ops/splat.py``, ``ops/fill.py``, ``ops/grow.py``,
``ops/snap.py`` and ``ops/dof.py``, for CPU tensors. ``--kernels auto`` picks them on the
CPU when the library loads; ``ops.backends.status("cpp")`` says why it does not.

The library (``libphoto3d_cpu``) has no torch or Python headers, so it needs no torch at
build time:

- ``setup.py`` builds it at install as ``photo3d_fast/_cpu<EXT_SUFFIX>`` when a C++ compiler
  is present (a plain shared library, not a Python module), stamped with ``source_hash``;
- otherwise, or when the installed one was built from other sources (an editable install
  whose ``csrc/cpu`` changed), it is built on first use into
  ``<cache>/cpu/<key>/libphoto3d_cpu<suffix>`` (``engines.cache.cache_dir``; key: sources,
  flags, compiler), under a file lock, with one ``notice`` line;
- without a compiler, ``status`` says so and auto falls back to the torch reference.

``render_frames`` runs the whole frame natively: footprints, z-buffer and resolve, then the
epilogue of ``splat.finish_frames`` (normalise, anti-alias silhouettes, far-first fill,
clamp) in C++ too, the fill's push-pull fallback for orphan holes (rare) staying in torch as
in the Triton fill. The epilogue is the one part that reimplements the reference rather
than an op: ``native_epilogue`` compares it with ``finish_frames`` once per process and,
should they differ (the reference changed), frames are finished by the reference's
epilogue with this module's fill instead. ``accumulate_frames`` stops before the epilogue
and returns the reference's (acc, zbuf).
``grow_back_layer`` computes the layer's geometry natively (``grow_layer``: seeds, seed
surfaces, jump flooding, reach, depth; equal to the reference's bit for bit, see
csrc/cpu/grow.cpp) and colours it with this module's ``fill_from_background``.
``snap_to_color_edges`` (csrc/cpu/snap.cpp) equals the reference bit for bit: the same
float32 weights (exp in float64, rounded once), candidates in the same stable order, the
same float64 running sums.
Threads: ``torch.get_num_threads()``; results do not depend on it (no atomics: each band of
output rows is one thread's, its texels visited in the reference's order).
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib.machinery
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

import torch

try:
    import fcntl  # POSIX: the build lock
except ImportError:  # Windows
    fcntl = None

from ..engines.cache import cache_dir
from ..errors import notice
from . import dof as dof_ref
from .fill import FAR_POWER, check_fill_args, push_pull
from .grow import jump_steps, reach_rounds
from .snap import COLOR_SIGMA
from .splat import (
    COVERAGE_FULL,
    FOOTPRINT_MARGIN,
    MAX_HALF_EXTENT,
    RESOLVE_SHARE,
    Z_NEAR,
    SurfaceGrid,
    cameras,
    finish_frames,
    prepare,
)

__all__ = [
    "accumulate_frames",
    "depth_of_field",
    "fill_frames",
    "fill_from_background",
    "finish",
    "Growth",
    "grow_back_layer",
    "grow_layer",
    "library_status",
    "native_epilogue",
    "nearest_covered",
    "prepare",
    "render_frame",
    "render_frames",
    "render_frames_u8",
    "seeds",
    "snap_to_color_edges",
]

#: The C interface version (csrc/cpu/photo3d_cpu.h P3D_ABI); a library with another is rebuilt.
ABI = 2
#: Where the sources are in a checkout or an editable install (setup.py compiles the same).
SOURCE_DIR = Path(__file__).resolve().parents[2] / "csrc" / "cpu"
#: Compiler flags (setup.py uses the same, tests/test_cpu_backend.py checks it): no fused
#: multiply-add, so that every float operation rounds as torch's elementwise ops do; no
#: trapping math, so that masked (branch-free) loops vectorise (values are unchanged).
CXX_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-pthread", "-ffp-contract=off", "-fno-trapping-math",
             "-fvisibility=hidden")
#: Compilers tried, in order, when $CXX is not set.
COMPILERS = ("c++", "g++", "clang++")


def source_hash(directory: Path) -> str | None:
    """sha256 (16 hex digits) of the library's sources (*.h, *.cpp) in ``directory``; None
    if there are none. setup.py stamps the installed library with the same digest."""
    files = sorted(p for p in Path(directory).glob("*") if p.suffix in (".h", ".cpp"))
    if not files:
        return None
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


class _Grid(ctypes.Structure):
    _fields_ = [("points", ctypes.c_void_p), ("link_x", ctypes.c_void_p), ("link_y", ctypes.c_void_p),
                ("texels", ctypes.c_void_p), ("colors", ctypes.c_void_p), ("row_start", ctypes.c_void_p),
                ("n_texels", ctypes.c_int64), ("layers", ctypes.c_int32), ("height", ctypes.c_int32),
                ("width", ctypes.c_int32), ("reserved", ctypes.c_int32), ("focal", ctypes.c_double)]


class _Params(ctypes.Structure):
    _fields_ = [("z_near", ctypes.c_double), ("margin", ctypes.c_double), ("max_extent", ctypes.c_double),
                ("tolerance", ctypes.c_double), ("far_power", ctypes.c_double), ("edge", ctypes.c_double),
                ("coverage_full", ctypes.c_double)]


_P = ctypes.c_void_p
_I32 = ctypes.c_int32
_SIGNATURES = {
    "p3d_abi": ([], ctypes.c_int),
    "p3d_source_hash": ([], ctypes.c_char_p),
    "p3d_workspace_new": ([], _P),
    "p3d_workspace_free": ([_P], None),
    "p3d_splat": ([_P, ctypes.POINTER(_Grid), ctypes.POINTER(_Params), _P, _I32, _I32, _I32, _I32,
                   _P, _P, _P, _P, _P, _P], ctypes.c_int),
    "p3d_finish": ([_P, _P, _P, _I32, _I32, _I32, ctypes.POINTER(_Params), _I32, _P, _P, _P, _P], ctypes.c_int),
    "p3d_fill": ([_P, _P, _P, _P, _P, _I32, _I32, _I32, _I32, ctypes.c_double, _I32, _P, _P], ctypes.c_int),
    "p3d_nearest": ([_P, _I32, _I32, _I32, _P, _I32], ctypes.c_int),
    "p3d_quantise": ([_P, _P, ctypes.c_int64, _I32], ctypes.c_int),
    "p3d_grow": ([_P, _P, _I32, _I32, _P, _I32, _I32, ctypes.c_int64, ctypes.c_double, _P, _I32, _P, _P, _P, _P, _P],
                 ctypes.c_int),
    "p3d_seeds": ([_P, _I32, _I32, ctypes.c_double, _I32, _P], ctypes.c_int),
    "p3d_snap": ([_P, _P, _I32, _I32, ctypes.c_double, _I32, ctypes.c_double, _I32, _P, _P], ctypes.c_int),
    "p3d_dof": ([_P, _P, _P, _P, _I32, _I32, _I32, _P, _P, _P, _I32, ctypes.c_double, _I32, _P], ctypes.c_int),
}


def _open(path: Path) -> ctypes.CDLL:
    """Load the library at ``path`` and declare its functions; OSError if it is not ours."""
    lib = ctypes.CDLL(str(path))
    try:
        for name, (args, res) in _SIGNATURES.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res
    except AttributeError as e:
        raise OSError(f"{path} is not libphoto3d_cpu: {e}") from None
    if lib.p3d_abi() != ABI:
        raise OSError(f"{path} has interface {lib.p3d_abi()}, this photo3d_fast needs {ABI}")
    return lib


def _installed() -> Path | None:
    """The library setup.py built into the package, if any."""
    here = Path(__file__).resolve().parents[1]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        if (here / f"_cpu{suffix}").exists():
            return here / f"_cpu{suffix}"
    return None


def compiler() -> str | None:
    """The C++ compiler to build with: $CXX, else the first of COMPILERS on PATH."""
    if os.environ.get("CXX"):
        return os.environ["CXX"]
    return next((c for c in COMPILERS if shutil.which(c)), None)


def _compiler_id(cxx: str) -> str:
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30, check=False)
        return (out.stdout.splitlines() or [""])[0]
    except (OSError, subprocess.SubprocessError):
        return ""


#: What the build tries, in order: as is; without function multi-versioning (a compiler or
#: libc without ifunc: baseline SIMD only).
ATTEMPTS = ((), ("-DP3D_NO_CLONES",))


def _compile(cxx: str, sources: list[Path], target: Path, extra: tuple[str, ...]) -> subprocess.CompletedProcess:
    cmd = [cxx, *CXX_FLAGS, "-shared", *extra, f"-DP3D_SOURCE_HASH=\"{source_hash(SOURCE_DIR)}\"", "-o", str(target),
           *map(str, sources)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


class _Lock:
    """An exclusive lock on a file (a no-op where fcntl is missing: the build's atomic
    rename keeps concurrent builds correct, only duplicated)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self):
        self.file = open(self.path, "a+")
        if fcntl is not None:
            fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc) -> None:
        if fcntl is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _build() -> Path:
    """Compile the sources into the cache (once per sources, flags and compiler) and return
    the library's path; RuntimeError saying why when it cannot."""
    digest = source_hash(SOURCE_DIR)
    if digest is None:
        raise RuntimeError(f"the sources are not here ({SOURCE_DIR}) and no built library was installed")
    cxx = compiler()
    if cxx is None:
        raise RuntimeError(f"no C++ compiler found ({', '.join(COMPILERS)} or $CXX)")
    key = hashlib.sha256("\0".join([digest, *CXX_FLAGS, cxx, _compiler_id(cxx), sys.platform])
                         .encode()).hexdigest()[:16]
    suffix = ".dll" if sys.platform == "win32" else ".dylib" if sys.platform == "darwin" else ".so"
    folder = cache_dir() / "cpu" / key
    target = folder / f"libphoto3d_cpu{suffix}"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with _Lock(folder / "build.lock"):
        if target.exists():  # another process built it meanwhile
            return target
        notice(f"building the C++ CPU kernels with {cxx} (once per version) into {folder}")
        sources = sorted(SOURCE_DIR.glob("*.cpp"))
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            out = Path(tmp) / target.name
            for extra in ATTEMPTS:
                done = _compile(cxx, sources, out, extra)
                if done.returncode == 0:
                    break
            if done.returncode != 0:
                lines = (done.stderr or done.stdout).strip().splitlines()
                raise RuntimeError(f"{cxx} failed to build csrc/cpu: {lines[0][:200] if lines else done.returncode}")
            os.replace(out, target)
    return target


@functools.cache
def _library() -> tuple[ctypes.CDLL | None, str]:
    """(library, what it is) or (None, why not); decided once per process."""
    installed = _installed()
    if installed is not None:
        try:
            lib = _open(installed)
            digest = source_hash(SOURCE_DIR)
            # without sources (an installed wheel) the installed library is the only one
            if digest is None or lib.p3d_source_hash().decode() == digest:
                return lib, _describe(lib, installed)
        except OSError:
            pass  # built for another interface or broken: build from the sources
    try:
        path = _build()
        lib = _open(path)
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        return None, f"the C++ CPU kernels are not available: {e}"
    return lib, _describe(lib, path)


def _describe(lib: ctypes.CDLL, path: Path) -> str:
    return f"C++ CPU kernels ({path}, up to {torch.get_num_threads()} threads: torch.get_num_threads())"


def library_status() -> tuple[bool, str]:
    """(usable, reason) of the C++ library: loads (building it first if needed), or why not."""
    lib, why = _library()
    return lib is not None, why


def _lib() -> ctypes.CDLL:
    lib, why = _library()
    if lib is None:
        raise RuntimeError(why)
    return lib


class _Workspace:
    """The library's scratch (records, band lists, tiles), reused from call to call."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        self.lib, self.handle = lib, lib.p3d_workspace_new()
        if not self.handle:
            raise MemoryError("libphoto3d_cpu: no memory for a workspace")

    def __del__(self) -> None:
        self.lib.p3d_workspace_free(self.handle)


_local = threading.local()


def _workspace(lib: ctypes.CDLL) -> int:
    """This thread's workspace (calls from several threads must not share one)."""
    ws = getattr(_local, "workspace", None)
    if ws is None:
        ws = _local.workspace = _Workspace(lib)
    return ws.handle


def _check_rc(rc: int, what: str) -> None:
    if rc == -2:
        raise MemoryError(f"libphoto3d_cpu: out of memory in {what}")
    if rc != 0:
        raise ValueError(f"libphoto3d_cpu: {what} rejected its arguments ({rc})")


# -- splat ------------------------------------------------------------------------------------

def _grid_arrays(grid: SurfaceGrid) -> _Grid:
    """The grid as the library reads it, built once per grid and kept on it (as its
    ``links_u8``): contiguous arrays and the first texel of every grid row."""
    cached = grid.__dict__.get("_cpu_grid")
    if cached is not None:
        return cached[0]
    if grid.points.device.type != "cpu":
        raise ValueError(f"the C++ CPU kernels take CPU tensors, got a grid on {grid.points.device}")
    L, H, W = grid.points.shape[:3]
    points = grid.points.float().permute(3, 0, 1, 2).contiguous()  # x, y, z planes: unit-stride loads
    link_x, link_y = grid.links_u8
    texels = grid.texels.contiguous().long()
    colors = grid.colors.contiguous().float()
    if len(texels) > 1 and not bool((texels[1:] > texels[:-1]).all()):
        raise ValueError("grid.texels must be ascending (as ops.splat.prepare makes them)")
    if L * H * W >= 2**32:
        raise ValueError(f"a grid of {L}x{H}x{W} texels does not fit the 32-bit texel ids of the z-buffer keys")
    row_start = torch.searchsorted(texels, torch.arange(L * H + 1, dtype=torch.int64) * W).contiguous()
    keep = (points, link_x, link_y, texels, colors, row_start)
    struct = _Grid(points.data_ptr(), link_x.data_ptr(), link_y.data_ptr(), texels.data_ptr(), colors.data_ptr(),
                   row_start.data_ptr(), len(texels), L, H, W, 0, float(grid.focal))
    grid.__dict__["_cpu_grid"] = (struct, keep)
    return struct


def _params(edge: float) -> _Params:
    """The constants of the reference for an LDI of edge disparity ``edge``."""
    return _Params(Z_NEAR, FOOTPRINT_MARGIN, MAX_HALF_EXTENT, RESOLVE_SHARE * edge, FAR_POWER, edge, COVERAGE_FULL)


def _cameras(c2ws: torch.Tensor, Ks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    w, h = size
    if c2ws.dim() != 3 or c2ws.shape[1:] != (4, 4) or Ks.shape != (len(c2ws), 3, 3):
        raise ValueError(f"c2ws must be (F, 4, 4) and Ks (F, 3, 3), got {tuple(c2ws.shape)} and {tuple(Ks.shape)}")
    if w <= 0 or h <= 0:
        raise ValueError(f"size must be positive (W, H), got {size}")
    return cameras(c2ws.cpu(), Ks.cpu())


def _splat(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor, size: tuple[int, int], **outputs) -> None:
    """p3d_splat of every camera into ``outputs`` (zbuf and acc, or color, covered, orphan
    and n_orphans: see csrc/cpu/photo3d_cpu.h)."""
    w, h = size
    lib = _lib()
    struct, cams = _grid_arrays(grid), _cameras(c2ws, Ks, size)
    ptr = {name: outputs[name].data_ptr() if name in outputs else None
           for name in ("zbuf", "acc", "color", "covered", "orphan", "n_orphans")}
    _check_rc(lib.p3d_splat(_workspace(lib), ctypes.byref(struct), ctypes.byref(_params(grid.edge_disparity)),
                            cams.data_ptr(), len(cams), w, h, torch.get_num_threads(), *ptr.values()), "p3d_splat")


def accumulate_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                      size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Footprints, z-buffer and resolve of F frames: (acc (F, W*H, 4) float32, zbuf (F, W*H)
    int64), as ``ops.splat.render_frame`` builds them before ``finish``.

    grid: a CPU SurfaceGrid (``prepare``); c2ws (F, 4, 4), Ks (F, 3, 3) float32; size (W, H).
    """
    w, h = size
    n = len(c2ws)
    acc = torch.empty(n, w * h, 4, dtype=torch.float32)
    zbuf = torch.empty(n, w * h, dtype=torch.int64)
    if n:
        _splat(grid, c2ws, Ks, size, zbuf=zbuf, acc=acc)
    return acc, zbuf


def _push_pull_orphans(color: torch.Tensor, orphan: torch.Tensor, n_orphans: torch.Tensor) -> None:
    """The fill's fallback for the frames the library left with orphan holes (0, see
    p3d_splat): the reference's push-pull, then the epilogue's clamp. color (F, H, W, 3)."""
    for i in torch.nonzero(n_orphans).flatten().tolist():
        values = color[i].permute(2, 0, 1)
        mask = orphan[i].bool()
        color[i] = torch.where(mask, push_pull(values, (~mask).float()), values).clamp(0.0, 1.0).permute(1, 2, 0)


def render_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frames, CPU tensors: (F, H, W, 3) float32 color in
    [0, 1] (contiguous) and (F, H, W) bool coverage (False = filled hole)."""
    w, h = size
    return _render(grid, c2ws, Ks, size, torch.empty(len(c2ws), h, w, 3, dtype=torch.float32))


def _render(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor, size: tuple[int, int],
            color: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """render_frames into ``color`` (F, H, W, 3) float32, contiguous."""
    w, h = size
    n = len(c2ws)
    if not native_epilogue()[0]:
        acc, zbuf = accumulate_frames(grid, c2ws, Ks, size)
        frames, covered = finish_frames(acc, zbuf, size, grid.edge_disparity, fill=fill_frames)
        return color.copy_(frames), covered
    covered = torch.empty(n, h, w, dtype=torch.bool)
    if n == 0:
        return color, covered
    orphan = torch.empty(n, h, w, dtype=torch.uint8)
    n_orphans = torch.zeros(n, dtype=torch.int64)
    _splat(grid, c2ws, Ks, size, color=color, covered=covered, orphan=orphan, n_orphans=n_orphans)
    _push_pull_orphans(color, orphan, n_orphans)
    return color, covered


def render_frames_u8(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(F, H, W, 3) uint8 frames, exactly ``(render_frames(...)[0] * 255 + 0.5).to(torch.uint8)``
    as ``render.Renderer`` quantises them, in one native pass, the float frames in a buffer
    kept per thread (torch's three passes and fresh allocations cost about as much as the
    rendering on two cores)."""
    w, h = size
    shape = (len(c2ws), h, w, 3)
    buffer = getattr(_local, "frames", None)
    if buffer is None or buffer.numel() < math.prod(shape):
        buffer = _local.frames = torch.empty(math.prod(shape), dtype=torch.float32)
    color, _ = _render(grid, c2ws, Ks, size, buffer[: math.prod(shape)].view(shape))
    out = torch.empty(shape, dtype=torch.uint8)
    lib = _lib()
    _check_rc(lib.p3d_quantise(color.data_ptr(), out.data_ptr(), color.numel(), torch.get_num_threads()),
              "p3d_quantise")
    return out


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frame: (H, W, 3) float32 color and (H, W) bool coverage."""
    color, covered = render_frames(grid, c2w[None], K[None], size)
    return color[0], covered[0]


def finish(acc: torch.Tensor, zbuf: torch.Tensor, size: tuple[int, int], edge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The library's epilogue (normalise, anti-alias silhouettes, fill, clamp), which
    ``render_frames`` runs fused with the splat: ``ops.splat.finish_frames`` of acc (F, W*H, 4)
    and zbuf (F, W*H), as (F, H, W, 3) float32 color and (F, H, W) bool coverage."""
    w, h = size
    n = acc.shape[0]
    lib = _lib()
    acc, zbuf = acc.contiguous(), zbuf.contiguous()
    color = torch.empty(n, h, w, 3, dtype=torch.float32)
    covered = torch.empty(n, h, w, dtype=torch.bool)
    orphan = torch.empty(n, h, w, dtype=torch.uint8)
    n_orphans = torch.zeros(n, dtype=torch.int64)
    _check_rc(lib.p3d_finish(_workspace(lib), acc.data_ptr(), zbuf.data_ptr(), n, h, w, ctypes.byref(_params(edge)),
                             torch.get_num_threads(), color.data_ptr(), covered.data_ptr(), orphan.data_ptr(),
                             n_orphans.data_ptr()), "p3d_finish")
    _push_pull_orphans(color, orphan, n_orphans)
    return color, covered


def epilogue_probe(size: tuple[int, int] = (23, 17), edge: float = 0.1) -> tuple[torch.Tensor, torch.Tensor]:
    """(acc (1, W*H, 4), zbuf (1, W*H)) of a synthetic frame that exercises every step of the
    epilogue: a far wall (z 5) beside a near block (z 1.5) whose edge pixels are partly
    covered (silhouettes), a band of holes between them (far-first fill), and the first two
    rows and columns empty (orphans: push-pull)."""
    w, h = size
    g = torch.Generator().manual_seed(18)
    weight = 0.2 + 1.3 * torch.rand(h, w, generator=g)
    color = torch.rand(h, w, 3, generator=g)
    z = torch.where(torch.arange(w) < w // 2, 5.0, 1.5).expand(h, w) * (1 + 0.01 * torch.rand(h, w, generator=g))
    weight[: h * 3 // 4, w // 2 - 2 : w // 2 + 1] = 0.0
    weight[:2] = 0.0
    weight[:, :2] = 0.0
    acc = torch.cat([color * weight[..., None], weight[..., None]], -1).reshape(1, w * h, 4)
    ids = torch.arange(w * h, dtype=torch.int64).reshape(h, w)
    keys = (z.contiguous().view(torch.int32).to(torch.int64) << 32) | ids
    zbuf = torch.where(weight > 0, keys, torch.iinfo(torch.int64).max).reshape(1, w * h)
    return acc, zbuf


@functools.cache
def native_epilogue() -> tuple[bool, str]:
    """(same, why): whether the library's epilogue matches ``ops.splat.finish_frames`` (with
    its own fill) on ``epilogue_probe``, checked once per process. Where it does not (the
    reference's epilogue changed and csrc/cpu/finish.cpp has not followed yet), the frames
    are finished by the reference's epilogue with this module's fill, slower, and one
    ``notice`` line says so."""
    acc, zbuf = epilogue_probe()
    size, edge = (23, 17), 0.1
    try:
        expected, expected_cov = finish_frames(acc, zbuf, size, edge)
        got, got_cov = finish(acc, zbuf, size, edge)
        same = torch.equal(got_cov, expected_cov) and bool(((got - expected).abs() <= 1e-5).all())
        why = "" if same else f"differs by up to {float((got - expected).abs().max()):.3g}"
    except Exception as e:  # noqa: BLE001 - any failure means: use the reference's epilogue
        same, why = False, f"{type(e).__name__}: {e}"
    if same:
        return True, "the C++ epilogue matches ops.splat.finish_frames"
    why = f"the C++ epilogue (csrc/cpu/finish.cpp) does not match ops.splat.finish_frames ({why})"
    notice(f"--kernels cpp: {why}; finishing frames with the reference's epilogue (slower)")
    return False, why


# -- fill -------------------------------------------------------------------------------------

def nearest_covered(covered: torch.Tensor, *, out: torch.Tensor | None = None) -> torch.Tensor:
    """(4, H, W) int32: per pixel, the index of the nearest covered pixel to its left, right
    (columns), top and bottom (rows), itself included; -1 where there is none. covered:
    (H, W) bool, or (F, H, W) for F frames, giving (4, F, H, W); ``out``: optional result.
    Matches ``ops.fill.nearest_covered`` for (dim, forward) = (1, False), (1, True),
    (0, False), (0, True)."""
    if covered.dim() not in (2, 3) or covered.dtype != torch.bool or covered.device.type != "cpu":
        raise ValueError(f"covered must be an (H, W) or (F, H, W) bool CPU tensor, got {tuple(covered.shape)} "
                         f"{covered.dtype} on {covered.device}")
    shape = (4, *covered.shape)
    if out is None:
        out = torch.empty(shape, dtype=torch.int32)
    elif tuple(out.shape) != shape or out.dtype != torch.int32 or out.device != covered.device or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {shape} int32 tensor on {covered.device}, "
                         f"got {tuple(out.shape)} {out.dtype} on {out.device}")
    frames = covered.shape[0] if covered.dim() == 3 else 1
    h, w = covered.shape[-2:]
    if frames and h and w:
        cov = covered.contiguous()
        _check_rc(_lib().p3d_nearest(cov.data_ptr(), frames, h, w, out.data_ptr(), torch.get_num_threads()),
                  "p3d_nearest")
    return out


def _check(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, out: torch.Tensor | None,
           batched: bool) -> None:
    """``ops.fill.check_fill_args``, and CPU tensors only."""
    if not (values.device.type == covered.device.type == depth.device.type == "cpu"):
        raise ValueError(f"values, covered and depth must be CPU tensors, got "
                         f"{values.device}, {covered.device}, {depth.device}")
    check_fill_args(values, covered, depth, out, batched)


def _fill(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The native fill of (F, C, H, W) values into ``out``, then push-pull for orphans."""
    f, c, h, w = values.shape
    lib = _lib()
    values, covered, depth = values.contiguous(), covered.contiguous(), depth.contiguous()
    orphan = torch.empty(f, h, w, dtype=torch.uint8)
    n_orphans = torch.zeros(f, dtype=torch.int64)
    _check_rc(lib.p3d_fill(_workspace(lib), values.data_ptr(), out.data_ptr(), covered.data_ptr(), depth.data_ptr(),
                           f, c, h, w, FAR_POWER, torch.get_num_threads(), orphan.data_ptr(), n_orphans.data_ptr()),
              "p3d_fill")
    for i in torch.nonzero(n_orphans).flatten().tolist():
        mask = orphan[i].bool()
        out[i] = torch.where(mask, push_pull(out[i], (~mask).float()), out[i])
    return out


def fill_from_background(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, *,
                         out: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as ``photo3d_fast.ops.fill.fill_from_background``, CPU tensors: values
    (C, H, W) float32, covered (H, W) bool, depth (H, W) float32. Returns (C, H, W) float32;
    as the reference, ``values`` itself when every pixel or no pixel is covered (a copy in
    ``out`` if given). ``out``: optional (C, H, W) float32."""
    _check(values, covered, depth, out, batched=False)
    if bool(covered.all()) or not bool(covered.any()):
        return values if out is None else out.copy_(values)
    if out is None:
        out = torch.empty_like(values, memory_format=torch.contiguous_format)
    _fill(values[None], covered[None], depth[None], out[None])
    return out


def fill_frames(values: torch.Tensor, covered: torch.Tensor, depth: torch.Tensor, *,
                out: torch.Tensor | None = None) -> torch.Tensor:
    """``fill_from_background`` of F frames (the twin of ``ops.fill.fill_frames``): values
    (F, C, H, W) float32, covered (F, H, W) bool, depth (F, H, W) float32, CPU tensors.
    Returns (F, C, H, W) float32, a new tensor (or ``out``)."""
    _check(values, covered, depth, out, batched=True)
    if out is None:
        out = torch.empty_like(values, memory_format=torch.contiguous_format)
    if values.numel() == 0:
        return out
    return _fill(values, covered, depth, out)


# -- grow -------------------------------------------------------------------------------------

def _check_depth(depth: torch.Tensor, what: str = "depth") -> None:
    if depth.dim() != 2 or not depth.is_floating_point() or depth.device.type != "cpu":
        raise ValueError(f"{what} must be an (H, W) float CPU tensor, got {tuple(depth.shape)} {depth.dtype} "
                         f"on {depth.device}")


def seeds(depth: torch.Tensor, edge_disparity: float) -> torch.Tensor:
    """(H, W) bool background seeds of a (H, W) float z-depth map (as float32):
    ``ops.grow.discontinuities(depth, edge_disparity)[1]``."""
    _check_depth(depth)
    depth = depth.float().contiguous()
    h, w = depth.shape
    out = torch.empty((h, w), dtype=torch.bool)
    _check_rc(_lib().p3d_seeds(depth.data_ptr(), h, w, float(edge_disparity), torch.get_num_threads(),
                               out.data_ptr()), "p3d_seeds")
    return out


class Growth(NamedTuple):
    """One back layer's geometry (``grow_layer``), each (H, W): the layer's mask (bool) and
    depth (float32, 0 outside the mask); with details, as the reference's steps compute them:
    seeds (bool, ``discontinuities``), surface (float32, ``seed_surfaces``) and the seed each
    pixel holds after jump flooding (``nearest_seed_behind``: int32 row, column, float32
    disparity, int32 squared distance); None without."""

    mask: torch.Tensor
    depth: torch.Tensor
    seeds: torch.Tensor | None = None
    surface: torch.Tensor | None = None
    nearest: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None


def grow_layer(depth: torch.Tensor, band: int, edge_disparity: float, allowed: torch.Tensor | None = None, *,
               details: bool = False) -> Growth:
    """The geometry of ``grow_back_layer`` (its mask and depth, steps 1-5 of ``ops.grow``'s
    module doc) in C++ (csrc/cpu/grow.cpp): depth (H, W) float z-depth (as float32), band
    (pixels, clamped to H + W as the reference clamps), edge_disparity, allowed (H, W) bool
    or None; ``details`` also returns the intermediate results (``Growth``)."""
    _check_depth(depth)
    h, w = depth.shape
    if allowed is not None and (tuple(allowed.shape) != (h, w) or allowed.device.type != "cpu"):
        raise ValueError(f"allowed must be an ({h}, {w}) bool CPU tensor, got {tuple(allowed.shape)} on {allowed.device}")
    depth = depth.float().contiguous()
    mask = torch.empty((h, w), dtype=torch.bool)
    layer_depth = torch.empty((h, w), dtype=torch.float32)
    if h * w == 0:
        empty = (torch.empty((h, w), dtype=torch.int32),) * 2
        return Growth(mask, layer_depth, *((mask.clone(), layer_depth.clone(),
                                            (*empty, layer_depth.clone(), empty[0])) if details else ()))
    band = min(int(band), h + w)  # no two pixels lie farther apart (as the reference clamps)
    steps = torch.tensor(jump_steps(band) or [0], dtype=torch.int32)
    n_steps = len(jump_steps(band))
    allowed_u8 = allowed.to(torch.bool).contiguous() if allowed is not None else None
    seed = torch.empty((h, w), dtype=torch.bool) if details else None
    surface = torch.empty((h, w), dtype=torch.float32) if details else None
    nearest = torch.empty((4, h, w), dtype=torch.int32) if details else None
    lib = _lib()
    _check_rc(lib.p3d_grow(_workspace(lib), depth.data_ptr(), h, w, steps.data_ptr(), n_steps, reach_rounds(h, w),
                           max(band, 0) ** 2, float(edge_disparity),
                           allowed_u8.data_ptr() if allowed_u8 is not None else None, torch.get_num_threads(),
                           mask.data_ptr(), layer_depth.data_ptr(), seed.data_ptr() if details else None,
                           surface.data_ptr() if details else None, nearest.data_ptr() if details else None),
              "p3d_grow")
    if not details:
        return Growth(mask, layer_depth)
    return Growth(mask, layer_depth, seed, surface, (nearest[0], nearest[1], nearest[2].view(torch.float32), nearest[3]))


def grow_back_layer(
    color: torch.Tensor,
    depth: torch.Tensor,
    band: int,
    edge_disparity: float,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Same contract as ``photo3d_fast.ops.grow.grow_back_layer``, CPU tensors: color (H, W, 3)
    float, depth (H, W) float z-depth > 0, band (pixels), edge_disparity, allowed (H, W) bool
    or None. Returns (color (H, W, 3), depth (H, W), mask (H, W) bool) of the new layer, color
    and depth 0 outside the mask. The geometry in C++ (``grow_layer``), equal to the
    reference's; the colors by this module's ``fill_from_background`` (the C++ fill, to 1e-5
    of the reference's)."""
    _check_depth(depth)
    if color.shape != (*depth.shape, 3) or color.device.type != "cpu":
        raise ValueError(f"color must be an (H, W, 3) CPU tensor matching depth {tuple(depth.shape)}, "
                         f"got {tuple(color.shape)} on {color.device}")
    depth = depth.float()
    mask, layer_depth = grow_layer(depth, band, edge_disparity, allowed)[:2]
    rgb = fill_from_background(color.permute(2, 0, 1).float(), ~mask, depth).permute(1, 2, 0)
    return rgb * mask[..., None], layer_depth, mask


# -- snap -------------------------------------------------------------------------------------

def snap_to_color_edges(rgb: torch.Tensor, disp: torch.Tensor, edge: float, radius: int = 2) -> torch.Tensor:
    """Same contract as ``photo3d_fast.ops.snap.snap_to_color_edges``, CPU tensors: rgb (3, H, W)
    float sRGB / 255, disp (H, W) float disparity (both as float32), edge (disparity),
    radius (pixels). Returns (H, W) float32, a new tensor, or ``disp`` itself when no pixel is
    at a jump. Equal to the reference bit for bit (csrc/cpu/snap.cpp)."""
    _check_depth(disp, "disp")
    h, w = disp.shape
    if rgb.shape != (3, h, w) or not rgb.is_floating_point() or rgb.device.type != "cpu":
        raise ValueError(f"rgb must be a (3, {h}, {w}) float CPU tensor, got {tuple(rgb.shape)} {rgb.dtype} "
                         f"on {rgb.device}")
    radius = int(radius)
    if not 0 <= radius <= 1000:
        raise ValueError(f"radius must be in 0 .. 1000 pixels, got {radius}")
    d = disp.float().contiguous()
    colors = rgb.float().contiguous()
    out = torch.empty((h, w), dtype=torch.float32)
    n_jumps = ctypes.c_int64(0)
    _check_rc(_lib().p3d_snap(colors.data_ptr(), d.data_ptr(), h, w, float(edge), radius, COLOR_SIGMA,
                              torch.get_num_threads(), out.data_ptr(), ctypes.addressof(n_jumps)), "p3d_snap")
    return disp if n_jumps.value == 0 else out


# -- dof --------------------------------------------------------------------------------------

def depth_of_field(color: torch.Tensor, depth: torch.Tensor, focus: torch.Tensor | float,
                   aperture_px: torch.Tensor | float, max_coc: float = dof_ref.DEFAULT_MAX_COC,
                   bokeh: str = "disc") -> torch.Tensor:
    """Same contract as ``photo3d_fast.ops.dof.depth_of_field``, CPU tensors: color (F, H, W, 3)
    float32 sRGB / 255, depth (F, H, W) z-depth, focus and aperture_px floats or (F,).
    The CoC radii, areas and offset table are the reference's own; the gather is
    csrc/cpu/dof.cpp (float64 sums: within 1e-5 of the reference)."""
    dof_ref.check_bokeh(bokeh)
    if color.dim() != 4 or color.shape[-1] != 3 or depth.shape != color.shape[:3]:
        raise ValueError(f"color must be (F, H, W, 3) and depth (F, H, W), got {tuple(color.shape)} and "
                         f"{tuple(depth.shape)}")
    if color.device.type != "cpu" or depth.device.type != "cpu":
        raise ValueError(f"the C++ dof takes CPU tensors, got {color.device} and {depth.device}")
    n, h, w, _ = color.shape
    radius = dof_ref.coc_radius(depth.float(), focus, aperture_px, max_coc).contiguous()
    reach = int(math.ceil(float(radius.max()) - 1e-6)) if n and h and w else 0
    if reach < 1:
        return color.float().clone()
    inv_area = (1.0 / dof_ref.shape_area(radius, bokeh)).contiguous()
    table = dof_ref.offsets(reach, bokeh)
    off_dy = torch.tensor([o[0] for o in table], dtype=torch.int32)
    off_dx = torch.tensor([o[1] for o in table], dtype=torch.int32)
    off_edge = torch.tensor([o[2] - 0.5 for o in table], dtype=torch.float32)  # float32 of the float64 rim
    c = color.float().contiguous()
    z = depth.float().contiguous()
    out = torch.empty_like(c)
    _check_rc(_lib().p3d_dof(c.data_ptr(), z.data_ptr(), radius.data_ptr(), inv_area.data_ptr(), n, h, w,
                             off_dy.data_ptr(), off_dx.data_ptr(), off_edge.data_ptr(), len(table),
                             dof_ref.DEPTH_TOLERANCE, torch.get_num_threads(), out.data_ptr()), "p3d_dof")
    return out
