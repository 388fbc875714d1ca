"""Triton kernels, installed as ``photo3d_fast.kernels``: one module per op, named as the op
(``splat``, ``fill``, ``grow``, ``nv12``), each with its launcher; the torch reference of the
same name is ``photo3d_fast.ops.<op>``, and ``photo3d_fast.ops.backends`` selects between
them. Triton is optional (``pip install photo3d_fast[triton]``; it ships with CUDA torch).
"""

from __future__ import annotations

import contextlib

import torch


def on_device(tensor: torch.Tensor) -> contextlib.AbstractContextManager:
    """The context every launcher runs its launches under: ``torch.cuda.device`` of the
    tensor's device, as Triton launches on torch's current device and stream, not on its
    arguments' (``--device cuda:1`` would otherwise launch on cuda:0); a no-op for CPU
    tensors under the interpreter. Launchers look it up here at call time (tests spy on it).
    """
    dev = tensor.device
    return torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext()
