"""Batch planning: inputs -> jobs, output names, resume, the report and the CLI.

``photo3d batch INPUT -o OUTDIR`` takes a folder of photos (recursive) or a manifest (CSV
or JSONL, one clip per row) and makes every clip into OUTDIR. This module decides *what*
to make; ``batch_run`` decides *where* (in this process, worker processes, Ray actors).

- A job is one clip: a photo, its options as ``ClipOptions.from_kwargs`` keywords, and an
  output path. Jobs that share a photo and its depth/scene options form a group, whose
  depth (``prepare_photo``) is computed once and reused by all its clips.
- Names: a clip without an explicit ``output`` is named ``<photo stem>.<hash>.mp4``, the
  hash (8 hex digits) covering the photo's relative path and the options that differ
  from the defaults, so the same options always give the same name and a rerun can skip
  what exists. An explicit ``output`` gets a hidden sidecar recording that hash instead.
- Clips are written under a temporary name and renamed when complete (the writers do
  this), so an existing output is a finished clip; a rerun redoes only the missing ones.
- The report, ``OUTDIR/photo3d_batch_report.json``, lists every clip with its status
  (ok, skipped, failed, interrupted), seconds per stage and error, written atomically.

Exit status of the command: 0 every clip made or already there, 1 some clips failed (the
others were made), 2 usage error (bad INPUT, OUTDIR or option), 130 interrupted.
"""

from __future__ import annotations

import argparse
import copy
import csv
import dataclasses
import hashlib
import json
import os
import socket
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path

from .errors import Photo3DError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
REPORT_NAME = "photo3d_batch_report.json"
LOCK_NAME = ".photo3d_batch.lock"
#: Manifest columns that are not render options.
_NOT_OPTIONS = ("image", "output")
#: render options that make no sense for a whole batch from the command line.
_CLI_SKIP = {"image", "sample", "output", "quiet", "frames", "help"}


@dataclass(frozen=True)
class Job:
    """One clip to make. Plain data, picklable, so it travels to worker processes and Ray.

    index: position in the plan and the report; clip: output path relative to OUTDIR
    (posix); photo: the photo as the report names it; image: absolute path of the photo;
    options: keywords for ClipOptions.from_kwargs (file paths made absolute); key: the
    hash of the photo and its non-default options; group: key of its depth stage; output:
    absolute output path; sidecar: True when the name was given, so the key is recorded
    next to it; row: manifest row (1-based) or None.
    """

    index: int
    clip: str
    photo: str
    image: str
    options: dict
    normalized: dict
    key: str
    group: str
    output: str
    sidecar: bool = False
    row: int | None = None


@dataclass
class Plan:
    """What a batch will do: the jobs to run, grouped by photo, and what is already known
    (finished clips to skip, rows that failed before running)."""

    jobs: list[Job] = field(default_factory=list)
    groups: list[list[Job]] = field(default_factory=list)
    results: dict[int, dict] = field(default_factory=dict)  # index -> result of skipped/failed-at-plan
    entries: list[dict] = field(default_factory=list)  # one per row/photo, report order


# -- options -----------------------------------------------------------------------------

def _config_types() -> dict[str, type]:
    """Option name (as ClipOptions.from_kwargs takes it) -> the Python type of its value."""
    from .config import EncodeConfig, EngineConfig, PathConfig, RenderConfig, SceneConfig

    types: dict[str, type] = {"depth": str, "depth_kind": str, "frames": str, "path": str}
    for cls in (SceneConfig, PathConfig, RenderConfig, EncodeConfig, EngineConfig):
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints.get(f.name, str)
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            types[f.name] = args[0] if args and typing.get_origin(hint) is not tuple else hint
    return types


def _parse_size(value) -> tuple[int, int]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return int(value[0]), int(value[1])
    try:
        w, h = (int(v) for v in str(value).lower().split("x"))
    except ValueError:
        raise Photo3DError(f"size {value!r} is not WIDTHxHEIGHT, e.g. 1280x720") from None
    return w, h


def coerce_options(raw: dict, base: Path, outdir: Path) -> dict:
    """Manifest or CLI values -> typed keywords for ClipOptions.from_kwargs.

    Names may use dashes (``depth-kind``); empty values are dropped; strings become the
    type of the config field; ``size`` is "WxH" or [W, H]; depth-map and keyframe files
    are relative to ``base`` (the manifest's folder), ``frames`` to OUTDIR.
    """
    from .depth import is_depth_method

    types = _config_types()
    out: dict = {}
    for name, value in raw.items():
        key = str(name).strip().replace("-", "_")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key == "preset":
            key = "path"
        if key not in types:
            raise Photo3DError(f"unknown option {name!r}; use the names of `photo3d render` options")
        kind = types[key]
        try:
            if key == "size":
                value = _parse_size(value)
            elif kind is bool and isinstance(value, str):
                if value.strip().lower() not in ("1", "0", "true", "false", "yes", "no"):
                    raise ValueError(value)
                value = value.strip().lower() in ("1", "true", "yes")
            elif kind in (int, float):
                number = float(value)
                if kind is int and number != int(number):
                    raise ValueError(value)
                value = kind(number) if kind is float else int(number)
            elif kind is str:
                value = str(value).strip()
        except (TypeError, ValueError):
            raise Photo3DError(f"option {name}={value!r} is not a valid {kind.__name__}") from None
        if key == "path" and value.lower().endswith(".json"):
            value = str((base / value).resolve())
        elif key == "depth" and not is_depth_method(value):
            value = str((base / value).resolve())
        elif key == "frames":
            value = str((outdir / value).resolve())
        elif key == "weights":
            value = str((base / value).resolve())
        out[key] = value
    return out


def _rel(value: str, base: Path) -> str:
    try:
        return Path(value).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return value


def normalize(options: dict, base: Path, outdir: Path) -> dict:
    """The options that differ from the defaults, by from_kwargs name, JSON-ready: what
    the hash covers and the report shows. Validates them (Photo3DError if bad)."""
    from .pipeline import ClipOptions

    opts = ClipOptions.from_kwargs(**options)
    default = ClipOptions()
    flat: dict = {}
    for group in ("scene", "path", "render", "encode", "depth", "engine"):
        value, ref = getattr(opts, group), getattr(default, group)
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v != getattr(ref, f.name):
                name = {("path", "preset"): "path", ("depth", "source"): "depth",
                        ("depth", "kind"): "depth_kind"}.get((group, f.name), f.name)
                flat[name] = f"{v[0]}x{v[1]}" if name == "size" else v
    if opts.frames_dir is not None:
        flat["frames"] = _rel(str(opts.frames_dir), outdir)
    for name in ("path", "depth"):
        if name in flat and Path(str(flat[name])).is_absolute():
            flat[name] = _rel(str(flat[name]), base)
    return dict(sorted(flat.items()))


def options_key(photo: str, normalized: dict) -> str:
    """8 hex digits naming the clip of ``photo`` with these (normalised) options."""
    text = json.dumps({"photo": photo, "options": normalized}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _group_key(image: str, options: dict) -> str:
    """Clips with the same key share one prepare_photo: same photo, depth and scene."""
    from .pipeline import ClipOptions

    opts = ClipOptions.from_kwargs(**options)
    engine = (opts.engine.runtime, opts.engine.precision, opts.engine.weights)
    return json.dumps([image, dataclasses.asdict(opts.scene), dataclasses.asdict(opts.depth), engine], default=str)


# -- inputs -------------------------------------------------------------------------------

def _read_manifest(path: Path) -> list[tuple[int, dict | Exception]]:
    """[(row number, row dict or the error of that row)]; a file we cannot read at all is a
    usage error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise Photo3DError(f"cannot read manifest {str(path)!r}: {e}") from None
    rows: list[tuple[int, dict | Exception]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames or "image" not in [n.strip() for n in reader.fieldnames]:
            raise Photo3DError(f"manifest {str(path)!r} needs a header row with an 'image' column")
        for n, row in enumerate(reader, start=2):  # line 1 is the header
            extra = row.pop(None, None)  # more cells than header names
            if extra:
                rows.append((n, Photo3DError(f"row has {len(extra)} more cells than the header")))
            else:
                rows.append((n, {k.strip(): v for k, v in row.items() if k is not None}))
    else:
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError("not a JSON object")
                rows.append((n, row))
            except ValueError as e:
                rows.append((n, Photo3DError(f"line is not a JSON object: {e}")))
    if not rows:
        raise Photo3DError(f"manifest {str(path)!r} has no rows")
    return rows


def _folder_photos(folder: Path, outdir: Path) -> list[Path]:
    outdir = outdir.resolve()
    photos = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or p.suffix.lower() not in IMAGE_EXTENSIONS:
            continue
        if p.resolve().is_relative_to(outdir) or not p.is_file():
            continue
        photos.append(p)
    return photos


def plan_batch(source: str | Path, outdir: str | Path, defaults: dict | None = None) -> Plan:
    """Inputs -> jobs. source: a folder (every photo in it, recursively) or a manifest
    (.csv / .jsonl / .json lines); defaults: options for every clip (rows override them).
    A bad row is recorded as a failed result, never raised; a bad source is Photo3DError."""
    source, outdir = Path(source), Path(outdir).resolve()
    defaults = dict(defaults or {})
    if not source.exists():
        raise Photo3DError(f"batch input {str(source)!r} does not exist; give a folder of photos or a .csv/.jsonl manifest")
    if source.is_dir():
        base = source
        rows: list[tuple[int | None, dict | Exception]] = [
            (None, {"image": p.relative_to(source).as_posix()}) for p in _folder_photos(source, outdir)]
        if not rows:
            raise Photo3DError(f"no photos ({', '.join(IMAGE_EXTENSIONS)}) in folder {str(source)!r}")
    elif source.suffix.lower() in (".csv", ".jsonl", ".ndjson", ".json"):
        base = source.parent
        rows = list(_read_manifest(source))
    else:
        raise Photo3DError(f"batch input {str(source)!r} is neither a folder nor a .csv/.jsonl manifest")

    plan = Plan()
    cli = coerce_options(defaults, Path.cwd(), outdir)
    seen: dict[str, Job] = {}
    for n, row in rows:
        index = len(plan.entries)
        entry = {"index": index, "row": n, "photo": None, "clip": None, "options": {}}
        plan.entries.append(entry)
        try:
            if isinstance(row, Exception):
                raise row
            if not row.get("image"):
                raise Photo3DError("row has no 'image'")
            photo = str(row["image"]).strip()
            entry["photo"] = photo
            options = {**cli, **coerce_options({k: v for k, v in row.items() if k not in _NOT_OPTIONS}, base, outdir)}
            normalized = normalize(options, base, outdir)
            entry["options"] = normalized
            key = options_key(photo, normalized)
            if row.get("output"):
                clip = Path(str(row["output"]).strip())
                if clip.is_absolute() or ".." in clip.parts:
                    raise Photo3DError(f"output {str(clip)!r} must be a relative name inside OUTDIR")
                if not clip.suffix:
                    clip = clip.with_name(clip.name + ".mp4")
                sidecar = True
            else:
                rel = Path(photo)
                rel = rel if not rel.is_absolute() and ".." not in rel.parts else Path(rel.name)
                clip = rel.with_name(f"{rel.stem}.{key}.mp4")
                sidecar = False
            clip_s = clip.as_posix()
            entry["clip"] = clip_s
            image = str((base / photo).resolve())
            job = Job(index, clip_s, photo, image, options, normalized, key,
                      _group_key(image, options), str(outdir / clip), sidecar, n)
            if clip_s in seen:
                other = seen[clip_s]
                if other.key != key or other.image != image:
                    raise Photo3DError(f"output {clip_s!r} is also made by another row with other options; name them apart")
                plan.results[index] = _result(job, "skipped", note=f"same clip as entry {other.index}")
                continue
            seen[clip_s] = job
            if is_finished(job):
                plan.results[index] = _result(job, "skipped", note="already made")
            else:
                plan.jobs.append(job)
        except Photo3DError as e:
            plan.results[index] = {**entry, "status": "failed", "error": str(e),
                                   "seconds": {"depth": 0.0, "render_encode": 0.0}, "frames": 0}
    by_group: dict[str, list[Job]] = {}
    for job in plan.jobs:
        by_group.setdefault(job.group, []).append(job)
    plan.groups = list(by_group.values())
    return plan


# -- resume ------------------------------------------------------------------------------

def _sidecar(output: Path) -> Path:
    return output.with_name(f".{output.name}.photo3d.json")


def is_finished(job: Job) -> bool:
    """An output exists only once complete (temporary name + rename); with an explicit name
    its sidecar must also record the same options."""
    out = Path(job.output)
    if not out.is_file():
        return False
    if not job.sidecar:
        return True
    try:
        return json.loads(_sidecar(out).read_text()).get("key") == job.key
    except (OSError, ValueError):
        return False


def write_json_atomic(path: Path, data) -> None:
    tmp = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(data, indent=1, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def record_finished(job: Job) -> None:
    """Called after a clip is renamed into place: an explicit name records its key."""
    if job.sidecar:
        write_json_atomic(_sidecar(Path(job.output)), {"key": job.key, "photo": job.photo, "options": job.normalized})


def _result(job: Job, status: str, **extra) -> dict:
    return {"index": job.index, "row": job.row, "photo": job.photo, "clip": job.clip,
            "options": job.normalized, "key": job.key, "status": status,
            "seconds": {"depth": 0.0, "render_encode": 0.0}, "frames": 0, "error": None, **extra}


def sweep_partials(outdir: Path) -> int:
    """Remove temporary files a killed run left in OUTDIR (only while holding the lock)."""
    n = 0
    for p in outdir.rglob(".*.partial-*"):
        if p.is_file():
            p.unlink(missing_ok=True)
            n += 1
    return n


class OutdirLock:
    """One batch per OUTDIR at a time: a lock file with host and pid. A lock left by a dead
    process on this host is taken over; the temporary files it left are then swept."""

    def __init__(self, outdir: Path) -> None:
        self.path = outdir / LOCK_NAME
        self.held = False

    def __enter__(self) -> "OutdirLock":
        me = {"host": socket.gethostname(), "pid": os.getpid()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text())
                except (OSError, ValueError):
                    other = {}
                if other.get("host") == me["host"] and not _alive(int(other.get("pid", 0))):
                    self.path.unlink(missing_ok=True)
                    continue
                raise Photo3DError(
                    f"another batch ({other.get('host')} pid {other.get('pid')}) is writing to "
                    f"{self.path.parent}; wait for it, or delete {self.path} if none is running") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise Photo3DError(f"cannot take the lock {self.path}")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would send CTRL_C_EVENT there; keep the lock
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- running -----------------------------------------------------------------------------

def run_batch(source: str | Path, outdir: str | Path, *, workers: int | None = None,
              gpus: str | None = None, ray: str | None = None, quiet: bool = False,
              **options) -> dict:
    """Make every clip of ``source`` into ``outdir`` and return the report (also written to
    OUTDIR/photo3d_batch_report.json). options: defaults for every clip, by
    ClipOptions.from_kwargs name. workers: CPU worker processes (default 1); gpus: "all"
    or "0,1" (default: all GPUs torch sees, else CPU); ray: "auto", "local" or a cluster
    address. Raises Photo3DError for a usage error and KeyboardInterrupt (after writing
    the report and removing partial files) when interrupted."""
    from tqdm import tqdm

    from . import batch_run

    outdir = Path(outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Photo3DError(f"cannot create output folder {str(outdir)!r}: {e.strerror}") from None
    if not os.access(outdir, os.W_OK):
        raise Photo3DError(f"output folder {str(outdir)!r} is not writable")
    if workers is not None and workers < 1:
        raise Photo3DError(f"--workers {workers} must be at least 1")
    started = time.time()
    with OutdirLock(outdir.resolve()):
        swept = sweep_partials(outdir)
        plan = plan_batch(source, outdir, options)
        runner = batch_run.make_runner(workers=workers, gpus=gpus, ray=ray)
        results = dict(plan.results)
        n_skipped = sum(r["status"] == "skipped" for r in results.values())
        n_failed = sum(r["status"] == "failed" for r in results.values())
        if not quiet:
            print(f"photo3d: batch of {len(plan.entries)} clips: {len(plan.jobs)} to make "
                  f"({len(plan.groups)} photos), {n_skipped} already made, {n_failed} bad rows; "
                  f"{runner.describe()}" + (f"; removed {swept} partial files of a killed run" if swept else ""),
                  file=sys.stderr)
        bar = tqdm(total=len(plan.jobs), unit="clip", desc="batch", disable=quiet or not plan.jobs,
                   file=sys.stderr, dynamic_ncols=True)
        jobs = {j.index: j for j in plan.jobs}

        def on_result(result: dict) -> None:
            job = jobs[result["index"]]
            results[job.index] = {**_result(job, result["status"]), **result}
            bar.update(1)
            if result["status"] == "failed":
                bar.set_postfix_str(f"{sum(r['status'] == 'failed' for r in results.values())} failed")
                if not quiet:
                    tqdm.write(f"photo3d: failed: {job.photo} -> {job.clip}: {result['error']}", file=sys.stderr)

        interrupted = False
        try:
            runner.run(plan.groups, on_result)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            bar.close()
            sweep_partials(outdir)  # a killed worker's leftovers; we hold the lock, so none is live
        for job in plan.jobs:
            results.setdefault(job.index, _result(job, "interrupted") if interrupted else
                               _result(job, "failed", error="no result came back from its worker"))
        report = _report(plan, results, source, outdir, runner, started, interrupted)
        write_json_atomic(outdir / REPORT_NAME, report)
    if interrupted:
        raise KeyboardInterrupt
    if not quiet:
        t = report["totals"]
        print(f"photo3d: batch done in {report['seconds']:.1f} s: {t['ok']} made, {t['skipped']} skipped, "
              f"{t['failed']} failed; report: {outdir / REPORT_NAME}", file=sys.stderr)
    return report


def _report(plan: Plan, results: dict, source, outdir: Path, runner, started: float, interrupted: bool) -> dict:
    clips = [results.get(e["index"], {**e, "status": "interrupted"}) for e in plan.entries]
    totals = {s: sum(c["status"] == s for c in clips) for s in ("ok", "skipped", "failed", "interrupted")}
    stage = {s: round(sum(c["seconds"][s] for c in clips if "seconds" in c), 3) for s in ("depth", "render_encode")}
    status = 130 if interrupted else (1 if totals["failed"] else 0)
    return {
        "input": str(Path(source).resolve()),
        "outdir": str(outdir.resolve()),
        "runner": runner.describe(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
        "seconds": round(time.time() - started, 3),
        "exit_status": status,
        "totals": totals,
        "stage_seconds": stage,
        "clips": clips,
    }


# -- command line ------------------------------------------------------------------------

BATCH_EPILOG = """\
INPUT is a folder (every photo in it and its subfolders: .jpg .jpeg .png .webp .tif .tiff
.bmp) or a manifest, one clip per row: CSV with a header, or JSONL (one JSON object per
line). Columns: image (relative to the manifest's folder; required), output (a name
inside OUTDIR; optional), and any `photo3d render` option by name (path, duration, fps,
amount, focus, size as WxH, depth, depth_kind, fov, near, far, layers, crf, ...). Render
options given on this command line apply to every clip; a row overrides them.

  photo3d batch photos/ -o clips/ --duration 4 --size 960x540
  photo3d batch clips.csv -o clips/ --workers 2        # two CPU worker processes
  photo3d batch clips.jsonl -o /shared/clips --ray auto   # every GPU of a Ray cluster

clips.csv:
  image,path,duration,size,output
  beach.jpg,circle,4,1280x720,beach_circle.mp4
  beach.jpg,dolly,3,,
  cat.png,swing,5,960x540,

Each photo's depth is computed once for all its clips. Clips without an output name are
called <photo>.<hash>.mp4, the hash covering the photo and the options, so a rerun skips
finished clips and makes the missing ones; partial files of an interrupted run are
removed. A bad photo or row is reported and skipped. The report is
OUTDIR/photo3d_batch_report.json. Exit status: 0 all clips made (or already there),
1 some clips failed, 2 usage error, 130 interrupted.
"""


def add_batch_parser(sub) -> argparse.ArgumentParser:
    """Add ``photo3d batch`` to the CLI's subparsers. Every option of ``render`` (already
    added) is offered too, as defaults for all clips, so new render options need nothing here."""
    b = sub.add_parser("batch", help="render many clips: a folder of photos or a CSV/JSONL manifest",
                       description="Render many clips: every photo of a folder, or one clip per "
                                   "row of a CSV/JSONL manifest.",
                       epilog=BATCH_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    b.add_argument("input", type=Path, metavar="INPUT", help="folder of photos, or a .csv/.jsonl manifest")
    b.add_argument("-o", "--output", type=Path, required=True, metavar="OUTDIR", help="folder for the clips and the report")
    run = b.add_argument_group("workers")
    run.add_argument("--workers", type=int, help="worker processes: on CPU (default 1), or per GPU (default 1)")
    run.add_argument("--gpus", metavar="all|0,1", help="GPUs to use, one worker each (default: all GPUs torch sees)")
    run.add_argument("--ray", metavar="auto|local|ADDRESS",
                     help="run on a Ray cluster: auto (the running cluster), local (start Ray here) or its "
                          "address; OUTDIR and the photos must be on a path every node sees")
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    render = sub.choices.get("render")
    if render is not None:
        group = b.add_argument_group("clip options (as `photo3d render`; defaults for every clip)")
        for action in render._actions:
            if not action.option_strings or action.dest in _CLI_SKIP:
                continue
            a = copy.copy(action)
            a.default = argparse.SUPPRESS  # only what the user gave overrides the rows' defaults
            if a.help and "%(" in a.help:  # "(default %(default)g)": expand with render's value now
                params = {**vars(action), "prog": render.prog}
                if params.get("choices") is not None:
                    params["choices"] = ", ".join(map(str, params["choices"]))
                try:
                    a.help = (action.help % params).replace("%", "%%")
                except (KeyError, TypeError, ValueError):
                    a.help = None
            a.container = group
            group._add_action(a)
    b.set_defaults(handler=_batch_command)
    return b


def _batch_command(args: argparse.Namespace) -> int:
    skip = {"input", "output", "workers", "gpus", "ray", "quiet", "handler", "command"}
    options = {k: v for k, v in vars(args).items() if k not in skip}
    report = run_batch(args.input, args.output, workers=args.workers, gpus=args.gpus, ray=args.ray,
                       quiet=args.quiet, **options)
    return report["exit_status"]
