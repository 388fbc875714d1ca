"""Depth Anything V2 (Yang et al., NeurIPS 2024): DINOv2 ViT encoder + DPT head.

Matches ``depth_anything_v2/dpt.py`` of github.com/DepthAnything/Depth-Anything-V2
(``DepthAnythingV2`` and ``DPTHead`` with ``use_bn=False``, ``use_clstoken=False``, as the
released relative-depth checkpoints are built): state-dict keys and shapes equal those of
``depth_anything_v2_vits.pth`` / ``_vitb.pth`` / ``_vitl.pth``, so they load with
``strict=True``. The one deliberate difference: :meth:`DepthAnythingV2.forward` returns
(N, 1, H, W), where the reference squeezes the channel to (N, H, W).

Output: relative disparity (affine-invariant inverse depth; larger = nearer), >= 0, at the
input resolution. Pre/post-processing lives in ``photo3d_fast.depth.learned``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dpt import fuse, load_checkpoint, make_scratch
from .vit import VisionTransformer, dinov2_config

__all__ = [
    "DEPTH_ANYTHING_V2_CONFIGS",
    "DPTHead",
    "DepthAnythingV2",
    "depth_anything_v2",
    "depth_anything_v2_tiny",
    "load_depth_anything_v2_weights",
]

# features, out_channels, intermediate_layer_idx: the reference README's model_configs and
# DepthAnythingV2.intermediate_layer_idx.
DEPTH_ANYTHING_V2_CONFIGS: dict[str, dict] = {
    "vits": {"features": 64, "out_channels": (48, 96, 192, 384), "layers": (2, 5, 8, 11)},
    "vitb": {"features": 128, "out_channels": (96, 192, 384, 768), "layers": (2, 5, 8, 11)},
    "vitl": {"features": 256, "out_channels": (256, 512, 1024, 1024), "layers": (4, 11, 17, 23)},
}


class DPTHead(nn.Module):
    """Reassemble four token maps at 4x, 2x, 1x, 0.5x the patch grid, fuse, predict depth.

    Keys: ``projects.{0..3}`` (1x1 convs D -> out_channels[i]), ``resize_layers.{0,1,3}``
    (ConvTranspose 4/4, ConvTranspose 2/2, [Identity], Conv 3x3 stride 2), ``scratch.*``
    (see :mod:`.dpt`), ``scratch.output_conv1`` (3x3, F -> F/2) and
    ``scratch.output_conv2.{0,2}`` (3x3 F/2 -> 32, ReLU, 1x1 32 -> 1, ReLU).
    """

    def __init__(self, in_channels: int, features: int, out_channels: Sequence[int]) -> None:
        super().__init__()
        oc = list(out_channels)
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in oc)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(oc[0], oc[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(oc[1], oc[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(oc[3], oc[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = make_scratch(oc, features)
        self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.scratch.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(),
            nn.Identity(),
        )

    def forward(self, tokens: Sequence[torch.Tensor], gh: int, gw: int, patch_size: int) -> torch.Tensor:
        """tokens: four (B, gh*gw, D) patch-token maps -> (B, 1, gh*p, gw*p) depth."""
        layers = []
        for i, t in enumerate(tokens):
            x = t.permute(0, 2, 1).reshape(t.shape[0], t.shape[-1], gh, gw)
            layers.append(self.resize_layers[i](self.projects[i](x)))
        out = self.scratch.output_conv1(fuse(self.scratch, layers))
        # The reference resizes to exactly the input size here (path_1 is at 2x4 = 8x the
        # grid, i.e. p=14 -> 8/14 of the input), before the last convs.
        out = F.interpolate(out, size=(gh * patch_size, gw * patch_size), mode="bilinear", align_corners=True)
        return self.scratch.output_conv2(out)


class DepthAnythingV2(nn.Module):
    """Depth Anything V2: ``pretrained`` (DINOv2 ViT) + ``depth_head`` (:class:`DPTHead`).

    encoder: the ViT's constructor kwargs (see :func:`.vit.dinov2_config`).
    layers: the four block indices fed to the head.
    forward(x): x (N, 3, H, W) float32, ImageNet-normalised RGB, H and W multiples of 14.
    Returns (N, 1, H, W) float32 relative disparity >= 0 (larger = nearer).
    """

    def __init__(
        self,
        encoder: dict,
        features: int,
        out_channels: Sequence[int],
        layers: Sequence[int],
    ) -> None:
        super().__init__()
        if len(out_channels) != 4 or len(layers) != 4:
            raise ValueError("Depth Anything V2 needs four out_channels and four layers")
        self.layers = tuple(int(i) for i in layers)
        self.pretrained = VisionTransformer(**encoder)
        self.depth_head = DPTHead(self.pretrained.embed_dim, features, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pretrained.patch_size
        gh, gw = x.shape[-2] // p, x.shape[-1] // p
        feats = self.pretrained.get_intermediate_layers(x, self.layers, return_class_token=True)
        depth = self.depth_head([f[0] for f in feats], gh, gw, p)
        return F.relu(depth)


def depth_anything_v2(variant: str = "vits", **overrides) -> DepthAnythingV2:
    """A Depth Anything V2 of the released size ``vits``, ``vitb`` or ``vitl`` (random init).

    overrides: ``features``, ``out_channels``, ``layers`` replace the head config; any other
    key replaces an encoder kwarg (``embed_dim``, ``depth``, ``num_heads``, ``img_size`` ...).
    Build under ``with torch.device("meta"):`` to inspect shapes without allocating.
    """
    if variant not in DEPTH_ANYTHING_V2_CONFIGS:
        raise ValueError(
            f"Depth Anything V2 variant {variant!r} is not one of {', '.join(DEPTH_ANYTHING_V2_CONFIGS)}"
        )
    head = dict(DEPTH_ANYTHING_V2_CONFIGS[variant])
    encoder = dinov2_config(variant)
    for k, v in overrides.items():
        if k in head:
            head[k] = v
        elif k in encoder or k in ("mlp_ratio", "qkv_bias", "norm_eps", "interpolate_offset"):
            encoder[k] = v
        else:
            raise TypeError(f"depth_anything_v2() got an unexpected override {k!r}")
    return DepthAnythingV2(encoder, **head)


def depth_anything_v2_tiny(**overrides) -> DepthAnythingV2:
    """The same architecture at toy size for tests: ViT D=32, 4 blocks, 2 heads, img 98
    (7x7 pos-embed grid), features 16, out_channels (8, 16, 32, 32), layers (0, 1, 2, 3)."""
    cfg = {
        "embed_dim": 32,
        "depth": 4,
        "num_heads": 2,
        "img_size": 98,
        "features": 16,
        "out_channels": (8, 16, 32, 32),
        "layers": (0, 1, 2, 3),
    }
    cfg.update(overrides)
    return depth_anything_v2("vits", **cfg)


def load_depth_anything_v2_weights(module: DepthAnythingV2, path) -> DepthAnythingV2:
    """Load ``depth_anything_v2_{vits,vitb,vitl}.pth`` into ``module`` (strict; CPU tensors).

    Raises Photo3DError naming a few missing / unexpected keys when the file is not a
    checkpoint of this variant. Returns ``module``.
    """
    dim = module.pretrained.embed_dim
    variant = {384: "vits", 768: "vitb", 1024: "vitl"}.get(dim, f"ViT D={dim}")
    return load_checkpoint(
        module,
        path,
        f"a Depth Anything V2 {variant} checkpoint (depth_anything_v2_{variant}.pth)",
        hint="; download the matching checkpoint again",
    )
