"""Rendering an LDI from new cameras: the public entry points and the implementation choice.

The math is the op ``splat``: its torch reference ``ops/splat.py`` and its fast twins
(``kernels/splat.py``, ``csrc/splat.cu``) implement ``prepare(ldi)``,
``render_frame(grid, c2w, K, size)`` and the batched ``render_frames(grid, c2ws, Ks, size)``;
``ops.backends.select`` picks one.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from ..config import check_frames_per_launch
from ..device import resolve_device
from ..errors import Photo3DError
from ..inpaint import resolve_inpaint
from ..ops.backends import select
from ..scene.camera import scale_intrinsics, validate_depth, zoom_intrinsics
from ..scene.ldi import LDI, build_ldi, ldi_params_for_motion
from ..scene.paths import CameraPath
from .effects import FrameEffects, frame_depth, position_grid
from .stereo import eye_cameras

#: Most frames one launch renders when the batch size is automatic: past a handful of
#: frames the per-frame fixed costs batching saves are already small.
AUTO_FRAMES_PER_LAUNCH = 8
#: Device memory an automatic batch may take, and its estimated cost per output pixel of one
#: frame: z-buffer (8 B), accumulator (16 B), normalised and filled color with their
#: temporaries (~60 B), fill indices and weights (20 B), the uint8 frame (3 B), rounded up.
BATCH_MEMORY_BYTES = 1 << 30
BATCH_BYTES_PER_PIXEL = 128


def auto_frames_per_launch(kernels: str, size: tuple[int, int]) -> int:
    """Frames per launch for ``kernels`` at output size (W, H) when the user does not say.

    The torch reference renders a batch one frame after another, so it gets 1; the fast
    kernels get as many as fit BATCH_MEMORY_BYTES, at most AUTO_FRAMES_PER_LAUNCH (1080p: 4,
    720p: 8, 4K: 1).
    """
    if kernels == "torch":
        return 1
    fit = BATCH_MEMORY_BYTES // (BATCH_BYTES_PER_PIXEL * max(1, size[0] * size[1]))
    return int(min(AUTO_FRAMES_PER_LAUNCH, max(1, fit)))


class Renderer:
    """Renders one LDI from any number of cameras.

    ldi: the scene; kernels: "auto" | "torch" | "triton" | "cuda" | "cpp"; frames_per_launch: how
    many frames of a path one kernel launch renders (None: ``auto_frames_per_launch``).
    Batching saves the fixed per-frame costs (launches, host syncs); it does not change a
    pixel. The renderer works on the LDI's device; frames come back as tensors on it.
    effects: the clip's per-frame depth effects (``effects.FrameEffects``), applied to each
    float frame and its depth before quantising; None (the default) renders as without them.
    """

    def __init__(self, ldi: LDI, kernels: str = "auto", frames_per_launch: int | None = None,
                 effects: FrameEffects | None = None) -> None:
        check_frames_per_launch(frames_per_launch)
        self.ldi = ldi
        self.kernels, self._impl = select("splat", kernels, ldi.device)
        self.frames_per_launch = frames_per_launch
        self._grid = self._impl.prepare(ldi)
        self.effects = effects
        self._positions = position_grid(self._grid) if effects is not None and effects.needs_depth else None

    def batch_size(self, size: tuple[int, int]) -> int:
        """Frames per launch at output size (W, H)."""
        return self.frames_per_launch or auto_frames_per_launch(self.kernels, size)

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
        """Frames of ``path`` (its per-frame zoom applied to K), each (H, W, 3) uint8, rendered
        ``batch_size(size)`` per launch."""
        if len(path) == 0:
            return
        poses, Ks = self._path_cameras(path, K, size)
        n = self.batch_size(size)
        if n == 1:
            for i, (c2w_t, K_t) in enumerate(zip(poses, Ks)):
                yield self._frames(c2w_t[None], K_t[None], size, torch.tensor([i]))[0]
            return
        for start in range(0, len(poses), n):
            ids = torch.arange(start, min(start + n, len(poses)))
            yield from self._frames(poses[start : start + n], Ks[start : start + n], size, ids)

    def render_stereo_path(self, path: CameraPath, K: np.ndarray, size: tuple[int, int], ipd: float,
                           convergence: float) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Both eyes of each frame of ``path``: (left, right), each (H, W, 3) uint8 on the LDI's
        device. The eyes are the path's pose moved by -ipd/2 and +ipd/2 (scene units) along
        the camera's own x axis, their principal points shifted so that z-depth
        ``convergence`` (scene units) has zero disparity (``stereo.eye_cameras``). Both eyes
        of a frame are rendered by one launch: ``batch_size(size)`` eye views per launch,
        rounded up to an even number."""
        if len(path) == 0:
            return
        eye_poses, eye_Ks = eye_cameras(*self._path_cameras(path, K, size), ipd, convergence)
        frames_per_launch = max(1, self.batch_size(size) // 2)
        for start in range(0, len(path), frames_per_launch):
            views = self._frames(eye_poses[2 * start : 2 * (start + frames_per_launch)],
                                 eye_Ks[2 * start : 2 * (start + frames_per_launch)], size,
                                 torch.arange(2 * start, min(2 * (start + frames_per_launch), 2 * len(path))) // 2)
            for i in range(0, len(views), 2):
                yield views[i], views[i + 1]

    def _path_cameras(self, path: CameraPath, K: np.ndarray, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """(F, 4, 4) poses and (F, 3, 3) intrinsics (the path's zoom applied to K) of every
        frame, float32 on the LDI's device: one copy each, not two small copies per frame."""
        dev = self.ldi.device
        poses = torch.as_tensor(path.poses, dtype=torch.float32).to(dev)
        Ks = torch.as_tensor(np.stack([zoom_intrinsics(K, float(z), size) for z in path.zoom]), dtype=torch.float32)
        return poses, Ks.to(dev)

    def _frames(self, c2ws: torch.Tensor, Ks: torch.Tensor, size: tuple[int, int],
                frames: torch.Tensor | None = None) -> torch.Tensor:
        """(F, H, W, 3) uint8. An implementation that quantises natively (the C++ CPU kernels'
        ``render_frames_u8``, the same bytes) saves torch's extra passes over the frames.
        frames: (F,) the views' frame indices in the path, for the effects (None: 0..F-1)."""
        quantised = getattr(self._impl, "render_frames_u8", None)
        if quantised is not None and self.effects is None:
            return quantised(self._grid, c2ws, Ks, size)
        color, _ = self._impl.render_frames(self._grid, c2ws, Ks, size)
        if self.effects is not None:
            depth = None
            if self._positions is not None:
                grid, lo, scale = self._positions
                depth = frame_depth(self._impl.render_frames(grid, c2ws, Ks, size)[0], lo, scale, c2ws)
            ids = torch.arange(len(c2ws)) if frames is None else frames
            color = self.effects(color, depth, Ks, ids.to(color.device))
        return (color * 255.0 + 0.5).to(torch.uint8)

    def _frame(self, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        return self._frames(c2w[None], K[None], size)[0]


def render_views(
    image: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    poses: np.ndarray,
    size: tuple[int, int] | None = None,
    layers: int = 2,
    kernels: str = "auto",
    clean_depth: bool = True,
    inpaint: str = "classic",
) -> np.ndarray:
    """Render novel views of a photo whose depth and camera you know.

    image: (H, W, 3) uint8 sRGB; depth: (H, W) float32 z-depth (scene units, > 0);
    K: (3, 3) intrinsics of the image in pixels; poses: (N, 4, 4) camera-to-world of each
    output view, world = the photo's camera (OpenCV: x right, y down, z forward);
    size: (W, H) of the output, default the image's with K kept (otherwise the image is
    scaled to cover the new size and center-cropped); layers: LDI layers; kernels: see
    Renderer; clean_depth, inpaint: see ``scene.ldi.build_ldi`` ("auto" resolves as
    ``--inpaint auto`` does). Returns (N, H_out, W_out, 3) uint8.
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
    ldi = build_ldi(image, depth, K, layers=layers, band=band, edge_disparity=edge, device=device, kernels=kernels,
                    clean_depth=clean_depth, inpaint=resolve_inpaint(inpaint))
    renderer = Renderer(ldi, kernels)
    out = np.empty((len(poses), out_size[1], out_size[0], 3), np.uint8)
    for i, frame in enumerate(renderer.render_path(CameraPath(poses, np.ones(len(poses))), K_out, out_size)):
        out[i] = frame.cpu().numpy()
    return out
