"""Rendering an LDI from new cameras: the public entry points and the implementation choice.

The math lives in ``reference.py`` (torch); fast kernels implement the same two
functions, ``prepare(ldi)`` and ``render_frame(grid, c2w, K, size)``, and are picked by
``dispatch.select_kernels``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..errors import Photo3DError
from ..ldi import LDI, build_ldi, ldi_params_for_motion
from ..paths import CameraPath
from ..scene import scale_intrinsics, validate_depth, zoom_intrinsics
from .dispatch import resolve_device, select_kernels


class Renderer:
    """Renders one LDI from any number of cameras.

    ldi: the scene; kernels: "auto" | "torch" | "triton" | "cuda". The renderer works on
    the LDI's device; frames come back as tensors on that device.
    """

    def __init__(self, ldi: LDI, kernels: str = "auto") -> None:
        self.ldi = ldi
        self.kernels, self._impl = select_kernels(kernels, ldi.device)
        self._grid = self._impl.prepare(ldi)

    def render(self, c2w: np.ndarray | torch.Tensor, K: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
        """One frame: (H, W, 3) uint8 on the LDI's device.

        c2w: (4, 4) camera-to-world (world = the photo's camera); K: (3, 3) intrinsics of
        the output; size: (W, H) of the output.
        """
        dev = self.ldi.device
        c2w_t = torch.as_tensor(c2w, dtype=torch.float32).to(dev)
        K_t = torch.as_tensor(K, dtype=torch.float32).to(dev)
        return self._frame(c2w_t, K_t, size)

    def render_path(self, path: CameraPath, K: np.ndarray, size: tuple[int, int]) -> Iterator[torch.Tensor]:
        """Frames of ``path`` (its per-frame zoom applied to K), each (H, W, 3) uint8."""
        # Every camera goes to the device in one copy, not two small copies per frame.
        dev = self.ldi.device
        poses = torch.as_tensor(path.poses, dtype=torch.float32).to(dev)
        Ks = torch.as_tensor(np.stack([zoom_intrinsics(K, float(z), size) for z in path.zoom]), dtype=torch.float32).to(dev)
        for c2w_t, K_t in zip(poses, Ks):
            yield self._frame(c2w_t, K_t, size)

    def _frame(self, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        color, _ = self._impl.render_frame(self._grid, c2w, K, size)
        return (color * 255.0 + 0.5).to(torch.uint8)


def render_views(
    image: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    poses: np.ndarray,
    size: tuple[int, int] | None = None,
    layers: int = 2,
    kernels: str = "auto",
) -> np.ndarray:
    """Render novel views of a photo whose depth and camera you know.

    image: (H, W, 3) uint8 sRGB; depth: (H, W) float32 z-depth (scene units, > 0);
    K: (3, 3) intrinsics of the image in pixels; poses: (N, 4, 4) camera-to-world of each
    output view, world = the photo's camera (OpenCV: x right, y down, z forward);
    size: (W, H) of the output, default the image's with K kept (otherwise the image is
    scaled to cover the new size and center-cropped); layers: LDI layers; kernels: see
    Renderer. Returns (N, H_out, W_out, 3) uint8.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise Photo3DError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
    h, w = image.shape[:2]
    depth = validate_depth(depth, (h, w))
    K = np.asarray(K, np.float64)
    if K.shape != (3, 3):
        raise Photo3DError(f"K must be (3, 3), got {K.shape}")
    poses = np.asarray(poses, np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise Photo3DError(f"poses must be (N, 4, 4) camera-to-world matrices, got {poses.shape}")
    out_size = (w, h) if size is None else (int(size[0]), int(size[1]))
    K_out = K if size is None else scale_intrinsics(K, (w, h), out_size)

    device = resolve_device("auto")
    max_t = float(np.linalg.norm(poses[:, :3, 3], axis=1).max()) if len(poses) else 0.0
    band, edge = ldi_params_for_motion(K, depth, max_t, (w, h))
    ldi = build_ldi(image, depth, K, layers=layers, band=band, edge_disparity=edge, device=device, kernels=kernels)
    renderer = Renderer(ldi, kernels)
    out = np.empty((len(poses), out_size[1], out_size[0], 3), np.uint8)
    for i, frame in enumerate(renderer.render_path(CameraPath(poses, np.ones(len(poses))), K_out, out_size)):
        out[i] = frame.cpu().numpy()
    return out
