"""torch module -> ONNX file (opset 18, static input shape), the input of ONNX Runtime and
TensorRT.

Precision lives in the graph: an fp16 export casts its float32 input to float16, runs the
network's weights in float16 and casts the output back, so both runtimes see float32 I/O
and TensorRT's strongly typed builder (the only kind in TensorRT 11) keeps the network in
fp16 without builder flags.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import torch

from ..errors import Photo3DError
from .cache import staged_dir

OPSET = 18
INPUT_NAME = "input"
OUTPUT_NAME = "output"


class _CastIO(torch.nn.Module):
    """Runs ``net`` in ``dtype`` behind float32 input and output."""

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.to(self.dtype)).float()


def export_onnx(module: torch.nn.Module, shape: tuple[int, ...], path: Path, precision: str = "fp32", opset: int = OPSET) -> Path:
    """Export ``module`` (eval mode, any device; exported from a CPU copy) for a float32
    input of ``shape`` to ``path`` (a file inside its own cache directory; large weights go
    to ``path`` + ".data" beside it). Written to a temporary directory and renamed into
    place. Returns ``path``."""
    import copy

    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise Photo3DError(
            f"exporting to ONNX needs onnx and onnxscript ({e.name} is missing): pip install photo3d_fast[onnx]"
        ) from None
    dtype = {"fp32": torch.float32, "fp16": torch.float16}[precision]
    net = copy.deepcopy(module).to("cpu", dtype).eval()
    wrapped = _CastIO(net, dtype).eval()
    example = torch.zeros(shape, dtype=torch.float32)
    with staged_dir(path.parent) as tmp, torch.inference_mode(False), torch.no_grad():
        # The exporter narrates every step on stdout and warns about its own internals;
        # a user wants one line saying an export is happening, which the caller prints.
        out = io.StringIO()
        log = logging.getLogger("torch.onnx")
        level = log.level
        log.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(out):
            warnings.simplefilter("ignore")
            try:
                torch.onnx.export(
                    wrapped, (example,), str(tmp / path.name), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                    opset_version=opset, dynamo=True, external_data=True, verbose=False,
                )
            except Exception as e:
                raise RuntimeError(f"ONNX export failed: {e}\n{out.getvalue()[-2000:]}") from e
            finally:
                log.setLevel(level)
    return path
