"""Ahead-of-time compilation of every Triton kernel here for a CUDA architecture, no GPU needed.

Triton lowers a kernel through TTIR, TTGIR, LLVM IR and PTX to a cubin (with the ptxas
it bundles) for whatever target it is given; only a launch needs a GPU. ``compile_kernel``
does that for one kernel of this package with the argument types its launcher passes, and
``cuobjdump`` reports what the compiled kernel uses: registers per thread, local memory
(spills), shared memory. So a kernel that would not compile for sm_80/89/90, or that spills registers to
local memory, is caught on a machine without a GPU (tests/test_kernels_aot.py), and
``python -m photo3d_fast.kernels.aot`` prints the table kept in bench/RESULTS.md.

It needs compiled Triton functions, so TRITON_INTERPRET must not be 1 when the kernel
modules are imported (the interpreter replaces every ``@triton.jit``).

What it cannot tell: run time, or anything a launch decides (Triton specialises integer
arguments divisible by 16 at launch; these builds assume no divisibility, the slower case).
"""

from __future__ import annotations

import argparse
import functools
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from photo3d_fast.kernels import dof, fill, grade, grow, nv12, splat

#: sm_80 (A100), sm_89 (L4/L40/RTX 40), sm_90 (H100/H200): the architectures setup.py builds csrc/ for.
ARCHS = (80, 89, 90)

_I32 = "i32"


@functools.cache
def _specs() -> dict[str, tuple[object, dict[str, str], dict[str, object]]]:
    """name -> (JIT function, signature, constexprs), mirroring each launcher's arguments."""

    texel = {"points_ptr": "*fp32", "link_x_ptr": "*u8", "link_y_ptr": "*u8", "cam_ptr": "*fp32",
             "texels_ptr": "*i64"}
    dims = {"n_texels": _I32, "H": _I32, "W": _I32, "OUT_W": _I32, "OUT_H": _I32, "grid_focal": "fp32"}
    nearest = {"covered_ptr": "*u8", "before_ptr": "*i32", "after_ptr": "*i32", "n_lines": _I32, "n": _I32,
               "lines_per_frame": _I32, "frame_stride": _I32, "line_stride": _I32, "elem_stride": _I32,
               "LINES": "constexpr", "BLOCK": "constexpr"}
    # jump flooding state: the seed a pixel holds and the one it offers (row, column, disparity)
    held = {f"{w}{k}_{io}": t for io in ("in", "out") for w in ("h", "o")
            for k, t in (("y", "*i32"), ("x", "*i32"), ("d", "*fp32"))}
    jump = {"seed_disp_ptr": "*fp32", "limit_ptr": "*fp32",
            **{k: held[k] for k in ("hy_in", "hx_in", "hd_in", "oy_in", "ox_in", "od_in",
                                    "hy_out", "hx_out", "hd_out", "oy_out", "ox_out", "od_out")},
            "H": _I32, "W": _I32, "step": _I32, "BLOCK": "constexpr"}
    coeffs = dict(zip(("Y0", "Y1", "Y2", "U0", "U1", "U2", "V0", "V1", "V2", "OY", "OC"),
                      (nv12._Y0, nv12._Y1, nv12._Y2, nv12._U0, nv12._U1, nv12._U2, nv12._V0, nv12._V1,
                       nv12._V2, *nv12.OFFSET)))
    nv = {"rgb": "*u8", "out": "*u8", "H": _I32, "W": _I32, "sy": _I32, "sx": _I32, "sc": _I32, "n_sites": _I32,
          **{k: "constexpr" for k in coeffs}, "IS_FLOAT": "constexpr", "BLOCK": "constexpr"}
    graded = {"color": "*fp32", "depth": "*fp32", "Ks": "*fp32", "ref": "*fp32", "out": "*fp32", "H": _I32, "W": _I32,
              **{k: "fp32" for k in ("fog_density", "fog_start", "fog_r", "fog_g", "fog_b", "falloff", "vignette")}}
    return {
        "splat.zbuffer": (splat._zbuffer_kernel, {**texel, "zbuf_ptr": "*i64", **dims, "BLOCK": "constexpr"},
                          {"BLOCK": splat.BLOCK}),
        "splat.resolve": (splat._resolve_kernel,
                          {**texel, "colors_ptr": "*fp32", "zbuf_ptr": "*i64", "acc_ptr": "*fp32", **dims,
                           "tolerance": "fp32", "BLOCK": "constexpr"}, {"BLOCK": splat.BLOCK}),
        "fill.nearest_rows": (fill._nearest_kernel, nearest,
                              {"LINES": fill.ROW_TILE[0], "BLOCK": fill.ROW_TILE[1]}),
        "fill.nearest_cols": (fill._nearest_kernel, nearest,
                              {"LINES": fill.COL_TILE[0], "BLOCK": fill.COL_TILE[1]}),
        "fill.blend": (fill._blend_kernel,
                       {"values_ptr": "*fp32", "covered_ptr": "*u8", "frame_any_ptr": "*u8", "depth_ptr": "*fp32",
                        "left_ptr": "*i32", "right_ptr": "*i32", "top_ptr": "*i32", "bottom_ptr": "*i32",
                        "out_ptr": "*fp32", "total_ptr": "*fp32", "n_all": _I32, "n_pix": _I32, "W": _I32,
                        "C": _I32, "BLOCK": "constexpr"}, {"BLOCK": fill.BLOCK}),
        "grow.seeds": (grow._seeds_kernel, {"depth_ptr": "*fp32", "seeds_ptr": "*i8", "H": _I32, "W": _I32,
                                            "edge": "fp32", "BLOCK": "constexpr"}, {"BLOCK": grow.BLOCK}),
        "grow.surface": (grow._surface_kernel, {"seed_disp_ptr": "*fp32", "surface_ptr": "*fp32", "H": _I32,
                                                "W": _I32, "edge": "fp32", "R": "constexpr", "BLOCK": "constexpr"},
                         {"R": grow.SURFACE_RADIUS, "BLOCK": grow.BLOCK}),
        "grow.jump": (grow._jump_kernel, jump, {"BLOCK": grow.BLOCK}),
        "grow.reach_start": (grow._reach_start_kernel,
                             {"hy_ptr": "*i32", "hx_ptr": "*i32", "hd_ptr": "*fp32", "limit_ptr": "*fp32",
                              "allowed_ptr": "*i8", "ok_out": "*i8", "up_out": "*i32", "H": _I32, "W": _I32,
                              "band2": _I32, "HAS_ALLOWED": "constexpr", "BLOCK": "constexpr"},
                             {"HAS_ALLOWED": True, "BLOCK": grow.BLOCK}),
        "grow.reach": (grow._reach_kernel, {"ok_in": "*i8", "up_in": "*i32", "ok_out": "*i8", "up_out": "*i32",
                                            "count_ptr": "*i32", "N": _I32, "BLOCK": "constexpr"},
                       {"BLOCK": grow.BLOCK}),
        "grow.layer": (grow._layer_kernel, {"ok_ptr": "*i8", "hy_ptr": "*i32", "hx_ptr": "*i32", "surface_ptr": "*fp32",
                                            "depth_out": "*fp32", "N": _I32, "W": _I32, "BLOCK": "constexpr"},
                       {"BLOCK": grow.BLOCK}),
        "nv12.uint8": (nv12._nv12_kernel, nv, {**coeffs, "IS_FLOAT": False, "BLOCK": 256}),
        "nv12.float": (nv12._nv12_kernel, {**nv, "rgb": "*fp32"}, {**coeffs, "IS_FLOAT": True, "BLOCK": 256}),
        "dof.gather": (dof._dof_kernel, {"color": "*fp32", "depth": "*fp32", "radius": "*fp32", "off_yx": "*i32",
                                         "off_d": "*fp32", "out": "*fp32", "H": _I32, "W": _I32, "n_offs": _I32,
                                         "tol": "fp32", "AREA": "constexpr", "BLOCK": "constexpr"},
                       {"AREA": 3.141592653589793, "BLOCK": dof.BLOCK}),
        "grade.all": (grade._grade_kernel, {**graded, "FALLOFF": "constexpr", "FOG": "constexpr",
                                            "VIGNETTE": "constexpr", "BLOCK": "constexpr"},
                      {"FALLOFF": True, "FOG": True, "VIGNETTE": True, "BLOCK": grade.BLOCK}),
    }


def kernel_names() -> list[str]:
    """Every kernel ``compile_kernel`` knows, e.g. "splat.zbuffer"."""
    return list(_specs())


@dataclass
class Compiled:
    """One kernel compiled for one architecture: its PTX and what ptxas says it uses."""

    name: str
    arch: int
    ptx: str
    cubin_bytes: int
    registers: int
    local_bytes: int
    stack_bytes: int
    shared_bytes: int
    num_warps: int


def _check_compiled_mode() -> None:
    if os.environ.get("TRITON_INTERPRET") == "1":
        raise RuntimeError("kernels.aot compiles real kernels: unset TRITON_INTERPRET (it is 1 here), "
                           "since the interpreter replaces every @triton.jit function")


def _cuobjdump() -> str:
    import triton.knobs

    return triton.knobs.nvidia.cuobjdump.path


def resource_usage(cubin: bytes) -> dict[str, int]:
    """registers (per thread), local_bytes (per thread: spills and local arrays), stack_bytes
    and shared_bytes (per block, static) of a one-kernel cubin, from ``cuobjdump
    --dump-resource-usage`` (the cuobjdump Triton bundles)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k.cubin"
        path.write_bytes(cubin)
        r = subprocess.run([_cuobjdump(), "--dump-resource-usage", str(path)], capture_output=True, text=True)
    m = re.search(r"REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)", r.stdout)
    if r.returncode != 0 or m is None:
        raise RuntimeError(f"cuobjdump could not read the cubin: {(r.stderr or r.stdout).strip()}")
    reg, stack, shared, local = (int(v) for v in m.groups())
    return {"registers": reg, "stack_bytes": stack, "shared_bytes": shared, "local_bytes": local}


def compile_kernel(name: str, arch: int = 90) -> Compiled:
    """Compile kernel ``name`` (one of ``kernel_names()``) for sm_{arch}; raises what Triton raises."""
    _check_compiled_mode()
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn, signature, constexprs = _specs()[name]
    compiled = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=constexprs),
                              target=GPUTarget("cuda", arch, 32))
    cubin = compiled.asm["cubin"]
    return Compiled(name, arch, compiled.asm["ptx"], len(cubin), num_warps=int(compiled.metadata.num_warps),
                    **resource_usage(cubin))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m photo3d_fast.kernels.aot",
                                 description="Compile every Triton kernel of photo3d_fast for CUDA architectures "
                                             "without a GPU and print ptxas's resource usage.")
    ap.add_argument("--arch", default=",".join(map(str, ARCHS)), help="comma list of SM versions (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        archs = [int(a) for a in args.arch.split(",")]
        import triton

        print(f"Triton {triton.__version__}; registers per thread, local (spill) and stack bytes per thread, "
              f"static shared bytes per block")
        print(f"{'kernel':<19}{'sm':>4}{'regs':>6}{'local':>7}{'stack':>7}{'smem':>7}{'warps':>7}{'cubin':>8}")
        for name in kernel_names():
            for arch in archs:
                c = compile_kernel(name, arch)
                print(f"{name:<19}{arch:>4}{c.registers:>6}{c.local_bytes:>7}{c.stack_bytes:>7}"
                      f"{c.shared_bytes:>7}{c.num_warps:>7}{c.cubin_bytes:>8}")
    except (RuntimeError, ValueError) as e:
        print(f"photo3d: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
