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


def _load_failure(e: BaseException) -> str:
    """Why importing PyNvVideoCodec failed: not installed, or installed but not loadable."""
    if isinstance(e, ModuleNotFoundError) and e.name == "PyNvVideoCodec":
        return f"PyNvVideoCodec is not installed ({e})"
    # e.g. its __init__ raising RuntimeError when libnvidia-encode.so.1 is absent
    return f"PyNvVideoCodec is installed but did not load ({type(e).__name__}: {e})"


def import_pynvvideocodec() -> Any:
    """The PyNvVideoCodec module, or Photo3DError naming the extra to install. Any failure
    of the import (not only ImportError: the module raises RuntimeError when it cannot
    load the driver's NVENC library) becomes that Photo3DError."""
    try:
        import PyNvVideoCodec
    except Exception as e:  # noqa: BLE001
        raise Photo3DError(f"--encoder nvenc needs {NEEDS}; {_load_failure(e)}; "
                           f"--encoder auto picks a working encoder") from e
    return PyNvVideoCodec


def encoder_device(gpu_id: int | None = None) -> Any:
    """The torch CUDA device frames are encoded on (``gpu_id``: torch's index of the
    frames' GPU; None: the current device), or Photo3DError."""
    if not torch.cuda.is_available():
        raise Photo3DError(f"--encoder nvenc needs {NEEDS}; torch sees no CUDA GPU here")
    return torch.device("cuda", torch.cuda.current_device() if gpu_id is None else int(gpu_id))


def probe(codec: str) -> tuple[bool, str]:
    """(works, why not): import PyNvVideoCodec, open a session, encode one frame."""
    try:
        import PyNvVideoCodec as nvc
    except Exception as e:  # noqa: BLE001 - any failure to load means "not here"
        return False, f"{_load_failure(e)} (pip install 'photo3d_fast[nvenc]')"
    try:
        device = encoder_device()
    except Exception:  # noqa: BLE001
        return False, "PyNvVideoCodec is installed but torch sees no CUDA GPU"
    try:
        enc = nvc.CreateEncoder(256, 256, "NV12", False, codec=codec, gpu_id=str(device.index or 0))
        enc.Encode(torch.full((384, 256), 128, dtype=torch.uint8, device=device))
        enc.EndEncode()
    except Exception as e:  # noqa: BLE001 - any failure means "not here", with its message
        try:
            name = torch.cuda.get_device_name(device)
        except Exception:  # noqa: BLE001
            name = str(device)
        hint = " (this GPU has no NVENC engine)" if re.search(r"\b(A100|H100|H200|B200)\b", name) else ""
        return False, f"an NVENC session did not open on {name}{hint}: {type(e).__name__}: {e}"
    return True, ""
