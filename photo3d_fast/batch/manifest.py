"""Batch planning: inputs -> jobs, output names, resume state and the outdir lock.

``photo3d batch INPUT -o OUTDIR`` takes a folder of photos (recursive) or a manifest (CSV
or JSONL, one clip per row) and makes every clip into OUTDIR. This module decides *what*
to make; ``worker`` makes the clips of a group; ``local`` (this process or worker
processes) and ``cluster`` (Ray actors) decide *where*; ``batch.cli`` runs it all.

- A job is one clip: a photo, its options by flat name (``ClipOptions.from_flat``), and
  an output path. Jobs that share a photo and its depth/scene options form a group, whose
  depth (``prepare_photo``) is computed once and reused by all its clips.
- Names: a clip without an explicit ``output`` is named ``<photo stem>.<hash>.mp4``, the
  hash (8 hex digits) covering the photo's relative path, the content of the files the
  clip reads (photo, depth map, keyframes) and the options that differ from the defaults,
  so the same inputs always give the same name and a rerun can skip what exists, while a
  photo replaced under its name is made again. An explicit ``output`` (a name inside
  OUTDIR, not hidden) gets a hidden sidecar recording that hash instead.
- Clips are written under a temporary name and renamed when complete (the writers do
  this), so an existing output is a finished clip; a rerun redoes only the missing ones.
- The report, ``OUTDIR/photo3d_batch_report.json``, lists every clip with its status
  (ok, skipped, failed, interrupted), seconds per stage and error, written atomically.

Exit status of the command: 0 every clip made or already there, 1 some clips failed (the
others were made), 2 usage error (bad INPUT, OUTDIR or option), 130 interrupted.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from ..clip import option_files
from ..config import ClipOptions, convert_options
from ..depth import is_depth_method
from ..errors import Photo3DError
from ..io import check_output, pid_alive, remove_stale_partials, write_atomic

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp")
REPORT_NAME = "photo3d_batch_report.json"
LOCK_NAME = ".photo3d_batch.lock"
#: Manifest columns that are not render options.
_NOT_OPTIONS = ("image", "output")


@dataclass(frozen=True)
class Job:
    """One clip to make. Plain data, picklable, so it travels to worker processes and Ray.

    index: position in the plan and the report; clip: output path relative to OUTDIR
    (posix); photo: the photo as the report names it; image: absolute path of the photo;
    options: typed options by flat name for ClipOptions.from_flat (file paths made
    absolute); normalized: those that differ from the defaults (``normalize``); key: the
    hash of the photo and its normalized options; group: key of its depth stage; output:
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
class BatchPlan:
    """What a batch will do: the jobs to run, grouped by photo, and what is already known
    (finished clips to skip, rows that failed before running)."""

    jobs: list[Job] = field(default_factory=list)
    groups: list[list[Job]] = field(default_factory=list)
    results: dict[int, dict] = field(default_factory=dict)  # index -> result of skipped/failed-at-plan
    entries: list[dict] = field(default_factory=list)  # one per row/photo, report order


# -- options -----------------------------------------------------------------------------

def resolve_files(options: dict, base: Path, outdir: Path) -> dict:
    """Typed options (``config.convert_options``) with their file names made absolute:
    depth-map, keyframe and weights files relative to ``base`` (the manifest's folder),
    ``frames`` to OUTDIR, so that a worker anywhere reads the same files."""
    out = dict(options)
    if str(out.get("path", "")).lower().endswith(".json"):
        out["path"] = str((base / out["path"]).resolve())
    if "depth" in out and not is_depth_method(out["depth"]):
        out["depth"] = str((base / out["depth"]).resolve())
    if "weights" in out:
        out["weights"] = str((base / out["weights"]).resolve())
    if "frames" in out:
        out["frames"] = str((outdir / name_in_outdir(out["frames"], "frames", outdir)).resolve())
    return out


def name_in_outdir(name: str | Path, column: str, outdir: Path) -> Path:
    """``name`` (a manifest's ``output`` or ``frames``) as a path relative to OUTDIR; a batch
    writes nowhere else. Photo3DError for an absolute name, one with ``..``, one that is
    OUTDIR itself, or one that a symbolic link inside OUTDIR leads out of it."""
    rel = Path(str(name).strip())
    outdir = outdir.resolve()
    if rel.is_absolute() or ".." in rel.parts or not rel.parts \
            or not (outdir / rel).resolve().is_relative_to(outdir):
        raise Photo3DError(f"{column} {str(name)!r} must be a relative name inside OUTDIR")
    return rel


def _rel(value: str, base: Path) -> str:
    try:
        return Path(value).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return value


def normalize(options: dict, base: Path, outdir: Path) -> dict:
    """The options that differ from the defaults, by flat name, JSON-ready: what the hash
    covers and the report shows. Validates them (Photo3DError if bad)."""
    flat = ClipOptions.from_flat(options).changed()
    # --offline says how weights are found, not what the clip is: a rerun with it skips
    # the clips an online run made.
    flat.pop("offline", None)
    if "size" in flat:
        flat["size"] = "{}x{}".format(*flat["size"])
    if "frames" in flat:
        flat["frames"] = _rel(str(flat["frames"]), outdir)
    for name in ("path", "depth"):
        if name in flat and Path(str(flat[name])).is_absolute():
            flat[name] = _rel(str(flat[name]), base)
    return dict(sorted(flat.items()))


def options_key(photo: str, normalized: dict, content: str | None = None) -> str:
    """8 hex digits naming the clip of ``photo`` with these (normalised) options; content:
    the digest of the files it reads (``content_digest``), so that a photo replaced under
    the same name makes a new clip."""
    text = json.dumps({"photo": photo, "options": normalized, "content": content}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def content_digest(files: list[str | Path], cache: dict | None = None) -> str | None:
    """sha256 of the bytes of ``files`` (the photo, a depth map, a keyframe file), or None
    if one cannot be read (the job then fails with the reason). cache: digests by (path,
    size, mtime), so that a photo of several rows is read once per plan."""
    cache = {} if cache is None else cache
    digest = hashlib.sha256()
    for name in files:
        try:
            st = os.stat(name)
            key = (str(name), st.st_size, st.st_mtime_ns)
            if key not in cache:
                with open(name, "rb") as f:
                    cache[key] = hashlib.file_digest(f, "sha256").hexdigest()
        except OSError:
            return None
        digest.update(cache[key].encode())
    return digest.hexdigest()


def _group_key(image: str, options: dict) -> str:
    """Clips with the same key share one prepare_photo: same photo, depth and scene."""

    opts = ClipOptions.from_flat(options)
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
    if not text.strip():
        raise Photo3DError(f"manifest {str(path)!r} is empty; it needs a header row with an 'image' column "
                           f"(CSV) or one JSON object per line (JSONL)")
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


def plan_batch(source: str | Path, outdir: str | Path, defaults: dict | None = None) -> BatchPlan:
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

    plan = BatchPlan()
    cli = resolve_files(convert_options(defaults), Path.cwd(), outdir)
    seen: dict[str, Job] = {}
    digests: dict = {}
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
            row_options = convert_options({k: v for k, v in row.items() if k not in _NOT_OPTIONS})
            options = {**cli, **resolve_files(row_options, base, outdir)}
            normalized = normalize(options, base, outdir)
            entry["options"] = normalized
            image = str((base / photo).resolve())
            key = options_key(photo, normalized, content_digest([image, *option_files(ClipOptions.from_flat(options))],
                                                                 digests))
            if str(row.get("output") or "").strip():
                clip = name_in_outdir(row["output"], "output", outdir)
                if clip.name.startswith(".") or clip.as_posix() == REPORT_NAME:
                    # hidden names are the batch's own: temporary files, sidecars, the lock
                    raise Photo3DError(f"output {str(row['output'])!r} must not start with '.' or be "
                                       f"the report's name")
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
            check_output(outdir / clip, [image])
            job = Job(index, clip_s, photo, image, options, normalized, key,
                      _group_key(image, options), str(outdir / clip), sidecar, n)
            if clip_s in seen:
                other = seen[clip_s]
                if other.key != key or other.image != image:
                    raise Photo3DError(f"output {clip_s!r} is also made by another row with other options; name them apart")
                plan.results[index] = job_result(job, "skipped", note=f"same clip as entry {other.index}")
                continue
            seen[clip_s] = job
            if is_finished(job):
                plan.results[index] = job_result(job, "skipped", note="already made")
            else:
                plan.jobs.append(job)
        except Photo3DError as e:
            plan.results[index] = {**entry, "status": "failed", "error": str(e),
                                   "seconds": {"depth": 0.0, "render_encode": 0.0}, "frames": 0}
    plan.groups = group_jobs(plan.jobs)
    return plan


def group_jobs(jobs: list[Job]) -> list[list[Job]]:
    """The jobs by depth stage (``Job.group``), in the order their groups first appear."""
    by_group: dict[str, list[Job]] = {}
    for job in jobs:
        by_group.setdefault(job.group, []).append(job)
    return list(by_group.values())


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
    """``data`` as JSON in ``path``, atomically; Photo3DError if it cannot be written."""
    text = json.dumps(data, indent=1, default=str) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def record_finished(job: Job) -> None:
    """Called after a clip is renamed into place: an explicit name records its key."""
    if job.sidecar:
        write_json_atomic(_sidecar(Path(job.output)), {"key": job.key, "photo": job.photo, "options": job.normalized})


def job_result(job: Job, status: str, **extra) -> dict:
    return {"index": job.index, "row": job.row, "photo": job.photo, "clip": job.clip,
            "options": job.normalized, "key": job.key, "status": status,
            "seconds": {"depth": 0.0, "render_encode": 0.0}, "frames": 0, "error": None, **extra}


def sweep_partials(outdir: Path, pids: Iterable[int] | None = None) -> int:
    """Remove the temporary files that dead processes left under OUTDIR: of ``pids`` (this
    batch's workers), or of any dead process (a killed earlier run) when None. A live
    process's (a ``photo3d render`` writing there) are never touched."""
    return remove_stale_partials(outdir, pids=pids, recursive=True)


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
                if other.get("host") == me["host"] and not pid_alive(int(other.get("pid", 0))):
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
