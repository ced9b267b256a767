"""Background work: one worker thread per process runs long whole-split computations one at a time.

A server (the Streamlit app) holds one :class:`Worker` (:func:`worker`), shared by every browser session:
a page asks for a result by its cache key and gets the :class:`Job` that computes it — the same job for
every session asking for the same key (deduplicated while queued, running or done) — and keeps drawing
what is ready meanwhile. Nothing here imports streamlit.

Public API::

    worker() -> Worker                                   # the process's one worker (started on first use)
    Worker.submit(key, fn, *, label="", size=None) -> Job  # fn(progress) -> result; same key: same job
    Worker.get(key) -> Job | None
    Worker.cancel(key) -> bool                           # cooperative: stops at the next progress report
    Worker.retry(key, fn, ...) -> Job                    # a failed or cancelled job, submitted afresh
    Worker.forget(key)                                   # drop a finished job (its result is released)
    Worker.estimate(size) -> float | None                # seconds for ``size`` units, from measured rates
    Job.status() -> JobStatus                            # a consistent snapshot (state, done/total, eta…)
    JobCancelled                                         # raised inside fn by progress() after a cancel

``fn`` receives ``progress(done, total, message)`` — the analysis session's progress callback — and must
call it between shards: that call raises :class:`JobCancelled` once the job is cancelled, so the shard loop
stops and whatever the job would have written to a cache afterwards is never written. A job that raises
keeps a one-line message (``Job.error``); the worker carries on with the next job. Times left are the
job's own measured rate (elapsed / done × remaining); before a job starts, :meth:`Worker.estimate` uses
the rate of earlier jobs of the same kind of work (seconds per unit of ``size``), or None before any.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Job", "JobCancelled", "JobStatus", "Worker", "one_line", "worker"]

STATES = ("queued", "running", "done", "failed", "cancelled")


class JobCancelled(Exception):
    """Raised by a job's progress callback once the job is cancelled (the shard loop stops there)."""


def one_line(err: BaseException) -> str:
    """An exception as one line: the library's own errors as they read, others with their type."""
    from causmatch.errors import CausMatchError

    text = " ".join(str(err).split()) or type(err).__name__
    return text if isinstance(err, CausMatchError) else f"{type(err).__name__}: {text}"


@dataclass(frozen=True)
class JobStatus:
    """A snapshot of a job, safe to read from any thread."""

    key: str
    label: str
    state: str                 # queued | running | done | failed | cancelled
    done: int
    total: int
    message: str
    elapsed: float             # seconds running (0 while queued)
    eta: float | None          # seconds left, from the measured rate; None before the first report
    error: str | None          # one line, for a failed job
    position: int              # jobs ahead of it in the queue (0 when running or finished)

    @property
    def finished(self) -> bool:
        return self.state in ("done", "failed", "cancelled")

    @property
    def fraction(self) -> float:
        return min(1.0, self.done / self.total) if self.total > 0 else 0.0


class Job:
    """One computation: ``fn(progress) -> result``, run once on the worker thread."""

    def __init__(self, key: str, fn: Callable[[Callable], Any], label: str = "", size: float | None = None,
                 kind: str = ""):
        self.key, self.fn, self.label, self.size, self.kind = key, fn, label or key, size, kind
        self.state = "queued"
        self.done = self.total = 0
        self.message = ""
        self.error: str | None = None
        self.result: Any = None
        self.started: float | None = None
        self.finished_at: float | None = None
        self._lock = threading.Lock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._worker: Worker | None = None

    # -------------------------------------------------------------- called on the worker thread
    def progress(self, done: int, total: int, message: str = "") -> None:
        """The callback handed to ``fn``: records progress; raises JobCancelled once cancelled."""
        if self._cancel.is_set():
            raise JobCancelled(self.key)
        with self._lock:
            self.done, self.total, self.message = int(done), int(total), str(message)

    # -------------------------------------------------------------- any thread
    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has finished (done, failed or cancelled); False on timeout."""
        return self._finished.wait(timeout)

    def status(self) -> JobStatus:
        with self._lock:
            now = time.monotonic()
            state, done, total, message, error = self.state, self.done, self.total, self.message, self.error
            elapsed = 0.0 if self.started is None else (self.finished_at or now) - self.started
        eta = None
        if state == "running" and done > 0 and total > 0:
            eta = max(0.0, elapsed / done * (total - done))
        elif state == "done":
            eta = 0.0
        # the worker's lock is never taken while holding the job's (the worker takes them the other way round)
        position = self._worker.position(self) if self._worker is not None and state == "queued" else 0
        return JobStatus(self.key, self.label, state, done, total, message, elapsed, eta, error, position)


class Worker:
    """Runs jobs one at a time, in submission order, on one daemon thread (started on first submit)."""

    def __init__(self, name: str = "causmatch-worker"):
        self.name = name
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._queue: deque[Job] = deque()
        self._jobs: dict[str, Job] = {}
        self._rates: dict[str, float] = {}   # kind -> seconds per unit of size, from finished jobs
        self._thread: threading.Thread | None = None
        self._stop = False

    # -------------------------------------------------------------- submitting and reading
    def submit(self, key: str, fn: Callable[[Callable], Any], *, label: str = "", size: float | None = None,
               kind: str = "") -> Job:
        """The job of ``key``: the existing one (queued, running, done, failed or cancelled — a failed or
        cancelled job is not repeated by asking again: :meth:`retry` does that), else a new one, queued."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None:
                return job
            return self._enqueue(Job(key, fn, label, size, kind))

    def retry(self, key: str, fn: Callable[[Callable], Any], *, label: str = "", size: float | None = None,
              kind: str = "") -> Job:
        """Submit ``key`` afresh when its job failed or was cancelled; otherwise the job as it is."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state not in ("failed", "cancelled"):
                return job
            return self._enqueue(Job(key, fn, label, size, kind))

    def _enqueue(self, job: Job) -> Job:  # under self._lock
        job._worker = self
        self._jobs[job.key] = job
        self._queue.append(job)
        if self._thread is None or not self._thread.is_alive():
            self._stop = False
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        self._wake.notify()
        return job

    def get(self, key: str) -> Job | None:
        with self._lock:
            return self._jobs.get(key)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def position(self, job: Job) -> int:
        """How many jobs are ahead of a queued ``job`` (a running one counts)."""
        with self._lock:
            queue = list(self._queue)
            running = any(j.state == "running" for j in self._jobs.values())
        return (queue.index(job) if job in queue else 0) + int(running)

    def cancel(self, key: str) -> bool:
        """Cancel ``key``'s job: a queued one never runs, a running one stops at its next progress report.
        False when there is no such job or it has already finished."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None or job.state in ("done", "failed", "cancelled"):
                return False
            job._cancel.set()
            if job.state == "queued":
                self._queue.remove(job)
                self._finish(job, "cancelled")
            return True

    def forget(self, key: str) -> None:
        """Drop a finished job (a later submit computes it again); a queued or running one is left alone."""
        with self._lock:
            job = self._jobs.get(key)
            if job is not None and job.state in ("done", "failed", "cancelled"):
                del self._jobs[key]

    def estimate(self, size: float, kind: str = "") -> float | None:
        """Seconds that ``size`` units of ``kind`` work should take, from the jobs measured so far."""
        with self._lock:
            rate = self._rates.get(kind)
        return None if rate is None else rate * float(size)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Cancel everything and stop the thread (tests; a server's worker lives as long as the server)."""
        with self._lock:
            self._stop = True
            keys = list(self._jobs)
            self._wake.notify_all()
        for key in keys:
            self.cancel(key)
        if self._thread is not None:
            self._thread.join(timeout)

    # -------------------------------------------------------------- the thread
    def _finish(self, job: Job, state: str, result: Any = None, error: str | None = None) -> None:
        with job._lock:
            job.state, job.result, job.error = state, result, error
            job.finished_at = time.monotonic()
            if job.started is None:
                job.started = job.finished_at
        job.fn = None  # the closure (and what it holds) is released
        job._finished.set()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._stop:
                    self._wake.wait()
                if self._stop and not self._queue:
                    return
                job = self._queue.popleft()
                with job._lock:
                    job.state, job.started = "running", time.monotonic()
            try:
                result = job.fn(job.progress)
            except JobCancelled:
                with self._lock:
                    self._finish(job, "cancelled")
                continue
            except BaseException as err:  # kept on the job, one line; the worker goes on
                try:
                    why = one_line(err)
                except Exception:  # the message itself must never stop the worker
                    why = type(err).__name__
                with self._lock:
                    self._finish(job, "cancelled" if job.cancelled else "failed",
                                 error=None if job.cancelled else why)
                continue
            with self._lock:
                if job.cancelled:  # cancelled after its last progress report: finished anyway, kept
                    job._cancel.clear()
                self._finish(job, "done", result=result)
                if job.size and job.size > 0:
                    took = max(job.finished_at - job.started, 1e-6) / job.size
                    old = self._rates.get(job.kind)
                    self._rates[job.kind] = took if old is None else 0.5 * (old + took)


_WORKER: Worker | None = None
_WORKER_LOCK = threading.Lock()


def worker() -> Worker:
    """The process's one worker, shared by every session of a server."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = Worker()
        return _WORKER
