"""Engines: learned networks compiled once per input shape and device, cached on disk.

Build path: torch module -> ONNX (opset 18, static shape, precision in the graph) ->
TensorRT plan, cached under a key of model, weights hash, input shape, precision, GPU and
TensorRT version. Where TensorRT is missing the same ONNX runs in ONNX Runtime (CUDA
provider if present, else CPU); where that is missing the torch module runs (fp16 and
torch.compile on a GPU).

    engine = load_engine("depth-anything-v2-small", (1, 3, 518, 686))
    y = engine(x)          # float32 (N, C, H, W) on engine.device in and out

Runtimes: "auto" | "tensorrt" | "onnxruntime" | "torch" | "torch-compile".
Precisions: "auto" (fp16 on a GPU, fp32 on the CPU) | "fp32" | "fp16" (GPU only).

Weights (``weights.py``): a user's file, the cache, or a download into the cache on first
use. ``resolve_auto(task)`` is what every ``auto`` of a learned stage means: the best model
of the task whose weights are here, else its permissively licensed default fetched once,
else None (the stage's method without weights), never waiting more than about a second
for a network that is not there.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from ..config import PRECISIONS, RUNTIMES
from ..device import resolve_device
from ..errors import Photo3DError, notice
from .cache import EngineKey, cache_dir, weights_id
from .export import export_onnx
from .registry import MODELS, ModelSpec, get_spec, models_for
from .runtimes import Engine, OrtEngine, TorchEngine, onnxruntime_providers
from .tensorrt import TrtEngine, build_plan, gpu_id, tensorrt_version
from .weights import default_download, offline_reason, resolve_auto, weight_files

__all__ = [
    "MODELS", "PRECISIONS", "RUNTIMES", "Engine", "EngineKey", "ModelSpec", "cache_dir", "default_download",
    "engine_from_module", "get_spec", "load_engine", "load_module", "models_for", "offline_reason", "pick_runtime",
    "resolve_auto",
]


def _has_tensorrt() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def pick_runtime(runtime: str, device: torch.device) -> str:
    """The runtime ``auto`` means here, or ``runtime`` checked for availability.

    GPU: TensorRT, else ONNX Runtime with its CUDA provider, else torch.compile (fp16).
    CPU: ONNX Runtime, else torch (bench/engines.py: on a 2-core CPU, ORT's CPU provider
    beats eager torch on every model).
    """
    if runtime not in RUNTIMES:
        raise Photo3DError(f"--runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    providers = onnxruntime_providers()
    if runtime == "auto":
        if device.type == "cuda":
            if _has_tensorrt():
                return "tensorrt"
            return "onnxruntime" if "CUDAExecutionProvider" in providers else "torch-compile"
        return "onnxruntime" if providers else "torch"
    if runtime == "tensorrt":
        if device.type != "cuda":
            raise Photo3DError("--runtime tensorrt needs a CUDA GPU (--device cuda); none is selected or present")
        if not _has_tensorrt():
            raise Photo3DError("--runtime tensorrt needs TensorRT: pip install photo3d_fast[trt]")
    if runtime == "onnxruntime" and not providers:
        raise Photo3DError("--runtime onnxruntime needs ONNX Runtime: pip install photo3d_fast[onnx]")
    return runtime


def _precision(precision: str, device: torch.device) -> str:
    if precision not in PRECISIONS:
        raise Photo3DError(f"--precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "fp16" if device.type == "cuda" else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise Photo3DError("--precision fp16 needs a CUDA GPU; on the CPU use fp32 (or auto)")
    return precision


def _device_id(device: torch.device) -> str:
    if device.type != "cuda":
        return "cpu"

    return gpu_id(device)


_MODULES: dict[tuple[str, str], torch.nn.Module] = {}
_ENGINES: dict[tuple, Engine] = {}


def load_module(spec: ModelSpec, files: list[Path]) -> torch.nn.Module:
    """``spec``'s network with the weights of ``files``, on the CPU in float32, eval mode.
    Kept for the process's life so that a batch loads each model once."""
    wid = weights_id(files)
    memo = (spec.name, wid)
    if memo not in _MODULES:
        module = spec.build()
        spec.load(module, files)
        _MODULES[memo] = module.eval()
    return _MODULES[memo]


def engine_from_module(
    module: torch.nn.Module | Callable[[], torch.nn.Module],
    *,
    name: str,
    weights: str,
    shape: tuple[int, ...],
    runtime: str = "auto",
    precision: str = "auto",
    device: str | torch.device = "auto",
    quiet: bool = False,
) -> Engine:
    """An engine for ``module`` (or a zero-argument factory, called only when a build needs
    the network) and a float32 input of ``shape``. ``weights`` identifies the weights in the
    cache key (the sha256 of the weight files for registry models). Engines are memoised in
    the process; exports and plans are cached on disk (``cache_dir()``)."""
    dev = resolve_device(device)
    prec = _precision(precision, dev)
    rt = pick_runtime(runtime, dev)
    shape = tuple(int(s) for s in shape)
    memo = (name, weights, shape, prec, rt, str(dev))
    if memo in _ENGINES:
        return _ENGINES[memo]

    def network() -> torch.nn.Module:
        return module() if callable(module) and not isinstance(module, torch.nn.Module) else module

    if rt in ("torch", "torch-compile"):
        engine: Engine = TorchEngine(network(), name, shape, prec, dev, compile=rt == "torch-compile")
    else:

        key = EngineKey(name, weights, shape, prec, _device_id(dev), rt,
                        (tensorrt_version() or "") if rt == "tensorrt" else "")
        engine = _compiled(network, key, dev, quiet)
    _ENGINES[memo] = engine
    return engine


def _compiled(network: Callable[[], torch.nn.Module], key: EngineKey, dev: torch.device, quiet: bool) -> Engine:

    onnx_path = key.onnx_path()
    build_s = 0.0
    hit = onnx_path.is_file()
    for attempt in range(2):
        if not onnx_path.is_file():
            notice(f"exporting {key.model} {key.precision} for input {'x'.join(map(str, key.shape))} to ONNX (once; cached in {cache_dir()})", quiet)
            t0 = time.perf_counter()
            export_onnx(network(), key.shape, onnx_path, key.precision, key.opset)
            build_s += time.perf_counter() - t0
        try:
            if key.runtime == "onnxruntime":
                engine: Engine = OrtEngine(onnx_path, key.model, key.shape, key.precision, dev)
            else:
                engine = _tensorrt(onnx_path, key, dev, quiet)
                hit = hit and engine.cache_hit
                build_s += engine.build_s
            break
        except Photo3DError:
            raise
        except Exception as e:
            # A cache entry that does not load (truncated by a full disk, written by another
            # version) is rebuilt once; a second failure is real.
            if attempt:
                raise
            notice(f"cached engine for {key.model} did not load ({type(e).__name__}: {str(e)[:200]}); rebuilding it", quiet)
            shutil.rmtree(onnx_path.parent, ignore_errors=True)
            key.plan_path().unlink(missing_ok=True)
            hit = False
    engine.cache_hit, engine.build_s = hit, build_s
    return engine


def _tensorrt(onnx_path: Path, key: EngineKey, dev: torch.device, quiet: bool) -> Engine:

    plan = key.plan_path()
    hit, t0 = plan.is_file(), time.perf_counter()
    if not hit:
        build_plan(onnx_path, plan, key.shape, dev, quiet)
    engine = TrtEngine(plan, key.model, key.shape, key.precision, dev)
    engine.cache_hit, engine.build_s = hit, 0.0 if hit else time.perf_counter() - t0
    return engine


def load_engine(
    model: str,
    shape: tuple[int, ...],
    *,
    runtime: str = "auto",
    precision: str = "auto",
    device: str | torch.device = "auto",
    weights: str | Path | None = None,
    fetch: bool = True,
    quiet: bool = False,
) -> Engine:
    """The engine of registry model ``model`` (see ``MODELS``) for a float32 input of
    ``shape`` (N, C, H, W). Weights come from ``weights`` (a file or directory), the cache,
    or their public home (once, when ``fetch``)."""

    spec = get_spec(model)
    files = weight_files(spec, weights, fetch=fetch, quiet=quiet)
    return engine_from_module(lambda: load_module(spec, files), name=spec.name, weights=weights_id(files),
                              shape=shape, runtime=runtime, precision=precision, device=device, quiet=quiet)
