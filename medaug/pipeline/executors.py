"""Where series tasks run: this process, a local process pool, or a Dask cluster.

Each executor yields outcomes as tasks finish, in any order; the run orders
them by series index, so the dataset never depends on the executor.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from types import FrameType
from typing import Any

from medaug.pipeline.context import RunContext
from medaug.pipeline.task import (
    SeriesOutcome,
    SeriesTask,
    process_series,
    record_series,
    run_series,
)


def _init_worker(threads: int) -> None:
    # Ctrl-C reaches the whole process group: only the parent handles it (it lets the
    # series in progress finish, then stops), so workers ignore it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Each worker gets its share of the cores for the resampling kernel, so N workers do
    # not oversubscribe the machine. Only the thread count in use is lowered: changing
    # NUMBA_NUM_THREADS here would clash with numba's launched pool when a kernel compiles.
    import numba

    launched = int(getattr(numba.config, "NUMBA_NUM_THREADS"))  # the pool size numba started with
    numba.set_num_threads(min(threads, launched))


@contextmanager
def _started_ignoring_sigint() -> Iterator[None]:
    """Processes started meanwhile begin with SIGINT ignored; a Ctrl-C to this process waits.

    A spawned worker spends its first seconds importing, before :func:`_init_worker` runs:
    a Ctrl-C to the process group then would kill it and break the pool. An ignored SIGINT
    is the one disposition a new program inherits (and Python keeps it). Blocked here
    meanwhile, a Ctrl-C sent to this process stays pending (Linux never discards a blocked
    signal) and reaches its own handler when the block ends; one that another of its
    threads takes meanwhile is lost, hence a window kept to the workers' start.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def local_pool(workers: int) -> "LocalPool":
    """An executor running tasks on ``workers`` local processes (1 = this process)."""
    return LocalPool(workers)


class LocalPool:
    """Run series tasks on a local process pool.

    Parameters
    ----------
    workers : int
        Number of worker processes; 1 runs everything in this process.
    """

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers

    def __call__(self, tasks: Iterable[SeriesTask], ctx: RunContext) -> Iterator[SeriesOutcome]:
        """Yield each task's outcome as it finishes (tasks are drawn only as workers free up).

        A first Ctrl-C lets the series in progress finish and be recorded, then stops
        the run with :class:`KeyboardInterrupt`; a second one stops at once.
        """
        with StopRequest() as stop:
            if self.workers == 1:
                queue = iter(tasks)
                while not stop.requested:
                    task = next(queue, None)
                    if task is None:
                        return
                    yield run_series(task, ctx)
                raise KeyboardInterrupt
            yield from self._pool(tasks, ctx, stop)

    def _pool(self, tasks: Iterable[SeriesTask], ctx: RunContext, stop: "StopRequest") -> Iterator[SeriesOutcome]:
        cores = os.cpu_count() or 1
        threads = max(1, cores // self.workers)
        # "spawn": numba's thread pool is not safe to fork once started.
        mp = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(self.workers, mp_context=mp, initializer=_init_worker, initargs=(threads,)) as pool:
            # Workers only process; this process records each finished series (flush, then
            # fragment), so the workers go on computing while the disk catches up.
            # At most two tasks per worker are in flight: memory stays bounded by a few
            # series whatever the archive's size.
            pending: set[Future[SeriesOutcome]] = set()
            queue = iter(tasks)

            def refill() -> None:
                for task in queue:
                    pending.add(pool.submit(process_series, task, ctx))
                    if len(pending) >= 2 * self.workers:
                        break

            def record(future: Future[SeriesOutcome]) -> SeriesOutcome:
                # A future leaves ``pending`` only once its series is recorded.
                outcome = future.result()
                record_series(outcome, ctx.outdir)
                pending.discard(future)
                return outcome

            # The pool starts a worker at each submission until all are started: these
            # no-op tasks start them all at once, so that none may die of a Ctrl-C while it
            # is still importing (the window where Ctrl-C waits stays a few milliseconds).
            with _started_ignoring_sigint():
                for _ in range(self.workers):
                    pool.submit(os.getpid)
            refill()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield record(future)
                    if stop.requested:
                        # Queued series are dropped; those already running finish and are recorded.
                        pending -= {f for f in pending if f.cancel()}
                    else:
                        refill()
            except GeneratorExit:
                # The run stopped early: record the series already running, as above.
                pool.shutdown(wait=True, cancel_futures=True)
                for future in list(pending):
                    if not future.cancelled() and future.exception() is None:
                        record(future)
                raise
            except KeyboardInterrupt:
                # A second Ctrl-C: stop now. The pool sees its workers die and shuts down
                # (leaving the `with`); --resume redoes the unrecorded series and removes
                # the temporary files their workers leave.
                for child in multiprocessing.active_children():
                    child.terminate()
                raise
            if stop.requested:
                raise KeyboardInterrupt


class StopRequest:
    """While active, Ctrl-C (SIGINT) asks the run to stop after the series in progress.

    The first SIGINT only sets :attr:`requested` (and says so on stderr); a second one
    raises :class:`KeyboardInterrupt` as usual. Outside the main thread, where Python
    cannot install signal handlers, SIGINT keeps its usual meaning.
    """

    message = b"medaug: stopping after the series in progress (Ctrl-C again to stop now)\n"

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        # os.write, not print: writing through a buffered stream the interrupted code is
        # using raises "reentrant call". On a terminal the progress bar holds the line.
        os.write(2, b"\n" + self.message if os.isatty(2) else self.message)
