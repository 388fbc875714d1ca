"""The C++ CPU backend (``csrc/cpu/`` through ``photo3d_fast/ops/cpu.py``) beyond the op tests
(tests/test_op_splat.py and tests/test_op_fill.py compare it with the references over
helpers.BACKEND_DEVICES): its build (setup.py and the first-use build into the cache agree
on flags and sources; no compiler means the reference, with the reason), its epilogue
against ``ops.splat.finish_frames``, the reference's epilogue as the fallback, and results
that do not depend on the number of threads or on concurrent callers.
"""

from __future__ import annotations

import ast
import stat
import threading
from pathlib import Path

import pytest
import torch

from photo3d_fast.ops import backends
from photo3d_fast.ops import splat as ref
from photo3d_fast.render import Renderer
from photo3d_fast.scene.camera import intrinsics_from_fov
from photo3d_fast.scene.ldi import build_ldi

from helpers import (
    BATCH_VIEWS,
    BATCH_ZOOMS,
    backend_devices,
    batch_cameras,
    camera_path,
    implementation,
    scene,
    scene_grid,
)

ROOT = Path(__file__).resolve().parents[1]
CPP = backend_devices("cpp")


def _setup_definitions() -> dict:
    """CPU_FLAGS and cpu_source_hash as setup.py defines them (setup.py runs setup() on import)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    wanted = [node for node in tree.body
              if isinstance(node, ast.FunctionDef) and node.name == "cpu_source_hash"
              or isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CPU_FLAGS" for t in node.targets)]
    namespace: dict = {}
    exec(compile("import hashlib\nfrom pathlib import Path\n", "setup.py", "exec"), namespace)  # noqa: S102
    exec(compile(ast.Module(body=wanted, type_ignores=[]), "setup.py", "exec"), namespace)  # noqa: S102 - our setup.py
    return namespace


def test_setup_builds_what_ops_cpu_loads():
    """setup.py's flags and source digest are ops/cpu.py's: a library built at install is used
    exactly when it was built from the sources next to it, with the same flags."""
    from photo3d_fast.ops import cpu

    defs = _setup_definitions()
    assert tuple(defs["CPU_FLAGS"]) == cpu.CXX_FLAGS
    assert "-ffp-contract=off" in cpu.CXX_FLAGS  # rounding as torch's elementwise ops
    assert defs["cpu_source_hash"](cpu.SOURCE_DIR) == cpu.source_hash(cpu.SOURCE_DIR) is not None
    assert defs["cpu_source_hash"](ROOT / "tests") is None


@pytest.fixture
def built_library() -> Path:
    """The path of the library this session loads (built if need be), before any fixture
    below hides it."""
    from photo3d_fast.ops import cpu

    lib, why = cpu._library()
    if lib is None:
        pytest.skip(f"needs a C++ compiler to build the library: {why}")
    return Path(lib._name)


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """ops.cpu with no library decided yet, a fresh cache and no installed build; the real
    library is decided again afterwards."""
    from photo3d_fast.ops import cpu

    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(cpu, "_installed", lambda: None)
    cpu._library.cache_clear()
    yield cpu
    cpu._library.cache_clear()


def test_no_compiler_means_the_reference_with_the_reason(fresh_library, monkeypatch, capsys):
    cpu = fresh_library
    monkeypatch.setattr(cpu, "compiler", lambda: None)
    monkeypatch.setattr(backends, "_NOTICED", set())
    ok, why = backends.status("cpp")
    assert not ok and "no C++ compiler found" in why
    assert backends.select("splat", "auto", "cpu")[0] == "torch"
    err = capsys.readouterr().err
    assert err.count("photo3d: ") == 1 and "not using cpp on cpu" in err and "no C++ compiler" in err


def test_first_use_build_goes_to_the_cache_once(built_library, fresh_library, monkeypatch, tmp_path, capsys):
    """Built once into <cache>/cpu/<key>/ (here by a stand-in compiler that copies a built
    library: the real compile is what every first use on a clean machine runs), announced in
    one line, then reused; a compiler that fails is reported with its first line."""
    cpu, built = fresh_library, built_library
    capsys.readouterr()
    fake = tmp_path / "fake-c++"
    log = tmp_path / "calls"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                    f'case "$1" in --version) echo "fake 1.0"; exit 0;; esac\n'
                    f'while [ "$1" != "-o" ]; do shift; done\ncp {built} "$2"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("CXX", str(fake))
    ok, why = cpu.library_status()
    assert ok, why
    assert str(tmp_path / "cache" / "cpu") in why
    assert capsys.readouterr().err.count("building the C++ CPU kernels") == 1
    calls = [line for line in log.read_text().splitlines() if "-o" in line]
    assert len(calls) == 1 and "-ffp-contract=off" in calls[0] and "-DP3D_SOURCE_HASH" in calls[0]
    cpu._library.cache_clear()  # another process: the cached library, no build
    assert cpu.library_status()[0]
    assert capsys.readouterr().err == ""
    assert len([line for line in log.read_text().splitlines() if "-o" in line]) == 1
    # a compiler that fails: the reason, and the reference
    monkeypatch.setenv("PHOTO3D_CACHE", str(tmp_path / "other"))
    fake.write_text('#!/bin/sh\ncase "$1" in --version) echo "fake 1.0"; exit 0;; esac\n'
                    'echo "fatal error: thread: No such file or directory" >&2\nexit 1\n')
    cpu._library.cache_clear()
    ok, why = cpu.library_status()
    assert not ok and "failed to build csrc/cpu" in why and "thread: No such file" in why


@pytest.mark.parametrize("backend, device", CPP)
def test_epilogue_matches_the_reference(backend, device):
    """The C++ epilogue (normalise, anti-alias silhouettes, fill, clamp) against
    ops.splat.finish_frames: the once-per-process probe passes (else this module renders
    with the reference's epilogue: csrc/cpu/finish.cpp needs the reference's change), and
    random frames with silhouettes, holes and orphans agree to 1e-5."""
    cpu = implementation("splat", backend, device)
    same, why = cpu.native_epilogue()
    assert same, why
    g = torch.Generator().manual_seed(5)
    for (w, h), edge in (((1, 1), 0.1), ((9, 4), 0.05), ((40, 30), 0.2), ((64, 48), 0.0)):
        n = 3
        weight = torch.rand(n, h, w, generator=g) * 1.5 * (torch.rand(n, h, w, generator=g) > 0.2)
        weight[1, : h // 2, : w // 2] = 0.0  # orphans where rows and columns are empty
        weight[1, :, : w // 2] = 0.0
        weight[1, : h // 2] = 0.0
        weight[2] = 0.0  # nothing covered
        acc = torch.cat([torch.rand(n, h, w, 3, generator=g) * weight[..., None], weight[..., None]], -1)
        z = torch.where(torch.rand(n, h, w, generator=g) > 0.5, 6.0, 1.2) * (1 + torch.rand(n, h, w, generator=g))
        keys = (z.view(torch.int32).to(torch.int64) << 32) | torch.arange(h * w).reshape(h, w)
        zbuf = torch.where(weight > 0, keys, torch.iinfo(torch.int64).max).reshape(n, h * w)
        acc = acc.reshape(n, h * w, 4)
        expected, expected_cov = ref.finish_frames(acc, zbuf, (w, h), edge)
        got, got_cov = cpu.finish(acc, zbuf, (w, h), edge)
        assert torch.equal(got_cov, expected_cov)
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend, device", CPP)
def test_reference_epilogue_fallback(backend, device, monkeypatch):
    """Where the probe finds the epilogues differ, frames are finished by the reference's
    epilogue (with the C++ fill): the reference's frames."""
    cpu = implementation("splat", backend, device)
    monkeypatch.setattr(cpu, "native_epilogue", lambda: (False, "changed"))
    size = (40, 30)
    grid, K = scene_grid(size, "mixed", 3)
    c2ws, Ks = batch_cameras(size, K, "cpu", BATCH_VIEWS[1:3], BATCH_ZOOMS[1:3])
    color, covered = cpu.render_frames(grid, c2ws, Ks, size)
    expected, expected_cov = ref.render_frames(grid, c2ws, Ks, size)
    assert torch.equal(covered, expected_cov)
    torch.testing.assert_close(color, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("backend, device", CPP)
def test_results_do_not_depend_on_threads_or_callers(backend, device):
    """No atomics: every thread count gives the same bits, and renders from several Python
    threads at once (each with its own workspace) equal the same renders one at a time."""
    cpu = implementation("splat", backend, device)
    size = (96, 54)
    grid, K = scene_grid(size, "mixed", 8, layers=2, band=6)
    c2ws, Ks = batch_cameras(size, K)
    threads = torch.get_num_threads()
    try:
        outs = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            outs.append((cpu.accumulate_frames(grid, c2ws, Ks, size), cpu.render_frames(grid, c2ws, Ks, size)))
    finally:
        torch.set_num_threads(threads)
    for (acc, zbuf), (color, covered) in outs[1:]:
        assert torch.equal(acc, outs[0][0][0]) and torch.equal(zbuf, outs[0][0][1])
        assert torch.equal(covered, outs[0][1][1]) and torch.equal(color[covered], outs[0][1][0][covered])
        # holes: the C++ fill is exact too, but torch's push-pull (orphans) sums in an order
        # that depends on torch's thread count
        torch.testing.assert_close(color, outs[0][1][0], rtol=0, atol=1e-6)
    results: dict[int, torch.Tensor] = {}

    def render(i: int) -> None:
        results[i] = cpu.render_frame(grid, c2ws[i], Ks[i], size)[0]

    workers = [threading.Thread(target=render, args=(i,)) for i in range(len(c2ws))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    for i in range(len(c2ws)):
        covered = outs[0][1][1][i]
        assert torch.equal(results[i][covered], outs[0][1][0][i][covered])
        torch.testing.assert_close(results[i], outs[0][1][0][i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend, device", CPP)
def test_rejects_what_it_cannot_render(backend, device):
    cpu = implementation("splat", backend, device)
    grid, K = scene_grid((9, 7), "mixed", 4)
    c2ws, Ks = batch_cameras((9, 7), K)
    with pytest.raises(ValueError, match="c2ws must be"):
        cpu.render_frames(grid, c2ws[0], Ks, (9, 7))
    with pytest.raises(ValueError, match="size must be positive"):
        cpu.render_frames(grid, c2ws, Ks, (0, 7))
    shuffled = ref.SurfaceGrid(grid.points, grid.link_x, grid.link_y, grid.step_x, grid.step_y, grid.texels.flip(0),
                               grid.colors, grid.edge_disparity, grid.focal)
    with pytest.raises(ValueError, match="ascending"):
        cpu.render_frames(shuffled, c2ws, Ks, (9, 7))


@pytest.mark.parametrize("backend, device", CPP)
def test_renderer_picks_it_on_the_cpu(backend, device):
    """``--kernels auto`` on a CPU LDI renders with the C++ kernels, frames as the reference's
    to one uint8 step (the epilogue's 1e-5 can round a value the other way)."""
    w, h = 48, 32
    image, depth = scene((w, h), "mixed", 2)
    K = intrinsics_from_fov(w, h, 55)
    ldi = build_ldi(image, depth, K, layers=2, band=4, device="cpu", kernels="torch")
    fast, slow = Renderer(ldi, "auto"), Renderer(ldi, "torch")
    assert fast.kernels == "cpp" and slow.kernels == "torch"
    path = camera_path(4)
    for a, b in zip(fast.render_path(path, K, (w, h)), slow.render_path(path, K, (w, h))):
        assert a.dtype == torch.uint8 and a.shape == (h, w, 3)
        assert int((a.int() - b.int()).abs().max()) <= 1


@pytest.mark.parametrize("backend, device", CPP)
def test_uint8_frames_are_the_renderers_quantisation(backend, device):
    """render_frames_u8 (for Renderer.render_path) is the float frames quantised as the
    Renderer does, (color * 255 + 0.5) truncated, bit for bit, also when a buffer is reused."""
    cpu = implementation("splat", backend, device)
    size = (37, 23)
    grid, K = scene_grid(size, "mixed", 6)
    c2ws, Ks = batch_cameras(size, K)
    color, _ = cpu.render_frames(grid, c2ws, Ks, size)
    expected = (color * 255.0 + 0.5).to(torch.uint8)
    for n in (len(c2ws), 1, len(c2ws)):
        got = cpu.render_frames_u8(grid, c2ws[:n], Ks[:n], size)
        assert got.dtype == torch.uint8 and got.shape == (n, size[1], size[0], 3)
        assert torch.equal(got, expected[:n])
