"""``medaug run``: the whole job over an archive, on a pool of workers.

Order of work: check the policy and its approval → scan the archive (headers
only) → one task per series on the executor, each writing its outputs and a
fragment of audit records → assemble the audit log in series order (so it is
the same whatever the worker count or completion order) → manifest.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

from medaug import __version__
from medaug.audit.canonical import canonical_json
from medaug.audit.chain import chain_records, head_of
from medaug.deid.keys import Key
from medaug.errors import UsageError
from medaug.ingest.archive import ArchiveScan, scan_archive
from medaug.pipeline.context import RunContext
from medaug.pipeline.progress import Progress
from medaug.pipeline.task import SeriesOutcome, SeriesTask, completed, run_series
from medaug.policy.approval import check_approval
from medaug.policy.model import Policy
from medaug.write.atomic import write_atomic

LOG_PATH = Path("audit") / "log.jsonl"
MANIFEST = "manifest.json"
SIGNATURE = Path("audit") / "signature.json"
RUN_STATE = Path(".work") / "run.json"
DATASET_FORMAT = "medaug-dataset/1"

#: Runs a batch of tasks; yields each outcome as it finishes (any order).
Executor = Callable[[list[SeriesTask], RunContext], Iterator[SeriesOutcome]]

_DEPENDENCIES = ("pydicom", "numpy", "scipy", "numba")


@dataclass
class RunSummary:
    """Counts of a finished run (what the CLI prints)."""

    series: int = 0
    files_written: int = 0
    inputs: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    head: str = ""
    outdir: Path = Path(".")

    @property
    def quarantined_total(self) -> int:
        """Number of input files quarantined."""
        return sum(self.quarantined.values())


def run(
    policy: Policy,
    policy_path: Path,
    archive: Path,
    outdir: Path,
    key: Key,
    *,
    executor: Executor,
    resume: bool = False,
    progress_stream: TextIO | None = None,
    signing_key: Path | None = None,
) -> RunSummary:
    """Run the policy over the archive into ``outdir``.

    Parameters
    ----------
    policy : Policy
        The loaded policy; its approval is checked here.
    policy_path : Path
        Where the policy (and its approval file) lives.
    archive, outdir : Path
        Source archive and output dataset folders.
    key : Key
        Pseudonymisation key.
    executor : callable
        Runs the series tasks (local pool or Dask; see :mod:`medaug.pipeline.executors`).
    resume : bool
        Complete an interrupted run in ``outdir`` instead of refusing a non-empty folder.
    progress_stream : text stream, optional
        Where progress goes (stderr by default).
    signing_key : Path, optional
        Ed25519 private key; when given, the log's head is signed into
        ``audit/signature.json``.

    Raises
    ------
    PolicyError
        Unapproved or altered policy.
    UsageError
        Output folder not empty (without ``resume``) or from another run.
    """
    approval = check_approval(policy, policy_path)
    archive = archive.resolve()
    outdir = outdir.resolve()
    if outdir == archive or archive in outdir.parents:
        raise UsageError("the output folder must not lie inside the archive")
    state = {
        "policy_sha256": policy.content_sha256,
        "key_fingerprint": key.fingerprint,
        "medaug": __version__,
    }
    _prepare_outdir(outdir, state, resume=resume)

    scan = scan_archive(archive)
    ctx = RunContext(policy=policy, key=key, archive=archive, outdir=outdir)
    tasks = [
        SeriesTask(index=i, ref=ref, numbers=tuple(scan.number(p) for p in ref.files))
        for i, ref in enumerate(scan.series)
    ]
    outcomes: dict[int, SeriesOutcome] = {}
    todo: list[SeriesTask] = []
    for task in tasks:
        done = completed(outdir, task.index) if resume else None
        if done is not None:
            outcomes[task.index] = done
        else:
            todo.append(task)
    progress = Progress(len(tasks), stream=progress_stream)
    for outcome in outcomes.values():
        progress.advance(outcome.written, sum(outcome.quarantined.values()))
    for outcome in executor(todo, ctx):
        outcomes[outcome.index] = outcome
        progress.advance(outcome.written, sum(outcome.quarantined.values()))

    # A worker killed mid-write (its task was retried elsewhere) leaves its temporary file behind.
    _remove_stale_temporaries(outdir)
    summary = _finish(policy, approval.to_dict(), key, scan, ctx, [outcomes[t.index] for t in tasks])
    if signing_key is not None:
        from medaug.audit.signing import sign_head

        signature = sign_head(signing_key, summary.head)
        write_atomic(outdir / SIGNATURE, lambda f: f.write((canonical_json(signature) + "\n").encode("ascii")))
    return summary


def _prepare_outdir(outdir: Path, state: dict[str, str], *, resume: bool) -> None:
    state_path = outdir / RUN_STATE
    if outdir.exists() and any(outdir.iterdir()):
        if not resume:
            raise UsageError("the output folder is not empty; use --resume to complete an interrupted run")
        try:
            previous = json.loads(state_path.read_text())
        except (OSError, ValueError):
            raise UsageError("the output folder holds no interrupted medaug run to resume") from None
        if previous != state:
            raise UsageError("the output folder holds a run with another policy, key or medaug version")
        _remove_stale_temporaries(outdir)
        # A finished dataset is being redone: its log and manifest are rewritten at the end.
        for name in (MANIFEST, str(LOG_PATH), str(SIGNATURE)):
            (outdir / name).unlink(missing_ok=True)
        return
    state_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(state_path, lambda f: f.write(canonical_json(state).encode("ascii")))


def _remove_stale_temporaries(outdir: Path) -> None:
    """Delete temporary files a killed run left behind (atomic writes never rename them)."""
    for path in outdir.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


def _finish(
    policy: Policy,
    approval: dict[str, Any],
    key: Key,
    scan: ArchiveScan,
    ctx: RunContext,
    outcomes: list[SeriesOutcome],
) -> RunSummary:
    summary = RunSummary(series=len(outcomes), inputs=len(scan.files), outdir=ctx.outdir)
    quarantined: Counter[str] = Counter()
    records: list[dict[str, Any]] = [_run_start(policy, approval, key)]
    for outcome in outcomes:
        records.extend(outcome.records)
        summary.files_written += outcome.written
        quarantined.update(outcome.quarantined)
    # Files a DICOMDIR names but the archive lacks are not inputs: they are counted, not recorded.
    missing = sum(1 for q in scan.quarantined if q.number == 0)
    for q in sorted((q for q in scan.quarantined if q.number), key=lambda q: q.number):
        records.append({"type": "quarantine", "source": ctx.source_pseudonym(q.path), "reason": q.reason})
        quarantined[q.reason] += 1
    for path in scan.directories:
        records.append({"type": "index", "source": ctx.source_pseudonym(path)})
    summary.quarantined = dict(sorted(quarantined.items()))
    counts = {
        "inputs": summary.inputs,
        "series": summary.series,
        "files_written": summary.files_written,
        "quarantined": summary.quarantined,
        "indexes": len(scan.directories),
        "missing_references": missing,
    }
    records.append({"type": "run_end", "counts": counts})

    lines = list(chain_records(records))
    summary.head = head_of(lines)
    log = ctx.outdir / LOG_PATH
    log.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(log, lambda f: f.write(("\n".join(lines) + "\n").encode("ascii")))
    manifest = {
        "format": DATASET_FORMAT,
        "medaug": __version__,
        "policy": {"id": policy.id, "version": policy.version, "sha256": policy.content_sha256},
        "log": {"path": LOG_PATH.as_posix(), "records": len(lines), "head": summary.head},
        "counts": counts,
    }
    write_atomic(ctx.outdir / MANIFEST, lambda f: f.write((canonical_json(manifest) + "\n").encode("ascii")))
    shutil.rmtree(ctx.outdir / ".work", ignore_errors=True)
    return summary


def _run_start(policy: Policy, approval: dict[str, Any], key: Key) -> dict[str, Any]:
    versions = {"medaug": __version__, "python": sys.version.split()[0]}
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return {
        "type": "run_start",
        "format": DATASET_FORMAT,
        "policy": {
            "id": policy.id,
            "version": policy.version,
            "sha256": policy.content_sha256,
            "content": policy.raw,
        },
        "approval": approval,
        "versions": versions,
        "key_fingerprint": key.fingerprint,
    }


def iter_in_process(tasks: Iterable[SeriesTask], ctx: RunContext) -> Iterator[SeriesOutcome]:
    """The executor for one worker: every task in this process, in order."""
    for task in tasks:
        yield run_series(task, ctx)


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
