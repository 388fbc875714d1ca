"""PyNvVideoCodec itself: import it, pick the GPU it encodes on, and probe whether a session
opens here. Kept apart from the writer so that output planning (``formats``) can probe NVENC
without importing the writer that uses the plan."""

from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import Photo3DError

NEEDS = ("PyNvVideoCodec (pip install 'photo3d_fast[nvenc]'), a CUDA build of torch, and an "
         "NVIDIA GPU with an NVENC engine (not A100/H100/H200)")


def import_pynvvideocodec() -> Any:
    """The PyNvVideoCodec module, or Photo3DError naming the extra to install."""
    try:
        import PyNvVideoCodec
    except ImportError as e:
        raise Photo3DError(f"--encoder nvenc needs {NEEDS}; PyNvVideoCodec is not installed ({e}); "
                           f"--encoder auto picks a working encoder") from e
    return PyNvVideoCodec


def encoder_device(gpu_id: int | None = None) -> Any:
    """The torch CUDA device frames are encoded on, or Photo3DError."""
    if not torch.cuda.is_available():
        raise Photo3DError(f"--encoder nvenc needs {NEEDS}; torch sees no CUDA GPU here")
    return torch.device("cuda", torch.cuda.current_device() if gpu_id is None else gpu_id)


def probe(codec: str) -> tuple[bool, str]:
    """(works, why not): import PyNvVideoCodec, open a session, encode one frame."""
    try:
        nvc = import_pynvvideocodec()
    except Photo3DError:
        return False, "PyNvVideoCodec is not installed (pip install 'photo3d_fast[nvenc]')"
    try:
        device = encoder_device()
    except Photo3DError:
        return False, "PyNvVideoCodec is installed but torch sees no CUDA GPU"
    try:
        enc = nvc.CreateEncoder(256, 256, "NV12", False, codec=codec, gpuid=str(device.index or 0))
        enc.Encode(torch.full((384, 256), 128, dtype=torch.uint8, device=device))
        enc.EndEncode()
    except Exception as e:  # noqa: BLE001 - any failure means "not here", with its message
        name = torch.cuda.get_device_name(device)
        hint = " (this GPU has no NVENC engine)" if re.search(r"\b(A100|H100|H200|B200)\b", name) else ""
        return False, f"an NVENC session did not open on {name}{hint}: {type(e).__name__}: {e}"
    return True, ""
