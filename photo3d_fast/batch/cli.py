"""``photo3d batch INPUT -o OUTDIR``: plan (``manifest``), run (``local`` or ``cluster``), report.

Exit status of the command: 0 every clip made or already there, 1 some clips failed (the
others were made), 2 usage error (bad INPUT, OUTDIR or option), 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..config import OPTIONS, ClipOptions
from ..engines.registry import get_spec
from ..engines.weights import resolve_auto, weight_files
from ..errors import Photo3DError, notice
from .cluster import RayRunner
from .local import LocalRunner, parse_gpus
from .manifest import (
    REPORT_NAME,
    BatchPlan,
    OutdirLock,
    group_jobs,
    job_result,
    plan_batch,
    sweep_partials,
    write_json_atomic,
)

# -- learned models ----------------------------------------------------------------------

#: The clip options naming a learned model, which a batch resolves and fetches once before
#: its workers start: option -> (registry task, the method without weights that auto falls
#: back to, the option giving the model's own weights file, whose jobs are left alone).
MODEL_OPTIONS: dict[str, tuple[str, str, str]] = {"depth": ("depth", "cues", "weights")}


def fetch_models(plan: BatchPlan, quiet: bool = False) -> None:
    """Resolve every job's ``auto`` and fetch every learned model the jobs name, once, in
    this process, before any worker starts: N workers would otherwise each check the
    network and download (and a batch must not mix models because the network came and
    went). An ``auto`` becomes, in the job's options, the model ``engines.resolve_auto``
    picks or the fallback method; a named model's weights are fetched into the cache, and
    its jobs fail with the reason (moved from ``plan.jobs`` to ``plan.results``) when they
    cannot be. Workers on other machines (Ray) read their own cache and fetch there."""
    answers: dict[tuple, str | Photo3DError | None] = {}  # (option, value, fetch) -> _fetch_one's answer
    jobs = []
    for job in plan.jobs:
        opts = ClipOptions.from_flat(job.options)
        fetch = not opts.engine.offline
        options, error = dict(job.options), None
        for option, (task, fallback, weights) in MODEL_OPTIONS.items():
            value = str(opts.get(option))
            if opts.get(weights) is not None or value == fallback:
                continue
            key = (option, value, fetch)
            if key not in answers:
                answers[key] = _fetch_one(task, value, fallback, fetch, quiet)
            answer = answers[key]
            if isinstance(answer, Photo3DError):
                error = str(answer)
            elif answer is not None:  # None: not a model (a depth-map file)
                options[option] = answer
        if error is not None:
            plan.results[job.index] = job_result(job, "failed", error=error)
        else:
            jobs.append(dataclasses.replace(job, options=options))
    plan.jobs = jobs
    plan.groups = group_jobs(jobs)


def _fetch_one(task: str, value: str, fallback: str, fetch: bool, quiet: bool) -> str | Photo3DError | None:
    """What a job's ``value`` of a model option becomes: the model auto resolves to (or
    ``fallback``), a named model whose weights are now here, the error that its weights
    cannot be had, or None when ``value`` names no model."""
    if value == "auto":
        return resolve_auto(task, fetch=fetch, quiet=quiet, fallback=fallback) or fallback
    try:
        spec = get_spec(value, task=task)
    except Photo3DError:
        return None
    try:
        weight_files(spec, fetch=fetch, quiet=quiet)
    except Photo3DError as e:
        return e
    return value


# -- running -----------------------------------------------------------------------------

def make_runner(workers: int | None = None, gpus: str | None = None, ray: str | None = None) -> LocalRunner | RayRunner:
    """The runner for the command-line choices; Photo3DError for a bad combination."""
    if ray:
        if gpus:
            raise Photo3DError("--gpus is for this machine; with --ray every GPU of the cluster is used")
        return RayRunner(ray, workers)
    slots = parse_gpus(gpus)
    if slots is None:
        return LocalRunner([None] * (workers or 1))
    return LocalRunner([g for g in slots for _ in range(workers or 1)])


def run_batch(source: str | Path, outdir: str | Path, *, workers: int | None = None,
              gpus: str | None = None, ray: str | None = None, quiet: bool = False,
              **options) -> dict:
    """Make every clip of ``source`` into ``outdir`` and return the report (also written to
    OUTDIR/photo3d_batch_report.json). options: defaults for every clip, by flat name
    (``config.OPTIONS``; None: not given). workers: CPU worker processes (default 1); gpus: "all"
    or "0,1" (default: all GPUs torch sees, else CPU); ray: "auto", "local" or a cluster
    address. Raises Photo3DError for a usage error and KeyboardInterrupt (after writing
    the report and removing partial files) when interrupted."""
    outdir = Path(outdir)
    if workers is not None and workers < 1:
        raise Photo3DError(f"--workers {workers} must be at least 1")
    runner = make_runner(workers=workers, gpus=gpus, ray=ray)
    # the folders this batch creates, deepest first: a usage error removes them again
    created = [d for d in (outdir, *outdir.absolute().parents) if not d.exists()]
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise Photo3DError(f"cannot create output folder {str(outdir)!r}: {e.strerror}") from None
    if not os.access(outdir, os.W_OK):
        raise Photo3DError(f"output folder {str(outdir)!r} is not writable")
    try:
        return _run(source, outdir, runner, quiet, options)
    except Photo3DError:
        for d in created:
            with contextlib.suppress(OSError):  # not empty: keep it
                d.rmdir()
        raise


def _run(source: str | Path, outdir: Path, runner: LocalRunner | RayRunner, quiet: bool, options: dict) -> dict:
    started = time.time()
    with OutdirLock(outdir.resolve()):
        swept = sweep_partials(outdir)
        plan = plan_batch(source, outdir, options)
        fetch_models(plan, quiet)
        results = dict(plan.results)
        n_skipped = sum(r["status"] == "skipped" for r in results.values())
        n_failed = sum(r["status"] == "failed" for r in results.values())
        notice(f"batch of {len(plan.entries)} clips: {len(plan.jobs)} to make "
               f"({len(plan.groups)} photos), {n_skipped} already made, {n_failed} bad rows; "
               f"{runner.describe()}" + (f"; removed {swept} partial files of a killed run" if swept else ""), quiet)
        bar = tqdm(total=len(plan.jobs), unit="clip", desc="batch", disable=quiet or not plan.jobs,
                   file=sys.stderr, dynamic_ncols=True)
        jobs = {j.index: j for j in plan.jobs}

        def onjob_result(result: dict) -> None:
            job = jobs[result["index"]]
            results[job.index] = {**job_result(job, result["status"]), **result}
            bar.update(1)
            if result["status"] == "failed":
                bar.set_postfix_str(f"{sum(r['status'] == 'failed' for r in results.values())} failed")
                if not quiet:
                    tqdm.write(f"photo3d: failed: {job.photo} -> {job.clip}: {result['error']}", file=sys.stderr)

        interrupted: KeyboardInterrupt | None = None
        try:
            runner.run(plan.groups, onjob_result)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (cli.Terminated)
            interrupted = e
        finally:
            bar.close()
            # what this batch's killed workers left (a live process's are never touched)
            sweep_partials(outdir, runner.pids())
        for job in plan.jobs:
            results.setdefault(job.index, job_result(job, "interrupted") if interrupted else
                               job_result(job, "failed", error="no result came back from its worker"))
        report = _report(plan, results, source, outdir, runner, started, interrupted is not None)
        write_json_atomic(outdir / REPORT_NAME, report)
    if interrupted is not None:
        raise interrupted
    t = report["totals"]
    notice(f"batch done in {report['seconds']:.1f} s: {t['ok']} made, {t['skipped']} skipped, "
           f"{t['failed']} failed; report: {outdir / REPORT_NAME}", quiet)
    return report


def _report(plan: BatchPlan, results: dict, source, outdir: Path, runner, started: float, interrupted: bool) -> dict:
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
called <photo>.<hash>.mp4, the hash covering the photo's content and the options, so a
rerun skips finished clips and makes the missing ones; partial files of a killed run are
removed. A bad photo or row is reported and skipped. The report is
OUTDIR/photo3d_batch_report.json. Exit status: 0 all clips made (or already there),
1 some clips failed, 2 usage error, 130 interrupted.
"""


def add_batch_parser(sub, add_clip_options: Callable[..., None]) -> argparse.ArgumentParser:
    """Add ``photo3d batch`` to the CLI's subparsers. ``add_clip_options`` (``cli``'s, which
    ``render`` uses) adds the clip options, as defaults for every clip, so new render
    options need nothing here."""
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
    # --frames DIR is one clip's; a manifest row may still give each clip its own.
    add_clip_options(b, title="clip options (as `photo3d render`; defaults for every clip)", frames=False)
    b.set_defaults(handler=_batch_command)
    return b


def _batch_command(args: argparse.Namespace) -> int:
    options = {name: value for name, value in vars(args).items() if name in OPTIONS}
    report = run_batch(args.input, args.output, workers=args.workers, gpus=args.gpus, ray=args.ray,
                       quiet=args.quiet, **options)
    return report["exit_status"]
