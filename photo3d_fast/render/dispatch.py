"""Which implementation renders: the fastest available, or the one the user forces.

Implementations register here in order of speed (benchmarks decide the order). The torch
reference is always available; the Triton kernels load when Triton can run (a CUDA GPU,
or TRITON_INTERPRET=1 on the CPU for tests); the CUDA C++ ones when setup.py built
photo3d_fast._C.
"""

from __future__ import annotations

from types import ModuleType

import torch

from ..errors import Photo3DError

KERNEL_CHOICES = ("auto", "torch", "triton", "cuda")


def _torch_impl() -> ModuleType:
    from . import reference

    return reference


def _triton_impl() -> ModuleType:
    from ..kernels import triton_status

    usable, why = triton_status()
    if not usable:
        raise Photo3DError(f"--kernels triton is not available: {why}; use --kernels torch or auto")
    from ..kernels import splat

    return splat


def _cuda_impl() -> ModuleType:
    from . import cuda

    cuda.load()
    return cuda


# name -> loader, in the order auto tries them (to be settled by bench/render.py on a GPU). A loader returns a module with prepare() and render_frame()
# of the reference's signatures, or raises Photo3DError saying why it cannot.
_LOADERS = {
    "cuda": _cuda_impl,
    "triton": _triton_impl,
    "torch": _torch_impl,
}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """'auto' (or None) -> cuda if present else cpu; 'cuda' without a GPU is a user error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise Photo3DError(f"--device {device!r} is not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise Photo3DError(
            f"--device {device} was asked for but torch sees no CUDA GPU "
            f"(torch {torch.__version__}); use --device cpu or auto"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise Photo3DError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) present")
    if dev.type not in ("cpu", "cuda"):
        raise Photo3DError(f"--device {device!r}: only cpu and cuda are supported")
    return dev


def select_kernels(kernels: str, device: torch.device) -> tuple[str, ModuleType]:
    """(name, implementation module) for ``kernels`` on ``device``."""
    if kernels not in KERNEL_CHOICES:
        raise Photo3DError(f"--kernels {kernels!r} is unknown; choose one of {', '.join(KERNEL_CHOICES)}")
    if kernels != "auto":
        return kernels, _LOADERS[kernels]()
    from ..kernels import triton_for_auto

    for name, load in _LOADERS.items():
        if name != "torch" and device.type != "cuda":
            continue  # the fast kernels are GPU kernels
        if name == "triton" and not triton_for_auto(device):
            continue  # auto never picks the (test-only) interpreter
        try:
            return name, load()
        except Photo3DError:
            continue
    raise AssertionError("the torch reference always loads")
