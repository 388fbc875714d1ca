"""Export jobs of the preview server: one clip rendered in the background with the normal
pipeline (``clip.write_clip``), its progress polled by the page.

A job goes queued -> running -> done | error | cancelled. Jobs run one at a time on one
worker thread (a clip already uses every core or the GPU; two at once only slow both
down); at most ``max_pending`` are queued or running, so a page cannot pile up hours of
work. A cancel (the page's button, or the server stopping) takes a queued job off the
queue and stops a running one at its next frame; ``write_clip`` then removes the partial
file. The worker is a daemon thread, so Ctrl-C never waits for a stage that cannot stop
midway (the depth model): the server's temporary directory goes with the process.
Clips are written into the server's own temporary directory under a name the server
chose, so a download can never name an arbitrary file.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Photo3DError

#: States a job ends in.
FINISHED = ("done", "error", "cancelled")


class QueueFull(Photo3DError):
    """max_pending exports are queued or running already."""


class Cancelled(Exception):
    """Raised inside a job's render when it is cancelled; not an error of the export."""


@dataclass
class Job:
    """One export. state: queued | running | done | error | cancelled; done/total: frames."""

    id: str
    image: str
    options: dict
    state: str = "queued"
    done: int = 0
    total: int = 0
    error: str | None = None
    output: Path | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "image": self.image,
            "options": self.options,
            "state": self.state,
            "done": self.done,
            "total": self.total,
            "progress": (self.done / self.total) if self.total else (1.0 if self.state == "done" else 0.0),
            "error": self.error,
            "download": f"/api/jobs/{self.id}/clip" if self.state == "done" else None,
            "cancel": f"/api/jobs/{self.id}/cancel" if self.state not in FINISHED else None,
        }


class Progress:
    """A frame sink that counts, so the page can show progress, and stops a cancelled
    job: ``write`` raises Cancelled, which makes write_clip abort its outputs."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def start(self, total: int) -> None:
        self.job.total = total
        self.check()

    def check(self) -> None:
        """Raise Cancelled if the job was cancelled (between stages, and every frame)."""
        if self.job.cancel.is_set():
            raise Cancelled()

    def write(self, frame) -> None:
        self.check()
        self.job.done += 1


class JobQueue:
    """Background exports. ``render(job, progress)`` is given by the server: it renders
    the clip of ``job`` into ``job.output``, every frame also to the ``progress`` sink,
    and calls ``progress.start(n)`` first. max_pending: jobs queued or running at once;
    keep: finished jobs remembered (older ones and their clips are dropped)."""

    def __init__(self, out_dir: Path, render: Callable[[Job, Progress], None], max_pending: int,
                 keep: int = 20) -> None:
        self.out_dir = out_dir
        self._render = render
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._wake = threading.Condition()  # guards _jobs, _queue, _closed
        self._closed = False
        self._max_pending = max_pending
        self._keep = keep
        self._worker = threading.Thread(target=self._work, name="photo3d-export", daemon=True)
        self._worker.start()

    def submit(self, image: str, options: dict) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], image=image, options=dict(options))
        job.output = self.out_dir / f"{job.id}.mp4"
        with self._wake:
            if self._closed:
                raise Photo3DError("the preview server is stopping")
            pending = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if pending >= self._max_pending:
                raise QueueFull(f"{pending} exports are queued or running, the most the preview takes; "
                                f"wait for one to finish or cancel one")
            self._jobs[job.id] = job
            self._queue.append(job)
            self._prune()
            self._wake.notify()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._wake:
            return self._jobs.get(job_id)

    def list(self) -> list[Job]:
        with self._wake:
            return list(self._jobs.values())

    def cancel(self, job: Job) -> None:
        """Cancel a queued job now, a running one at its next frame (its state turns
        "cancelled" then); Photo3DError when it has finished."""
        with self._wake:
            if job.state in FINISHED:
                raise Photo3DError(f"export job {job.id} is {job.state}; there is nothing to cancel")
            job.cancel.set()
            if job.state == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled")

    def _finish(self, job: Job, state: str, error: str | None = None) -> None:
        if state != "done" and job.output is not None:
            job.output.unlink(missing_ok=True)  # write_clip removed its partial file; no clip either
        job.state, job.error, job.finished = state, error, time.time()

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in FINISHED]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - self._keep)]:
            if job.output is not None:
                job.output.unlink(missing_ok=True)
            del self._jobs[job.id]

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
                job = self._queue.popleft()
                job.state = "running"
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            self._render(job, Progress(job))
            state, error = "done", None
        except Exception as e:
            if job.cancel.is_set():  # Cancelled, or what a stage made of it
                state, error = "cancelled", None
            elif isinstance(e, Photo3DError):
                state, error = "error", str(e)
            else:  # a bug: keep the traceback on the server's stderr
                traceback.print_exc()
                state, error = "error", f"internal error: {type(e).__name__}: {e}"
        with self._wake:
            self._finish(job, state, error)
            self._wake.notify_all()

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel every job; wait up to ``timeout`` s for the running one to stop (at its
        next frame: it then removes its partial file). The worker ends."""
        with self._wake:
            self._closed = True
            for job in self._queue:
                job.cancel.set()
                self._finish(job, "cancelled")
            self._queue.clear()
            for job in self._jobs.values():
                job.cancel.set()
            self._wake.notify_all()
        self._worker.join(timeout)
