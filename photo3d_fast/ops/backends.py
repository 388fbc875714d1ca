"""The one backend selector: which implementation of an op runs, and why not the others.

Every hot-path op exists as a torch reference (``photo3d_fast/ops/<op>.py``, always
available, CPU and GPU) and as fast versions under the same names: Triton
(``kernels/<op>.py``) and CUDA C++ (``csrc/<op>.cu`` through ``photo3d_fast/ops/cuda.py``).
``IMPLEMENTATIONS`` lists them; ``select(op, kernels, device)`` returns the module to call.
An implementation module exposes the op's functions under the reference's names:

| op      | functions                                   | torch | triton | cuda |
| ------- | ------------------------------------------- | ----- | ------ | ---- |
| splat   | prepare, render_frame, render_frames        | yes   | yes    | yes  |
| fill    | fill_from_background, fill_frames           | yes   | yes    |      |
| grow    | grow_back_layer                             | yes   | yes    |      |
| nv12    | rgb_to_nv12                                 | yes   | yes    | yes  |

Implementations are loaded by module name, on first use: Triton and the compiled
extension are optional, and a fast module imports its reference (never the other way).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType

import torch

from ..config import BACKENDS, KERNEL_CHOICES
from ..errors import Photo3DError

#: op -> backend -> module implementing it. ``BACKENDS`` (config) is the order auto tries.
IMPLEMENTATIONS: dict[str, dict[str, str]] = {
    "splat": {"cuda": "photo3d_fast.ops.cuda", "triton": "photo3d_fast.kernels.splat",
              "torch": "photo3d_fast.ops.splat"},
    "fill": {"triton": "photo3d_fast.kernels.fill", "torch": "photo3d_fast.ops.fill"},
    "grow": {"triton": "photo3d_fast.kernels.grow", "torch": "photo3d_fast.ops.grow"},
    "nv12": {"cuda": "photo3d_fast.ops.cuda", "triton": "photo3d_fast.kernels.nv12",
             "torch": "photo3d_fast.ops.nv12"},
}


def triton_status() -> tuple[bool, str]:
    """(usable, reason): Triton needs the package and a CUDA GPU, or TRITON_INTERPRET=1 (CPU)."""
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (pip install photo3d_fast[triton])"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "Triton interpreter (TRITON_INTERPRET=1, CPU)"
    if not torch.cuda.is_available():
        return False, "Triton needs a CUDA GPU (or TRITON_INTERPRET=1 to run on the CPU)"
    return True, f"Triton on {torch.cuda.get_device_name()}"


def cuda_status() -> tuple[bool, str]:
    """(usable, reason) of the CUDA C++ extension photo3d_fast._C."""
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


def status(backend: str) -> tuple[bool, str]:
    """(usable, reason) of a backend on this machine."""
    if backend == "torch":
        return True, "torch reference"
    return triton_status() if backend == "triton" else cuda_status()


def _interpreted(backend: str) -> bool:
    """Whether ``backend`` runs on CPU tensors here: Triton under TRITON_INTERPRET=1."""
    return backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1"


def _for_auto(backend: str, device: torch.device) -> bool:
    """Whether ``auto`` may pick ``backend`` on ``device``: the fast kernels are GPU kernels,
    and auto never picks the (test-only) Triton interpreter."""
    if backend == "torch":
        return True
    if device.type != "cuda":
        return False
    if _interpreted(backend):
        return False
    return status(backend)[0]


def check_kernels(kernels: str) -> None:
    """Photo3DError unless ``kernels`` is one of KERNEL_CHOICES."""
    if kernels not in KERNEL_CHOICES:
        raise Photo3DError(f"--kernels {kernels!r} is unknown; choose one of {', '.join(KERNEL_CHOICES)}")


def select(op: str, kernels: str, device: torch.device | str) -> tuple[str, ModuleType]:
    """(backend name, implementation module) of ``op`` for ``kernels`` on ``device``.

    kernels: "auto" picks the first backend of BACKENDS that implements the op and can run
    on the device; a backend by name is used if it can run, else Photo3DError says why. A
    named backend that lacks the op (``--kernels cuda`` for the LDI growth, which has no
    CUDA twin) runs the op's next implementation in BACKENDS order, as auto would.
    """
    check_kernels(kernels)
    impls = IMPLEMENTATIONS[op]
    device = torch.device(device)
    if kernels != "auto":
        if kernels in impls:
            usable, why = status(kernels)
            if not usable:
                raise Photo3DError(f"--kernels {kernels} is not available: {why}; use --kernels auto or torch")
            if kernels != "torch" and device.type != "cuda" and not _interpreted(kernels):
                raise Photo3DError(f"--kernels {kernels} runs on CUDA devices, not {device}; "
                                   f"use --device cuda, or --kernels auto or torch")
            return kernels, importlib.import_module(impls[kernels])
        kernels = "auto"
    for backend in BACKENDS:
        if backend in impls and _for_auto(backend, device):
            return backend, importlib.import_module(impls[backend])
    raise AssertionError("the torch reference always loads")
