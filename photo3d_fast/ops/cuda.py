"""The CUDA C++ implementations (``csrc/<op>.cu`` through the extension ``photo3d_fast._C``)
of the ops ``splat`` and ``nv12``: the same contracts and math as their torch references
``ops/splat.py`` and ``ops/nv12.py``. setup.py builds the extension only where CUDA torch
and nvcc are present; ``ops.backends.cuda_status`` says why it is missing.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

import torch

from . import nv12 as nv12_reference
from .backends import select
from .splat import (
    FOOTPRINT_MARGIN,
    MAX_HALF_EXTENT,
    RESOLVE_SHARE,
    Z_NEAR,
    SurfaceGrid,
    cameras,
    finish_frames,
    prepare,
)

__all__ = ["prepare", "render_frame", "render_frames", "accumulate_frames", "rgb_to_nv12"]


@functools.cache
def _ext() -> ModuleType:
    # Imported on first use: the extension is optional, and ops.backends has checked that it exists.
    return importlib.import_module("photo3d_fast._C")


def accumulate_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                      size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both passes for F frames, one launch each: (acc (F, W*H, 4) float32, zbuf (F, W*H) int64).

    c2ws: (F, 4, 4), Ks: (F, 3, 3), grid: all on one CUDA device; size: (W, H).
    """
    w, h = size
    cam = cameras(c2ws, Ks)
    link_x, link_y = grid.links_u8
    return _ext().splat_accumulate(
        grid.points.contiguous(), link_x, link_y,
        grid.texels.contiguous(), grid.colors.contiguous(), cam, w, h, grid.focal,
        RESOLVE_SHARE * grid.edge_disparity, Z_NEAR, FOOTPRINT_MARGIN, MAX_HALF_EXTENT,
    )


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frame; grid, c2w and K on a CUDA device. A batch
    of one (see kernels/splat.py's render_frame for why)."""
    color, covered = render_frames(grid, c2w[None], K[None], size)
    return color[0], covered[0]


def render_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as ops.splat.render_frames; F frames per launch of each kernel. Holes
    are filled by the fastest ``fill`` on the grid's device (there is no CUDA C++ fill)."""
    acc, zbuf = accumulate_frames(grid, c2ws, Ks, size)
    return finish_frames(acc, zbuf, size, grid.edge_disparity, fill=_fill(grid.points.device).fill_frames)


@functools.cache
def _fill(device: torch.device) -> ModuleType:
    # Decided once per process and device, not per frame.
    return select("fill", "auto", device)[1]


def rgb_to_nv12(rgb: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as ops.nv12.rgb_to_nv12, for CUDA tensors. The kernel reads uint8 RGB;
    float RGB goes through the reference, whose rounding of float input it defines."""
    if rgb.dtype != torch.uint8:
        return nv12_reference.rgb_to_nv12(rgb, out=out)
    nv12_reference.check_rgb(rgb)
    return _ext().rgb_to_nv12(rgb.contiguous(), out)
