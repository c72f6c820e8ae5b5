"""Worker processes for the symbolic graders, with a per-job time limit that always holds, and
`PoolGrader`, the base of the graders that send their expensive checks to them.

Each worker is `python -m mafine.grading._worker TASK SOFT_S LIMIT_S`, fed JSON lines on stdin and
answering one JSON line per job on stdout. Two limits guard every job:
- soft: the worker's own SIGALRM interrupts a job stuck in Python code (most of sympy) at
  75 % of the limit and answers "timeout"; the worker lives on;
- hard: the parent kills a worker whose job is still running at the limit (a C-level
  computation such as a huge integer power ignores signals), answers "timeout" for that job,
  starts a fresh worker, and re-sends the rest of the killed worker's chunk.
A worker that dies answers "worker crashed" for its job the same way. Workers start lazily on
the first job, die with their parent (stdin EOF, and PR_SET_PDEATHSIG on Linux), and are
killed by `close()` or at interpreter exit: nothing outlives or hangs the grader.

Jobs go out in chunks, one chunk per worker at a time, so a batch of N jobs costs about N/size
round trips and keeps every worker busy. `workers=0` runs jobs in this process instead (soft
limit only, and only on the main thread): for debugging and single-core profiling.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mafine.errors import MafineError
from mafine.grading.base import NO_ANSWER, Grader, Pair, Verdict, VerdictCache
from mafine.grading.settings import GradingConfig

Result = tuple[bool | None, str]  # equal (None: could not judge), and why

_STARTUP_LIMIT_S = 120.0
_SOFT_SHARE = 0.75


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class WorkerPool:
    """Runs `task` jobs (JSON-able) in `workers` processes; each job at most `timeout_s`."""

    def __init__(self, task: str, workers: int, timeout_s: float) -> None:
        self.task = task
        self.workers = max(1, workers)
        self.timeout_s = timeout_s
        self.restarts = 0
        self._procs: list[_Worker] = []
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _kill_all, self._procs)

    def run(self, jobs: Sequence[Any]) -> list[Result]:
        """One (equal, reason) per job, in order; never raises for a job's own failure."""
        if not jobs:
            return []
        with self._lock:
            return self._run(list(jobs))

    def close(self) -> None:
        with self._lock:
            _kill_all(self._procs)

    # --- scheduling ---------------------------------------------------------------------------

    def _run(self, jobs: list[Any]) -> list[Result]:
        results: list[Result | None] = [None] * len(jobs)
        size = max(1, min(64, len(jobs) // (self.workers * 4) or 1))
        queue: deque[list[int]] = deque(
            list(range(start, min(start + size, len(jobs)))) for start in range(0, len(jobs), size)
        )
        wanted = min(self.workers, len(queue))
        for proc in [proc for proc in self._procs if not proc.alive()]:
            proc.kill()
            self._procs.remove(proc)
        while len(self._procs) < wanted:
            self._procs.append(_Worker.start(self.task, self.timeout_s))
        active = self._procs[:wanted]
        selector = selectors.DefaultSelector()
        finished = False
        try:
            for proc in active:
                selector.register(proc.stdout_fd, selectors.EVENT_READ, proc)
            remaining = len(jobs)
            while remaining:
                for position, proc in enumerate(active):
                    if not proc.inflight and queue and proc.ready:
                        if not proc.alive():  # died while idle: replace it, lose nothing
                            _unregister(selector, proc.stdout_fd)
                            proc = self._replace(active, position, proc)
                            selector.register(proc.stdout_fd, selectors.EVENT_READ, proc)
                            continue
                        proc.send(queue.popleft(), jobs)
                events = selector.select(timeout=self._next_wait(active))
                for key, _ in events:
                    proc = key.data
                    for message in proc.read():
                        remaining -= self._accept(proc, message, results)
                    if proc.eof and proc.ready and not proc.inflight:
                        _unregister(selector, proc.stdout_fd)  # died idle: no busy loop
                now = time.monotonic()
                for position, proc in enumerate(active):
                    failure = proc.failure(now, self.timeout_s)
                    if failure is None:
                        continue
                    _unregister(selector, proc.stdout_fd)
                    proc.kill()
                    if not proc.ready:
                        message = f"grading worker ({self.task}) failed to start: {failure}"
                        raise MafineError(message)
                    stuck, rest = proc.inflight[0], proc.inflight[1:]
                    results[stuck] = (False, failure)
                    remaining -= 1
                    if rest:
                        queue.appendleft(rest)
                    fresh = self._replace(active, position, proc)
                    selector.register(fresh.stdout_fd, selectors.EVENT_READ, fresh)
            finished = True
        finally:
            selector.close()
            if not finished:  # interrupted: workers may still be busy with this batch
                _kill_all(self._procs)
        return [result if result is not None else (False, "not graded") for result in results]

    def _replace(self, active: list[_Worker], position: int, proc: _Worker) -> _Worker:
        proc.kill()
        fresh = _Worker.start(self.task, self.timeout_s)
        self.restarts += 1
        self._procs[self._procs.index(proc)] = fresh
        active[position] = fresh
        return fresh

    def _accept(self, proc: _Worker, message: Any, results: list[Result | None]) -> int:
        if message == "ready":
            proc.ready = True
            proc.started_job = time.monotonic()
            return 0
        index, equal, reason = message
        if proc.inflight and proc.inflight[0] == index:
            proc.inflight.pop(0)
        proc.started_job = time.monotonic()
        if results[index] is None:
            results[index] = (None if equal is None else bool(equal), str(reason))
            return 1
        return 0

    def _next_wait(self, active: list[_Worker]) -> float:
        now = time.monotonic()
        waits = [proc.deadline(self.timeout_s) - now for proc in active if proc.busy()]
        return max(0.005, min(waits)) if waits else 0.05


class _Worker:
    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self.popen = popen
        assert popen.stdout is not None and popen.stdin is not None
        self.stdout_fd = popen.stdout.fileno()
        os.set_blocking(self.stdout_fd, False)
        self.ready = False
        self.inflight: list[int] = []
        self.started = time.monotonic()
        self.started_job = self.started
        self.buffer = b""
        self.eof = False

    @classmethod
    def start(cls, task: str, limit_s: float) -> _Worker:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            part for part in (package_root, env.get("PYTHONPATH", "")) if part
        )
        popen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mafine.grading._worker",
                task,
                repr(limit_s * _SOFT_SHARE),
                repr(limit_s),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        return cls(popen)

    def alive(self) -> bool:
        return self.popen.poll() is None and not self.eof

    def busy(self) -> bool:
        return bool(self.inflight) or not self.ready

    def deadline(self, timeout_s: float) -> float:
        if not self.ready:
            return self.started + _STARTUP_LIMIT_S
        return self.started_job + timeout_s

    def failure(self, now: float, timeout_s: float) -> str | None:
        if self.eof or self.popen.poll() is not None:
            if not self.ready:
                return f"exited with code {self.popen.poll()}"
            if self.inflight:
                return f"worker crashed (exit code {self.popen.poll()})"
            return None  # died idle: replaced before its next chunk
        if self.busy() and now > self.deadline(timeout_s):
            return f"timeout after {timeout_s:g}s" if self.ready else "took too long to start"
        return None

    def send(self, chunk: list[int], jobs: list[Any]) -> None:
        self.inflight = list(chunk)
        self.started_job = time.monotonic()
        line = json.dumps([[index, jobs[index]] for index in chunk]) + "\n"
        assert self.popen.stdin is not None
        try:
            self.popen.stdin.write(line.encode())
            self.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            self.eof = True

    def read(self) -> list[Any]:
        try:
            data = os.read(self.stdout_fd, 1 << 16)
        except BlockingIOError:
            return []
        except OSError:
            data = b""
        if not data:
            self.eof = True
            return []
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def kill(self) -> None:
        _kill(self.popen)


def _unregister(selector: selectors.BaseSelector, fd: int) -> None:
    with contextlib.suppress(KeyError, ValueError, OSError):
        selector.unregister(fd)


def _kill(popen: subprocess.Popen[bytes]) -> None:
    if popen.poll() is None:
        with contextlib.suppress(OSError):
            popen.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        popen.wait(timeout=5)
    for stream in (popen.stdin, popen.stdout):
        try:
            if stream is not None:
                stream.close()
        except OSError:
            pass


def _kill_all(procs: list[_Worker]) -> None:
    for proc in procs:
        _kill(proc.popen)
    procs.clear()


class InlinePool:
    """The same interface, run in this process: a soft limit on the main thread, else none."""

    def __init__(self, task: str, timeout_s: float) -> None:
        from mafine.grading import _worker

        self.task = task
        self.timeout_s = timeout_s
        self.restarts = 0
        self._function = _worker.TASKS[task]
        self._worker = _worker

    def run(self, jobs: Sequence[Any]) -> list[Result]:
        guard = threading.current_thread() is threading.main_thread() and hasattr(
            signal, "setitimer"
        )
        return [
            self._worker.run_job(self._function, job, self.timeout_s if guard else None)
            for job in jobs
        ]

    def close(self) -> None:
        pass


class PoolGrader(Grader):
    """`prepare` settles a pair at once (a Verdict) or returns a job for the `task` workers.

    Verdicts are cached per (gold, answer); a batch sends each distinct job once. The pool
    starts on the first job that needs it and is closed by `close()` (or at exit).
    """

    task = ""

    def __init__(self, config: GradingConfig | None = None) -> None:
        super().__init__(config)
        self.max_answer_chars = self.config.max_answer_chars
        self.cache = VerdictCache(self.config.cache_size)
        self._pool: WorkerPool | InlinePool | None = None

    def prepare(self, gold: str, answer: str) -> Verdict | Any:
        raise NotImplementedError

    def equivalent_many(self, pairs: Sequence[Pair]) -> list[Verdict]:
        results: list[Verdict | None] = [None] * len(pairs)
        waiting: dict[tuple[str, str], list[int]] = {}
        jobs: dict[tuple[str, str], Any] = {}
        for index, (gold, answer) in enumerate(pairs):
            if answer is None:
                results[index] = NO_ANSWER
                continue
            key = (gold, answer)
            cached = self.cache.get(key)
            if cached is not None:
                results[index] = cached
            elif key in waiting:
                waiting[key].append(index)
            else:
                plan = self._prepare(gold, answer)
                if isinstance(plan, Verdict):
                    results[index] = plan
                    self.cache.put(key, plan)
                else:
                    waiting[key] = [index]
                    jobs[key] = plan
        if jobs:
            outcomes = self.pool().run(list(jobs.values()))
            for key, (equal, reason) in zip(jobs, outcomes, strict=True):
                verdict = Verdict(bool(equal), reason, judged=equal is not None)
                self.cache.put(key, verdict)
                for index in waiting[key]:
                    results[index] = verdict
        return [verdict if verdict is not None else NO_ANSWER for verdict in results]

    def _prepare(self, gold: str, answer: str) -> Verdict | Any:
        if len(answer) > self.max_answer_chars:
            return Verdict(False, f"answer longer than {self.max_answer_chars} characters")
        if len(gold) > self.max_answer_chars:
            return Verdict(gold == answer, "gold too long for a symbolic check; compared as text")
        return self.prepare(gold, answer)

    def pool(self) -> WorkerPool | InlinePool:
        if self._pool is None:
            workers = self.config.workers
            if workers == 0 or sys.platform == "win32":  # no select() on pipes there
                self._pool = InlinePool(self.task, self.config.timeout_s)
            else:
                count = workers if workers is not None else default_workers()
                self._pool = WorkerPool(self.task, count, self.config.timeout_s)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()

    def base_settings(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "timeout_s": self.config.timeout_s,
            "max_answer_chars": self.max_answer_chars,
        }
