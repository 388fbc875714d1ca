"""MI-GAN (Sargsyan et al., ICCV 2023): a small, fast GAN inpainter of fixed input size.

Matches ``Generator`` of ``lib/model_zoo/migan_inference.py`` (github.com/Picsart-AI-Research/
MI-GAN), the inference form its ``scripts/export_inference_model.py`` saves as ``migan.pt``
(state dict) and ``migan_traced.pt`` (TorchScript): an encoder of separable-conv blocks from
``resolution`` down to 4 x 4 and a synthesis network back up with skip connections, noise
injection and a toRGB branch per scale. Channels per scale: ``min(ch_base // res, ch_max)``
with ch_base 32768 and ch_max 512 for the released models (Places2 256 and 512, FFHQ 256).
State-dict keys and shapes (the fixed ``noise_const`` and ``filter_const`` buffers included)
equal those files', so they load with ``strict=True``.

Input: (N, 4, R, R) float32, R = the model's resolution: channel 0 = known - 0.5 (+0.5 on
known pixels, -0.5 in the hole), channels 1..3 = RGB in [-1, 1] times known (the reference
``scripts/demo.py`` ``preprocess``: ``cat([mask - 0.5, img * mask])``, mask 1 = known).
Output: (N, 3, R, R) RGB, about [-1, 1] (no output activation; the reference maps it with
``(y * 0.5 + 0.5).clamp(0, 1)``). Pre/post-processing lives in ``photo3d_fast.inpaint.learned``.

The resolution is fixed by the buffers (the reference README says so too): the noise and
the zero-insertion pattern of the upsamplers are stored per scale.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .lama import load_generator_weights

__all__ = [
    "MIGAN_CONFIGS",
    "MiganGenerator",
    "load_migan_weights",
    "migan",
]

#: (resolution, ch_base, ch_max): the released models, and a toy one for tests.
MIGAN_CONFIGS: dict[str, dict] = {
    "migan-512": {"resolution": 512, "ch_base": 32768, "ch_max": 512},
    "migan-256": {"resolution": 256, "ch_base": 32768, "ch_max": 512},
    "tiny": {"resolution": 32, "ch_base": 256, "ch_max": 32},
}

_GAIN = math.sqrt(2.0)
_CLAMP = 256.0


def _lrelu_agc(x: torch.Tensor) -> torch.Tensor:
    """The reference ``lrelu_agc(alpha=0.2, gain="sqrt_2", clamp=256)``."""
    return (F.leaky_relu(x, 0.2) * _GAIN).clamp(-_CLAMP, _CLAMP)


def _binomial_filter(channels: int, gain: float) -> torch.Tensor:
    """(channels, 1, 4, 4): [1, 3, 3, 1] outer itself, normalised, times gain (the
    reference's ``setup_filter``). Made in Python, not with tensor ops: on the meta device
    (full-size shape checks) the first product or repeat loads torch's Python meta kernels and
    decompositions, seconds of a test run."""
    k = (1.0, 3.0, 3.0, 1.0)
    f = [[a * b / 64.0 * gain for b in k] for a in k]
    return torch.tensor([[f]] * channels)


class Downsample2d(nn.Module):
    """Depthwise 4x4 blur, stride 2, padding 1 (``filter``; a parameter in the files)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.filter = nn.Conv2d(channels, channels, 4, stride=2, padding=1, groups=channels, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(_binomial_filter(channels, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.filter(x)


class Upsample2d(nn.Module):
    """2x upsampling: nearest, times ``filter_const`` (1 at the top-left of every 2x2 cell,
    i.e. zero insertion; a (1, 1, R, R) buffer), pad (2, 1, 2, 1), depthwise 4x4 ``filter``."""

    def __init__(self, channels: int, resolution: int) -> None:
        super().__init__()
        pattern = torch.zeros(1, 1, resolution, resolution)
        pattern[..., ::2, ::2] = 1.0
        self.register_buffer("filter_const", pattern)
        self.filter = nn.Conv2d(channels, channels, 4, groups=channels, bias=False)
        with torch.no_grad():
            self.filter.weight.copy_(_binomial_filter(channels, 4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest") * self.filter_const
        return self.filter(F.pad(x, (2, 1, 2, 1)))


class SeparableConv2d(nn.Module):
    """Depthwise k x k conv (+ bias) -> activation -> [Downsample2d] -> 1x1 conv (no bias)
    -> [Upsample2d] -> [+ noise_const * noise_strength] -> activation.

    Keys: ``conv1``, ``conv2``, ``downsample.filter``, ``upsample.{filter_const, filter}``,
    ``noise_const`` (R x R buffer), ``noise_strength`` (scalar).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, resolution: int | None = None,
                 use_noise: bool = False, down: int = 1, up: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, in_channels, kernel_size, padding=kernel_size // 2, groups=in_channels)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.downsample = Downsample2d(in_channels) if down > 1 else None
        self.upsample = Upsample2d(out_channels, resolution) if up > 1 else None
        self.use_noise = use_noise
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _lrelu_agc(self.conv1(x))
        if self.downsample is not None:
            x = self.downsample(x)
        x = self.conv2(x)
        if self.upsample is not None:
            x = self.upsample(x)
        if self.use_noise:
            x = x + self.noise_const * self.noise_strength
        return _lrelu_agc(x)


class EncoderBlock(nn.Module):
    """[``fromrgb`` 1x1 conv of the input + activation] -> ``conv1`` -> ``conv2`` (stride-2
    unless the last block). Returns (downsampled, skip feature before the downsampling)."""

    def __init__(self, in_channels: int, out_channels: int, rgb_channels: int | None = None, down: int = 2) -> None:
        super().__init__()
        self.fromrgb = nn.Conv2d(rgb_channels, in_channels, 1) if rgb_channels is not None else None
        self.conv1 = SeparableConv2d(in_channels, in_channels, 3)
        self.conv2 = SeparableConv2d(in_channels, out_channels, 3, down=down)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.fromrgb is not None:
            y = _lrelu_agc(self.fromrgb(img))
            x = y if x is None else x + y
        feat = self.conv1(x)
        return self.conv2(feat), feat


def _channels(res: int, ch_base: int, ch_max: int) -> int:
    return min(ch_base // res, ch_max)


class Encoder(nn.Module):
    """Blocks ``b{R}``, ``b{R/2}`` ... ``b8`` (stride 2) and ``b4`` (no downsampling)."""

    def __init__(self, resolution: int, in_channels: int = 4, ch_base: int = 32768, ch_max: int = 512) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        self.res = [2**i for i in range(log2, 1, -1)]  # R, R/2, ..., 4
        for i, (ri, rj) in enumerate(zip(self.res[:-1], self.res[1:])):
            block = EncoderBlock(_channels(ri, ch_base, ch_max), _channels(rj, ch_base, ch_max),
                                 rgb_channels=in_channels if i == 0 else None)
            self.add_module(f"b{ri}", block)
        c4 = _channels(4, ch_base, ch_max)
        self.b4 = EncoderBlock(c4, c4, down=1)

    def forward(self, img: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Returns the 4 x 4 code and the skip features at R, R/2, ..., 4."""
        x, feats = None, []
        for r in self.res:
            x, feat = getattr(self, f"b{r}")(x, img)
            feats.append(feat)
        return x, feats


class SynthesisBlockFirst(nn.Module):
    """At 4 x 4: ``conv1``, + skip, ``conv2``, ``torgb``."""

    def __init__(self, channels: int, rgb_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = SeparableConv2d(channels, channels, 3)
        self.conv2 = SeparableConv2d(channels, channels, 3, resolution=4)
        self.torgb = nn.Conv2d(channels, rgb_channels, 1)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + skip)
        return x, self.torgb(x)


class SynthesisBlock(nn.Module):
    """At resolution r: ``conv1`` (2x up, noise), + skip, ``conv2`` (noise); the image so far
    is upsampled (``upsample``) and gets ``torgb`` of the features added."""

    def __init__(self, in_channels: int, out_channels: int, resolution: int, rgb_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = SeparableConv2d(in_channels, out_channels, 3, resolution=resolution, use_noise=True, up=2)
        self.conv2 = SeparableConv2d(out_channels, out_channels, 3, resolution=resolution, use_noise=True)
        self.torgb = nn.Conv2d(out_channels, rgb_channels, 1)
        self.upsample = Upsample2d(rgb_channels, resolution)

    def forward(self, x: torch.Tensor, skip: torch.Tensor, img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.conv2(self.conv1(x) + skip)
        return x, self.upsample(img) + self.torgb(x)


class Synthesis(nn.Module):
    """Blocks ``b4`` (:class:`SynthesisBlockFirst`), ``b8`` ... ``b{R}``."""

    def __init__(self, resolution: int, rgb_channels: int = 3, ch_base: int = 32768, ch_max: int = 512) -> None:
        super().__init__()
        log2 = int(math.log2(resolution))
        self.res = [2**i for i in range(2, log2 + 1)]  # 4, 8, ..., R
        self.b4 = SynthesisBlockFirst(_channels(4, ch_base, ch_max), rgb_channels)
        for ri, rj in zip(self.res[:-1], self.res[1:]):
            block = SynthesisBlock(_channels(ri, ch_base, ch_max), _channels(rj, ch_base, ch_max), rj, rgb_channels)
            self.add_module(f"b{rj}", block)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """skips: the encoder's features at R, ..., 4 (as :meth:`Encoder.forward` returns)."""
        by_res = dict(zip(reversed(self.res), skips))
        x, img = self.b4(x, by_res[4])
        for r in self.res[1:]:
            x, img = getattr(self, f"b{r}")(x, by_res[r], img)
        return img


class MiganGenerator(nn.Module):
    """MI-GAN: ``encoder`` (:class:`Encoder`) + ``synthesis`` (:class:`Synthesis`).

    forward(x): x (N, 4, R, R) float32 as the module docstring says; returns (N, 3, R, R)
    RGB about [-1, 1]. R is fixed at construction (a power of two >= 8).
    """

    def __init__(self, resolution: int = 512, ch_base: int = 32768, ch_max: int = 512) -> None:
        super().__init__()
        if resolution < 8 or resolution & (resolution - 1):
            raise ValueError(f"MI-GAN resolution must be a power of two >= 8; got {resolution}")
        self.resolution = resolution
        self.synthesis = Synthesis(resolution, ch_base=ch_base, ch_max=ch_max)
        self.encoder = Encoder(resolution, ch_base=ch_base, ch_max=ch_max)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != (4, self.resolution, self.resolution):
            raise ValueError(f"MI-GAN {self.resolution} takes (N, 4, {self.resolution}, {self.resolution}); "
                             f"got {tuple(x.shape)}")
        code, skips = self.encoder(x)
        return self.synthesis(code, skips)


def migan(config: str = "migan-512") -> MiganGenerator:
    """An MI-GAN generator of ``config`` ("migan-512", "migan-256" or "tiny"), random init
    (the buffers as the reference makes them: its zero-insertion pattern, fresh noise)."""
    if config not in MIGAN_CONFIGS:
        raise ValueError(f"MI-GAN config {config!r} is not one of {', '.join(MIGAN_CONFIGS)}")
    return MiganGenerator(**MIGAN_CONFIGS[config])


def load_migan_weights(module: MiganGenerator, path: str | Path) -> MiganGenerator:
    """Load released MI-GAN weights of ``module``'s resolution: ``migan_traced.pt``
    (TorchScript), ``migan_512_places2.pt`` / ``migan_256_places2.pt`` (state dicts), or the
    same tensors in any format :func:`.lama.read_state_dict` reads."""
    r = module.resolution
    return load_generator_weights(module, path, f"an MI-GAN {r} generator (migan_traced.pt or migan_{r}_places2.pt)",
                                  hint="; download it again with `photo3d engines fetch migan`")
