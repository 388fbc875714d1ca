"""Plain Vision Transformer encoders for the DPT depth models, in plain torch.

One class, :class:`VisionTransformer`, covers the two encoders our depth models use; the
parameter names are those of the reference code, so published weights load strictly:

- DINOv2 ViT-S/14, B/14, L/14 as built by Depth Anything V2
  (``depth_anything_v2/dinov2.py``, ``DINOv2(model_name)``: img_size 518, patch 14,
  LayerScale init 1.0 (``blocks.i.ls1.gamma`` / ``ls2.gamma``), a ``mask_token`` (1, D),
  no register tokens, LayerNorm eps 1e-6, exact-GELU MLP, no classifier). Position
  embeddings are resized as ``DinoVisionTransformer.interpolate_pos_encoding`` does:
  bicubic with ``scale_factor = (n + 0.1) / 37``, antialias off, and no resize at all for a
  square 37x37 grid. Use :meth:`get_intermediate_layers`.
- timm ``vit_large_patch16_384`` as wrapped by MiDaS v3 (``midas/backbones/vit.py``:
  img_size 384, patch 16, no LayerScale, LayerNorm eps 1e-6, a 1000-class ``head`` kept
  so that ``dpt_large_384.pt`` loads strictly). Position embeddings are resized as MiDaS's
  ``_resize_pos_embed``: bilinear to the target grid, ``align_corners=False``. Use
  :meth:`block_outputs` (raw block outputs, no final norm, as MiDaS's forward hooks see).

Attention is ``F.scaled_dot_product_attention``: the same math as the reference's
``softmax(q * d^-0.5 @ k^T) @ v``, one fused op on GPU, and it exports to ONNX.

Shapes: images (B, 3, H, W) float32 with H, W multiples of the patch size; tokens
(B, 1 + (H/p)(W/p), D), class token first, patch tokens row-major.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["VisionTransformer", "dinov2_config", "timm_vit_large_384_config"]

PosEmbedResize = Literal["dinov2", "bilinear"]


class PatchEmbed(nn.Module):
    """Non-overlapping p x p patches -> D-dim tokens (one strided conv), key ``proj``."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, (H/p)(W/p), D)."""
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention with a fused qkv projection (keys ``qkv``, ``proj``)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, d)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2 (keys ``fc1``, ``fc2``)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class LayerScale(nn.Module):
    """Per-channel scale of a residual branch (key ``gamma``, shape (D,))."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(mlp(norm2 x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        layerscale_init: float | None,
        norm_eps: float,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        # Identity (no parameters) when the reference has no LayerScale (timm ViT), so the
        # key set stays exactly the reference's.
        if layerscale_init:
            self.ls1: nn.Module = LayerScale(dim, layerscale_init)
            self.ls2: nn.Module = LayerScale(dim, layerscale_init)
        else:
            self.ls1 = nn.Identity()
            self.ls2 = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class VisionTransformer(nn.Module):
    """ViT with a class token and learned position embeddings resized to the input grid.

    img_size: the training resolution; sets ``pos_embed`` to (1, 1 + (img_size/p)^2, D).
    pos_embed_resize: "dinov2" (bicubic, +0.1 offset, DINOv2 as in Depth Anything V2) or
        "bilinear" (MiDaS ``_resize_pos_embed``); see the module docstring.
    layerscale_init: LayerScale init value, or None for no LayerScale.
    mask_token: add DINOv2's (1, D) ``mask_token`` parameter (unused at inference; kept so
        the checkpoint loads strictly).
    num_classes: > 0 adds a linear ``head`` (D -> num_classes), unused by depth models but
        present in timm checkpoints.
    """

    def __init__(
        self,
        *,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        layerscale_init: float | None = None,
        norm_eps: float = 1e-6,
        pos_embed_resize: PosEmbedResize = "dinov2",
        mask_token: bool = False,
        num_classes: int = 0,
        interpolate_offset: float = 0.1,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if pos_embed_resize not in ("dinov2", "bilinear"):
            raise ValueError(f"pos_embed_resize must be 'dinov2' or 'bilinear', not {pos_embed_resize!r}")
        if img_size % patch_size:
            raise ValueError(f"img_size {img_size} is not a multiple of patch_size {patch_size}")
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        self.pos_embed_resize = pos_embed_resize
        self.interpolate_offset = interpolate_offset
        grid = img_size // patch_size
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        if mask_token:
            self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, qkv_bias, layerscale_init, norm_eps)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=norm_eps)
        if num_classes > 0:
            self.head = nn.Linear(embed_dim, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # Random init only matters for tests (tiny models); it follows timm's ViT recipe so
        # activations have realistic scales. Skipped on the meta device (nothing to fill).
        if self.pos_embed.device.type == "meta":
            return
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    # -- position embeddings --------------------------------------------------------------

    def interpolate_pos_encoding(self, gh: int, gw: int) -> torch.Tensor:
        """Position embeddings for a gh x gw patch grid: (1, 1 + gh*gw, D), pos_embed's dtype."""
        pos = self.pos_embed
        n = pos.shape[1] - 1
        g0 = int(math.sqrt(n))
        dim = pos.shape[-1]
        if self.pos_embed_resize == "dinov2":
            # DINOv2 resizes with F.interpolate(mode="bicubic", scale_factor=(gh + 0.1) / 37)
            # and skips the resize for the square 37x37 training grid. The same sampling is
            # written here as two small weight matrices built from the grid size with tensor
            # ops, so that an ONNX export with dynamic H, W stays correct (a Python-float
            # scale_factor would be frozen into the graph at the example's size) and the
            # 37x37 skip needs no Python branch on the shape.
            grid = pos[0, 1:].float().reshape(g0, g0, dim)
            wy = _dinov2_bicubic_weights(gh, g0, self.interpolate_offset, gw, pos.device)
            wx = _dinov2_bicubic_weights(gw, g0, self.interpolate_offset, gh, pos.device)
            grid = torch.einsum("yi,ijd,xj->yxd", wy, grid, wx).reshape(1, gh * gw, dim)
            return torch.cat((pos[:, :1].float(), grid), dim=1).to(pos.dtype)
        grid = pos[0, 1:].reshape(1, g0, g0, dim).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bilinear", align_corners=False)
        grid = grid.permute(0, 2, 3, 1).reshape(1, gh * gw, dim)
        return torch.cat((pos[:, :1], grid), dim=1)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) image -> (B, 1 + gh*gw, D) tokens with position embeddings added."""
        H, W = x.shape[-2:]
        p = self.patch_size
        if H % p or W % p:
            raise ValueError(f"input is {H}x{W}; height and width must be multiples of {p}")
        tokens = self.patch_embed(x)
        tokens = torch.cat((self.cls_token.expand(tokens.shape[0], -1, -1), tokens), dim=1)
        return tokens + self.interpolate_pos_encoding(H // p, W // p)

    # -- feature extraction ---------------------------------------------------------------

    def block_outputs(self, x: torch.Tensor, indices: Sequence[int]) -> list[torch.Tensor]:
        """Raw outputs of the given blocks (no final norm): list of (B, 1 + gh*gw, D).

        What MiDaS's forward hooks on ``model.blocks[i]`` capture. Blocks after the last
        requested one are not run (their output would be discarded).
        """
        wanted = sorted({int(i) for i in indices})
        if not wanted or wanted[0] < 0 or wanted[-1] >= len(self.blocks):
            raise ValueError(f"block indices {list(indices)} out of range 0..{len(self.blocks) - 1}")
        h = self.prepare_tokens(x)
        found: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks[: wanted[-1] + 1]):
            h = blk(h)
            if i in wanted:
                found[i] = h
        return [found[int(i)] for i in indices]

    def get_intermediate_layers(
        self,
        x: torch.Tensor,
        n: int | Sequence[int] = 1,
        return_class_token: bool = False,
        norm: bool = True,
    ) -> tuple:
        """DINOv2's ``get_intermediate_layers`` (without ``reshape``).

        n: an int takes the last n blocks, a sequence the given block indices.
        Returns a tuple of (B, gh*gw, D) patch tokens per block, after the final norm when
        ``norm``; with ``return_class_token`` a tuple of (patch_tokens, class_token (B, D))
        pairs instead.
        """
        indices = list(range(len(self.blocks) - n, len(self.blocks))) if isinstance(n, int) else list(n)
        outs = self.block_outputs(x, indices)
        if norm:
            outs = [self.norm(o) for o in outs]
        patches = [o[:, 1:] for o in outs]
        if return_class_token:
            return tuple(zip(patches, [o[:, 0] for o in outs]))
        return tuple(patches)


def _dinov2_bicubic_weights(n_out: int, n_in: int, offset: float, n_other: int, device) -> torch.Tensor:
    """(n_out, n_in) float32 matrix M with ``M @ v`` = DINOv2's bicubic resize of v along
    one axis of the pos-embed grid (``interpolate_pos_encoding`` in
    ``depth_anything_v2/dinov2.py``).

    That code calls ``F.interpolate(mode="bicubic", scale_factor=s, antialias=False)`` with
    s = (n_out + offset) / n_in, so torch samples source position (i + 0.5) / s - 0.5 (the
    scale factor, not n_in / n_out) with Keys' cubic a = -0.75 and taps clamped to the
    border; it returns the table unchanged when both axes are n_in (n_other: the other
    axis's length). The reference names the height ``w`` and the width ``h`` (``B, nc, w, h
    = x.shape``) but passes its factors in (rows, cols) order, so rows do get the height's
    factor. Here the skip becomes offset 0 on the training grid: then every source
    position is an integer and the matrix is exactly the identity.
    """
    a = -0.75
    i = torch.arange(n_out, dtype=torch.float64, device=device)
    # Grid sizes as tensors (ones(n).sum() == n), so the comparison is a graph op on export.
    n_out_t = torch.ones(n_out, dtype=torch.float64, device=device).sum()
    n_other_t = torch.ones(n_other, dtype=torch.float64, device=device).sum()
    on_train_grid = ((n_out_t == n_in) & (n_other_t == n_in)).to(torch.float64)
    inv_scale = n_in / (n_out_t + offset * (1.0 - on_train_grid))
    src = (i + 0.5) * inv_scale - 0.5
    i0 = torch.floor(src)
    t = (src - i0)[:, None]
    d = torch.cat([t + 1, t, 1 - t, 2 - t], dim=1)  # (n_out, 4) tap distances, all >= 0
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    w = torch.where(d <= 1, near, far)
    taps = (i0[:, None] + torch.arange(-1, 3, dtype=torch.float64, device=device)).clamp(0, n_in - 1)
    cols = torch.arange(n_in, dtype=torch.float64, device=device)
    # Clamped border taps can hit the same column twice; summing one-hot rows adds them.
    m = ((taps[:, :, None] == cols[None, None, :]).to(torch.float64) * w[:, :, None]).sum(dim=1)
    return m.to(torch.float32)


def dinov2_config(variant: str) -> dict:
    """Constructor kwargs of DINOv2 ViT-S/B/L (``vits``, ``vitb``, ``vitl``) as Depth Anything V2 builds it."""
    sizes = {"vits": (384, 12, 6), "vitb": (768, 12, 12), "vitl": (1024, 24, 16)}
    if variant not in sizes:
        raise ValueError(f"DINOv2 variant {variant!r} is not one of {', '.join(sizes)}")
    dim, depth, heads = sizes[variant]
    return {
        "img_size": 518,
        "patch_size": 14,
        "embed_dim": dim,
        "depth": depth,
        "num_heads": heads,
        "layerscale_init": 1.0,
        "pos_embed_resize": "dinov2",
        "mask_token": True,
        "num_classes": 0,
    }


def timm_vit_large_384_config() -> dict:
    """Constructor kwargs of timm ``vit_large_patch16_384`` (MiDaS v3 DPT-Large's encoder)."""
    return {
        "img_size": 384,
        "patch_size": 16,
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "layerscale_init": None,
        "pos_embed_resize": "bilinear",
        "mask_token": False,
        "num_classes": 1000,
    }
