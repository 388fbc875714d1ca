"""The on-disk cache of weights, ONNX exports and TensorRT plans, and its keys.

Layout under ``cache_dir()`` (``$PHOTO3D_CACHE``, else ``$XDG_CACHE_HOME/photo3d_fast``,
else ``~/.cache/photo3d_fast``)::

    weights/<file>            downloads from a URL (GitHub releases), one file per model
    weights/<repo>/<file>     downloads from the Hugging Face hub ($HF_ENDPOINT)
    hub/                      hub files fetched by earlier versions (huggingface_hub's
                              layout), still read
    onnx/<digest>/model.onnx  an export: key = model, weights hash, input shape, precision, opset
    tensorrt/<digest>.plan    a built engine: the ONNX key + GPU name, compute capability,
                              TensorRT version
    tensorrt/timing-<gpu>-<trt>.cache   TensorRT's timing cache, shared by all builds

Every entry is written under a temporary name and renamed into place when complete, so a
crash or Ctrl-C never leaves a half-written entry that a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

#: Bumped when the export recipe changes in a way that makes old entries wrong.
CACHE_FORMAT = 1


def cache_dir() -> Path:
    """The cache root (created on first use by the writers, not here)."""
    env = os.environ.get("PHOTO3D_CACHE")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "photo3d_fast"


def digest(value: object, length: int = 20) -> str:
    """A short stable hash of JSON-serialisable ``value`` (keys sorted)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, mtime) so a warm batch does not
    re-read gigabytes of weights for every photo."""
    p = Path(path)
    st = p.stat()
    memo = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_HASHES:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _FILE_HASHES[memo] = h.hexdigest()
    return _FILE_HASHES[memo]


def remember_sha256(path: str | Path, sha256: str) -> None:
    """Record the sha256 of a file just written (a download hashes its bytes as they
    arrive), so that its first use does not read it again."""
    p = Path(path)
    st = p.stat()
    _FILE_HASHES[(str(p.resolve()), st.st_size, st.st_mtime_ns)] = sha256


def weights_id(files: list[Path]) -> str:
    """One id for a model's weight files (several for ncnn's .param + .bin)."""
    if len(files) == 1:
        return file_sha256(files[0])
    return digest([file_sha256(f) for f in files], length=64)


def safe_name(text: str) -> str:
    """``text`` reduced to characters every filesystem accepts."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "x"


@dataclass(frozen=True)
class EngineKey:
    """Everything that makes a compiled engine different from another.

    model: registry name (or a test's name for its own module); weights: sha256 of the
    weight files (or an id the caller vouches for); shape: the static input shape (N, C, H,
    W); precision: "fp32" | "fp16"; device: "cpu" or the GPU's name and compute capability;
    runtime: "onnxruntime" | "tensorrt" with its version ("torch" entries are not stored).
    """

    model: str
    weights: str
    shape: tuple[int, ...]
    precision: str
    device: str = "cpu"
    runtime: str = "onnxruntime"
    runtime_version: str = ""
    opset: int = 18

    def onnx_digest(self) -> str:
        """The export depends on the network, its input and precision, not on who runs it."""
        return digest(["onnx", CACHE_FORMAT, self.model, self.weights, list(self.shape), self.precision, self.opset])

    def engine_digest(self) -> str:
        return digest(["engine", CACHE_FORMAT, asdict(self)])

    def onnx_path(self, root: Path | None = None) -> Path:
        root = cache_dir() if root is None else root
        return root / "onnx" / f"{safe_name(self.model)}-{self.onnx_digest()}" / "model.onnx"

    def plan_path(self, root: Path | None = None) -> Path:
        root = cache_dir() if root is None else root
        return root / "tensorrt" / f"{safe_name(self.model)}-{self.engine_digest()}.plan"


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``final``; on success rename it to ``final``
    (replacing nothing: if another process finished first, its entry is kept); on error
    remove it."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def clear(root: Path | None = None, what: tuple[str, ...] = ("onnx", "tensorrt")) -> int:
    """Remove cached engines (not weights, by default). Returns the number of entries removed."""
    root = cache_dir() if root is None else root
    n = 0
    for sub in what:
        d = root / sub
        if d.is_dir():
            n += sum(1 for _ in d.iterdir())
            shutil.rmtree(d)
    return n
