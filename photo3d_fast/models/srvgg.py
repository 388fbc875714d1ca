"""SRVGGNetCompact: Real-ESRGAN's compact super-resolution net, in plain torch.

A plain stack of 3x3 convs + activations at input resolution, one pixel shuffle, and the
nearest-upsampled input added back. Parameter names follow Real-ESRGAN's ``srvgg_arch.py``
(``body.{i}``: conv, act, conv, act, ..., conv), so converted weights load with
``strict=True``. Defaults are realesr-animevideov3 (0.6M parameters).

The ncnn files ``realesr-animevideov3-x2`` / ``-x3`` hold the same x4 net followed by a
bicubic downscale by 0.5 / 0.75 inside the graph; ``out_scale`` reproduces that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SRVGGNetCompact(nn.Module):
    """(N, num_in_ch, H, W) float32 RGB in [0, 1] -> (N, num_out_ch, s*H, s*W), not clamped.

    ``upscale``: the pixel-shuffle factor of the net itself. ``out_scale``: the final scale
    ``s``; when it differs from ``upscale`` the x``upscale`` result is resized to
    (s*H, s*W) with bicubic interpolation (a=-0.75, half-pixel centres, no antialias), as the
    ncnn x2/x3 graphs do. It has no parameters, so the state dict is the same.
    ``act_type``: "prelu" (one slope per channel), "relu" or "leakyrelu" (slope 0.1).
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_conv: int = 16,
                 upscale: int = 4, act_type: str = "prelu", out_scale: int | None = None) -> None:
        super().__init__()
        if act_type not in ("prelu", "relu", "leakyrelu"):
            raise ValueError(f"act_type must be 'prelu', 'relu' or 'leakyrelu', got {act_type!r}")
        self.upscale = upscale
        self.out_scale = upscale if out_scale is None else out_scale

        def act() -> nn.Module:
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), act()]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), act()]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        self.upsampler = nn.PixelShuffle(upscale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x
        for layer in self.body:
            out = layer(out)
        # The net learns only the residual over a nearest upsampling of the input.
        out = self.upsampler(out) + F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if self.out_scale != self.upscale:
            h, w = x.shape[-2:]
            out = F.interpolate(out, size=(self.out_scale * h, self.out_scale * w), mode="bicubic",
                                align_corners=False)
        return out
