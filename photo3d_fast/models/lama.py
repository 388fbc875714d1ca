"""LaMa (Suvorov et al., WACV 2022): the big-lama generator, a ResNet of fast Fourier convolutions.

Matches ``FFCResNetGenerator`` of ``saicinpainting/training/modules/ffc.py``
(github.com/advimman/lama) as ``configs/training/big-lama.yaml`` builds it: 4 input
channels, ngf 64, 3 stride-2 downsamplings, 18 FFC ResNet blocks at 512 channels of which
int(512 * 0.75) = 384 are "global" (spectral), no LFU, reflect padding, BatchNorm + ReLU,
3 transposed-conv upsamplings, a 7x7 output conv and a sigmoid. State-dict keys and shapes
equal the generator's in big-lama's ``best.ckpt`` (stored there under ``generator.``), so the
published weights load with ``strict=True`` (see :func:`load_lama_weights`).

One deliberate difference: the 2-D real FFT of the Fourier unit (``torch.fft.rfftn`` /
``irfftn`` over (H, W), ``norm="ortho"``) is computed as matrix products with the DFT
matrices of the (static) feature size. The arithmetic is the same (agrees with torch.fft to
~1e-15 in float64), and the exported ONNX graph holds only MatMul/Conv/Concat/Reshape, which
ONNX Runtime and TensorRT both run; TensorRT's ONNX parser has no DFT, and torch's ONNX
exporter has to map complex tensors around the DFT op. Cost: at the 1/8 bottleneck the four
products per Fourier unit are ~6 % of a block's multiply-adds for a 512 x 512 input and
~25 % for 2048 x 2048 (they grow as side^3, the convolutions as side^2).

Input: (N, 4, H, W) float32, the RGB image in [0, 1] with hole pixels zeroed
(``image * (1 - mask)``) concatenated with the mask (1 = hole); H and W multiples of 8.
Output: (N, 3, H, W) RGB in [0, 1], for every pixel (the caller keeps the known ones).
Pre/post-processing lives in ``photo3d_fast.inpaint.learned``.

The module also holds the reading of inpainting checkpoints (:func:`read_state_dict`,
:func:`load_generator_weights`), shared with :mod:`.migan`: big-lama ships as a PyTorch
Lightning checkpoint inside a zip, MI-GAN as a TorchScript trace or a state dict.
"""

from __future__ import annotations

import functools
import io
import json
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import Photo3DError

__all__ = [
    "FFC",
    "LAMA_CONFIGS",
    "FFCBnAct",
    "FFCResnetBlock",
    "FourierUnit",
    "LamaGenerator",
    "SpectralTransform",
    "irfft2_ortho",
    "lama",
    "load_generator_weights",
    "load_lama_weights",
    "read_state_dict",
    "rfft2_ortho",
]

#: The generator configs: big-lama's (configs/training/big-lama.yaml, generator section) and
#: a toy one of the same structure for tests.
LAMA_CONFIGS: dict[str, dict] = {
    "big-lama": {"ngf": 64, "n_downsampling": 3, "n_blocks": 18, "ratio_g": 0.75, "max_features": 1024},
    "tiny": {"ngf": 8, "n_downsampling": 2, "n_blocks": 2, "ratio_g": 0.75, "max_features": 1024},
}


# -- the real 2-D DFT as matrix products -------------------------------------------------


@functools.lru_cache(maxsize=32)
def _dft_matrices(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """float64 DFT matrices for an h x w real signal, each with its 1/sqrt(n) of "ortho".

    fw (w, 2 wf): x @ fw = [Re | Im] of the real FFT along W (wf = w // 2 + 1 bins).
    fh (2h, 2h), ih (2h, 2h): the complex FFT / inverse FFT along H acting on [Re; Im]
        stacked along H: [[C, S], [-S, C]] and [[C, -S], [S, C]] with C, S = cos, sin(2 pi
        k n / h).
    iw (2 wf, w): [Re | Im] @ iw = the Hermitian (c2r) inverse along W: bins other than DC
        and (even w) Nyquist count twice, and the imaginary parts of those two drop out (their
        sines are 0), which is what ``torch.fft.irfftn`` does with them.
    """
    wf = w // 2 + 1
    n_w, k_w = np.arange(w), np.arange(wf)
    ang = 2.0 * np.pi * np.outer(n_w, k_w) / w
    fw = np.concatenate([np.cos(ang), -np.sin(ang)], axis=1) / np.sqrt(w)
    n_h = np.arange(h)
    ang_h = 2.0 * np.pi * np.outer(n_h, n_h) / h
    c, s = np.cos(ang_h) / np.sqrt(h), np.sin(ang_h) / np.sqrt(h)
    # concatenate, not np.block: torch.compile traces numpy through torch._numpy, which has
    # no block, and would break the graph at every Fourier unit.
    fh = np.concatenate([np.concatenate([c, s], axis=1), np.concatenate([-s, c], axis=1)], axis=0)
    ih = np.concatenate([np.concatenate([c, -s], axis=1), np.concatenate([s, c], axis=1)], axis=0)
    twice = np.full(wf, 2.0)
    twice[0] = 1.0
    if w % 2 == 0:
        twice[-1] = 1.0
    iw = np.concatenate([twice[:, None] * np.cos(ang.T), -twice[:, None] * np.sin(ang.T)], axis=0) / np.sqrt(w)
    return fw, fh, ih, iw


def _const(a: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    # From numpy, so that torch.export records a constant, not the ops that built it.
    return torch.from_numpy(a).to(device=like.device, dtype=like.dtype)


def rfft2_ortho(x: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) real -> (N, 2C, H, W // 2 + 1): ``torch.fft.rfftn(x, dim=(-2, -1),
    norm="ortho")`` with real and imaginary parts interleaved per channel (channel 2c = Re of
    c, 2c + 1 = Im of c), the layout LaMa's Fourier unit convolves."""
    n, ch, h, w = x.shape
    fw, fh, _, _ = _dft_matrices(h, w)
    wf = w // 2 + 1
    a = x @ _const(fw, x)  # (N, C, H, 2 wf): [Re | Im] along W
    a = torch.cat([a[..., :wf], a[..., wf:]], dim=-2)  # (N, C, 2H, wf): [Re; Im]
    y = _const(fh, x) @ a  # complex FFT along H, still [Re; Im] stacked along H
    return y.reshape(n, 2 * ch, h, wf)


def irfft2_ortho(y: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """The inverse of :func:`rfft2_ortho`: (N, 2C, h, w // 2 + 1) interleaved Re/Im ->
    (N, C, h, w) real, ``torch.fft.irfftn(..., s=(h, w), dim=(-2, -1), norm="ortho")``."""
    n, c2, _, wf = y.shape
    _, _, ih, iw = _dft_matrices(h, w)
    z = _const(ih, y) @ y.reshape(n, c2 // 2, 2 * h, wf)  # inverse along H: [Re; Im]
    z = torch.cat([z[..., :h, :], z[..., h:, :]], dim=-1)  # (N, C, h, 2 wf): [Re | Im]
    return z @ _const(iw, y)


# -- fast Fourier convolution ------------------------------------------------------------


class FourierUnit(nn.Module):
    """Global mixing in the frequency domain: rFFT2 -> 1x1 conv over the 2C (Re, Im)
    channels -> BatchNorm -> ReLU -> inverse rFFT2. Keys: ``conv_layer`` (2C_in -> 2C_out,
    no bias), ``bn``."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv_layer = nn.Conv2d(in_channels * 2, out_channels * 2, kernel_size=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels * 2)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        spec = self.relu(self.bn(self.conv_layer(rfft2_ortho(x))))
        return irfft2_ortho(spec, h, w)


class SpectralTransform(nn.Module):
    """The global-to-global branch: 1x1 conv to half the channels (+ BN + ReLU), a
    :class:`FourierUnit` added to its input, 1x1 conv back. Keys: ``conv1.{0,1}``, ``fu.*``,
    ``conv2``. big-lama uses stride 1 and no local Fourier unit (``enable_lfu: false``)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, kernel_size=1, bias=False),
            nn.BatchNorm2d(out_channels // 2),
            nn.ReLU(),
        )
        self.fu = FourierUnit(out_channels // 2, out_channels // 2)
        self.conv2 = nn.Conv2d(out_channels // 2, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv1(x)
        return self.conv2(x + self.fu(x))


Pair = tuple[torch.Tensor | None, torch.Tensor | None]


class FFC(nn.Module):
    """Fast Fourier convolution on a (local, global) pair of feature maps.

    Channels split as ``int(c * ratio)`` global, the rest local. Four paths, each present only
    when both its ends have channels (the reference puts an Identity there, which has no
    keys): ``convl2l``, ``convl2g``, ``convg2l`` (k x k convs, reflect padding, no bias) and
    ``convg2g`` (:class:`SpectralTransform`). Returns (local, global); a side without
    channels is None.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        in_cg = int(in_channels * ratio_gin)
        in_cl = in_channels - in_cg
        out_cg = int(out_channels * ratio_gout)
        out_cl = out_channels - out_cg

        def conv(cin: int, cout: int) -> nn.Conv2d | None:
            if cin == 0 or cout == 0:
                return None
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, bias=False, padding_mode="reflect")

        self.convl2l = conv(in_cl, out_cl)
        self.convl2g = conv(in_cl, out_cg)
        self.convg2l = conv(in_cg, out_cl)
        if in_cg and out_cg and stride != 1:
            raise ValueError("a strided spectral transform is not part of big-lama")
        self.convg2g = SpectralTransform(in_cg, out_cg) if in_cg and out_cg else None
        self.has_local, self.has_global = out_cl > 0, out_cg > 0

    def forward(self, x: Pair) -> Pair:
        x_l, x_g = x
        out_l = out_g = None
        if self.has_local:
            parts = [m(t) for m, t in ((self.convl2l, x_l), (self.convg2l, x_g)) if m is not None and t is not None]
            out_l = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        if self.has_global:
            parts = [m(t) for m, t in ((self.convl2g, x_l), (self.convg2g, x_g)) if m is not None and t is not None]
            out_g = parts[0] if len(parts) == 1 else parts[0] + parts[1]
        return out_l, out_g


class FFCBnAct(nn.Module):
    """:class:`FFC` then BatchNorm and ReLU on each side that has channels (reference
    ``FFC_BN_ACT``). Keys: ``ffc.*``, ``bn_l``, ``bn_g``. Takes a tensor (all local) or a pair."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, ratio_gin: float, ratio_gout: float,
                 stride: int = 1, padding: int = 0) -> None:
        super().__init__()
        self.ffc = FFC(in_channels, out_channels, kernel_size, ratio_gin, ratio_gout, stride, padding)
        out_cg = int(out_channels * ratio_gout)
        self.bn_l = nn.BatchNorm2d(out_channels - out_cg) if ratio_gout != 1 else None
        self.bn_g = nn.BatchNorm2d(out_cg) if ratio_gout != 0 else None
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor | Pair) -> Pair:
        x_l, x_g = self.ffc(x if isinstance(x, tuple) else (x, None))
        if x_l is not None and self.bn_l is not None:
            x_l = self.act(self.bn_l(x_l))
        if x_g is not None and self.bn_g is not None:
            x_g = self.act(self.bn_g(x_g))
        return x_l, x_g


class FFCResnetBlock(nn.Module):
    """Two 3x3 :class:`FFCBnAct` (``conv1``, ``conv2``) with a residual on each side."""

    def __init__(self, dim: int, ratio_g: float) -> None:
        super().__init__()
        self.conv1 = FFCBnAct(dim, dim, 3, ratio_g, ratio_g, padding=1)
        self.conv2 = FFCBnAct(dim, dim, 3, ratio_g, ratio_g, padding=1)

    def forward(self, x: Pair) -> Pair:
        y_l, y_g = self.conv2(self.conv1(x))
        return x[0] + y_l, x[1] + y_g


class _ConcatPair(nn.Module):
    def forward(self, x: Pair) -> torch.Tensor:
        return torch.cat([t for t in x if t is not None], dim=1)


class LamaGenerator(nn.Module):
    """The big-lama generator; ``model`` is an nn.Sequential laid out as the reference's, so
    keys are ``model.<index>.<...>``:

    0 ReflectionPad2d(3); 1 FFCBnAct 7x7 in -> ngf (all local); 2 .. n_downsampling + 1
    stride-2 3x3 FFCBnAct doubling the channels (the last one splits into local/global);
    then n_blocks :class:`FFCResnetBlock`; the concat of both sides; per upsampling a
    ConvTranspose2d(3, stride 2, padding 1, output_padding 1) + BatchNorm + ReLU;
    ReflectionPad2d(3); Conv2d 7x7 ngf -> 3; Sigmoid.

    forward(x): x (N, 4, H, W) float32 (see the module docstring), H and W multiples of
    2 ** n_downsampling. Returns (N, 3, H, W) float32 in [0, 1].
    """

    def __init__(self, ngf: int = 64, n_downsampling: int = 3, n_blocks: int = 18, ratio_g: float = 0.75,
                 max_features: int = 1024, input_nc: int = 4, output_nc: int = 3) -> None:
        super().__init__()
        self.multiple = 2 ** n_downsampling
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), FFCBnAct(input_nc, ngf, 7, 0, 0)]
        for i in range(n_downsampling):
            ratio_gout = ratio_g if i == n_downsampling - 1 else 0
            cin, cout = min(max_features, ngf * 2**i), min(max_features, ngf * 2 ** (i + 1))
            layers.append(FFCBnAct(cin, cout, 3, 0, ratio_gout, stride=2, padding=1))
        dim = min(max_features, ngf * 2**n_downsampling)
        layers += [FFCResnetBlock(dim, ratio_g) for _ in range(n_blocks)]
        layers.append(_ConcatPair())
        for i in range(n_downsampling):
            cin = min(max_features, ngf * 2 ** (n_downsampling - i))
            cout = min(max_features, ngf * 2 ** (n_downsampling - i) // 2)
            layers += [
                nn.ConvTranspose2d(cin, cout, kernel_size=3, stride=2, padding=1, output_padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Sigmoid()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"LaMa needs H and W multiples of {self.multiple}; got {tuple(x.shape[-2:])}")
        return self.model(x)


def lama(config: str = "big-lama", **overrides) -> LamaGenerator:
    """A LaMa generator of ``config`` ("big-lama" or "tiny"), random init; ``overrides``
    replace config entries (``ngf``, ``n_downsampling``, ``n_blocks``, ``ratio_g``,
    ``max_features``). Build under ``with torch.device("meta"):`` to inspect shapes only."""
    if config not in LAMA_CONFIGS:
        raise ValueError(f"LaMa config {config!r} is not one of {', '.join(LAMA_CONFIGS)}")
    cfg = {**LAMA_CONFIGS[config], **overrides}
    return LamaGenerator(**cfg)


# -- reading inpainting checkpoints --------------------------------------------------------


class _Opaque:
    """Stands in for a class a checkpoint pickles besides its tensors (an OmegaConf config,
    a Lightning callback, typing.Any ...): it accepts any construction and state and runs
    none of that class's code. Only the state dict is read from such a checkpoint."""

    def __init__(self, *args, **kwargs) -> None:
        self._args, self._kwargs = args, kwargs

    def __setstate__(self, state) -> None:
        self._state = state


def _stub(qualified: str) -> tuple[type, str]:
    module, _, name = qualified.rpartition(".")
    return type(name, (_Opaque,), {"__module__": module}), qualified


Source = Path | bytes  # a file, or the bytes of a checkpoint found inside a zip


def _open(src: Source):
    return io.BytesIO(src) if isinstance(src, bytes) else src


def _torch_load(src: Source) -> object:
    """A ``torch.save`` archive -> its object, with ``weights_only=True``: every global the
    allowlist lacks (big-lama's best.ckpt pickles its OmegaConf training config and Lightning
    callback state) becomes an :class:`_Opaque` stub, so no pickled code runs and neither
    OmegaConf nor Lightning is needed."""
    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(_open(src))
    except Exception:  # noqa: BLE001 (legacy, non-zip format: no static scan; load as is)
        unsafe = []
    with torch.serialization.safe_globals([_stub(g) for g in unsafe]):
        return torch.load(_open(src), map_location="cpu", weights_only=True)


_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
                       "I64": torch.int64, "I32": torch.int32, "U8": torch.uint8}


def _safetensors_header(head: bytes, total: int) -> int | None:
    """The JSON header's size if ``head`` (a file's first 9 bytes) opens a .safetensors file
    of ``total`` bytes (8-byte little-endian header size, then the header's "{"), else None."""
    if len(head) < 9 or head[8:9] != b"{":
        return None
    size = int.from_bytes(head[:8], "little")
    return size if 2 <= size <= total - 8 else None


def _safetensors(data: bytes, size: int) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors file's bytes, whose JSON header is ``size`` bytes."""
    header = json.loads(data[8 : 8 + size])
    base = 8 + size
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        dtype = _SAFETENSORS_DTYPES.get(info["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {key} has dtype {info['dtype']}, which inpainting weights never use")
        start, end = info["data_offsets"]
        buf = bytearray(data[base + start : base + end])
        t = torch.frombuffer(buf, dtype=dtype) if buf else torch.empty(0, dtype=dtype)
        out[key] = t.reshape(info["shape"])
    return out


def _tensors_of(obj: object) -> dict[str, torch.Tensor] | None:
    """The state dict inside a loaded checkpoint object: the object itself, or its
    ``state_dict`` / ``model`` / ``generator`` entry."""
    for _ in range(3):
        if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        if not isinstance(obj, dict):
            return None
        inner = next((obj[k] for k in ("state_dict", "model", "generator") if isinstance(obj.get(k), dict)), None)
        if inner is None:
            return None
        obj = inner
    return None


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint file, by name, on the CPU, without running pickled code.

    Accepted: a ``torch.save`` file holding a state dict, possibly under ``state_dict`` (a
    PyTorch Lightning checkpoint such as big-lama's ``best.ckpt``, its training config and
    callbacks skipped unread); a TorchScript archive (``torch.jit.save``; TorchScript, not
    pickled Python, read by ``torch.jit.load``: parameters and buffers by attribute path); a
    ``.safetensors`` file; a zip holding one of those (the published ``big-lama.zip``:
    ``big-lama/models/best.ckpt``, a ``best.ckpt`` preferred). Files are read in place; only a
    checkpoint inside a zip is held in memory while it loads.
    Raises Photo3DError when the file is missing or none of these.
    """
    path = Path(path)
    if not path.is_file():
        raise Photo3DError(f"weights file {path} does not exist")
    try:
        return _state_from(path, path.name)
    except Photo3DError:
        raise
    except Exception as e:  # noqa: BLE001 (unpickling and zip reading fail in many types)
        raise Photo3DError(f"{path} could not be read as a checkpoint ({type(e).__name__}: {str(e)[:200]})") from None


def _state_from(src: Source, name: str, nested: bool = False) -> dict[str, torch.Tensor]:
    if isinstance(src, bytes):
        head, total = src[:9], len(src)
    else:
        with open(src, "rb") as f:
            head, total = f.read(9), src.stat().st_size
    size = _safetensors_header(head, total)
    if size is not None:
        return _safetensors(src if isinstance(src, bytes) else src.read_bytes(), size)
    if zipfile.is_zipfile(_open(src)):
        with zipfile.ZipFile(_open(src)) as z:
            names = z.namelist()
            if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
                if any("/code/" in n or n.startswith("code/") for n in names):
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # torch.jit.load is deprecated; it still reads archives
                        return dict(torch.jit.load(_open(src), map_location="cpu").state_dict())
                return _checked(_torch_load(src), name)
            inner = [n for n in names if n.endswith((".ckpt", ".pth", ".pt", ".safetensors"))]
            if nested or not inner:
                raise Photo3DError(f"{name} is a zip without a checkpoint (.ckpt, .pth, .pt, .safetensors) in it")
            best = min(inner, key=lambda n: (not n.endswith("best.ckpt"), n))
            return _state_from(z.read(best), f"{name}:{best}", nested=True)
    return _checked(_torch_load(src), name)  # the legacy (pre-1.6) torch.save format


def _checked(obj: object, name: str) -> dict[str, torch.Tensor]:
    state = _tensors_of(obj)
    if state is None:
        raise Photo3DError(f"{name} holds no state dict of tensors")
    return state


#: Prefixes under which published files keep a generator's keys: Lightning's module
#: attribute (big-lama's best.ckpt), a wrapper's (traced pipelines), DataParallel's.
GENERATOR_PREFIXES = ("", "generator.", "model.", "module.", "module.generator.", "generator.module.")


def load_generator_weights(module: nn.Module, path: str | Path, what: str, hint: str = "",
                           prefixes: Iterable[str] = GENERATOR_PREFIXES) -> nn.Module:
    """Load the generator's tensors of checkpoint ``path`` (any format of
    :func:`read_state_dict`) into ``module`` with ``strict=True``.

    The prefix is the one of ``prefixes`` under which the most of ``module``'s keys are
    found; tensors outside it (a discriminator, loss networks) are ignored, and under it the
    key sets and shapes must be equal. what: the expected checkpoint, for messages. Raises
    Photo3DError naming a few missing / unexpected / mis-shaped keys. Returns ``module``.
    """
    state = read_state_dict(path)
    own = module.state_dict()
    prefix = max(prefixes, key=lambda p: sum(p + k in state for k in own))
    mine = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    missing = sorted(set(own) - set(mine))
    unexpected = sorted(set(mine) - set(own))
    shapes = sorted(f"{k} {tuple(mine[k].shape)} != {tuple(own[k].shape)}" for k in set(own) & set(mine)
                    if mine[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        def few(keys: list[str]) -> str:
            return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")

        parts = [f"{len(v)} {label}: {few(v)}" for label, v in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("keys of the wrong shape", shapes)) if v]
        raise Photo3DError(f"{path} is not {what} ({'; '.join(parts)}){hint}")
    module.load_state_dict({k: v.to(own[k].dtype) for k, v in mine.items()}, strict=True)
    return module


def load_lama_weights(module: LamaGenerator, path: str | Path) -> LamaGenerator:
    """Load big-lama's published weights into ``module``: ``big-lama.zip`` as published,
    its ``models/best.ckpt`` (Lightning; the generator is under ``generator.``), or the
    generator's state dict in any format :func:`read_state_dict` reads."""
    return load_generator_weights(module, path, "the big-lama generator (big-lama.zip or its models/best.ckpt)",
                                  hint="; download it again with `photo3d engines fetch lama`")
