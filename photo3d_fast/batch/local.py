"""Batch workers on this machine: one in this process, or worker processes
(multiprocessing, 'spawn'): one per GPU (pinned with CUDA_VISIBLE_DEVICES) or N on CPU
(torch threads = cores // N). Workers live for the whole batch, so their state stays
warm. A worker that dies fails only the clips it held; Ctrl-C stops every worker, whose
writers remove their partial files.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from ..errors import Photo3DError
from ..io import remove_own_partials
from .manifest import Job
from .worker import OnResult, failed, run_all, run_groups


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def parse_gpus(gpus: str | None) -> list[str] | None:
    """None -> all GPUs torch sees (None if there is none); "all"; "0,1". The numbers are
    torch's indices in this process, i.e. positions in its CUDA_VISIBLE_DEVICES if set."""
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


def worker_visible_devices(slots: list[str | None], parent_env: Mapping[str, str]) -> list[str | None]:
    """The CUDA_VISIBLE_DEVICES each worker gets: slot i's GPU is torch's index i in this
    process, so it maps to the i-th entry of the parent's CUDA_VISIBLE_DEVICES (as given:
    a number or a GPU/MIG UUID), under SLURM or Kubernetes the job's own GPUs; with the
    variable unset, the index itself. None (a CPU worker) stays None."""
    parent = parent_env.get("CUDA_VISIBLE_DEVICES")
    entries = None if parent is None else [e.strip() for e in parent.split(",") if e.strip()]
    out: list[str | None] = []
    for gpu in slots:
        if gpu is None or entries is None:
            out.append(gpu)
            continue
        i = int(gpu)
        if not 0 <= i < len(entries):
            raise Photo3DError(f"GPU {i} is not in this process's CUDA_VISIBLE_DEVICES={parent!r}")
        out.append(entries[i])
    return out


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


#: Seconds between two looks of a worker at its parent, and the most a worker whose parent
#: died takes to stop its writers before it exits anyway.
_PARENT_POLL_S = 0.5
_ORPHAN_GRACE_S = 30.0


def _exit_with_parent(parent_pid: int) -> None:
    """Stop this worker, as SIGTERM does, when the batch that started it dies (kill -9, a
    crash): an orphan would go on making clips and renaming them into OUTDIR without the
    batch's lock. On Linux the kernel sends SIGTERM at once (PR_SET_PDEATHSIG); everywhere
    a watchdog thread also polls the parent, which covers the parent dying before prctl
    and the platforms without it."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    import multiprocessing

    parent = multiprocessing.parent_process()

    def watch() -> None:
        while os.getppid() == parent_pid and (parent is None or parent.is_alive()):
            time.sleep(_PARENT_POLL_S)
        if os.name == "posix":
            os.kill(os.getpid(), signal.SIGTERM)  # interrupts a blocking call too
        else:
            import _thread

            _thread.interrupt_main()
        time.sleep(_ORPHAN_GRACE_S)
        os._exit(INTERRUPTED_EXIT)  # the main thread is stuck; its partial files go at the next run

    threading.Thread(target=watch, name="photo3d-parent-watch", daemon=True).start()


def _worker_main(slot: int, gpu: str | None, threads: int, tasks, results, parent_pid: int | None = None) -> None:
    """Entry point of a worker process: take groups from ``tasks`` until None."""
    signal.signal(signal.SIGINT, _interrupt_once)
    signal.signal(signal.SIGTERM, _interrupt_once)
    if parent_pid is not None:
        _exit_with_parent(parent_pid)
    import torch

    torch.set_num_threads(threads)
    if gpu is not None and torch.cuda.is_available():
        torch.cuda.set_device(0)  # CUDA_VISIBLE_DEVICES shows this worker only its GPU

    written: set[Path] = set()  # folders this worker's writers write into

    def next_group():
        item = tasks.get()
        if item is None:
            return None
        results.put(("take", slot, item[0]))
        for job in item[1]:
            written.add(Path(job.output).parent)
            if job.options.get("frames"):
                written.add(Path(job.options["frames"]))
        return item[1]

    try:
        run_groups(next_group, lambda r: results.put(("result", slot, r)))
        results.put(("done", slot, None))
    except KeyboardInterrupt:
        # A stop can land between a writer creating its temporary file and registering it
        # for removal; whatever this process left there goes now.
        for folder in written:
            remove_own_partials(folder)
        # Tell the parent this was a stop, not a crash: Ctrl-C reaches the whole process
        # group, and a worker may see it before the parent does.
        sys.exit(INTERRUPTED_EXIT)


class LocalRunner:
    """Workers on this machine: ``slots`` lists the GPU of each worker (None: CPU), as
    torch's index in this process (see ``worker_visible_devices``)."""

    def __init__(self, slots: list[str | None], max_restarts: int = 3) -> None:
        self.slots = slots
        self.visible = worker_visible_devices(slots, os.environ)
        self.threads = max(1, _cores() // len(slots))
        self.max_restarts = max_restarts
        self._pids: set[int] = set()

    def pids(self) -> set[int]:
        """The worker processes this runner started (this process's own partial files are
        removed by its writers)."""
        return set(self._pids)

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
        run_all(groups, on_result)

    def _start(self, ctx, slot: int, tasks, results):
        gpu = self.slots[slot]
        visible = self.visible[slot]
        saved = os.environ.get("CUDA_VISIBLE_DEVICES")
        if gpu is not None:
            # a spawned child reads it before importing torch: the parent's entry, not the index
            os.environ["CUDA_VISIBLE_DEVICES"] = visible
        try:
            p = ctx.Process(target=_worker_main, args=(slot, gpu, self.threads, tasks, results, os.getpid()),
                            name=f"photo3d-worker-{slot}", daemon=True)
            p.start()
            if p.pid is not None:
                self._pids.add(p.pid)
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
                                    on_result(failed(job, f"worker process died (exit code {p.exitcode}) "
                                                          "while making this clip"))
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
