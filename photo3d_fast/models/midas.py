"""MiDaS v3 DPT-Large 384 (Ranftl et al., "Vision Transformers for Dense Prediction", 2021;
weights ``dpt_large_384.pt`` from github.com/isl-org/MiDaS releases v3, MIT licence).

Matches ``midas/dpt_depth.py`` ``DPTDepthModel(backbone="vitl16_384", non_negative=True)``
with the default ``readout="project"``, ``features=256``, ``use_bn=False`` (as
``midas/model_loader.py`` builds ``dpt_large_384``), whose encoder is
``midas/backbones/vit.py`` ``_make_pretrained_vitl16_384`` over timm
``vit_large_patch16_384`` with hooks on blocks (5, 11, 17, 23) and the reassemble stages of
``midas/backbones/utils.py`` ``make_backbone_default``. Keys and shapes equal the
checkpoint's: ``pretrained.model.*`` (timm ViT incl. ``norm`` and the 1000-class ``head``),
``pretrained.act_postprocess{1..4}.{0.project.0, 3, 4}``, ``scratch.layer{1..4}_rn``,
``scratch.refinenet{1..4}.*``, ``scratch.output_conv.{0,2,4}``.

Behaviour matched: hooks see raw block outputs (no final norm); the readout token is
concatenated to every patch token and projected (Linear 2D -> D, exact GELU); position
embeddings are resized bilinearly (``_resize_pos_embed``). Differences: ``forward`` returns
(N, 1, H, W) (the reference squeezes to (N, H, W)); the ViT's final ``norm`` and ``head``
are loaded but never run, as in the reference (it computes the norm and discards it).

Output: relative inverse depth (larger = nearer), >= 0, at the input resolution for H, W
multiples of 32 (the input must be a multiple of 16; 32 keeps the 1/32 branch aligned).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .dpt import fuse, load_checkpoint, make_scratch
from .vit import VisionTransformer, timm_vit_large_384_config

__all__ = [
    "MidasDPT",
    "ProjectReadout",
    "load_midas_weights",
    "midas_dpt_large",
    "midas_dpt_large_tiny",
]


class ProjectReadout(nn.Module):
    """[patch tokens, class token] -> Linear(2D, D) -> GELU (key ``project.0``).

    (B, 1 + N, D) -> (B, N, D).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.project = nn.Sequential(nn.Linear(2 * dim, dim), nn.GELU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        patches = x[:, 1:]
        readout = x[:, :1].expand_as(patches)
        return self.project(torch.cat((patches, readout), dim=-1))


def _reassemble(readout_dim: int, channels: int, resample: nn.Module | None) -> nn.Sequential:
    # Indices 1 and 2 are the reference's Transpose and Unflatten (no parameters); they are
    # kept as placeholders so the conv sits at index 3 and the resampler at index 4, as in
    # the checkpoint. MidasDPT.forward does the reshape itself, for any grid size.
    layers: list[nn.Module] = [
        ProjectReadout(readout_dim),
        nn.Identity(),
        nn.Identity(),
        nn.Conv2d(readout_dim, channels, kernel_size=1),
    ]
    if resample is not None:
        layers.append(resample)
    return nn.Sequential(*layers)


class _Backbone(nn.Module):
    """The reference's ``pretrained`` container: ``model`` (the ViT) and ``act_postprocess*``."""

    def __init__(self, encoder: dict, out_channels: Sequence[int]) -> None:
        super().__init__()
        self.model = VisionTransformer(**encoder)
        d = self.model.embed_dim
        c = list(out_channels)
        self.act_postprocess1 = _reassemble(d, c[0], nn.ConvTranspose2d(c[0], c[0], kernel_size=4, stride=4))
        self.act_postprocess2 = _reassemble(d, c[1], nn.ConvTranspose2d(c[1], c[1], kernel_size=2, stride=2))
        self.act_postprocess3 = _reassemble(d, c[2], None)
        self.act_postprocess4 = _reassemble(d, c[3], nn.Conv2d(c[3], c[3], kernel_size=3, stride=2, padding=1))


class MidasDPT(nn.Module):
    """MiDaS DPT depth model: ``pretrained`` (ViT + reassemble) and ``scratch`` (decoder + head).

    encoder: the ViT's constructor kwargs (see :func:`.vit.timm_vit_large_384_config`).
    forward(x): x (N, 3, H, W) float32 normalised with mean = std = 0.5, H and W multiples
    of 32. Returns (N, 1, H, W) float32 relative inverse depth >= 0.
    """

    def __init__(
        self,
        encoder: dict,
        features: int = 256,
        out_channels: Sequence[int] = (256, 512, 1024, 1024),
        hooks: Sequence[int] = (5, 11, 17, 23),
        head_features_2: int = 32,
        non_negative: bool = True,
    ) -> None:
        super().__init__()
        if len(out_channels) != 4 or len(hooks) != 4:
            raise ValueError("MiDaS DPT needs four out_channels and four hooks")
        self.hooks = tuple(int(i) for i in hooks)
        self.pretrained = _Backbone(encoder, out_channels)
        self.scratch = make_scratch(out_channels, features)
        # Index 1 is the reference's Interpolate(scale_factor=2, bilinear, align_corners=True);
        # a placeholder here, applied in forward, so that convs keep indices 0, 2, 4.
        self.scratch.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
            nn.Identity(),
            nn.Conv2d(features // 2, head_features_2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(head_features_2, 1, kernel_size=1),
            nn.ReLU() if non_negative else nn.Identity(),
            nn.Identity(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        vit = self.pretrained.model
        p = vit.patch_size
        gh, gw = x.shape[-2] // p, x.shape[-1] // p
        tokens = vit.block_outputs(x, self.hooks)
        layers = []
        for i, t in enumerate(tokens):
            post = getattr(self.pretrained, f"act_postprocess{i + 1}")
            f = post[0](t)  # (B, gh*gw, D)
            f = f.transpose(1, 2).reshape(f.shape[0], f.shape[-1], gh, gw)
            for m in post[3:]:
                f = m(f)
            layers.append(f)
        path1 = fuse(self.scratch, layers)
        head = self.scratch.output_conv
        out = head[0](path1)
        out = F.interpolate(out, scale_factor=2, mode="bilinear", align_corners=True)
        for m in head[2:]:
            out = m(out)
        return out


def midas_dpt_large(**overrides) -> MidasDPT:
    """MiDaS v3 DPT-Large 384 (random init; load ``dpt_large_384.pt`` with :func:`load_midas_weights`).

    overrides: ``features``, ``out_channels``, ``hooks``, ``head_features_2``,
    ``non_negative`` replace the head config; any other key replaces a ViT kwarg
    (``embed_dim``, ``depth``, ``num_heads``, ``img_size``, ``num_classes`` ...).
    """
    head: dict = {"features": 256, "out_channels": (256, 512, 1024, 1024), "hooks": (5, 11, 17, 23)}
    encoder = timm_vit_large_384_config()
    for k, v in overrides.items():
        if k in head or k in ("head_features_2", "non_negative"):
            head[k] = v
        elif k in encoder or k in ("mlp_ratio", "qkv_bias", "norm_eps"):
            encoder[k] = v
        else:
            raise TypeError(f"midas_dpt_large() got an unexpected override {k!r}")
    return MidasDPT(encoder, **head)


def midas_dpt_large_tiny(**overrides) -> MidasDPT:
    """The same architecture at toy size for tests: ViT D=32, 4 blocks, 2 heads, patch 16,
    img 96 (6x6 grid), 10-class head, features 16, out_channels (8, 16, 32, 32), hooks 0..3."""
    cfg = {
        "embed_dim": 32,
        "depth": 4,
        "num_heads": 2,
        "img_size": 96,
        "num_classes": 10,
        "features": 16,
        "out_channels": (8, 16, 32, 32),
        "hooks": (0, 1, 2, 3),
        "head_features_2": 8,
    }
    cfg.update(overrides)
    return midas_dpt_large(**cfg)


def load_midas_weights(module: MidasDPT, path) -> MidasDPT:
    """Load MiDaS v3 ``dpt_large_384.pt`` into ``module`` (strict; CPU tensors).

    The checkpoint's ``pretrained.model.head.*`` is dropped when ``module`` has no
    classifier head (built with ``num_classes=0``). Raises Photo3DError naming a few
    missing / unexpected keys when the file is not that checkpoint. Returns ``module``.
    """
    ignore = () if hasattr(module.pretrained.model, "head") else ("pretrained.model.head.",)
    return load_checkpoint(
        module,
        path,
        "the MiDaS v3 DPT-Large checkpoint (dpt_large_384.pt)",
        ignore_prefixes=ignore,
        hint="; download dpt_large_384.pt again",
    )
