"""The suite's outputs: the table printed last, the JSON file, and the comparison of two.

JSON schema (``SCHEMA``): {"schema", "env" (timing.environment), "mode", "copy_gbps",
"rows" [{stage, impl, size, median_ms, p90_ms, reps, throughput, unit, gbps, of_copy,
note}], "clips" [{clip, size, fps, seconds, frames, measured_frames, extrapolated,
first_frame_s, per_frame_ms, clip_s, clips_per_hour, note}], "skipped" [str], "quality"
(quality.quality_suite without per-frame records, or null), "peer" (or null)}. Numbers
that are not finite are written as null.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..errors import Photo3DError
from .quality import finite, print_depth_table, print_table

SCHEMA = "photo3d-bench/1"
ROW_KEYS = ("stage", "impl", "size", "median_ms", "p90_ms", "reps", "throughput", "unit", "gbps", "of_copy", "note")
CLIP_KEYS = ("clip", "size", "fps", "seconds", "frames", "measured_frames", "extrapolated", "per_frame_ms",
             "clip_s", "clips_per_hour", "note")


def _num(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, fmt)


def _tp(x: float) -> str:
    """Throughput with three significant digits at least (0.31 MP/s, 8.62 fps, 112.4 fps)."""
    return f"{x:.1f}" if x >= 100 else f"{x:.3g}"


def env_line(env: dict) -> str:
    parts = [env["device"]]
    if env.get("driver"):
        parts.append(f"driver {env['driver']}")
    if env.get("cuda"):
        parts.append(f"CUDA {env['cuda']}")
    parts += [f"torch {env['torch']}", f"ffmpeg {env.get('ffmpeg')}", f"commit {env['commit']}", env["date"]]
    if "load_1min" in env:
        parts.append(f"load {env['load_1min']}")
    return "; ".join(parts)


def format_table(result: dict) -> str:
    """The suite as text: stage table, clip cost table, notes, quality tables."""
    lines = [f"photo3d bench ({result['mode']}): {env_line(result['env'])}",
             f"copy bandwidth {result['copy_gbps']:.1f} GB/s (read + write)", ""]
    head = f"{'stage':<11}{'impl':<16}{'size':>10}{'median ms':>11}{'p90 ms':>10}{'reps':>6}{'throughput':>14}{'GB/s':>8}{'of copy':>9}  note"
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['stage']:<11}{r['impl']:<16}{r['size']:>10}{r['median_ms']:>11.2f}{r['p90_ms']:>10.2f}"
                     f"{r['reps']:>6}{_tp(r['throughput']):>9} {r['unit']:<4}{_num(r['gbps'], '.2f'):>8}"
                     f"{_num(r['of_copy'], '.1%'):>9}  {r['note']}")
    if result["clips"]:
        lines.append("")
        head = f"{'clip':<16}{'size':>10}{'frames':>8}{'measured':>10}{'ms/frame':>10}{'s/clip':>9}{'clips/h':>9}  note"
        lines += [head, "-" * len(head)]
        for c in result["clips"]:
            lines.append(f"{c['clip']:<16}{c['size']:>10}{c['frames']:>8}{c['measured_frames']:>10}"
                         f"{c['per_frame_ms']:>10.1f}{c['clip_s']:>9.1f}{c['clips_per_hour']:>9.1f}  {c['note']}")
    for s in result.get("skipped", []):
        lines.append(f"not measured: {s}")
    return "\n".join(lines)


def print_report(result: dict, file=None) -> None:
    q = result.get("quality")
    if q:
        print(f"\nnovel-view quality vs ray-cast truth, {q['size'][0]}x{q['size'][1]}, "
              f"{q['frames_per_path']} frames/path, kinds {' '.join(q['kinds'])}, presets {' '.join(q['presets'])}",
              file=file)
        print_table(q["by_preset"], ("preset",), file=file)
        print_table(q["by_layers"], (), file=file)
        print(file=file)
        print_depth_table(q["depth"], q["depth_notes"], file=file)
    if result.get("peer"):
        print(file=file)
        print(format_peer(result["peer"]), file=file)
    print(file=file)
    print(format_table(result), file=file)


def format_peer(peer: dict) -> str:
    if "error" in peer:
        return f"peer {peer['name']}: not run ({peer['error']})"
    return (f"peer {peer['name']} {peer.get('version', '')}: same photo, depth map and clip "
            f"({peer['size']}, {peer['frames']} frames, x264 {peer['x264']}): {peer['name']} {peer['peer_s']:.1f} s, "
            f"photo3d {peer['ours_s']:.1f} s; {peer['name']} / photo3d = {peer['ratio']:.2f}")


def write_json(result: dict, path: Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = dict(result)
    if payload.get("quality"):
        payload["quality"] = {k: v for k, v in payload["quality"].items() if k != "records"}
    path.write_text(json.dumps(finite(payload), indent=1))


def load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise Photo3DError(f"cannot read benchmark results {str(path)!r}: {e}") from None
    if data.get("schema") != SCHEMA:
        raise Photo3DError(f"{str(path)!r} is not a photo3d bench JSON file (schema {data.get('schema')!r}, "
                           f"expected {SCHEMA!r}); write one with photo3d bench --json FILE")
    return data


def compare(a: dict, b: dict) -> list[dict]:
    """Rows present in both results, matched by (stage, impl, size), and clips matched by
    clip name: time ratio b/a (below 1: b is faster) and throughput ratio b/a."""
    out = []
    rows_b = {(r["stage"], r["impl"], r["size"]): r for r in b["rows"]}
    for ra in a["rows"]:
        rb = rows_b.get((ra["stage"], ra["impl"], ra["size"]))
        if rb and ra["median_ms"] and rb["median_ms"]:
            out.append({"stage": ra["stage"], "impl": ra["impl"], "size": ra["size"], "a_ms": ra["median_ms"],
                        "b_ms": rb["median_ms"], "time_ratio": rb["median_ms"] / ra["median_ms"],
                        "throughput_ratio": ra["median_ms"] / rb["median_ms"]})
    clips_b = {c["clip"]: c for c in b.get("clips", [])}
    for ca in a.get("clips", []):
        cb = clips_b.get(ca["clip"])
        if cb and ca["clip_s"] and cb["clip_s"]:
            out.append({"stage": "clip", "impl": ca["clip"], "size": ca["size"], "a_ms": ca["clip_s"] * 1e3,
                        "b_ms": cb["clip_s"] * 1e3, "time_ratio": cb["clip_s"] / ca["clip_s"],
                        "throughput_ratio": ca["clip_s"] / cb["clip_s"]})
    return out


def format_compare(a: dict, b: dict, names: tuple[str, str] = ("a", "b")) -> str:
    rows = compare(a, b)
    lines = [f"a = {names[0]}: {env_line(a['env'])}", f"b = {names[1]}: {env_line(b['env'])}", ""]
    head = f"{'stage':<11}{'impl':<16}{'size':>10}{'a ms':>12}{'b ms':>12}{'b/a time':>10}{'b/a speed':>11}"
    lines += [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['stage']:<11}{r['impl']:<16}{r['size']:>10}{r['a_ms']:>12.2f}{r['b_ms']:>12.2f}"
                     f"{r['time_ratio']:>10.3f}{r['throughput_ratio']:>10.2f}x")
    if not rows:
        lines.append("(no rows in common: different sizes, implementations or modes)")
    return "\n".join(lines)
