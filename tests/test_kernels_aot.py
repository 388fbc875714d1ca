"""Every Triton kernel compiles for sm_80, sm_89 and sm_90 without a GPU (kernels/aot.py).

The interpreter tests check the kernels' math; this checks what the interpreter cannot:
that Triton's compiler accepts each kernel with its launcher's argument types and lowers
it to a cubin for each architecture setup.py targets, that no kernel spills registers to
local memory, and that the splat's z-buffer and accumulator updates are the relaxed,
result-free reductions (`red`) the design relies on: a 64-bit integer min and f32 adds.
It runs in a subprocess because conftest sets TRITON_INTERPRET=1 for this process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="Triton is not installed")

SCRIPT = r"""
import json, re
from photo3d_fast.kernels import aot
out = {}
for name in aot.kernel_names():
    for arch in aot.ARCHS:
        c = aot.compile_kernel(name, arch)
        out[f"{name}@{arch}"] = {"regs": c.registers, "local": c.local_bytes, "stack": c.stack_bytes,
                                 "cubin": c.cubin_bytes,
                                 "atomics": sorted(set(re.findall(r"\b(?:atom|red)\.[\w.]+", c.ptx)))}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def compiled() -> dict:
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_DEFAULT_FP_FUSION": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=600)
    if r.returncode != 0 and "cuobjdump" in r.stderr and "No such file" in r.stderr:
        pytest.skip("this Triton build ships no cuobjdump")
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_kernel_compiles_for_every_arch(compiled):
    from photo3d_fast.kernels.aot import ARCHS, kernel_names

    assert set(compiled) == {f"{k}@{a}" for k in kernel_names() for a in ARCHS}
    for key, c in compiled.items():
        assert c["cubin"] > 0, key
        assert 0 < c["regs"] <= 255, key


def test_no_kernel_spills(compiled):
    spilled = {k: c for k, c in compiled.items() if c["local"] or c["stack"]}
    assert not spilled, f"kernels using local memory (register spills): {spilled}"


def test_splat_updates_are_relaxed_reductions(compiled):
    for arch in (80, 89, 90):
        assert compiled[f"splat.zbuffer@{arch}"]["atomics"] == ["red.global.gpu.relaxed.min.s64"]
        assert compiled[f"splat.resolve@{arch}"]["atomics"] == ["red.global.gpu.relaxed.add.f32"]


def test_aot_refuses_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-m", "photo3d_fast.kernels.aot", "--arch", "90"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2
    assert "unset TRITON_INTERPRET" in r.stderr and "Traceback" not in r.stderr
