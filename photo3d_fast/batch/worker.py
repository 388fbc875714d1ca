"""The loop of one batch worker, wherever it runs (this process, a worker process, a Ray
actor): a prefetch thread loads the next photo and computes its depth (``prepare_photo``)
while the current photo's clips are rendered and encoded (``write_clip``); a group's
depth is computed once and shared by all its clips.

Each job gives one result dict: index, status ("ok" or "failed"), seconds {depth,
render_encode}, frames, error, depth_reused.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

from ..clip import write_clip
from ..config import ClipOptions
from ..errors import Photo3DError
from ..io import load_image
from ..pipeline import PreparedPhoto, engine_options, prepare_photo
from .manifest import Job, record_finished

OnResult = Callable[[dict], None]


def describe_error(e: BaseException) -> str:
    """A job's error for the report: the message of a user error, the traceback of a bug."""
    if isinstance(e, Photo3DError):
        return str(e)
    # A bug, not bad input: keep the traceback in the report, but go on with the batch.
    return f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"


def failed(job: Job, error: str) -> dict:
    """The result of a job that never ran to its end (its worker died, its actor failed)."""
    return {"index": job.index, "status": "failed", "frames": 0, "error": error, "depth_reused": False,
            "seconds": {"depth": 0.0, "render_encode": 0.0}}


def _prepare(group: list[Job]) -> tuple[PreparedPhoto | None, str | None, float]:
    """(prepared photo or None, error or None, seconds) for a group: load + depth."""

    t0 = time.perf_counter()
    try:
        first = group[0]
        opts = ClipOptions.from_flat(first.options)
        photo = load_image(first.image)
        prepared = prepare_photo(photo, Path(first.image).name, opts.scene, opts.depth,
                                 engine_options(opts.engine, opts.render))
        return prepared, None, time.perf_counter() - t0
    except Exception as e:
        return None, describe_error(e), time.perf_counter() - t0


def _render_job(job: Job, prepared: PreparedPhoto | None, error: str | None, depth_s: float, reused: bool) -> dict:

    result = {"index": job.index, "status": "failed", "frames": 0, "error": error, "depth_reused": reused,
              "seconds": {"depth": round(depth_s, 4), "render_encode": 0.0}}
    if error is not None:
        return result
    t0 = time.perf_counter()
    try:
        out = Path(job.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        clip = write_clip(prepared, ClipOptions.from_flat(job.options), out, quiet=True, inputs=[job.image])
        record_finished(job)
        result.update(status="ok", frames=clip.frames)
    except Exception as e:
        result["error"] = describe_error(e)
    result["seconds"]["render_encode"] = round(time.perf_counter() - t0, 4)
    return result


def run_groups(next_group: Callable[[], list[Job] | None], on_result: OnResult) -> None:
    """Make every clip of the groups ``next_group()`` returns (None: no more).

    Depth of group n+1 (in a prefetch thread) overlaps rendering and encoding of group n
    (here); at most one prepared photo waits. KeyboardInterrupt propagates after the
    writers removed their partial output.
    """
    ready: queue.Queue = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.2)
                return True
            except queue.Full:
                pass
        return False

    def prefetch() -> None:
        try:
            while not stop.is_set():
                group = next_group()
                if group is None or not put((group, *_prepare(group))):
                    return
        except BaseException as e:  # never leave the consumer waiting
            put(e)
        finally:
            put(None)

    thread = threading.Thread(target=prefetch, name="photo3d-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            try:
                item = ready.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            group, prepared, error, depth_s = item
            for i, job in enumerate(group):
                on_result(_render_job(job, prepared, error, depth_s if i == 0 else 0.0, reused=i > 0))
    finally:
        stop.set()
        thread.join(timeout=1.0)


def run_all(groups: list[list[Job]], on_result: OnResult) -> None:
    """``run_groups`` over a list."""
    it = iter(groups)
    run_groups(lambda: next(it, None), on_result)
