"""The renderer's CUDA C++ implementation (csrc/splat.cu through photo3d_fast._C).

Same contract and math as ``reference`` and ``kernels/splat.py``; built by setup.py only
where CUDA torch and nvcc are present. ``load()`` says plainly why it is unavailable.
"""

from __future__ import annotations

import torch

from ..errors import Photo3DError
from .reference import FOOTPRINT_MARGIN, MAX_HALF_EXTENT, RESOLVE_SHARE, Z_NEAR, SurfaceGrid, finish, prepare

__all__ = ["prepare", "render_frame", "load"]


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


def render_frame(grid: SurfaceGrid, c2w: torch.Tensor, K: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as reference.render_frame; grid, c2w and K on a CUDA device."""
    w, h = size
    cam = torch.cat([c2w[:3, :3].reshape(-1), c2w[:3, 3], K[0, 0:1], K[1, 1:2], K[0, 2:3], K[1, 2:3]]).float().contiguous()
    link_x, link_y = grid.links_u8
    acc, zbuf = load().splat_accumulate(
        grid.points.contiguous(), link_x, link_y,
        grid.texels.contiguous(), grid.colors.contiguous(), cam, w, h, grid.focal,
        RESOLVE_SHARE * grid.edge_disparity, Z_NEAR, FOOTPRINT_MARGIN, MAX_HALF_EXTENT,
    )
    from ..kernels import triton_status

    if triton_status()[0]:
        from ..kernels.fill import fill_from_background

        return finish(acc, zbuf, size, fill=fill_from_background)
    return finish(acc, zbuf, size)
