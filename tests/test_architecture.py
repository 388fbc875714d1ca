"""The package's shape: no import cycles, imports at module top, a light ``import photo3d_fast``,
and every op in the one selector with a reference and a test under its name.

The import graph is read from the source (every ``import`` statement, at module top or in a
function body), so a cycle hidden inside a function counts as a cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Imports of the package's own modules that may stay inside a function body, and why. Each
#: defers an optional dependency (or a subcommand's whole stack) until it is used.
LAZY_OK = {
    ("photo3d_fast.preview", "photo3d_fast.preview.server"):
        "the server imports aiohttp (extra [preview]); the CLI adds the preview's parser from preview/__init__",
}


def _modules() -> dict[str, Path]:
    """module name -> file, for photo3d_fast/ and kernels/ (installed as photo3d_fast.kernels)."""
    out = {}
    for base, prefix in ((ROOT / "photo3d_fast", "photo3d_fast"), (ROOT / "kernels", "photo3d_fast.kernels")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([prefix, *parts])] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module of the package, inside a function body) for each import in ``path``."""
    is_pkg = path.name == "__init__.py"
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def in_function(node: ast.AST) -> bool:
        while node in parents:
            node = parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return True
        return False

    def known(target: str) -> str | None:
        while target and target not in modules:
            target = target.rpartition(".")[0]
        return target or None

    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            # "from pkg import sub" imports the submodule when sub is one
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names]
        else:
            continue
        for target in targets:
            mod = known(target) if target.startswith("photo3d_fast") else None
            if mod and mod != name:
                found.append((mod, in_function(node)))
    return found


def _graph() -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    lazy = []
    for name, path in modules.items():
        for target, inside in _imports(name, path, modules):
            graph[name].add(target)
            # Importing a.b.c runs a/__init__ and a/b/__init__ first.
            parts = target.split(".")
            for i in range(2, len(parts)):
                parent = ".".join(parts[:i])
                if parent in graph and parent != name and not name.startswith(parent + "."):
                    graph[name].add(parent)
            if inside:
                lazy.append((name, target))
    return graph, lazy


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    graph, _ = _graph()
    assert _cycles(graph) == []


def test_cycle_check_finds_a_cycle():
    # The check itself: a two-module cycle and a three-module one are found, a chain is not.
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": set()}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_package_imports_at_module_top():
    _, lazy = _graph()
    unexplained = sorted({pair for pair in lazy if pair not in LAZY_OK})
    assert unexplained == [], "imports of the package's own modules inside functions (move them to the top)"


def test_import_is_light():
    """``import photo3d_fast`` loads no optional or heavy dependency and no kernel module."""
    code = ("import sys, photo3d_fast; heavy = ('triton', 'onnx', 'onnxruntime', 'aiohttp', 'ray', 'tensorrt', "
            "'PyNvVideoCodec', 'av', 'photo3d_fast.kernels', 'photo3d_fast.preview.server', 'photo3d_fast._C'); "
            "print(sorted(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_op_has_reference_kernels_and_test():
    """Each op of the selector has its reference module ops/<op>.py, implementations that
    exist, and a test file named for it."""
    from photo3d_fast.ops.backends import IMPLEMENTATIONS

    modules = _modules()
    for op, impls in IMPLEMENTATIONS.items():
        assert impls["torch"] == f"photo3d_fast.ops.{op}"
        for backend, module in impls.items():
            assert module in modules, f"{op}/{backend}: {module} does not exist"
        if "triton" in impls:
            assert impls["triton"] == f"photo3d_fast.kernels.{op}"
        if "cuda" in impls:
            assert (ROOT / "csrc" / f"{op}.cu").exists(), f"{op} has a CUDA backend but no csrc/{op}.cu"
        assert (ROOT / "tests" / f"test_op_{op}.py").exists(), f"no tests/test_op_{op}.py"


@pytest.mark.parametrize("name", ["splat", "fill", "grow", "nv12"])
def test_select_falls_back_to_reference_on_cpu(name, monkeypatch):
    """Without the C++ CPU kernels (no compiler), auto on the CPU runs the torch reference."""
    import importlib

    from photo3d_fast.ops import backends

    monkeypatch.setattr(backends, "cpp_status", lambda: (False, "no C++ compiler"))
    monkeypatch.setattr(backends, "_NOTICED", set())
    assert backends.select(name, "auto", "cpu") == ("torch", importlib.import_module(f"photo3d_fast.ops.{name}"))


@pytest.mark.parametrize("name", ["splat", "fill", "grow"])
def test_select_prefers_cpp_on_cpu(name):
    """Where the C++ CPU kernels load, auto on the CPU picks them for the ops they implement."""
    from photo3d_fast.ops import backends

    if not backends.cpp_status()[0]:
        pytest.skip(f"the C++ CPU kernels are not here: {backends.cpp_status()[1]}")
    assert backends.select(name, "auto", "cpu")[0] == "cpp"


def test_named_gpu_backend_refuses_cpu_tensors(monkeypatch):
    """A backend that is present but compiled for the GPU is refused for CPU tensors with a
    reason, instead of being handed back to fail at its first launch."""
    from photo3d_fast.errors import Photo3DError
    from photo3d_fast.ops import backends

    monkeypatch.setattr(backends, "cuda_status", lambda: (True, "CUDA C++ extension"))
    with pytest.raises(Photo3DError, match="kernels cuda runs on CUDA devices, not cpu"):
        backends.select("splat", "cuda", "cpu")
    # an op without a CUDA twin runs its next implementation, as auto would
    assert backends.select("grow", "cuda", "cpu")[0] == backends.select("grow", "auto", "cpu")[0]
