"""The frame sink every writer is: a bounded queue into a writer thread, pinned staging of
GPU frames, atomic output; and ``FfmpegSink``, bytes piped into an ffmpeg process.

Every sink takes (H, W, 3) uint8 RGB frames (numpy arrays or torch tensors on any device)
through ``write`` and hands them to a writer thread through a bounded queue, so the caller
renders frame n+1 while frame n is encoded. GPU frames reach the host through pinned
buffers with non-blocking copies (the writer thread waits on each copy's event). Output is
atomic: it is written under a temporary name and renamed only when complete; every failure
path (an exception in the caller, KeyboardInterrupt, the encoder dying, a bad frame, a full
disk) kills and reaps the encoder process and removes what was written.
"""

from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Photo3DError
from .formats import OutputPlan

_STOP = None  # queue sentinel: no more frames


class _Staged:
    """A frame in a pinned host buffer, ready once its device->host copy's event fires."""

    __slots__ = ("array", "event", "buffer", "pool")

    def __init__(self, array: np.ndarray, event: Any, buffer: Any, pool: "PinnedStaging") -> None:
        self.array, self.event, self.buffer, self.pool = array, event, buffer, pool

    def wait(self) -> np.ndarray:
        if self.event is not None:
            self.event.synchronize()
        return self.array

    def release(self) -> None:
        self.pool.give_back(self.buffer)


class PinnedStaging:
    """Page-locked host buffers for device->host frame copies, recycled between frames.

    ``stage(tensor)`` takes a free buffer (allocating up to ``count``, then waiting for the
    writer to release one), enqueues a non-blocking copy on the tensor's current stream and
    records an event after it. The caller returns at once and may render the next frame:
    the copy is ordered before any later work on that stream, so reusing the frame's own
    buffer is safe. Pinned memory is what makes the copy asynchronous (a pageable copy
    blocks the caller) and runs it at full PCIe bandwidth. pin=False (CPU-only machines,
    tests) keeps the same logic with ordinary memory.
    """

    def __init__(self, count: int, pin: bool = True, check: Any = None) -> None:
        self.count, self.pin, self.allocated = count, pin, 0
        self._free: queue.Queue = queue.Queue()
        self._check = check or (lambda: None)  # raises if the writer thread failed

    def stage(self, tensor: Any) -> _Staged:
        torch = sys.modules["torch"]
        buffer = self._take(tuple(tensor.shape), tensor.dtype)
        buffer.copy_(tensor, non_blocking=True)
        event = None
        if tensor.device.type == "cuda":
            event = torch.cuda.Event()
            event.record(torch.cuda.current_stream(tensor.device))
        return _Staged(buffer.numpy(), event, buffer, self)

    def give_back(self, buffer: Any) -> None:
        self._free.put(buffer)

    def _take(self, shape: tuple, dtype: Any) -> Any:
        torch = sys.modules["torch"]
        with contextlib.suppress(queue.Empty):
            return self._free.get_nowait()
        if self.allocated < self.count:
            self.allocated += 1
            return torch.empty(shape, dtype=dtype, pin_memory=self.pin)
        while True:  # all buffers are queued or being encoded: wait for one
            try:
                return self._free.get(timeout=0.5)
            except queue.Empty:
                self._check()


class FrameSink:
    """Shared machinery: frame checks, host copy, writer thread, context manager.

    Subclasses set _target and implement _consume(item) (runs in the writer thread),
    _finish() -> Path and _cleanup() (removes partial output; safe to call twice); they
    may override _stage(frame) to turn a checked frame into what the queue carries.
    """

    def __init__(self, size: tuple[int, int] | None, queue_size: int) -> None:
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.n_frames = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))
        self._error: BaseException | None = None
        self._state = "open"  # open -> closed | aborted
        self._result: Path | None = None
        self._staging: PinnedStaging | None = None
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)

    # -- caller side ---------------------------------------------------------------
    def write(self, frame: Any) -> None:
        """Queue one frame: (H, W, 3) uint8 RGB, numpy array or torch tensor on any device.

        Blocks while `queue_size` frames wait. On any error (bad frame, the writer thread
        failed) the writer is aborted, nothing is left on disk, and Photo3DError is raised.
        """
        if self._state != "open":
            raise Photo3DError(f"write() on a {self._state} {type(self).__name__}")
        try:
            self._raise_thread_error()
            item = self._stage(self._check_frame(frame))
            while True:  # a timeout so a dead writer thread cannot block us forever
                try:
                    self._queue.put(item, timeout=0.5)
                    break
                except queue.Full:
                    self._raise_thread_error()
            self.n_frames += 1
        except BaseException:
            self.abort()
            raise

    def _check_frame(self, frame: Any) -> Any:
        """The frame as a numpy array or torch tensor, after checking its shape and dtype."""
        torch = sys.modules.get("torch")  # a tensor implies torch is imported; never import it here
        if torch is not None and isinstance(frame, torch.Tensor):
            shape, dtype, is_u8 = tuple(frame.shape), str(frame.dtype), frame.dtype == torch.uint8
        else:
            frame = np.asarray(frame)
            shape, dtype, is_u8 = frame.shape, str(frame.dtype), frame.dtype == np.uint8
        if self.size is None and len(shape) == 3:
            self.size = (shape[1], shape[0])  # PNG sequences may take the size from frame 0
        want = (self.size[1], self.size[0], 3) if self.size else "(H, W, 3)"
        if shape != want or not is_u8:
            raise Photo3DError(f"frame {self.n_frames} is {shape} {dtype}, expected {want} uint8 RGB")
        return frame

    def _stage(self, frame: Any) -> Any:
        """A host copy the caller cannot change any more: it may reuse its buffer for the
        next frame while this one waits in the queue."""
        if isinstance(frame, np.ndarray):
            return np.array(frame, order="C", copy=True)
        frame = frame.detach()
        if frame.device.type == "cpu":
            return frame.numpy().copy()
        if self._staging is None:
            torch = sys.modules["torch"]
            pin = frame.device.type == "cuda" and torch.cuda.is_available()
            # queue_size frames waiting + one being encoded + one being copied
            self._staging = PinnedStaging(self._queue.maxsize + 2, pin, self._raise_thread_error)
        return self._staging.stage(frame)

    def close(self) -> Path:
        """Flush the queue, finalise the output and return its final path."""
        if self._state == "closed":
            return self._result  # type: ignore[return-value]
        if self._state == "aborted":
            raise Photo3DError(f"close() on an aborted {type(self).__name__}")
        try:
            if self.n_frames == 0:
                raise Photo3DError(f"no frames were written to {self._target}; nothing was saved")
            self._flush()
            self._queue.put(_STOP)
            self._thread.join()
            self._raise_thread_error()
            self._result = self._finish()
            self._state = "closed"
            return self._result
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Stop now and remove all partial output. Idempotent; safe from any state but closed."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._stop_backend()
        with contextlib.suppress(queue.Empty):  # drop queued frames so _STOP is next and fits
            while True:
                self._queue.get_nowait()
        self._queue.put(_STOP)
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close() if exc_type is None else self.abort()

    # -- writer thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if self._error is None and self._state == "open":
                    try:
                        self._consume(item.wait() if isinstance(item, _Staged) else item)
                    except BaseException as e:  # kept for the caller; we go on draining the queue
                        self._error = e
            finally:
                if isinstance(item, _Staged):
                    item.release()

    def _raise_thread_error(self) -> None:
        if self._error is not None:
            raise self._describe(self._error) from self._error

    def _describe(self, error: BaseException) -> Photo3DError:
        return Photo3DError(f"writing {self._target} failed: {error}")

    def _flush(self) -> None:
        """Queue what an encoder still holds (NVENC's last packets) before _STOP."""

    def _stop_backend(self) -> None:
        pass


class FfmpegSink(FrameSink):
    """Bytes piped into an ffmpeg process that writes ``path`` under a temporary name.

    Subclasses give _command() (the ffmpeg argv, ending with the temporary path) and
    _label (names the encoder in error messages). On success the file is renamed to
    ``path``; on any failure ffmpeg is killed and reaped and the temporary file removed.
    """

    _label = "ffmpeg"
    #: Called with the temporary file once ffmpeg has finished it, before it is renamed
    #: (``encode.spherical.inject_vr180``); an exception aborts the output.
    finalize: Callable[[Path], None] | None = None

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int],
                 queue_size: int, plan: OutputPlan) -> None:
        super().__init__(size, queue_size)
        self.path = self._target = Path(path).absolute()
        self.plan = plan
        self.fps = fps
        w, h = self.size  # type: ignore[misc]
        if not (0 < fps <= 1000):
            raise Photo3DError(f"fps {fps} must be a positive number of frames per second")
        if w < 2 or h < 2:
            raise Photo3DError(f"frame size {w}x{h} is too small; width and height must be >= 2")
        if not self.path.parent.is_dir():
            what = "is not a directory" if self.path.parent.exists() else "does not exist"
            raise Photo3DError(f"output directory {self.path.parent} {what}; create it or "
                               f"choose another output path")
        # Reserve the temporary name ourselves: this proves the directory is writable before
        # ffmpeg starts. The real extension stays last so the name still says what it is.
        suffix = self.path.suffix.lower()
        self._tmp = self.path.with_name(f".{self.path.name}.partial-{os.getpid()}{suffix}")
        try:
            os.close(os.open(self._tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o644))
        except OSError as e:
            raise Photo3DError(f"cannot write to {self.path.parent} ({e.strerror}); check its "
                               f"permissions or choose another output directory") from e
        self._stderr = tempfile.TemporaryFile()  # a file, not a pipe: a chatty ffmpeg can never block
        try:
            self._proc = subprocess.Popen(
                self._command(), stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                stderr=self._stderr, bufsize=0,
                # Own process group: Ctrl-C reaches only us, and we decide to kill ffmpeg,
                # instead of ffmpeg finishing a truncated file on SIGINT.
                start_new_session=True)
        except (OSError, RuntimeError) as e:  # RuntimeError: imageio-ffmpeg found no binary
            self._cleanup()
            raise Photo3DError(f"could not start ffmpeg: {e}") from e
        except BaseException:
            self._cleanup()
            raise
        self._thread.start()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _container_args(self) -> list[str]:
        args = []
        if self.plan.codec == "hevc" and self.plan.suffix in (".mp4", ".mov"):
            args += ["-tag:v", "hvc1"]  # QuickTime/Safari play HEVC only when tagged hvc1
        if self.plan.suffix in (".mp4", ".mov"):
            args += ["-movflags", "+faststart"]  # index first: playback starts before download ends
        if self.plan.suffix in (".gif", ".webp"):
            args += ["-loop", "0"]
        return args + ["-f", self.plan.muxer, str(self._tmp)]

    def _consume(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:  # raw unbuffered pipe: a write may be partial (e.g. after a signal)
            view = view[self._proc.stdin.write(view):]

    def _ffmpeg_message(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0, os.SEEK_END)
        self._stderr.seek(max(0, self._stderr.tell() - 4000))
        lines = self._stderr.read().decode("utf-8", "replace").splitlines()
        return "".join(f": {line.strip()}" for line in lines[-6:] if line.strip())

    def _describe(self, error: BaseException) -> Photo3DError:
        try:  # ffmpeg is exiting when the pipe breaks; give it a moment so its message is complete
            rc = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            rc = None
        how = (f"was killed by signal {-rc}" if rc is not None and rc < 0 else
               f"exited with code {rc}" if rc is not None else f"stopped reading frames ({error})")
        return Photo3DError(f"{self._label} {how} while encoding {self.path.name} "
                            f"after {self.n_frames} frames{self._ffmpeg_message()}; nothing was saved")

    def _finish(self) -> Path:
        self._proc.stdin.close()
        rc = self._proc.wait()
        if rc != 0:
            raise self._describe(RuntimeError(f"exit code {rc}"))
        if self.finalize is not None:
            self.finalize(self._tmp)
        try:
            os.replace(self._tmp, self.path)
        except OSError as e:  # the output became a directory, or lost its permission, meanwhile
            raise Photo3DError(f"cannot write {self.path}: {e.strerror or e}; nothing was saved") from None
        self._stderr.close()
        return self.path

    def _stop_backend(self) -> None:
        proc = getattr(self, "_proc", None)
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()  # always reap: no zombie
            with contextlib.suppress(OSError):  # EPIPE on close: ffmpeg is already gone
                proc.stdin.close()

    def _cleanup(self) -> None:
        self._tmp.unlink(missing_ok=True)
        if hasattr(self, "_stderr"):
            self._stderr.close()
