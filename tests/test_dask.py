"""``medaug run --scheduler``: a real Dask cluster gives the local run's dataset, byte for byte."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from medaug.cli import EXIT_QUARANTINED, main
from tests.conftest import REPO
from tests.dataset_helpers import assert_same_dataset, assert_verifiable
from tests.waiting import wait_until

POLICY = REPO / "policies" / "ct-chest-conservative.yaml"


def _need_distributed() -> None:
    """Skip when the dask extra is absent on a developer machine; fail in CI."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("dask.distributed is required in CI (pip install 'medaug[dask]')")
        pytest.skip("dask.distributed not installed")


@pytest.fixture(scope="module")
def local_run(archive: Path, keyfile: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The dataset of a one-worker local run and its exit code."""
    out = tmp_path_factory.mktemp("local") / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"])
    assert code == EXIT_QUARANTINED
    return out, code


def _cluster() -> "Any":
    from distributed import LocalCluster

    return LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1", dashboard_address=None)


@pytest.mark.slow
def test_dask_cluster_matches_local_run(archive: Path, keyfile: Path, local_run: tuple[Path, int], tmp_path: Path) -> None:
    """A LocalCluster (scheduler + 2 worker processes on loopback) writes the same bytes as --workers 1."""
    _need_distributed()
    out = tmp_path / "dask"
    with _cluster() as cluster:
        code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--scheduler", cluster.scheduler_address])
    assert code == local_run[1]
    assert_verifiable(out)
    assert_same_dataset(local_run[0], out)


@pytest.mark.slow
def test_killed_dask_worker_task_is_retried(archive: Path, keyfile: Path, local_run: tuple[Path, int], tmp_path: Path) -> None:
    """SIGKILL of a worker process mid-run: its task runs again elsewhere and the run completes unchanged."""
    _need_distributed()
    from distributed import Client

    out = tmp_path / "dask"
    result: dict[str, int] = {}
    with _cluster() as cluster, Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
        argv = ["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--scheduler", cluster.scheduler_address]
        runner = threading.Thread(target=lambda: result.update(code=main(argv)))
        runner.start()
        fragments = out / ".work" / "series"

        def first_fragment() -> bool:
            assert runner.is_alive(), "the run ended before a worker could be killed"
            return fragments.is_dir() and any(fragments.glob("*.json"))

        wait_until(first_fragment, timeout=300, what="the first finished series")
        os.kill(pids[0], signal.SIGKILL)
        runner.join(timeout=300)
        assert not runner.is_alive()
    assert result["code"] == local_run[1]
    assert_verifiable(out)
    assert_same_dataset(local_run[0], out)


def test_missing_extra_is_a_usage_error(archive: Path, keyfile: Path, tmp_path: Path) -> None:
    """Without dask.distributed, --scheduler exits 2 and says how to install it."""
    # A None entry in sys.modules makes `import distributed` raise ImportError, as when absent.
    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from medaug.cli import main\n"
        f"sys.exit(main(['run', {str(POLICY)!r}, {str(archive)!r}, {str(tmp_path / 'out')!r},"
        f" '--key', {str(keyfile)!r}, '--scheduler', 'tcp://127.0.0.1:9']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "pip install 'medaug[dask]'" in proc.stderr
    assert not (tmp_path / "out").exists()
