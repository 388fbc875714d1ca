"""The one backend selector: which implementation of an op runs, and why not the others.

Every hot-path op exists as a torch reference (``photo3d_fast/ops/<op>.py``, always
available, CPU and GPU) and as fast versions under the same names: Triton
(``kernels/<op>.py``) and CUDA C++ (``csrc/<op>.cu`` through ``photo3d_fast/ops/cuda.py``) on
a GPU, C++ on its own threads (``csrc/cpu/`` through ``photo3d_fast/ops/cpu.py``) on the CPU.
``IMPLEMENTATIONS`` lists them; ``select(op, kernels, device)`` returns the module to call.
An implementation module exposes the op's functions under the reference's names:

| op      | functions                                   | torch | triton | cuda | cpp |
| ------- | ------------------------------------------- | ----- | ------ | ---- | --- |
| splat   | prepare, render_frame, render_frames        | yes   | yes    | yes  | yes |
| fill    | fill_from_background, fill_frames           | yes   | yes    |      | yes |
| grow    | grow_back_layer                             | yes   | yes    |      | yes |
| nv12    | rgb_to_nv12                                 | yes   | yes    | yes  |     |
| snap    | snap_to_color_edges                         | yes   |        |      | yes |
| dof     | depth_of_field                              | yes   | yes    |      | yes |
| grade   | grade                                       | yes   | yes    |      |     |

(snap has no GPU twin: on a GPU its torch reference runs, on the GPU's tensors; grade, a
memory-bound pass of a few ms, has no C++ twin: on the CPU its torch reference runs.)

Implementations are loaded by module name, on first use: Triton and the compiled
extension are optional, and a fast module imports its reference (never the other way).
The C++ CPU library is built at install when a compiler is there, else on first use into
the cache (``ops.cpu``); without a compiler ``--kernels auto`` says so once and runs the
reference.

Present is not the same as runnable on a given GPU. ``photo3d_fast._C`` holds machine code
for ``CUDA_ARCHS`` plus PTX of the newest, so it runs on those architectures, on later
minor revisions of the same major (sm_86 runs sm_80 code) and, JIT-compiled by the driver,
on anything newer than the newest (sm_100, sm_120); not on older GPUs (T4 sm_75, V100
sm_70). Triton needs a host compiler, Python headers, libcuda and a ptxas that knows the
GPU, so it is probed once per process and device by compiling and launching a one-element
kernel. ``--kernels auto`` skips a backend that fails either check and says why once (one
``notice`` line); a backend asked for by name fails with the reason.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
from types import ModuleType

import torch

from ..config import BACKENDS, KERNEL_CHOICES
from ..errors import Photo3DError, notice

#: Architectures photo3d_fast._C carries machine code (SASS) for, plus PTX of the last one
#: (newest). setup.py's ARCHS is the same list (tests/test_backends.py checks they agree).
CUDA_ARCHS: tuple[int, ...] = (80, 89, 90)

#: op -> backend -> module implementing it. ``BACKENDS`` (config) is the order auto tries.
IMPLEMENTATIONS: dict[str, dict[str, str]] = {
    "splat": {"cuda": "photo3d_fast.ops.cuda", "triton": "photo3d_fast.kernels.splat",
              "cpp": "photo3d_fast.ops.cpu", "torch": "photo3d_fast.ops.splat"},
    "fill": {"triton": "photo3d_fast.kernels.fill", "cpp": "photo3d_fast.ops.cpu", "torch": "photo3d_fast.ops.fill"},
    "grow": {"triton": "photo3d_fast.kernels.grow", "cpp": "photo3d_fast.ops.cpu", "torch": "photo3d_fast.ops.grow"},
    "nv12": {"cuda": "photo3d_fast.ops.cuda", "triton": "photo3d_fast.kernels.nv12",
             "torch": "photo3d_fast.ops.nv12"},
    "snap": {"cpp": "photo3d_fast.ops.cpu", "torch": "photo3d_fast.ops.snap"},
    # no C++ twins: --kernels cpp runs their torch reference (the next implementation)
    "dof": {"triton": "photo3d_fast.kernels.dof", "cpp": "photo3d_fast.ops.cpu", "torch": "photo3d_fast.ops.dof"},
    "grade": {"triton": "photo3d_fast.kernels.grade", "torch": "photo3d_fast.ops.grade"},
}


def _cuda_index(device: torch.device | str | None) -> int | None:
    """CUDA device index of ``device`` (None: the current CUDA device); None if not CUDA."""
    if device is None:
        return torch.cuda.current_device()
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return device.index if device.index is not None else torch.cuda.current_device()


def _triton_present() -> tuple[bool, str]:
    """(usable, reason) without a launch: Triton needs the package and a CUDA GPU, or
    TRITON_INTERPRET=1 (CPU)."""
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (pip install photo3d_fast[triton])"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "Triton interpreter (TRITON_INTERPRET=1, CPU)"
    if not torch.cuda.is_available():
        return False, "Triton needs a CUDA GPU (or TRITON_INTERPRET=1 to run on the CPU)"
    return True, "Triton"


def _launch_triton_probe(index: int) -> None:
    """Compile and launch a one-element Triton kernel on cuda:``index``; raise if it fails
    or writes the wrong value. The kernel is defined here, on first use: Triton is optional."""
    import triton
    import triton.language as tl

    @triton.jit
    def _probe_kernel(out_ptr, value):
        tl.store(out_ptr, value + 1.0)

    with torch.cuda.device(index):
        out = torch.zeros(1, device=f"cuda:{index}", dtype=torch.float32)
        _probe_kernel[(1,)](out, 41.0)
        torch.cuda.synchronize(index)
        got = out.item()
    if got != 42.0:
        raise RuntimeError(f"the probe kernel wrote {got}, not 42.0")


@functools.cache
def _triton_probe(index: int) -> tuple[bool, str]:
    """(usable, reason) of compiled Triton on cuda:``index``, probed once per process."""
    try:
        _launch_triton_probe(index)
    except Exception as e:  # noqa: BLE001 - any failure means: use the next implementation
        lines = str(e).strip().splitlines()
        first = lines[0][:200] if lines else ""
        return False, f"Triton cannot compile/launch here: {type(e).__name__}: {first}"
    return True, f"Triton on {torch.cuda.get_device_name(index)} (probe kernel compiled and ran)"


def triton_status(device: torch.device | str | None = None) -> tuple[bool, str]:
    """(usable, reason) of Triton: installed, and (unless interpreted) a CUDA GPU on which a
    probe kernel compiles and runs (``device``; None: the current CUDA device)."""
    usable, why = _triton_present()
    if not usable or os.environ.get("TRITON_INTERPRET") == "1":
        return usable, why
    index = _cuda_index(device)
    if index is None:
        return True, "Triton (CUDA devices only)"
    return _triton_probe(index)


def cuda_arch_status(device: torch.device | str | None = None) -> tuple[bool, str]:
    """(usable, reason): whether photo3d_fast._C has code for ``device``'s compute capability
    (None: the current CUDA device). Machine code for sm_XY runs on sm_XZ, Z >= Y; PTX of
    the newest of CUDA_ARCHS is JIT-compiled by the driver for anything newer."""
    index = _cuda_index(device)
    if index is None:
        return True, "CUDA C++ extension (CUDA devices only)"
    major, minor = torch.cuda.get_device_capability(index)
    cc = major * 10 + minor
    built = "/".join(str(a) for a in CUDA_ARCHS)
    newest = max(CUDA_ARCHS)
    name = torch.cuda.get_device_name(index)
    if any(a // 10 == major and a <= cc for a in CUDA_ARCHS):
        return True, f"CUDA C++ extension on {name} (sm_{cc})"
    if cc > newest:
        return True, f"CUDA C++ extension on {name} (sm_{cc}, PTX of compute_{newest} JIT-compiled by the driver)"
    return False, (f"photo3d_fast._C has no code for {name} (sm_{cc}): it is built for sm_{built} "
                   f"and PTX of compute_{newest}, which runs only on newer GPUs")


def cuda_status() -> tuple[bool, str]:
    """(usable, reason) of the CUDA C++ extension photo3d_fast._C (loads, a CUDA GPU exists);
    ``cuda_arch_status`` says whether it has code for a given GPU."""
    try:
        importlib.import_module("photo3d_fast._C")
    except ImportError as e:
        built = importlib.util.find_spec("photo3d_fast._C") is not None
        return False, (f"the CUDA extension photo3d_fast._C does not load ({e})" if built else
                       "the CUDA extension photo3d_fast._C was not built (it needs CUDA torch and nvcc "
                       "at install: PHOTO3D_BUILD_CUDA=1 pip install --no-build-isolation -e .)")
    if not torch.cuda.is_available():
        return False, "the CUDA extension needs a CUDA GPU"
    return True, f"CUDA C++ extension on {torch.cuda.get_device_name()}"


def cpp_status() -> tuple[bool, str]:
    """(usable, reason) of the C++ CPU kernels (``ops.cpu``): the library loads, built at
    install or now into the cache; else why not (no compiler, a failed build)."""
    try:
        return importlib.import_module(IMPLEMENTATIONS["splat"]["cpp"]).library_status()
    except Exception as e:  # noqa: BLE001 - any failure means: use the next implementation
        return False, f"the C++ CPU kernels do not load: {type(e).__name__}: {e}"


def status(backend: str, device: torch.device | str | None = None) -> tuple[bool, str]:
    """(usable, reason) of a backend on this machine, for ``device`` (None: the current CUDA
    device, if any): the CUDA extension must have code for its architecture, and compiled
    Triton must pass the probe launch there; the C++ CPU kernels must load (CPU devices)."""
    if backend == "torch":
        return True, "torch reference"
    if backend == "cpp":
        return cpp_status()
    if backend == "triton":
        return triton_status(device)
    usable, why = cuda_status()
    if usable and torch.cuda.is_available():
        return cuda_arch_status(device)
    return usable, why


#: (backend, device index) pairs auto has already said it skips, so it says so once.
_NOTICED: set[tuple[str, int | None]] = set()


def _interpreted(backend: str) -> bool:
    """Whether ``backend`` runs on CPU tensors here: Triton under TRITON_INTERPRET=1."""
    return backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def _for_auto(backend: str, device: torch.device) -> bool:
    """Whether ``auto`` may pick ``backend`` on ``device``: cpp on the CPU, the other fast
    kernels on a GPU; auto never picks the (test-only) Triton interpreter."""
    if backend == "torch":
        return True
    if backend == "cpp":
        if device.type != "cpu":
            return False
        usable, why = cpp_status()
        if not usable and ("cpp", None) not in _NOTICED:
            _NOTICED.add(("cpp", None))
            notice(f"--kernels auto: not using cpp on cpu: {why}; using the next implementation")
        return usable
    if device.type != "cuda":
        return False
    if _interpreted(backend):
        return False
    present = _triton_present() if backend == "triton" else cuda_status()
    if not present[0]:
        return False  # not installed or no GPU: the normal CPU-only install, nothing to say
    usable, why = status(backend, device)
    if not usable:
        key = (backend, _cuda_index(device))
        if key not in _NOTICED:
            _NOTICED.add(key)
            notice(f"--kernels auto: not using {backend} on {device}: {why}; using the next implementation")
    return usable


def check_kernels(kernels: str) -> None:
    """Photo3DError unless ``kernels`` is one of KERNEL_CHOICES."""
    if kernels not in KERNEL_CHOICES:
        raise Photo3DError(f"--kernels {kernels!r} is unknown; choose one of {', '.join(KERNEL_CHOICES)}")


def select(op: str, kernels: str, device: torch.device | str) -> tuple[str, ModuleType]:
    """(backend name, implementation module) of ``op`` for ``kernels`` on ``device``.

    kernels: "auto" picks the first backend of BACKENDS that implements the op and can run
    on the device (on the CPU: cpp, then torch); a backend by name is used if it can run,
    else Photo3DError says why. A named backend that lacks the op (``--kernels cuda`` for
    the LDI growth, which has no CUDA twin) runs the op's next implementation in BACKENDS
    order, as auto would.
    """
    check_kernels(kernels)
    impls = IMPLEMENTATIONS[op]
    device = torch.device(device)
    if kernels != "auto":
        if kernels in impls:
            if kernels == "cpp" and device.type != "cpu":
                raise Photo3DError(f"--kernels cpp runs on the CPU, not {device}; "
                                   f"use --device cpu, or --kernels auto or torch")
            usable, why = status(kernels, device)
            if not usable:
                raise Photo3DError(f"--kernels {kernels} is not available: {why}; use --kernels auto or torch")
            if kernels not in ("torch", "cpp") and device.type != "cuda" and not _interpreted(kernels):
                raise Photo3DError(f"--kernels {kernels} runs on CUDA devices, not {device}; "
                                   f"use --device cuda, or --kernels auto or torch")
            return kernels, importlib.import_module(impls[kernels])
        kernels = "auto"
    for backend in BACKENDS:
        if backend in impls and _for_auto(backend, device):
            return backend, importlib.import_module(impls[backend])
    raise AssertionError("the torch reference always loads")
