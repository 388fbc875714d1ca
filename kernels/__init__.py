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
