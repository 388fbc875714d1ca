"""Which torch device a run uses: ``--device auto|cpu|cuda|cuda:N`` checked against this machine."""

from __future__ import annotations

import torch

from .errors import Photo3DError


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
