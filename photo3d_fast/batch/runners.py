"""Batch execution: where the jobs of ``batch.plan_batch`` run.

- ``run_groups``: the loop of one worker. A prefetch thread loads the next photo and
  computes its depth (``prepare_photo``) while the current photo's clips are rendered and
  encoded; a group's depth is computed once and shared by all its clips.
- ``LocalRunner``: one worker in this process, or worker processes (multiprocessing,
  'spawn'): one per GPU (pinned with CUDA_VISIBLE_DEVICES) or N on CPU (torch threads =
  cores // N). Workers live for the whole batch, so their state stays warm. A worker that
  dies fails only the clips it held; Ctrl-C stops every worker, whose writers remove
  their partial files.
- ``RayRunner``: the same loop in Ray actors (``num_gpus=1`` each on a GPU cluster),
  fed chunks of groups; outputs go to OUTDIR, which every node must see.

Every runner calls ``on_result(result)`` in the calling process, once per job, with a
dict: index, status ("ok" or "failed"), seconds {depth, render_encode}, frames, error,
depth_reused.
"""

from __future__ import annotations

import math
import os
import queue
import signal
import sys
import threading
import time
import traceback
from contextlib import ExitStack
from pathlib import Path
from typing import Callable, Iterable

from ..encode.writers import PngFrameWriter, VideoWriter
from ..errors import Photo3DError
from ..io import load_image
from ..pipeline import ClipOptions, engine_options, output_size, prepare_photo, render_into
from .manifest import Job, record_finished

OnResult = Callable[[dict], None]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _describe_error(e: BaseException) -> str:
    if isinstance(e, Photo3DError):
        return str(e)
    # A bug, not bad input: keep the traceback in the report, but go on with the batch.
    return f"internal error: {type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"


# -- one worker --------------------------------------------------------------------------

def _prepare(group: list[Job]):
    """(prepared photo or None, error or None, seconds) for a group: load + depth."""

    t0 = time.perf_counter()
    try:
        first = group[0]
        opts = ClipOptions.from_kwargs(**first.options)
        photo = load_image(first.image)
        prepared = prepare_photo(photo, Path(first.image).name, opts.scene, opts.depth,
                                 engine_options(opts.engine, opts.render))
        return prepared, None, time.perf_counter() - t0
    except Exception as e:
        return None, _describe_error(e), time.perf_counter() - t0


def _render_job(job: Job, prepared, error: str | None, depth_s: float, reused: bool) -> dict:

    result = {"index": job.index, "status": "failed", "frames": 0, "error": error, "depth_reused": reused,
              "seconds": {"depth": round(depth_s, 4), "render_encode": 0.0}}
    if error is not None:
        return result
    t0 = time.perf_counter()
    try:
        opts = ClipOptions.from_kwargs(**job.options)
        out = Path(job.output)
        out.parent.mkdir(parents=True, exist_ok=True)
        size = output_size(prepared, opts)
        with ExitStack() as stack:
            sinks = [stack.enter_context(VideoWriter(out, opts.path.fps, size, opts.encode))]
            if opts.frames_dir:
                sinks.append(stack.enter_context(PngFrameWriter(opts.frames_dir, size)))
            frames = render_into(prepared, opts, sinks, quiet=True)
            for sink in sinks[1:]:
                sink.close()
            sinks[0].close()
        record_finished(job)
        result.update(status="ok", frames=frames)
    except Exception as e:
        result["error"] = _describe_error(e)
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


# -- local: this process or worker processes ---------------------------------------------

def _parse_gpus(gpus: str | None) -> list[str] | None:
    """None -> all GPUs torch sees (None if there is none); "all"; "0,1"."""
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus is None:
        return [str(i) for i in range(count)] or None
    if count == 0:
        raise Photo3DError(f"--gpus {gpus}: torch sees no CUDA GPU (torch {torch.__version__}); leave --gpus out to use the CPU")
    if gpus.strip().lower() == "all":
        return [str(i) for i in range(count)]
    try:
        ids = [int(g) for g in gpus.split(",") if g.strip()]
    except ValueError:
        raise Photo3DError(f"--gpus {gpus!r} must be 'all' or GPU numbers like 0,1") from None
    bad = [i for i in ids if not 0 <= i < count]
    if bad or not ids or len(set(ids)) != len(ids):
        raise Photo3DError(f"--gpus {gpus!r}: this machine has GPUs 0..{count - 1}, each given once")
    return [str(i) for i in ids]


_stopping = False
#: Exit code of a worker stopped by SIGINT/SIGTERM (as a shell reports Ctrl-C).
INTERRUPTED_EXIT = 130


def _interrupt_once(signum, frame) -> None:
    # The first SIGINT/SIGTERM stops the worker; later ones (Ctrl-C reaches the whole
    # process group, then the parent sends SIGTERM) must not interrupt the writers while
    # they remove their partial files. A flag, not SIG_IGN: changing the disposition here
    # races with a pending signal ("Signal 15 ignored due to race condition").
    global _stopping
    if not _stopping:
        _stopping = True
        raise KeyboardInterrupt


def _worker_main(slot: int, gpu: str | None, threads: int, tasks, results) -> None:
    """Entry point of a worker process: take groups from ``tasks`` until None."""
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    import torch

    torch.set_num_threads(threads)
    if gpu is not None and torch.cuda.is_available():
        torch.cuda.set_device(0)  # CUDA_VISIBLE_DEVICES shows this worker only its GPU

    def next_group():
        item = tasks.get()
        if item is None:
            return None
        results.put(("take", slot, item[0]))
        return item[1]

    try:
        run_groups(next_group, lambda r: results.put(("result", slot, r)))
        results.put(("done", slot, None))
    except KeyboardInterrupt:
        # Tell the parent this was a stop, not a crash: Ctrl-C reaches the whole process
        # group, and a worker may see it before the parent does.
        sys.exit(INTERRUPTED_EXIT)


class LocalRunner:
    """Workers on this machine: ``slots`` lists the GPU of each worker (None: CPU)."""

    def __init__(self, slots: list[str | None], max_restarts: int = 3) -> None:
        self.slots = slots
        self.threads = max(1, _cores() // len(slots))
        self.max_restarts = max_restarts

    def describe(self) -> str:
        if self.slots[0] is None:
            return f"{len(self.slots)} CPU worker{'s' if len(self.slots) > 1 else ''}, {self.threads} torch threads each"
        return f"{len(self.slots)} GPU worker{'s' if len(self.slots) > 1 else ''} on GPU {','.join(sorted(set(self.slots)))}"

    def run(self, groups: list[list[Job]], on_result: OnResult) -> None:
        if not groups:
            return
        if len(self.slots) == 1:
            return self._run_here(groups, on_result)
        return self._run_processes(groups, on_result)

    def _run_here(self, groups, on_result) -> None:
        """One worker: this process, no spawn cost; the engines stay warm in it."""
        gpu = self.slots[0]
        if gpu is not None:
            import torch

            torch.cuda.set_device(int(gpu))
        it = iter(groups)
        run_groups(lambda: next(it, None), on_result)

    def _start(self, ctx, slot: int, tasks, results):
        gpu = self.slots[slot]
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpu is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = gpu  # a spawned child reads it before importing torch
        try:
            p = ctx.Process(target=_worker_main, args=(slot, gpu, self.threads, tasks, results),
                            name=f"photo3d-worker-{slot}", daemon=True)
            p.start()
        finally:
            if gpu is not None:
                if saved is None:
                    os.environ.pop("CUDA_VISIBLE_DEVICES", None)
                else:
                    os.environ["CUDA_VISIBLE_DEVICES"] = saved
        return p

    def _run_processes(self, groups, on_result) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        tasks, results = ctx.Queue(), ctx.Queue()
        for gi, group in enumerate(groups):
            tasks.put((gi, group))
        for _ in self.slots:
            tasks.put(None)
        procs = {slot: self._start(ctx, slot, tasks, results) for slot in range(len(self.slots))}
        taken: dict[int, list[int]] = {slot: [] for slot in procs}
        got: set[int] = set()
        n_jobs = sum(len(g) for g in groups)
        finished: set[int] = set()
        restarts = 0
        try:
            while len(got) < n_jobs and len(finished) < len(procs):
                try:
                    kind, slot, payload = results.get(timeout=0.5)
                except queue.Empty:
                    for slot, p in list(procs.items()):
                        if slot in finished or p.is_alive():
                            continue
                        p.join()
                        if p.exitcode in (INTERRUPTED_EXIT, -signal.SIGINT, -signal.SIGTERM):
                            # Ctrl-C reached the worker before this process noticed it:
                            # the batch is being stopped, not a clip failing.
                            raise KeyboardInterrupt
                        # Died without saying "done": fail what it held, replace it.
                        for gi in taken[slot]:
                            for job in groups[gi]:
                                if job.index not in got:
                                    got.add(job.index)
                                    on_result({"index": job.index, "status": "failed", "frames": 0,
                                               "error": f"worker process died (exit code {p.exitcode}) while making this clip",
                                               "seconds": {"depth": 0.0, "render_encode": 0.0}, "depth_reused": False})
                        taken[slot] = []
                        if restarts < self.max_restarts:
                            restarts += 1
                            tasks.put(None)  # its sentinel went with it if it had taken it; one more is harmless
                            procs[slot] = self._start(ctx, slot, tasks, results)
                        else:
                            finished.add(slot)
                    continue
                if kind == "take":
                    taken[slot].append(payload)
                elif kind == "result":
                    if payload["index"] not in got:
                        got.add(payload["index"])
                        on_result(payload)
                elif kind == "done":
                    finished.add(slot)
            for p in procs.values():
                p.join(timeout=30)
        finally:
            self._stop(procs.values())
            try:  # clips finished while we stopped: report them as made, not interrupted
                while True:
                    kind, slot, payload = results.get(timeout=0.05)
                    if kind == "result" and payload["index"] not in got:
                        got.add(payload["index"])
                        on_result(payload)
            except Exception:  # Empty, or a message cut short by a killed worker
                pass
            tasks.cancel_join_thread()
            results.cancel_join_thread()
            tasks.close()
            results.close()

    @staticmethod
    def _stop(procs: Iterable) -> None:
        """Terminate and reap every worker still running (no zombie): SIGTERM lets its
        writers remove their partial files; SIGKILL after a grace period."""
        procs = [p for p in procs if p.pid is not None]
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        try:
            for p in procs:
                if p.is_alive():
                    p.terminate()
            deadline = time.monotonic() + 15
            for p in procs:
                p.join(timeout=max(0.1, deadline - time.monotonic()))
                if p.is_alive():
                    p.kill()
                    p.join()
        finally:
            signal.signal(signal.SIGINT, old)


# -- Ray ---------------------------------------------------------------------------------

class _RayWorker:
    """A Ray actor: one warm worker (process, torch, engines) for the whole batch."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        if torch.cuda.is_available():
            torch.cuda.set_device(0)  # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU

    def run(self, groups: list[list[Job]]) -> list[dict]:
        out: list[dict] = []
        it = iter(groups)
        run_groups(lambda: next(it, None), out.append)
        return out


class RayRunner:
    """The jobs as calls on Ray actors: one per GPU of the cluster (num_gpus=1 each, times
    --workers), or --workers (default: one per node) CPU actors. Groups go out in chunks so
    that depth overlaps rendering inside an actor and the load stays balanced."""

    def __init__(self, address: str, workers: int | None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise Photo3DError("--ray needs Ray, which is not installed: pip install 'photo3d_fast[cluster]'") from None
        self.address, self.workers = address, workers
        self._what = f"Ray ({address})"

    def describe(self) -> str:
        return self._what

    def run(self, groups: list[list[Job]], on_result: OnResult) -> None:
        import ray

        if not groups:
            return
        started = not ray.is_initialized()
        if started:
            try:
                if self.address == "local":
                    ray.init(include_dashboard=False, log_to_driver=False)
                else:
                    ray.init(address=self.address, log_to_driver=False)
            except Exception as e:  # ConnectionError and friends: no cluster at that address
                raise Photo3DError(f"--ray {self.address}: cannot connect to a Ray cluster: {e}") from None
        actors: list = []
        try:
            res = ray.cluster_resources()
            n_gpu, n_cpu = int(res.get("GPU", 0)), max(1, int(res.get("CPU", 1)))
            per = self.workers or 1
            if n_gpu:
                n, options = n_gpu * per, {"num_gpus": 1.0 / per, "num_cpus": 1}
                threads = max(1, n_cpu // n)
            else:
                nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
                n = self.workers or max(1, nodes)
                threads = max(1, n_cpu // n)
                options = {"num_cpus": threads}
            self._what = f"Ray ({self.address}): {n} actor{'s' if n > 1 else ''}" + (
                f", {options['num_gpus']:g} GPU each" if n_gpu else f", {threads} CPU each")
            Worker = ray.remote(max_restarts=2, **options)(_RayWorker)
            actors = [Worker.remote(threads) for _ in range(n)]
            size = max(1, min(8, math.ceil(len(groups) / (4 * n))))
            chunks = iter([groups[i:i + size] for i in range(0, len(groups), size)])
            free, pending = list(actors), {}
            while True:
                while free and (chunk := next(chunks, None)) is not None:
                    actor = free.pop()
                    pending[actor.run.remote(chunk)] = (actor, chunk)
                if not pending:
                    break
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    actor, chunk = pending.pop(ref)
                    free.append(actor)
                    try:
                        results = ray.get(ref)
                    except Exception as e:  # the actor died (OOM, node lost): fail its chunk only
                        results = [{"index": job.index, "status": "failed", "frames": 0, "depth_reused": False,
                                    "error": f"Ray worker failed: {type(e).__name__}: {str(e)[:500]}",
                                    "seconds": {"depth": 0.0, "render_encode": 0.0}}
                                   for group in chunk for job in group]
                    for r in results:
                        on_result(r)
        finally:
            for actor in actors:
                ray.kill(actor)  # SIGKILL: batch.cli.run_batch sweeps the partial files afterwards
            if started:
                ray.shutdown()


def make_runner(workers: int | None = None, gpus: str | None = None, ray: str | None = None):
    """The runner for the command-line choices; Photo3DError for a bad combination."""
    if ray:
        if gpus:
            raise Photo3DError("--gpus is for this machine; with --ray every GPU of the cluster is used")
        return RayRunner(ray, workers)
    slots = _parse_gpus(gpus)
    if slots is None:
        return LocalRunner([None] * (workers or 1))
    return LocalRunner([g for g in slots for _ in range(workers or 1)])
