"""The ``medaug run`` command: arguments in, summary and exit code out."""

from __future__ import annotations

import errno
from pathlib import Path
from typing import TextIO

from medaug.deid.keys import load_key
from medaug.errors import UsageError
from medaug.pipeline.executors import local_pool
from medaug.pipeline.run import Executor, RunSummary, default_workers, run
from medaug.policy.load import load_policy
from medaug.atomic import STORAGE_ERRORS, FlushError, storage_failure

EXIT_OK = 0
EXIT_QUARANTINED = 3
#: The output storage failed (full, over quota, read-only): the run stopped and can be resumed.
EXIT_STORAGE = 1



def run_command(
    policy_path: str,
    archive: str,
    outdir: str,
    *,
    keyfile: str | None,
    workers: int | None,
    resume: bool,
    scheduler: str | None = None,
    signing_key: str | None = None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Run a policy over an archive and print the summary.

    Returns
    -------
    int
        0 when every input was written, 3 when some were quarantined.
    """
    if keyfile is None:
        raise UsageError("a key is required: pass --key KEYFILE (make one with `medaug keygen KEYFILE`)")
    key = load_key(Path(keyfile))
    if not Path(archive).exists():
        raise UsageError("the archive folder does not exist")
    if not Path(archive).is_dir():
        raise UsageError("the archive is a file, not a folder")
    executor: Executor
    if scheduler is not None:
        from medaug.pipeline.dask_executor import dask_executor

        executor = dask_executor(scheduler)
    else:
        n = default_workers() if workers is None else workers
        if n < 1:
            raise UsageError("--workers must be at least 1")
        executor = local_pool(n)
    path = Path(policy_path)
    policy = load_policy(path)
    try:
        summary = run(
            policy,
            path,
            Path(archive),
            Path(outdir),
            key,
            executor=executor,
            resume=resume,
            progress_stream=err,
            signing_key=None if signing_key is None else Path(signing_key),
        )
    except OSError as exc:
        failure = storage_failure(exc)
        if failure is None or failure.errno is None:
            raise
        problem = STORAGE_ERRORS.get(failure.errno, FlushError.problem)
        # The message names the problem, never the path (a source path can identify a patient).
        err.write(f"medaug: error: {problem} (errno {errno.errorcode.get(failure.errno, failure.errno)}); "
                  "nothing is half-written: fix it and run the same command with --resume\n")
        return EXIT_STORAGE
    print_summary(summary, out)
    # Out of scope is not unusable: only inputs that could not be used make exit 3.
    return EXIT_QUARANTINED if summary.quarantined_total else EXIT_OK


def print_summary(summary: RunSummary, out: TextIO) -> None:
    """The end-of-run summary: counts only, never a value from the archive."""
    out.write(f"series processed : {summary.series}" + (f" ({summary.kept} kept from the interrupted run)" if summary.kept else "") + "\n")
    out.write(f"input files      : {summary.inputs}\n")
    out.write(f"files written    : {summary.files_written}\n")
    out.write(f"label objects    : {summary.labels} carried, as {summary.label_files} label files (SEG, RTSTRUCT)\n")
    out.write(f"out of scope     : {summary.skipped_total}\n")
    for reason, count in summary.skipped.items():
        out.write(f"  {reason:<30} {count}\n")
    if summary.not_applied:
        out.write("transforms not applied (variants):\n")
        for reason, count in summary.not_applied.items():
            out.write(f"  {reason:<36} {count}\n")
    out.write(f"quarantined      : {summary.quarantined_total}\n")
    for reason, count in summary.quarantined.items():
        out.write(f"  {reason:<30} {count}\n")
    out.write(f"audit log head   : {summary.head}\n")
    out.write(f"output           : {summary.outdir}\n")
