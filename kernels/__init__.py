"""Triton kernels, installed as ``photo3d_fast.kernels``: one module per kernel family,
each with its launcher and a torch reference twin in ``photo3d_fast``.

Triton is an optional dependency (``pip install photo3d_fast[triton]``; it ships with CUDA
builds of torch). ``triton_status()`` says whether it can be used here and why not.
"""

from __future__ import annotations

import importlib.util
import os


def triton_status() -> tuple[bool, str]:
    """(usable, reason): Triton needs the package and a CUDA GPU, or TRITON_INTERPRET=1 (CPU)."""
    if importlib.util.find_spec("triton") is None:
        return False, "Triton is not installed (pip install photo3d_fast[triton])"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return True, "Triton interpreter (TRITON_INTERPRET=1, CPU)"
    import torch

    if not torch.cuda.is_available():
        return False, "Triton needs a CUDA GPU (or TRITON_INTERPRET=1 to run on the CPU)"
    return True, f"Triton on {torch.cuda.get_device_name()}"


def triton_for_auto(device) -> bool:
    """Whether ``kernels="auto"`` should pick Triton on ``device``: compiled Triton on a CUDA
    device only. The interpreter is for tests and runs only when asked for by name."""
    return (
        getattr(device, "type", str(device)) == "cuda"
        and os.environ.get("TRITON_INTERPRET") != "1"
        and triton_status()[0]
    )
