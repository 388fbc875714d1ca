"""``photo3d bench``: the suite in one command, and the command lines of bench/*.py.

    photo3d bench [--quick] [--json out.json] [--sizes 540p,1080p] [--device auto]
    photo3d bench --compare a.json b.json

Stages are measured on generated inputs (see ``stages``), the clip cost end to end in
process, quality against ray-cast truth (see ``quality``). On a CPU the clips are measured
over fewer frames and extrapolated per frame, and the table says so.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

from ..device import resolve_device
from ..errors import Photo3DError, notice
from ..scene.paths import PRESETS
from ..synthetic import KINDS
from . import report, stages
from .peer import depthflow_side_by_side
from .quality import quality_suite
from .timing import copy_bandwidth, environment

#: The clips whose cost is reported: label, size, seconds, fps. --quick costs a 180p clip
#: instead (labelled so), which is fast enough for a smoke test on 2 CPU cores.
CLIPS = (("540p30 5 s", (960, 540), 5.0, 30.0), ("1080p30 5 s", (1920, 1080), 5.0, 30.0))
QUICK_CLIPS = (("180p30 5 s", (320, 180), 5.0, 30.0),)


def suite_plan(quick: bool, device: torch.device) -> dict:
    """Sizes, repetitions and scope of a run (quick: a smoke test, under a minute on 2 CPU cores)."""
    gpu = device.type == "cuda"
    if quick:
        return {"sizes": ["320x180"], "reps": {"decode": 3, "depth": 2, "ldi": 2, "render": 20 if gpu else 3},
                "encode_frames": 10, "encode_runs": 1, "clip_frames": 3, "clips": QUICK_CLIPS,
                "quality": {"size": (160, 120), "kinds": ["mixed"], "presets": ["swing", "dolly"], "n_frames": 2}}
    return {"sizes": ["540p", "1080p", "4k"] if gpu else ["540p", "1080p"],
            "reps": {"decode": 20 if gpu else 10, "depth": 10 if gpu else 5, "ldi": 5 if gpu else 3,
                     "render": 100 if gpu else 10},
            "encode_frames": 60 if gpu else 30, "encode_runs": 3, "clip_frames": None if gpu else 30, "clips": CLIPS,
            "quality": {"size": (320, 240), "kinds": None, "presets": None, "n_frames": 4}}


def run_suite(quick: bool = False, device: str = "auto", sizes: list[str] | None = None,
              render_reps: int | None = None, clip_frames: int | None = -1, quality: bool = True,
              clips: bool = True, quiet: bool = False) -> dict:
    """Run the suite; returns the result dict (see report.SCHEMA). clip_frames: frames
    measured per clip (None: all; -1: the plan's default)."""

    dev = resolve_device(device)
    plan = suite_plan(quick, dev)
    named = [stages.parse_size(s) for s in (sizes or plan["sizes"])]
    reps = dict(plan["reps"])
    if render_reps:
        reps["render"] = render_reps
    if clip_frames == -1:
        clip_frames = plan["clip_frames"]

    def say(msg: str) -> None:
        notice(f"bench: {msg}", quiet)

    t_start = time.perf_counter()
    env = environment(dev)
    copy = copy_bandwidth(dev)
    rows, clip_records = [], []
    impls, skipped = stages.render_impls(dev)
    # x264 on every machine (comparable rows); on a GPU also what "auto" picks there (NVENC)
    encoders = [stages.encode_config("x264")] + ([stages.encode_config("auto")] if dev.type == "cuda" else [])
    with tempfile.TemporaryDirectory() as tmp:
        for name, size in named:
            say(f"{name}: decode, depth, LDI, render, encode")
            rows.append(stages.bench_decode(size, reps["decode"], Path(tmp)))
            for method in stages.depth_methods():
                r = stages.bench_depth(method, size, reps["depth"], dev)
                (rows.append(r) if isinstance(r, dict) else skipped.append(r))
            rows.append(stages.bench_ldi(size, 2, reps["ldi"], dev))
            frames = []
            for impl in impls:
                r, got = stages.bench_render(impl, size, dev, reps["render"], copy, keep_frames=8)
                rows.append(r)
                frames = frames or got
            for config in encoders:
                try:
                    rows.append(stages.bench_encode(frames, plan["encode_frames"], plan["encode_runs"], config=config))
                except Photo3DError as e:
                    skipped.append(f"encode {stages.encoder_label(config)} at {name}: {e}")
        if clips:
            for label, size, seconds, fps in plan["clips"]:
                say(f"clip {label}")
                r, c = stages.bench_clip(size, seconds, fps, clip_frames, dev, Path(tmp), label)
                rows.append(r)
                clip_records.append(c)
    q = None
    if quality:
        say("quality vs ray-cast truth, depth accuracy")
        qp = plan["quality"]
        q = quality_suite(qp["size"], qp["kinds"] or list(KINDS), [0], qp["presets"] or list(PRESETS),
                          qp["n_frames"])
    return {"schema": report.SCHEMA, "env": env, "mode": "quick" if quick else "full", "copy_gbps": copy,
            "rows": rows, "clips": clip_records, "skipped": skipped, "quality": q, "peer": None,
            "elapsed_s": time.perf_counter() - t_start}


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``photo3d bench`` on the CLI's subparsers; its handler is ``bench_command``."""
    p = subparsers.add_parser(
        "bench",
        help="measure speed, quality and cost per clip on this machine",
        description="Measure every stage (decode, depth per backend, LDI, render per implementation,\n"
                    "encode, end to end), the cost of 5 s 540p30 and 1080p30 clips, novel-view quality\n"
                    "against exact ray-cast truth and depth accuracy; print one table, optionally write JSON.",
        epilog="examples:\n  photo3d bench --quick\n  photo3d bench --json bench-$(hostname).json\n"
               "  photo3d bench --compare cpu.json h100.json",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="small sizes, few repetitions, a 180p clip instead of the 540p and 1080p ones "
                                                        "(a smoke test, < 1 min on 2 CPU cores)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    p.add_argument("--compare", type=Path, nargs=2, metavar=("A.json", "B.json"),
                   help="print per-row ratios of two result files instead of measuring")
    p.add_argument("--sizes", help="comma list of stage sizes, names (" + ",".join(stages.SIZES) + ") or WxH "
                                   "(default 540p,1080p on CPU; 540p,1080p,4k on GPU; 320x180 with --quick)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--reps", type=int, help="render repetitions per size (default 10 on CPU, 100 on GPU)")
    p.add_argument("--clip-frames", type=int, default=-1, metavar="N",
                   help="frames measured per clip, extrapolated per frame to the whole clip; 0 = all "
                        "(default all on GPU, 30 on CPU, 3 with --quick)")
    p.add_argument("--no-quality", action="store_true", help="skip the quality and depth-accuracy benchmark")
    p.add_argument("--no-clips", action="store_true", help="skip the end-to-end clips")
    p.add_argument("--peer-depthflow", metavar="EXE",
                   help="also time the DepthFlow CLI at EXE (e.g. a venv's bin/depthflow) on the same photo, "
                        "depth map and 540p30 clip, and report the ratio")
    p.set_defaults(handler=bench_command)
    return p


def bench_command(args: argparse.Namespace) -> None:
    if args.compare:
        a, b = (report.load(p) for p in args.compare)
        print(report.format_compare(a, b, tuple(str(p) for p in args.compare)))
        return
    if args.reps is not None and args.reps < 1:
        raise Photo3DError(f"--reps {args.reps} must be at least 1")
    result = run_suite(quick=args.quick, device=args.device, sizes=args.sizes.split(",") if args.sizes else None,
                       render_reps=args.reps, clip_frames=None if args.clip_frames == 0 else args.clip_frames,
                       quality=not args.no_quality, clips=not args.no_clips)
    if args.peer_depthflow:

        result["peer"] = depthflow_side_by_side(args.peer_depthflow, resolve_device(args.device))
    report.print_report(result)
    if args.json:
        report.write_json(result, args.json)
        print(f"wrote {args.json}")


def main(argv: list[str] | None = None) -> int:
    """``python bench/run.py``: the same as ``photo3d bench``."""
    parser = argparse.ArgumentParser(prog="bench/run.py")
    add_bench_parser(parser.add_subparsers(dest="command")).prog = "bench/run.py"
    args = parser.parse_args(["bench", *(sys.argv[1:] if argv is None else argv)])
    try:
        args.handler(args)
    except Photo3DError as e:
        notice(f"error: {e}")
        return 2
    return 0


def _int_list(text: str, option: str) -> list[int]:
    """[1, 8] from "1,8"; Photo3DError naming ``option`` for anything but positive integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise Photo3DError(f"{option} {text!r}: give positive integers separated by commas, e.g. 1,8")
    return values


def render_main(argv: list[str] | None = None) -> int:
    """``python bench/render.py``: per-frame renderer timing and its distance from the memory floor."""
    ap = argparse.ArgumentParser(prog="bench/render.py", description="Per-frame renderer benchmark: ms per frame, "
                                 "fps, and distance from the memory floor (see photo3d_fast/benchmark/stages.py).")
    ap.add_argument("--sizes", default=None, help="comma list of " + ",".join(stages.SIZES)
                    + " or WxH (default: 540p,720p on CPU; 720p,1080p,4k on GPU)")
    ap.add_argument("--kernels", default="torch", help="comma list of implementations (torch, triton, cuda)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--frames-per-launch", default=None, metavar="N[,N...]",
                    help="batch sizes to time: comma list (default 1 on CPU, 1,8 on GPU); a batch of N "
                         "renders N frames per launch and its row gives the time per frame")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
        sizes = args.sizes or ("720p,1080p,4k" if device.type == "cuda" else "540p,720p")
        batches = _int_list(args.frames_per_launch or ("1,8" if device.type == "cuda" else "1"), "--frames-per-launch")
        env = environment(device)
        copy = copy_bandwidth(device)
        rows = [stages.bench_render(k, stages.parse_size(s)[1], device, args.reps, copy, frames_per_launch=b)[0]
                for k in args.kernels.split(",") for s in sizes.split(",") for b in batches]
    except Photo3DError as e:
        notice(f"error: {e}")
        return 2
    print(f"device: {env['device']}; torch {env['torch']}; commit {env['commit']}; copy bandwidth {copy:.1f} GB/s")
    print(f"{'impl':<11}{'size':>11}{'texels':>11}{'median ms':>11}{'p90 ms':>9}{'fps':>9}{'GB/s':>8}{'of copy':>9}")
    for r in rows:
        print(f"{r['impl']:<11}{r['size']:>11}{r['texels']:>11}{r['median_ms']:>11.2f}{r['p90_ms']:>9.2f}"
              f"{r['throughput']:>9.1f}{r['gbps']:>8.2f}{r['of_copy']:>9.1%}")
    if args.json:
        import json

        args.json.write_text(json.dumps({"env": env, "device": env["device"], "torch": env["torch"],
                                         "commit": env["commit"], "copy_gbps": copy, "rows": rows}, indent=2))
    return 0
