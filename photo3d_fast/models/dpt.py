"""The DPT decoder pieces shared by Depth Anything V2 and MiDaS v3 (Ranftl et al., "Vision
Transformers for Dense Prediction", ICCV 2021).

Matches ``depth_anything_v2/util/blocks.py`` (``_make_scratch``, ``ResidualConvUnit``,
``FeatureFusionBlock``) and ``midas/blocks.py`` (``_make_scratch``,
``ResidualConvUnit_custom``, ``FeatureFusionBlock_custom``), which are the same modules:
parameter names ``layer{1..4}_rn``, ``refinenet{1..4}.{out_conv, resConfUnit1, resConfUnit2}``
and ``resConfUnit*.conv{1,2}``. Both references build them with ``bn=False``,
``expand=False``, ``groups=1``, ``align_corners=True``; only that configuration is written
here. The reference's ``nn.quantized.FloatFunctional`` adds are plain additions (no state).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import Photo3DError

__all__ = ["FeatureFusionBlock", "ResidualConvUnit", "fuse", "make_scratch"]


class ResidualConvUnit(nn.Module):
    """x + conv2(relu(conv1(relu(x)))), 3x3 convs with bias; (B, C, h, w) -> same."""

    def __init__(self, features: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(F.relu(x))
        out = self.conv2(F.relu(out))
        return out + x


class FeatureFusionBlock(nn.Module):
    """Fuse a coarser path with a skip feature, upsample, project (1x1 ``out_conv``).

    forward(path, [skip], size=None): path and skip (B, C, h, w). Adds
    ``resConfUnit1(skip)`` to path when skip is given, applies ``resConfUnit2``, then
    resizes bilinearly with ``align_corners=True`` to ``size`` or, without one, by 2x.
    """

    def __init__(self, features: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, *xs: torch.Tensor, size: Sequence[int] | None = None) -> torch.Tensor:
        out = xs[0]
        if len(xs) == 2:
            out = out + self.resConfUnit1(xs[1])
        out = self.resConfUnit2(out)
        if size is None:
            out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(out)


def make_scratch(in_channels: Sequence[int], features: int) -> nn.Module:
    """The reference ``scratch`` module with ``layer{1..4}_rn`` (3x3, no bias) and
    ``refinenet{1..4}``; the caller adds its output convs as further attributes."""
    scratch = nn.Module()
    for i, c in enumerate(in_channels, start=1):
        setattr(scratch, f"layer{i}_rn", nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False))
    for i in range(1, len(in_channels) + 1):
        setattr(scratch, f"refinenet{i}", FeatureFusionBlock(features))
    return scratch


def fuse(scratch: nn.Module, layers: Sequence[torch.Tensor]) -> torch.Tensor:
    """The DPT decoder shared by both references: four reassembled maps -> path_1.

    layers: (B, c_i, h_i, w_i) at strides 4, 8, 16, 32 of the input (relative to the patch
    grid: x4, x2, x1, x0.5). Returns (B, features, 2 h_1, 2 w_1).
    """
    l1, l2, l3, l4 = (getattr(scratch, f"layer{i + 1}_rn")(x) for i, x in enumerate(layers))
    path4 = scratch.refinenet4(l4, size=l3.shape[2:])
    path3 = scratch.refinenet3(path4, l3, size=l2.shape[2:])
    path2 = scratch.refinenet2(path3, l2, size=l1.shape[2:])
    return scratch.refinenet1(path2, l1)


def load_checkpoint(
    module: nn.Module,
    path,
    what: str,
    ignore_prefixes: Sequence[str] = (),
    hint: str = "",
) -> nn.Module:
    """Load a reference checkpoint into ``module`` strictly; a wrong file is a user error.

    path: a ``.pth`` / ``.pt`` file holding a state dict, possibly wrapped as
        ``{"state_dict": ...}`` or ``{"model": ...}`` and with ``module.`` prefixes (saved
        from DataParallel). Loaded with ``weights_only=True`` (no pickled code runs).
    what: the checkpoint's name for messages, e.g. "depth_anything_v2_vits.pth".
    ignore_prefixes: checkpoint keys to drop before the strict load.
    Raises :class:`~photo3d_fast.errors.Photo3DError` naming a few missing / unexpected /
    mis-shaped keys when the file is not that checkpoint. Returns ``module``.
    """
    from pathlib import Path


    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise Photo3DError(f"weights file {path} does not exist{hint}") from None
    except Exception as e:  # noqa: BLE001 (unpickling fails in many types; all mean "not our file")
        raise Photo3DError(
            f"{path} could not be read as a PyTorch checkpoint ({type(e).__name__}: {e}); "
            f"expected {what}{hint}"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise Photo3DError(f"{path} does not hold a state dict of tensors; expected {what}{hint}")
    state = {(k.removeprefix("module.")): v for k, v in state.items()}
    state = {k: v for k, v in state.items() if not any(k.startswith(p) for p in ignore_prefixes)}
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or shapes:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {few(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {few(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} keys of the wrong shape: {few(shapes)}")
        raise Photo3DError(f"{path} is not {what} ({'; '.join(parts)}){hint}")
    module.load_state_dict(state, strict=True)
    return module
