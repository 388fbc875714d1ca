"""Isolated outlier pixels: the specks a viewer sees in a frame.

A pixel is an isolated outlier when its 8 neighbours agree (the spread of their values with
the lowest and highest dropped is under ``SMOOTH``) while the pixel lies more than
``OUTLIER`` from their median: a dot of one colour in an otherwise smooth area. Dotted
halos, speckle of another layer and torn slivers are made of such pixels; real texture
rarely is. The artifact benchmark counts them in frames (``benchmark/artifacts.py``) and
the exemplar fill removes the ones its copies make (``inpaint/exemplar.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

#: A neighbourhood is smooth when its 8 values (lowest and highest dropped) span less than this.
SMOOTH = 0.12
#: A pixel is an outlier when it lies this far (luma) from its smooth neighbourhood's median.
OUTLIER = 0.12


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """(..., H, W, 3) uint8 or float in [0, 1] -> (..., H, W) float32 BT.709 luma."""
    x = rgb.float() / 255.0 if rgb.dtype == torch.uint8 else rgb.float()
    return x[..., 0] * 0.2126 + x[..., 1] * 0.7152 + x[..., 2] * 0.0722


def neighbours(y: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, 8, H-2, W-2): the 8 neighbours of each interior pixel, row-major
    (the pixel itself, number 4 of the 3x3 block, left out)."""
    patches = F.unfold(y[:, None], 3).reshape(y.shape[0], 9, y.shape[1] - 2, y.shape[2] - 2)
    return torch.cat([patches[:, :4], patches[:, 5:]], 1)


def isolated_outliers(centre: torch.Tensor, nb: torch.Tensor) -> torch.Tensor:
    """(...) luma of pixels and (..., 8) of their neighbours -> (...) bool: which pixels are
    isolated outliers."""
    nb = nb.sort(-1).values
    spread = nb[..., 6] - nb[..., 1]
    median = 0.5 * (nb[..., 3] + nb[..., 4])
    return (spread < SMOOTH) & ((centre - median).abs() > OUTLIER)


def outlier_map(y: torch.Tensor) -> torch.Tensor:
    """(N, H, W) luma -> (N, H-2, W-2) bool: the interior pixels that are isolated outliers."""
    return isolated_outliers(y[:, 1:-1, 1:-1], neighbours(y).movedim(1, -1))
