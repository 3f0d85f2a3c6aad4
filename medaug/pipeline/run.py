"""``medaug run``: the whole job over an archive, on a pool of workers.

Order of work: check the policy and its approval → scan the archive (headers
only) → one task per series on the executor, each writing its outputs and a
fragment of audit records → assemble the audit log in series order (so it is
the same whatever the worker count or completion order) → manifest.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from medaug import __version__
from medaug.atomic import write_atomic
from medaug.audit.chain import GENESIS, chain_records
from medaug.canonical import canonical_json, sha256_hex
from medaug.dataset import layout, lock
from medaug.dataset import records as rec
from medaug.deid.keys import Key
from medaug.errors import UsageError
from medaug.ingest.archive import ArchiveScan, scan_archive
from medaug.ingest.labels import LabelFile
from medaug.pipeline.context import RunContext
from medaug.pipeline.progress import Progress
from medaug.pipeline.task import (
    SeriesOutcome,
    SeriesTask,
    completed,
    read_fragment,
    run_series,
)
from medaug.policy.approval import check_approval
from medaug.policy.model import Policy

#: Runs tasks drawn from an iterator (lazily: each draw builds a volume's records);
#: yields each outcome as it finishes (any order).
Executor = Callable[[Iterator[SeriesTask], RunContext], Iterator[SeriesOutcome]]

_DEPENDENCIES = ("pydicom", "numpy", "scipy", "numba")


@dataclass
class RunSummary:
    """Counts of a finished run (what the CLI prints)."""

    series: int = 0
    files_written: int = 0
    inputs: int = 0
    quarantined: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    not_applied: dict[str, int] = field(default_factory=dict)
    kept: int = 0
    labels: int = 0
    label_files: int = 0
    head: str = ""
    outdir: Path = Path(".")

    @property
    def quarantined_total(self) -> int:
        """Number of input files quarantined (unusable)."""
        return sum(self.quarantined.values())

    @property
    def skipped_total(self) -> int:
        """Number of input files of series the policy does not cover."""
        return sum(self.skipped.values())


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
        the dataset's signature file.

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
    if signing_key is not None:
        from medaug.audit.signing import load_private_key

        load_private_key(signing_key)  # a wrong key is found now, not after the whole archive
    outdir.mkdir(parents=True, exist_ok=True)
    with lock.hold(outdir):
        return _run_locked(policy, approval.to_dict(), archive, outdir, key, executor=executor, resume=resume,
                           progress_stream=progress_stream, signing_key=signing_key)


def _run_locked(
    policy: Policy,
    approval: dict[str, Any],
    archive: Path,
    outdir: Path,
    key: Key,
    *,
    executor: Executor,
    resume: bool,
    progress_stream: TextIO | None,
    signing_key: Path | None,
) -> RunSummary:
    scan = scan_archive(archive)
    if scan.file_count == 0:
        raise UsageError("the archive is empty: it holds no file")
    state = {
        "policy_sha256": policy.content_sha256,
        "key_fingerprint": key.fingerprint,
        # Keyed, so the state file shows nothing of the archive's paths or sizes.
        "archive_fingerprint": hmac.new(key.subkey("archive"), scan.listing_digest(), hashlib.sha256).hexdigest(),
        "medaug": __version__,
    }
    _prepare_outdir(outdir, state, resume=resume)
    ctx = RunContext(policy=policy, key=key, archive=archive, outdir=outdir)
    progress = Progress(scan.series_count, stream=progress_stream)
    tally = _Tally()

    labelled: set[str] = set()

    def pending() -> Iterator[SeriesTask]:
        # Volumes are built one at a time as executors draw tasks: memory stays bounded.
        for index, ref in enumerate(scan.iter_series()):
            labels: tuple[LabelFile, ...] = ()
            if ref.series_uid not in labelled:  # a series' labels go with its first volume
                labelled.add(ref.series_uid)
                labels = tuple(scan.labels.get(ref.series_uid, ()))
            done = completed(outdir, index) if resume else None
            if done is None:
                yield SeriesTask(index=index, ref=ref, labels=labels)
            else:
                tally.add(done)
                tally.kept += 1
                progress.advance(done.written, sum(done.quarantined.values()), kept=True)

    for outcome in executor(pending(), ctx):
        tally.add(outcome)
        progress.advance(outcome.written, sum(outcome.quarantined.values()))

    # A worker killed mid-write (its task was retried elsewhere) leaves its temporary file behind.
    _remove_stale_temporaries(outdir)
    summary = _finish(policy, approval, key, scan, ctx, tally)
    if signing_key is not None:
        from medaug.audit.signing import write_signature

        write_signature(outdir, signing_key, summary.head)
    return summary


def _prepare_outdir(outdir: Path, state: dict[str, str], *, resume: bool) -> None:
    state_path = layout.run_state_path(outdir)
    if outdir.exists() and any(outdir.iterdir()):
        if not resume:
            raise UsageError("the output folder is not empty; use --resume to complete an interrupted run")
        try:
            previous = json.loads(state_path.read_text())
        except (OSError, ValueError):
            raise UsageError("the output folder holds no interrupted medaug run to resume") from None
        if isinstance(previous, dict) and previous.get("archive_fingerprint") != state["archive_fingerprint"] \
                and {k: v for k, v in previous.items() if k != "archive_fingerprint"} == {
                    k: v for k, v in state.items() if k != "archive_fingerprint"}:
            raise UsageError("the output folder holds a run of another archive (or the archive changed since): "
                             "resume with the same archive, or run into a new folder")
        if previous != state:
            raise UsageError("the output folder holds a run with another policy, key or medaug version")
        _remove_stale_temporaries(outdir)
        # A finished dataset is being redone: its log and manifest are rewritten at the end.
        for name in layout.record_files():
            (outdir / name).unlink(missing_ok=True)
        return
    state_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(state_path, lambda f: f.write(canonical_json(state).encode("ascii")))


def _remove_stale_temporaries(outdir: Path) -> None:
    """Delete temporary files a killed run left behind (atomic writes never rename them)."""
    for path in outdir.rglob(".*.tmp"):
        path.unlink(missing_ok=True)


@dataclass
class _Tally:
    """Counts of the series done so far (their records stay on disk, in fragments)."""

    series: int = 0
    written: int = 0
    kept: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    not_applied: Counter[str] = field(default_factory=Counter)
    labels: int = 0
    label_files: int = 0

    def add(self, outcome: SeriesOutcome) -> None:
        self.series += 1
        self.written += outcome.written
        self.quarantined.update(outcome.quarantined)
        self.skipped.update(outcome.skipped)
        self.not_applied.update(outcome.not_applied)
        self.labels += sum(1 for r in outcome.records if rec.is_type(r, rec.Label))
        self.label_files += sum(
            1 for r in outcome.records if rec.is_type(r, rec.Output) and layout.label_number(r["path"]) is not None
        )


def _records(
    policy: Policy, approval: dict[str, Any], key: Key, scan: ArchiveScan, ctx: RunContext, counts: rec.Counts
) -> Iterator[dict[str, Any]]:
    """Every record of the log in order, the series' read back from their fragments one at a time."""
    yield _run_start(policy, approval, key).to_json()
    for index in range(scan.series_count):
        yield from read_fragment(ctx.outdir, index).records
    for q in scan.quarantined:
        yield rec.Quarantine(source=ctx.source_pseudonym(q.path), reason=q.reason).to_json()
    for path in scan.directories:
        yield rec.Index(source=ctx.source_pseudonym(path)).to_json()
    yield rec.RunEnd(counts=counts).to_json()


def _finish(
    policy: Policy,
    approval: dict[str, Any],
    key: Key,
    scan: ArchiveScan,
    ctx: RunContext,
    tally: _Tally,
) -> RunSummary:
    quarantined = tally.quarantined + Counter(q.reason for q in scan.quarantined)
    summary = RunSummary(
        series=tally.series,
        inputs=scan.file_count,
        files_written=tally.written,
        quarantined=dict(sorted(quarantined.items())),
        skipped=dict(sorted(tally.skipped.items())),
        not_applied=dict(sorted(tally.not_applied.items())),
        kept=tally.kept,
        labels=tally.labels,
        label_files=tally.label_files,
        outdir=ctx.outdir,
    )
    counts = rec.Counts(
        inputs=summary.inputs,
        series=summary.series,
        files_written=summary.files_written,
        quarantined=summary.quarantined,
        skipped=summary.skipped,
        indexes=len(scan.directories),
        missing_references=scan.missing_references,
    )
    log = layout.log_path(ctx.outdir)
    log.parent.mkdir(parents=True, exist_ok=True)
    lines = 0

    def write_log(f: BinaryIO) -> None:
        nonlocal lines
        for line in chain_records(_records(policy, approval, key, scan, ctx, counts)):
            f.write(line.encode("ascii") + b"\n")
            lines += 1
            summary.head = sha256_hex(line)

    summary.head = GENESIS
    write_atomic(log, write_log)
    manifest = rec.Manifest(
        medaug=__version__,
        policy={"id": policy.id, "version": policy.version, "sha256": policy.content_sha256},
        log=rec.LogRef(path=layout.LAYOUT.log, records=lines, head=summary.head),
        counts=counts,
    )
    manifest_bytes = (canonical_json(manifest.to_json()) + "\n").encode("ascii")
    write_atomic(layout.manifest_path(ctx.outdir), lambda f: f.write(manifest_bytes))
    shutil.rmtree(layout.work_dir(ctx.outdir), ignore_errors=True)
    return summary


def _run_start(policy: Policy, approval: dict[str, Any], key: Key) -> rec.RunStart:
    versions = {"medaug": __version__, "python": sys.version.split()[0]}
    for name in _DEPENDENCIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "absent"
    return rec.RunStart(
        policy=rec.PolicyRef(id=policy.id, version=policy.version, sha256=policy.content_sha256, content=policy.raw),
        approval=rec.ApprovalRef(**approval),
        versions=versions,
        key_fingerprint=key.fingerprint,
    )


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
