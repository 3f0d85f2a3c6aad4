"""Where series tasks run: this process, a local process pool, or a Dask cluster.

Each executor yields outcomes as tasks finish, in any order; the run orders
them by series index, so the dataset never depends on the executor.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

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
        """Yield each task's outcome as it finishes (tasks are drawn only as workers free up)."""
        if self.workers == 1:
            for task in tasks:
                yield run_series(task, ctx)
            return
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

            refill()
            try:
                while pending:
                    done, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        pending.discard(future)
                        outcome = future.result()
                        record_series(outcome, ctx.outdir)
                        yield outcome
                    refill()
            except (KeyboardInterrupt, GeneratorExit):
                # Ctrl-C, or the run stopping early: queued series are dropped; those
                # running finish and are recorded, each written whole, so --resume skips them.
                pool.shutdown(wait=True, cancel_futures=True)
                for future in pending:
                    if not future.cancelled() and future.exception() is None:
                        record_series(future.result(), ctx.outdir)
                raise
