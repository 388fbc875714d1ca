"""The engines that run a network: torch (eager, fp16, torch.compile) and ONNX Runtime.

Every engine has the same call: a float32 (N, C, H, W) tensor of its fixed input shape on
``engine.device`` in, a float32 tensor on the same device out. TensorRT is in
``tensorrt.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import Photo3DError


@dataclass
class Engine:
    """What every runtime shares. ``cache_hit``: the compiled artefact (ONNX export,
    TensorRT plan) came from the cache; ``build_s``: seconds spent building it (0 on a hit);
    ``artifact``: the cached file, if any."""

    name: str
    runtime: str
    precision: str
    device: torch.device
    shape: tuple[int, ...]
    cache_hit: bool = True
    build_s: float = 0.0
    artifact: Path | None = None
    notes: list[str] = field(default_factory=list)

    def _check(self, x: torch.Tensor) -> None:
        if tuple(x.shape) != tuple(self.shape):
            raise ValueError(f"{self.name} engine was built for input {tuple(self.shape)}, got {tuple(x.shape)}")
        if x.device != self.device:
            raise ValueError(f"{self.name} engine runs on {self.device}, got a tensor on {x.device}")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        if self.artifact is None:
            where = "compiled on first call" if self.runtime == "torch-compile" else "eager"
        else:
            where = "cached" if self.cache_hit else f"built in {self.build_s:.1f} s"
        return f"{self.name} on {self.runtime} {self.precision} ({self.device}, {where})"


class TorchEngine(Engine):
    """The torch module itself: float32 on CPU; on CUDA fp16 weights and, with ``compile``,
    ``torch.compile`` (compiled on the first call for this shape)."""

    def __init__(self, module: torch.nn.Module, name: str, shape: tuple[int, ...], precision: str,
                 device: torch.device, compile: bool = False) -> None:
        super().__init__(name, "torch-compile" if compile else "torch", precision, device, tuple(shape))
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        p = next(module.parameters(), None)
        if p is not None and (p.device != device or p.dtype != self.dtype):
            # A copy: the caller's module (memoised on the CPU in float32 for ONNX exports)
            # must not turn into a lossy fp16 GPU one under its feet.
            import copy

            module = copy.deepcopy(module)
        self.module = module.to(device, self.dtype).eval()
        self.fn = torch.compile(self.module, dynamic=False) if compile else self.module

    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        return self.fn(x.to(self.dtype)).float()


def onnxruntime_providers() -> list[str]:
    """ONNX Runtime's execution providers here ([] when ONNX Runtime is not installed)."""
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


class OrtEngine(Engine):
    """An exported ONNX file in ONNX Runtime: the CUDA provider for CUDA tensors (bound in
    place with I/O binding, on the caller's current stream), the CPU provider otherwise."""

    def __init__(self, onnx_path: Path, name: str, shape: tuple[int, ...], precision: str, device: torch.device,
                 threads: int | None = None) -> None:
        super().__init__(name, "onnxruntime", precision, device, tuple(shape), artifact=onnx_path)
        try:
            import onnxruntime as ort
        except ImportError:
            raise Photo3DError("--runtime onnxruntime needs ONNX Runtime: pip install photo3d_fast[onnx]") from None
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        if device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise Photo3DError(
                    "ONNX Runtime has no CUDA provider here; install onnxruntime-gpu instead of onnxruntime, "
                    "or use --runtime torch/tensorrt"
                )
            stream = torch.cuda.current_stream(device).cuda_stream
            providers = [("CUDAExecutionProvider", {"device_id": device.index or 0,
                                                    "user_compute_stream": str(stream)})]
        else:
            providers = ["CPUExecutionProvider"]
        self.session = ort.InferenceSession(str(onnx_path), opts, providers=providers)
        # Exports name their tensors "input"/"output"; a file from elsewhere (U^2-Net-p,
        # effects/matte.py) has its own names and may have more outputs: the first is used.
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.output_shape = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = x.float().contiguous()
        if self.device.type != "cuda":
            (y,) = self.session.run([self.output_name], {self.input_name: x.numpy()})
            return torch.from_numpy(y)
        if self.output_shape is None:
            self.output_shape = tuple(self.session.get_outputs()[0].shape)
        out = torch.empty(self.output_shape, dtype=torch.float32, device=self.device)
        binding = self.session.io_binding()
        idx = self.device.index or 0
        binding.bind_input(self.input_name, "cuda", idx, np.float32, tuple(x.shape), x.data_ptr())
        binding.bind_output(self.output_name, "cuda", idx, np.float32, self.output_shape, out.data_ptr())
        self.session.run_with_iobinding(binding)
        return out

