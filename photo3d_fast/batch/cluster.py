"""Batch workers on a Ray cluster: the loop of ``worker`` in Ray actors (``num_gpus=1``
each on a GPU cluster), fed chunks of groups; outputs go to OUTDIR, which every node must
see.
"""

from __future__ import annotations

import math

from ..errors import Photo3DError
from .manifest import Job
from .worker import OnResult, failed, run_all


class _RayWorker:
    """A Ray actor: one warm worker (process, torch, engines) for the whole batch."""

    def __init__(self, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        if torch.cuda.is_available():
            torch.cuda.set_device(0)  # Ray sets CUDA_VISIBLE_DEVICES to the actor's GPU

    def run(self, groups: list[list[Job]]) -> list[dict]:
        out: list[dict] = []
        run_all(groups, out.append)
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

    def pids(self) -> None:
        """Unknown: the actors' processes are on the cluster's nodes. None lets the batch
        remove the partial files of every process that is dead on this machine."""
        return None

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
                        results = [failed(job, f"Ray worker failed: {type(e).__name__}: {str(e)[:500]}")
                                   for group in chunk for job in group]
                    for r in results:
                        on_result(r)
        finally:
            for actor in actors:
                ray.kill(actor)  # SIGKILL: batch.cli.run_batch sweeps the partial files afterwards
            if started:
                ray.shutdown()
