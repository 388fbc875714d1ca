"""TensorRT: ONNX -> serialized plan (cached) -> execution on torch CUDA tensors.

Uses the TensorRT 10/11 Python API (named I/O tensors, ``execute_async_v3``, strongly
typed networks: precision comes from the ONNX graph, see ``export.py``). Needs an NVIDIA
GPU, its driver and ``pip install photo3d_fast[trt]``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import Photo3DError, notice
from .cache import safe_name, write_atomic
from .runtimes import Engine

#: Builder workspace limit: room for the fastest tactics of a ViT-L at 518 px.
WORKSPACE_BYTES = 4 << 30


def import_tensorrt():
    try:
        import tensorrt as trt
    except ImportError:
        raise Photo3DError(
            "--runtime tensorrt needs TensorRT: pip install photo3d_fast[trt] (NVIDIA GPU and driver required)"
        ) from None
    return trt


def tensorrt_version() -> str | None:
    try:
        import tensorrt as trt
    except ImportError:
        return None
    return trt.__version__


def gpu_id(device: torch.device) -> str:
    """The GPU part of a plan's cache key: a plan only runs on the GPU model it was built for."""
    props = torch.cuda.get_device_properties(device)
    return f"{props.name} sm_{props.major}{props.minor}"


class _Logger:
    _logger = None

    @classmethod
    def get(cls, trt):
        if cls._logger is None:
            cls._logger = trt.Logger(trt.Logger.WARNING)
        return cls._logger


def build_plan(onnx_path: Path, plan_path: Path, shape: tuple[int, ...], device: torch.device, quiet: bool = False) -> None:
    """Parse the ONNX file, build a plan for the static input ``shape`` and write it to
    ``plan_path`` atomically. The timing cache beside it makes later builds for the same GPU
    (other shapes, other models) faster."""
    trt = import_tensorrt()
    logger = _Logger.get(trt)
    with torch.cuda.device(device):
        builder = trt.Builder(logger)
        flags = 0
        if hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        # A profile even for a static shape: explicit min = opt = max documents the one
        # shape this plan serves and is what dynamic exports would widen.
        profile = builder.create_optimization_profile()
        name = network.get_input(0).name
        profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
        timing_path = plan_path.parent / f"timing-{safe_name(gpu_id(device))}-trt{trt.__version__}.cache"
        blob = timing_path.read_bytes() if timing_path.is_file() else b""
        timing = config.create_timing_cache(blob)
        config.set_timing_cache(timing, ignore_mismatch=False)
        notice(f"building a TensorRT engine for {onnx_path.parent.name} (once per GPU and shape; minutes)", quiet)
        plan = builder.build_serialized_network(network, config)
        if plan is None:
            raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path}")
        write_atomic(plan_path, bytes(plan))
        write_atomic(timing_path, bytes(config.get_timing_cache().serialize()))


_TORCH_TYPES = {"FLOAT": torch.float32, "HALF": torch.float16, "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool}


class TrtEngine(Engine):
    """A deserialized plan; runs on the caller's current CUDA stream with torch tensors
    bound in place (no copies)."""

    def __init__(self, plan_path: Path, name: str, shape: tuple[int, ...], precision: str, device: torch.device) -> None:
        super().__init__(name, "tensorrt", precision, device, tuple(shape), artifact=plan_path)
        trt = import_tensorrt()
        with torch.cuda.device(device):
            runtime = trt.Runtime(_Logger.get(trt))
            self.engine = runtime.deserialize_cuda_engine(plan_path.read_bytes())
            if self.engine is None:
                raise RuntimeError(f"TensorRT could not load {plan_path} (built by another TensorRT version?)")
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(f"{plan_path}: expected one input and one output, got {inputs} / {outputs}")
        self.input, self.output = inputs[0], outputs[0]
        self.context.set_input_shape(self.input, tuple(shape))
        self.output_shape = tuple(self.context.get_tensor_shape(self.output))
        self.output_dtype = _TORCH_TYPES[self.engine.get_tensor_dtype(self.output).name]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        x = x.float().contiguous()
        out = torch.empty(self.output_shape, dtype=self.output_dtype, device=self.device)
        self.context.set_tensor_address(self.input, x.data_ptr())
        self.context.set_tensor_address(self.output, out.data_ptr())
        stream = torch.cuda.current_stream(self.device)
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT execution of {self.name} failed")
        # x must outlive the asynchronous launch: tie it to the stream's allocator.
        x.record_stream(stream)
        return out.float()
