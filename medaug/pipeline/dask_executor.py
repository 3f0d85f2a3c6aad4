"""Run series tasks on an existing Dask distributed cluster (the optional ``dask`` extra).

One Dask task per series. Each task writes its outputs and its fragment into
the run's OUTDIR, so every worker must see OUTDIR (and the archive) at the same
absolute path: a shared filesystem. The client only collects the outcomes; the
audit log and the manifest are assembled by the run exactly as for a local run,
which is why the dataset is byte-identical to the local one.

Privacy on the wire and in logs
-------------------------------
The run context (policy, folders and the pseudonymisation key) travels to the
workers inside the pickled task argument. Dask logs a failed task's key, its
function and the ``repr`` of its arguments; so the argument is wrapped in a
:class:`_SeriesJob` whose ``repr`` shows only the series index, task keys hold
only a run token and the series index, and a task that fails reports its
exception class only, never a message a library may have filled with a value.
The key itself is never printed (:class:`medaug.deid.keys.Key` hides it in its
``repr``); anyone who can read the cluster's memory or traffic can read it, so
use a cluster you trust, with TLS when it spans machines.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from medaug.errors import MedaugError, UsageError
from medaug.pipeline.context import RunContext
from medaug.pipeline.task import SeriesOutcome, SeriesTask, run_series

if TYPE_CHECKING:  # pragma: no cover - typing only
    pass

#: Times Dask re-runs a task that raised (a task on a worker that died is rescheduled anyway).
RETRIES = 2
#: Tasks in flight per worker thread: enough to keep workers busy, few enough to bound memory.
IN_FLIGHT_PER_THREAD = 2


class ClusterTaskError(MedaugError):
    """A series task failed on the cluster after its retries (the run can be resumed)."""

    default_message = "a series task failed on the Dask cluster"


class _SeriesJob:
    """A series task and its run context, with a ``repr`` that names the series index only."""

    __slots__ = ("task", "ctx")

    def __init__(self, task: SeriesTask, ctx: RunContext) -> None:
        self.task = task
        self.ctx = ctx

    def __repr__(self) -> str:
        return f"<medaug series {self.task.index}>"

    def __getstate__(self) -> tuple[SeriesTask, RunContext]:
        return (self.task, self.ctx)

    def __setstate__(self, state: tuple[SeriesTask, RunContext]) -> None:
        self.task, self.ctx = state


def _run_job(job: _SeriesJob) -> SeriesOutcome:
    """Worker side: run one series; failures carry their class name only."""
    try:
        return run_series(job.task, job.ctx)
    except OSError as exc:
        # Keep the errno (no space left, read-only...) and drop the message, which names a path.
        raise OSError(exc.errno, os.strerror(exc.errno) if exc.errno else type(exc).__name__) from None
    except Exception as exc:  # re-raised without its message: it could quote an input value
        raise ClusterTaskError(f"series task {job.task.index} failed ({type(exc).__name__})") from None


def dask_executor(address: str) -> "DaskExecutor":
    """An executor running one task per series on the Dask scheduler at ``address``.

    Parameters
    ----------
    address : str
        Scheduler address, e.g. ``tcp://10.0.0.5:8786``.

    Returns
    -------
    DaskExecutor
        Callable as :data:`medaug.pipeline.run.Executor`.

    Raises
    ------
    UsageError
        When dask.distributed is not installed.
    """
    try:
        import distributed  # noqa: F401 - only checks that the extra is installed
    except ImportError:
        raise UsageError("dask.distributed is not installed: pip install 'medaug[dask]'") from None
    return DaskExecutor(address)


class DaskExecutor:
    """Submit series tasks to a Dask cluster and yield outcomes as they complete.

    Parameters
    ----------
    address : str
        Scheduler address.
    timeout : float
        Seconds to wait for the scheduler before giving up.
    """

    def __init__(self, address: str, *, timeout: float = 30.0) -> None:
        self.address = address
        self.timeout = timeout

    def __call__(self, tasks: Iterable[SeriesTask], ctx: RunContext) -> Iterator[SeriesOutcome]:
        """Yield each task's outcome as it finishes (any order; tasks drawn as slots free up)."""
        queue = iter(tasks)
        first = next(queue, None)
        if first is None:
            return
        queue = itertools.chain([first], queue)
        from distributed import Client, as_completed

        try:
            client = Client(self.address, timeout=self.timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler ({type(exc).__name__})") from None
        with client:
            threads = max(1, sum(client.nthreads().values()))
            limit = IN_FLIGHT_PER_THREAD * threads
            token = run_token(ctx)

            def submit(task: SeriesTask) -> Any:
                # Deterministic keys (run token + series index): the same series of the
                # same run always has the same name, and no key holds an input value.
                return client.submit(
                    _run_job,
                    _SeriesJob(task, ctx),
                    key=f"medaug-series-{token}-{task.index:06d}",
                    retries=RETRIES,
                )

            # range first: zip must not draw a task from the queue once the limit is reached.
            pending = as_completed([submit(t) for _, t in zip(range(limit), queue)], loop=client.loop)
            for future in pending:
                try:
                    outcome: SeriesOutcome = future.result()
                except OSError:
                    raise  # disk full or similar: the run stops and can be resumed
                except ClusterTaskError:
                    raise
                except Exception as exc:  # KilledWorker, CancelledError, ...
                    raise ClusterTaskError(f"a series task failed on the cluster ({type(exc).__name__})") from None
                finally:
                    future.release()
                for task in queue:
                    pending.add(submit(task))
                    break
                yield outcome


def run_token(ctx: RunContext) -> str:
    """A short token naming one run's tasks: the same for the same policy, key and OUTDIR.

    Built from public values only (the policy hash, the key's fingerprint, which
    the audit log holds, and the output folder), hashed so no path shows.
    """
    h = hashlib.sha256()
    for part in (ctx.policy.content_sha256, ctx.key.fingerprint, os.fspath(ctx.outdir)):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:16]
