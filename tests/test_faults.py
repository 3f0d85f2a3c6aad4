"""Faults during ``medaug run``: each ends with a complete, verifiable dataset.

Provoked for real: a run (or one of its pool workers) killed with SIGKILL, a
run interrupted with SIGINT, a disk that fills up (a small tmpfs; needs root),
and input files that vanish or change between the scan and the load. After
``--resume`` the dataset equals an uninterrupted run's byte for byte and its
log verifies.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import select
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from medaug.cli import EXIT_QUARANTINED, main
from medaug.deid.keys import load_key
from medaug.ingest import reasons
from medaug.pipeline.context import RunContext
from medaug.pipeline.run import iter_in_process, run
from medaug.pipeline.task import SeriesOutcome, SeriesTask
from medaug.policy.load import load_policy
from tests.conftest import REPO
from tests.dataset_helpers import assert_same_dataset, assert_verifiable
from tests.waiting import wait_until

pytestmark = pytest.mark.slow

POLICY = REPO / "policies" / "ct-chest-conservative.yaml"
#: Longest wait for a run to reach the point where the fault is provoked.
WAIT_SECONDS = 300.0
#: Exit code of a run stopped by SIGINT (128 + 2, the shell convention).
EXIT_INTERRUPTED = 130


@pytest.fixture(scope="module")
def reference(archive: Path, keyfile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The dataset of an uninterrupted one-worker run."""
    out = tmp_path_factory.mktemp("reference") / "out"
    assert main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"]) == EXIT_QUARANTINED
    assert_verifiable(out)
    return out


def start_run(archive: Path, outdir: Path, keyfile: Path, *, workers: int) -> subprocess.Popen[str]:
    """``medaug run`` in a child process (its own session, like a job started from a shell)."""
    argv = [sys.executable, "-m", "medaug.cli", "run", str(POLICY), str(archive), str(outdir)]
    argv += ["--key", str(keyfile), "--workers", str(workers)]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for_first_fragment(proc: subprocess.Popen[str], outdir: Path, *, written: bool = False) -> None:
    """Block until one series is finished (its fragment exists) while the run still goes on;
    with ``written``, one that wrote files (a series skipped or quarantined writes none)."""
    fragments = outdir / ".work" / "series"

    def first_fragment() -> bool:
        if fragments.is_dir() and any(fragments.glob("*.json")) and (not written or recorded_outputs(outdir)):
            assert proc.poll() is None, "the run ended before the fault could be provoked"
            return True
        if proc.poll() is not None:
            _, err = proc.communicate()
            pytest.fail(f"the run ended early with exit code {proc.returncode}: {err[-800:]}")
        return False

    wait_until(first_fragment, timeout=WAIT_SECONDS, what="the first finished series")


def wait_for_stderr(proc: subprocess.Popen[str], text: str) -> str:
    """Read the run's stderr until ``text`` appears (or the run ends); return what was read."""
    assert proc.stderr is not None
    fd = proc.stderr.fileno()
    seen = b""

    def appeared() -> bool:
        nonlocal seen
        if select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"the run ended before saying {text!r}: {seen[-800:]!r}")
            seen += chunk
        return text.encode() in seen

    wait_until(appeared, timeout=WAIT_SECONDS, what=f"{text!r} on the run's stderr")
    return seen.decode()


def resume(archive: Path, outdir: Path, keyfile: Path) -> int:
    """Complete the interrupted run in-process."""
    return main(["run", str(POLICY), str(archive), str(outdir), "--key", str(keyfile), "--workers", "1", "--resume"])


def pool_workers(pid: int) -> list[int]:
    """Process ids of the pool workers of the run ``pid`` (spawned children, not the resource tracker)."""
    import psutil  # comes with dask.distributed; only this test needs it

    found = []
    for child in psutil.Process(pid).children(recursive=True):
        cmdline = " ".join(child.cmdline())
        if "multiprocessing" in cmdline and "resource_tracker" not in cmdline:
            found.append(child.pid)
    return found


def test_killed_run_resumes_to_identical_dataset(archive: Path, keyfile: Path, reference: Path, tmp_path: Path) -> None:
    """SIGKILL of the whole run after its first series; --resume gives the uninterrupted run's bytes."""
    out = tmp_path / "out"
    proc = start_run(archive, out, keyfile, workers=1)
    wait_for_first_fragment(proc, out)
    proc.kill()
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


def test_killed_pool_worker_run_resumes(archive: Path, keyfile: Path, reference: Path, tmp_path: Path) -> None:
    """SIGKILL of one pool worker mid-task: the run stops with an error; --resume completes it."""
    pytest.importorskip("psutil")
    out = tmp_path / "out"
    proc = start_run(archive, out, keyfile, workers=2)
    wait_for_first_fragment(proc, out)
    workers = pool_workers(proc.pid)
    assert workers, "no pool worker found"
    os.kill(workers[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode != 0
    assert not (out / "manifest.json").exists() or proc.returncode == 0
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


def recorded_outputs(outdir: Path) -> set[str]:
    """Output paths named by the run's series fragments."""
    return {
        record["path"]
        for fragment in (outdir / ".work" / "series").glob("*.json")
        for record in json.loads(fragment.read_text())["records"]
        if record["type"] == "output"
    }


def written_outputs(outdir: Path) -> set[str]:
    """Output paths on disk."""
    return {p.relative_to(outdir).as_posix() for p in (outdir / "dicom").rglob("*.dcm")}


@pytest.mark.parametrize("workers", [1, 2])
def test_sigint_stops_cleanly_and_resumes(
    archive: Path, keyfile: Path, reference: Path, tmp_path: Path, workers: int
) -> None:
    """Ctrl-C (SIGINT to the run's process group): exit 130, a message, no traceback, nothing half-written."""
    out = tmp_path / "out"
    proc = start_run(archive, out, keyfile, workers=workers)
    wait_for_first_fragment(proc, out, written=True)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode == EXIT_INTERRUPTED, err[-800:]
    assert "Traceback" not in err
    assert "stopping after the series in progress" in err
    assert "--resume" in err
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"
    assert not (out / "manifest.json").exists()
    # The series running at Ctrl-C finished and were recorded: every output on disk is in a
    # fragment, so --resume redoes nothing that was done.
    written = written_outputs(out)
    assert written and written == recorded_outputs(out)
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


def test_sigint_while_pool_workers_start_stops_cleanly(archive: Path, keyfile: Path, reference: Path, tmp_path: Path) -> None:
    """Ctrl-C while the pool's workers are still importing: they ignore it from their start, so the
    run stops as after any first Ctrl-C (no broken pool) and --resume completes it."""
    pytest.importorskip("psutil")
    out = tmp_path / "out"
    proc = start_run(archive, out, keyfile, workers=2)
    wait_until(lambda: proc.poll() is not None or len(pool_workers(proc.pid)) == 2, timeout=WAIT_SECONDS,
               what="two pool workers")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=WAIT_SECONDS)
    assert proc.returncode == EXIT_INTERRUPTED, err[-800:]
    assert "Traceback" not in err and "stopping after the series in progress" in err
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


def test_second_sigint_stops_at_once_and_resumes(
    archive: Path, keyfile: Path, reference: Path, tmp_path: Path
) -> None:
    """A second Ctrl-C does not wait for the series in progress; --resume still completes the run."""
    out = tmp_path / "out"
    proc = start_run(archive, out, keyfile, workers=2)
    wait_for_first_fragment(proc, out)
    os.killpg(proc.pid, signal.SIGINT)
    # The second Ctrl-C goes once the run has taken the first (it says so on stderr), while
    # the series it was running are still in progress.
    seen = wait_for_stderr(proc, "stopping after the series in progress")
    recorded_at_second = len(recorded_outputs(out))
    os.killpg(proc.pid, signal.SIGINT)
    _, rest = proc.communicate(timeout=WAIT_SECONDS)
    err = seen + rest
    assert proc.returncode == EXIT_INTERRUPTED, err[-800:]
    # Only the second Ctrl-C does this: a single one lets the series in progress finish and
    # records them, so more outputs would be recorded than at the second Ctrl-C.
    assert len(recorded_outputs(out)) == recorded_at_second, "the series in progress were recorded"
    assert "Traceback" not in err
    assert "--resume" in err
    assert not (out / "manifest.json").exists()
    assert recorded_outputs(out) <= written_outputs(out)
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert not list(out.rglob(".*.tmp")), "--resume left a temporary file behind"
    assert_verifiable(out)
    assert_same_dataset(reference, out)


@pytest.fixture
def small_disk(tmp_path: Path, reference: Path) -> Iterator[Path]:
    """A tmpfs a third the size of the reference dataset (needs root and mount)."""
    size = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    mountpoint = tmp_path / "disk"
    mountpoint.mkdir()
    kb = max(64, size // 3 // 1024)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kb}k", "tmpfs", str(mountpoint)], capture_output=True)
    if proc.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test needs to mount a tmpfs (run as root in CI)")
        pytest.skip("cannot mount a tmpfs here (not root)")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_disk_full_is_a_clear_error_and_resumable(
    archive: Path, keyfile: Path, reference: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A full disk stops the run with a message naming the problem; after freeing space --resume completes it."""
    out = small_disk / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no space left" in err.lower()
    assert "--resume" in err
    assert not list(out.rglob(".*.tmp")), "a temporary file was left behind"
    assert not (out / "manifest.json").exists()
    # "Free space": grow the file system, as an operator would make room.
    subprocess.run(["mount", "-o", "remount,size=256m", str(small_disk)], check=True)
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


def test_failed_flush_is_a_clear_error_and_resumable(
    archive: Path, keyfile: Path, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """When the output file system reports a write error at the flush, the run stops before the
    series is recorded as done, says so without a path, and --resume completes the same dataset."""
    from medaug import atomic

    if atomic._SYNCFS is None:
        pytest.skip("no syncfs on this platform")
    calls = []

    def failing_syncfs(fd: int) -> int:
        calls.append(fd)
        ctypes.set_errno(errno.EIO)  # what syncfs(2) reports after a lost write-back
        return -1

    monkeypatch.setattr(atomic, "_SYNCFS", failing_syncfs)
    out = tmp_path / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"])
    err = capsys.readouterr().err
    assert calls, "the run never flushed"
    assert code == 1
    assert "could not make the written files durable" in err and "--resume" in err
    assert str(archive) not in err and str(tmp_path) not in err
    assert not list((out / ".work" / "series").glob("*.json")), "a series was recorded as done without a flush"
    monkeypatch.undo()
    assert resume(archive, out, keyfile) == EXIT_QUARANTINED
    assert_verifiable(out)
    assert_same_dataset(reference, out)


class Sabotage:
    """An executor that changes the archive after the scan, then runs the tasks in this process.

    It removes one file of the first multi-file series and replaces one file of
    another with a copy of a file of a different size: what a PACS export still
    being written, or a clean-up job, does to an archive during a run.
    """

    def __init__(self) -> None:
        self.vanished: Path | None = None
        self.changed: Path | None = None

    def __call__(self, drawn: Iterable[SeriesTask], ctx: RunContext) -> Iterator[SeriesOutcome]:
        tasks = list(drawn)
        stacks = [t for t in tasks if len(t.ref.files) > 2 and ctx.policy.covers(t.ref.modality)]
        first, second = stacks[0], stacks[1]
        self.vanished = first.ref.files[1]
        self.vanished.unlink()
        self.changed = second.ref.files[1]
        other = next(t for t in tasks if t.ref.records[0].rows != second.ref.records[0].rows)
        shutil.copyfile(other.ref.files[0], self.changed)
        return iter_in_process(tasks, ctx)


def test_input_vanishing_or_changing_is_quarantined(archive: Path, keyfile: Path, tmp_path: Path) -> None:
    """A file gone after the scan is `unreadable`, one replaced by another file is `changed-during-run`; the batch goes on."""
    copy = tmp_path / "archive"
    shutil.copytree(archive, copy)
    clean = tmp_path / "clean"
    key = load_key(keyfile)
    policy = load_policy(POLICY)
    baseline = run(policy, POLICY, copy, clean, key, executor=iter_in_process)

    sabotage = Sabotage()
    out = tmp_path / "out"
    summary = run(policy, POLICY, copy, out, key, executor=sabotage)
    assert sabotage.vanished is not None and sabotage.changed is not None
    added: dict[str, Any] = {
        r: summary.quarantined.get(r, 0) - baseline.quarantined.get(r, 0) for r in summary.quarantined
    }
    assert added.get(reasons.UNREADABLE) == 1
    assert added.get(reasons.CHANGED_DURING_RUN) == 1
    assert summary.series == baseline.series
    assert summary.inputs == baseline.inputs
    assert summary.files_written < baseline.files_written
    assert summary.files_written > 0
    assert_verifiable(out)


def test_series_failing_midway_leaves_no_unrecorded_output(
    archive: Path, keyfile: Path, reference: Path, tmp_path: Path
) -> None:
    """A series that fails after writing some outputs is quarantined and its outputs removed.

    The failure is real: once the run has started, a file is put where one series' second
    variant folder goes, so its original and first variant are written before the write
    fails (not a storage error: the batch goes on).
    """
    second = sorted(p for p in (reference / "dicom").rglob("*-v2") if p.is_dir())[0]
    rel = second.relative_to(reference)
    out = tmp_path / "out"

    def obstructed(drawn: Iterable[SeriesTask], ctx: RunContext) -> Iterator[SeriesOutcome]:
        (out / rel).parent.mkdir(parents=True)
        (out / rel).write_text("in the way\n")
        return iter_in_process(drawn, ctx)

    summary = run(load_policy(POLICY), POLICY, archive, out, load_key(keyfile), executor=obstructed)
    assert [r for r in summary.quarantined if r.startswith("internal-error:")]
    prefix = rel.as_posix()[: -len("-v2")]
    assert not [p for p in written_outputs(out) if p.startswith(prefix)], "outputs of the failed series remain"
    log = [json.loads(line) for line in (out / "audit" / "log.jsonl").read_text().splitlines()]
    assert written_outputs(out) == {r["path"] for r in log if r["type"] == "output"}
    assert 0 < len(written_outputs(out)) < len(written_outputs(reference))
