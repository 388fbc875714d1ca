"""The selector's checks of whether a present backend can run on a given GPU, on the CPU:
the CUDA extension's architectures against the device's compute capability, and the
Triton probe launch, with torch.cuda's answers and the probe's launch monkeypatched.
No kernel module is imported here (they read TRITON_INTERPRET when defined)."""

import ast
import re
import sys
from pathlib import Path

import pytest
import torch

from photo3d_fast.errors import Photo3DError
from photo3d_fast.ops import backends

ROOT = Path(__file__).resolve().parents[1]


def _setup_archs() -> tuple[int, ...]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "ARCHS" for t in node.targets):
            return tuple(int(a) for a in ast.literal_eval(node.value))
    raise AssertionError("setup.py has no ARCHS")


def test_setup_builds_the_selectors_archs_and_ptx_of_the_newest():
    archs = _setup_archs()
    assert archs == backends.CUDA_ARCHS
    assert list(archs) == sorted(archs)  # the last is the newest: its PTX is embedded
    source = (ROOT / "setup.py").read_text()
    assert re.search(r"code=compute_\{ARCHS\[-1\]\}", source), "setup.py embeds no PTX"


@pytest.fixture
def fake_gpu(monkeypatch):
    """torch.cuda says a GPU is there (capability set by the test); compiled Triton; the
    probe and notice caches empty before and after. No Triton kernel module may be imported
    meanwhile: with TRITON_INTERPRET=0 it would stay compiled for the rest of the session."""
    kernels_before = {m for m in sys.modules if m.startswith("photo3d_fast.kernels.")}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda index=None: "Fake GPU")
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    backends._triton_probe.cache_clear()
    monkeypatch.setattr(backends, "_NOTICED", set())
    yield monkeypatch
    backends._triton_probe.cache_clear()
    assert {m for m in sys.modules if m.startswith("photo3d_fast.kernels.")} == kernels_before


def _capability(monkeypatch, cc: int):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: divmod(cc, 10))


@pytest.mark.parametrize("cc, usable", [
    (70, False), (75, False),                  # V100, T4: older than every built arch
    (80, True), (86, True), (87, True),        # sm_80 machine code runs on sm_8x, x >= 0
    (89, True), (90, True),
    (100, True), (120, True),                  # Blackwell: PTX of compute_90, JIT
])
def test_cuda_arch_status(fake_gpu, cc, usable):
    _capability(fake_gpu, cc)
    ok, why = backends.cuda_arch_status(torch.device("cuda"))
    assert ok is usable, why
    assert f"sm_{cc}" in why
    if cc > 90:
        assert "PTX" in why


def test_auto_skips_cuda_extension_without_code_for_the_gpu(fake_gpu, capsys):
    _capability(fake_gpu, 75)
    fake_gpu.setattr(backends, "cuda_status", lambda: (True, "CUDA C++ extension"))
    # no Triton either, so auto ends at the reference: a kernel module must not be imported
    # here with TRITON_INTERPRET=0 (it would stay compiled for the rest of the session)
    fake_gpu.setattr(backends, "_triton_present", lambda: (False, "Triton is not installed"))
    assert backends.select("nv12", "auto", "cuda")[0] == "torch"
    assert backends.select("splat", "auto", "cuda")[0] == "torch"
    err = capsys.readouterr().err
    assert err.count("not using cuda") == 1 and "sm_75" in err
    with pytest.raises(Photo3DError, match="kernels cuda is not available: .*sm_75"):
        backends.select("splat", "cuda", "cuda")


def test_triton_probe_failure_falls_back_once_and_names_the_reason(fake_gpu, capsys):
    fake_gpu.setattr(backends, "cuda_status", lambda: (False, "not built"))
    calls = []

    def broken(index):
        calls.append(index)
        raise RuntimeError("Failed to find C compiler. Please specify via CC\nsecond line")

    fake_gpu.setattr(backends, "_launch_triton_probe", broken)
    for _ in range(3):  # per frame, per op: one probe, one line
        assert backends.select("splat", "auto", torch.device("cuda"))[0] == "torch"
        assert backends.select("fill", "auto", torch.device("cuda"))[0] == "torch"
    assert calls == [0]
    err = capsys.readouterr().err
    assert err.count("photo3d: ") == 1
    assert "not using triton on cuda" in err and "Failed to find C compiler" in err
    assert "second line" not in err
    with pytest.raises(Photo3DError, match="kernels triton is not available: Triton cannot "
                                           "compile/launch here: RuntimeError: Failed to find C compiler"):
        backends.select("splat", "triton", torch.device("cuda"))
    ok, why = backends.status("triton")  # what photo3d doctor shows
    assert not ok and "Failed to find C compiler" in why


def test_triton_probe_is_per_device(fake_gpu):
    fake_gpu.setattr(backends, "_launch_triton_probe", lambda index: None if index == 0 else 1 / 0)
    assert backends.status("triton", "cuda:0")[0]
    ok, why = backends.status("triton", "cuda:1")
    assert not ok and "ZeroDivisionError" in why


def test_cpu_install_falls_back_silently(monkeypatch, capsys):
    """No GPU, no extension: the normal CPU install says nothing about the GPU backends it
    lacks; auto picks the C++ CPU kernels for the ops they implement, the reference else."""
    monkeypatch.setattr(backends, "_NOTICED", set())
    monkeypatch.setattr(backends, "cpp_status", lambda: (True, "C++ CPU kernels"))
    assert backends.select("splat", "auto", "cpu")[0] == "cpp"
    assert backends.select("fill", "auto", "cpu")[0] == "cpp"
    assert backends.select("grow", "auto", "cpu")[0] == "cpp"
    assert backends.select("nv12", "auto", "cpu")[0] == "torch"
    assert capsys.readouterr().err == ""


def test_cpp_without_compiler_falls_back_once_and_names_the_reason(monkeypatch, capsys):
    monkeypatch.setattr(backends, "_NOTICED", set())
    why = "the C++ CPU kernels are not available: no C++ compiler found (c++, g++, clang++ or $CXX)"
    monkeypatch.setattr(backends, "cpp_status", lambda: (False, why))
    for _ in range(3):  # per frame, per op: one line
        assert backends.select("splat", "auto", "cpu")[0] == "torch"
        assert backends.select("fill", "auto", "cpu")[0] == "torch"
    err = capsys.readouterr().err
    assert err.count("photo3d: ") == 1 and "not using cpp on cpu" in err and "no C++ compiler" in err
    with pytest.raises(Photo3DError, match="kernels cpp is not available: .*no C\\+\\+ compiler"):
        backends.select("splat", "cpp", "cpu")
    assert backends.status("cpp") == (False, why)  # what photo3d doctor shows


def test_cpp_is_a_cpu_backend(fake_gpu, capsys):
    """auto never picks the C++ CPU kernels for CUDA tensors (nor says anything about them),
    and naming them for a CUDA device is refused before anything is built."""
    _capability(fake_gpu, 90)
    fake_gpu.setattr(backends, "cuda_status", lambda: (False, "not built"))
    fake_gpu.setattr(backends, "_triton_present", lambda: (False, "Triton is not installed"))
    fake_gpu.setattr(backends, "cpp_status", lambda: (_ for _ in ()).throw(AssertionError("must not be asked")))
    assert backends.select("splat", "auto", "cuda")[0] == "torch"
    assert capsys.readouterr().err == ""
    with pytest.raises(Photo3DError, match="kernels cpp runs on the CPU, not cuda"):
        backends.select("splat", "cpp", "cuda")
    assert backends.select("nv12", "cpp", "cuda")[0] == "torch"  # no cpp twin: the next one, as auto


def test_doctor_shows_the_probe_per_gpu(fake_gpu):
    from photo3d_fast.engines.doctor import _kernels

    fake_gpu.setattr(torch.cuda, "device_count", lambda: 2)
    fake_gpu.setattr(backends, "_launch_triton_probe",
                     lambda index: None if index == 0 else (_ for _ in ()).throw(OSError("no ptxas for sm_120")))
    fake_gpu.setattr(backends, "cpp_status", lambda: (True, "C++ CPU kernels (libphoto3d_cpu.so, up to 2 threads)"))
    rows = {c.name: (c.ok, c.detail) for c in _kernels()}
    assert rows["triton"][0] and "probe kernel compiled and ran" in rows["triton"][1]
    assert rows["triton (cuda:1)"] == (False, "Triton cannot compile/launch here: OSError: no ptxas for sm_120")
    assert "cuda (cuda:1)" in rows and rows["torch"][0]
    assert rows["cpp"][0] and "threads" in rows["cpp"][1] and "cpp (cuda:1)" not in rows  # a CPU backend: once
