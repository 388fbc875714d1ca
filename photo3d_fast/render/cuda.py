"""The renderer's CUDA C++ implementation (csrc/splat.cu through photo3d_fast._C).

Same contract and math as ``reference`` and ``kernels/splat.py``; built by setup.py only
where CUDA torch and nvcc are present. ``load()`` says plainly why it is unavailable.
"""

from __future__ import annotations

import functools

import torch

from ..errors import Photo3DError
from .reference import (FOOTPRINT_MARGIN, MAX_HALF_EXTENT, RESOLVE_SHARE, Z_NEAR, SurfaceGrid, cameras,
                        finish_frames, prepare)

__all__ = ["prepare", "render_frame", "render_frames", "accumulate_frames", "load"]


def load():
    """The compiled extension, or Photo3DError with what it needs."""
    try:
        from .. import _C  # type: ignore[attr-defined]
    except ImportError:
        raise Photo3DError(
            "--kernels cuda is not available: the CUDA extension photo3d_fast._C was not built "
            "(it needs CUDA torch and nvcc at install: PHOTO3D_BUILD_CUDA=1 pip install "
            "--no-build-isolation -e .); use --kernels auto, triton or torch"
        ) from None
    return _C


def accumulate_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                      size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Both passes for F frames, one launch each: (acc (F, W*H, 4) float32, zbuf (F, W*H) int64).

    c2ws: (F, 4, 4), Ks: (F, 3, 3), grid: all on one CUDA device; size: (W, H).
    """
    w, h = size
    cam = cameras(c2ws, Ks)
    link_x, link_y = grid.links_u8
    return load().splat_accumulate(
        grid.points.contiguous(), link_x, link_y,
        grid.texels.contiguous(), grid.colors.contiguous(), cam, w, h, grid.focal,
        RESOLVE_SHARE * grid.edge_disparity, Z_NEAR, FOOTPRINT_MARGIN, MAX_HALF_EXTENT,
    )


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as reference.render_frame; grid, c2w and K on a CUDA device. A batch
    of one (see kernels/splat.py's render_frame for why)."""
    color, covered = render_frames(grid, c2w[None], K[None], size)
    return color[0], covered[0]


def render_frames(grid: SurfaceGrid, c2ws: torch.Tensor, Ks: torch.Tensor,
                  size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as reference.render_frames; F frames per launch of each kernel."""
    acc, zbuf = accumulate_frames(grid, c2ws, Ks, size)
    return finish_frames(acc, zbuf, size, fill=_fill())


@functools.cache
def _fill():
    """The batched hole fill: the Triton kernels where Triton runs, else the torch
    reference. Decided once per process, not per frame."""
    from ..kernels import triton_status

    if triton_status()[0]:
        from ..kernels.fill import fill_frames

        return fill_frames
    from ..pushpull import fill_frames

    return fill_frames
