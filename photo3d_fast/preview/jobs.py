"""Export jobs of the preview server: one clip rendered in the background with the normal
pipeline (``clip.write_clip``), its progress polled by the page.

A job goes queued -> running -> done | error. Jobs run one at a time on one worker
thread (a clip already uses every core or the GPU; two at once only slow both down).
Clips are written into the server's own temporary directory under a name the server
chose, so a download can never name an arbitrary file.
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import Photo3DError


@dataclass
class Job:
    """One export. state: queued | running | done | error; done/total: frames."""

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
        }


class _Progress:
    """A frame sink that only counts, so the page can show progress."""

    def __init__(self, job: Job) -> None:
        self.job = job

    def write(self, frame) -> None:
        self.job.done += 1


class JobQueue:
    """Background exports. ``render(job, progress, set_total)`` is given by the server: it
    renders the clip of ``job`` into ``job.output``, every frame also to the ``progress``
    sink, and calls ``set_total(n)`` first."""

    def __init__(self, out_dir: Path, render: Callable[[Job, object, Callable[[int], None]], None], keep: int = 20) -> None:
        self.out_dir = out_dir
        self._render = render
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="photo3d-export")
        self._keep = keep

    def submit(self, image: str, options: dict) -> Job:
        job = Job(id=uuid.uuid4().hex[:12], image=image, options=dict(options))
        job.output = self.out_dir / f"{job.id}.mp4"
        with self._lock:
            self._jobs[job.id] = job
            self._prune()
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if j.state in ("done", "error")]
        for job in sorted(finished, key=lambda j: j.created)[: max(0, len(finished) - self._keep)]:
            if job.output is not None:
                job.output.unlink(missing_ok=True)
            del self._jobs[job.id]

    def _run(self, job: Job) -> None:
        job.state = "running"

        def set_total(n: int) -> None:
            job.total = n

        try:
            self._render(job, _Progress(job), set_total)
            job.state = "done"
        except Photo3DError as e:
            job.error, job.state = str(e), "error"
        except Exception as e:  # a bug: keep the traceback on the server's stderr
            traceback.print_exc()
            job.error, job.state = f"internal error: {type(e).__name__}: {e}", "error"
        finally:
            job.finished = time.time()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
