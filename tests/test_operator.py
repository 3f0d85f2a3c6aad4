"""Careless operators and hostile arguments: every mistake is a message and exit 2, found before work starts.

Each test names the mistake; none of them may end in a traceback, a hang, or a dataset
that ``audit verify`` then rejects for good.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from medaug.audit.signing import write_signing_keypair
from medaug.augment.variant import ELASTIC_TOO_FINE
from medaug.cli import main
from medaug.dataset import layout, lock, records
from medaug.deid.keys import write_key
from medaug.policy.approval import approval_path

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"


@pytest.fixture()
def small_archive(archive: Path, tmp_path: Path) -> Path:
    """A one-series CT archive (the fixture archive's four-slice stack without file meta)."""
    source = next(archive.rglob("ct_nometa"))
    root = tmp_path / "small"
    shutil.copytree(source, root / "series")
    return root


def _policy_copy(tmp_path: Path, change: dict[str, object] | None = None, *, approve: bool = True) -> Path:
    raw = yaml.safe_load(POLICY.read_text())
    raw.update(change or {})
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(raw))
    if approve:
        assert main(["policy", "approve", str(path), "--by", "A. Steward"]) == 0
    return path


def _run(policy: Path, archive: Path, out: Path, key: Path, *extra: str) -> int:
    return main(["run", str(policy), str(archive), str(out), "--key", str(key), "--workers", "1", *extra])


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_fifo_given_as_key_is_refused_at_once(tmp_path: Path, small_archive: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    fifo = tmp_path / "key.fifo"
    os.mkfifo(fifo)
    assert _run(POLICY, small_archive, tmp_path / "out", fifo) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_key_readable_by_others_is_refused(tmp_path: Path, small_archive: Path, keyfile: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    shared = tmp_path / "shared.key"
    shutil.copy(keyfile, shared)
    shared.chmod(0o644)
    assert _run(POLICY, small_archive, tmp_path / "out", shared) == 2
    assert "readable by other users" in capsys.readouterr().err


def test_a_seed_of_thousands_of_digits_is_a_policy_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(POLICY.read_text().replace("seed: 20240601", "seed: " + "9" * 5001))
    assert main(["policy", "validate", str(path)]) == 2
    assert "too many digits" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change",
    [{"description": "Reviewed with Steward, Anna"}, {"description": "approved on 2024-03-01"},
     {"description": "as agreed 20240301"}],
)
def test_text_verify_would_reject_is_refused_by_validate(tmp_path: Path, change: dict[str, object],
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = _policy_copy(tmp_path, change, approve=False)
    assert main(["policy", "validate", str(path)]) == 2
    assert "description: looks like" in capsys.readouterr().err


def test_an_approver_name_verify_would_reject_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _policy_copy(tmp_path, approve=False)
    assert main(["policy", "approve", str(path), "--by", "Steward, Anna"]) == 2
    assert "looks like a person name" in capsys.readouterr().err
    assert not approval_path(path).exists()


def test_an_approval_of_another_policy_id_is_refused_by_run(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = _policy_copy(tmp_path)
    approval = json.loads(approval_path(path).read_text())
    approval["policy_version"] = "2"
    approval_path(path).write_text(json.dumps(approval))
    assert _run(path, small_archive, tmp_path / "out", keyfile) == 2
    assert "another policy id or version" in capsys.readouterr().err


def test_a_wrong_signing_key_is_found_before_the_first_series(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    wrong = tmp_path / "not-a-key.pem"
    wrong.write_text("-----BEGIN PRIVATE KEY-----\nnonsense\n-----END PRIVATE KEY-----\n")
    out = tmp_path / "out"
    assert _run(POLICY, small_archive, out, keyfile, "--signing-key", str(wrong)) == 2
    assert "signing key" in capsys.readouterr().err
    assert not out.exists()


def test_a_second_run_into_a_held_folder_is_refused(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    out.mkdir()
    with lock.hold(out):
        assert _run(POLICY, small_archive, out, keyfile, "--resume") == 2
    assert "another medaug run" in capsys.readouterr().err


def test_an_existing_dataset_is_signed_afterwards(tmp_path: Path, small_archive: Path, keyfile: Path) -> None:
    out = tmp_path / "out"
    assert _run(POLICY, small_archive, out, keyfile) == 0
    public = write_signing_keypair(tmp_path / "signer.pem")
    assert main(["audit", "verify", str(out), "--public-key", str(public)]) == 1  # not signed yet
    assert main(["audit", "sign", str(out), "--signing-key", str(tmp_path / "signer.pem")]) == 0
    assert main(["audit", "verify", str(out), "--public-key", str(public)]) == 0


def test_verify_of_a_folder_that_is_no_dataset_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit", "verify", str(tmp_path)]) == 2
    assert "not a medaug dataset" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_output_folder_without_permission_is_a_message(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    assert _run(POLICY, small_archive, locked / "out", keyfile) == 2
    assert "Permission denied" in capsys.readouterr().err


def test_an_output_path_that_is_a_file_is_a_message(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    assert _run(POLICY, small_archive, target, keyfile) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "errno" in err and str(target) not in err


def test_a_report_into_a_missing_folder_is_a_message(tmp_path: Path, small_archive: Path, keyfile: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert _run(POLICY, small_archive, out, keyfile) == 0
    assert main(["audit", "report", str(out), "-o", str(tmp_path / "missing" / "r.html")]) == 2
    assert "errno ENOENT" in capsys.readouterr().err


def test_help_lists_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "130" in capsys.readouterr().out


def test_a_key_written_by_keygen_is_private(tmp_path: Path) -> None:
    write_key(tmp_path / "k")
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_a_resume_while_another_process_runs_is_refused_and_the_run_completes(
    tmp_path: Path, small_archive: Path, keyfile: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A real second process holds the folder: started, caught as soon as it has recorded its run
    # state (written under the lock, removed when the run ends), and frozen there (SIGSTOP) so the
    # overlap does not depend on how fast this machine is.
    out = tmp_path / "out"
    script = "import sys; from medaug.cli import main; sys.exit(main(sys.argv[1:]))"
    with (tmp_path / "first.err").open("wb") as err:
        first = subprocess.Popen(
            [sys.executable, "-c", script, "run", str(POLICY), str(small_archive), str(out), "--key", str(keyfile),
             "--workers", "1"],
            stdout=subprocess.DEVNULL, stderr=err,
        )
    try:
        deadline = time.monotonic() + 120
        while not layout.run_state_path(out).exists():
            assert first.poll() is None, (tmp_path / "first.err").read_text()
            assert time.monotonic() < deadline, "the first run never recorded its state"
            time.sleep(0.001)
        os.kill(first.pid, signal.SIGSTOP)
        assert layout.run_state_path(out).exists(), "the first run ended before it was frozen"
        assert _run(POLICY, small_archive, out, keyfile, "--resume") == 2
        assert "another medaug run" in capsys.readouterr().err
        os.kill(first.pid, signal.SIGCONT)
        assert first.wait(timeout=300) == 0
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGCONT)
            first.kill()
            first.wait()
    assert main(["audit", "verify", str(out)]) == 0
    # The refused resume touched nothing: the dataset is the one an undisturbed run makes.
    alone = tmp_path / "alone"
    assert _run(POLICY, small_archive, alone, keyfile) == 0
    assert _tree_bytes(out) == _tree_bytes(alone)



def test_a_control_grid_finer_than_the_voxels_is_never_built(tmp_path: Path, small_archive: Path,
                                                            keyfile: Path) -> None:
    # Inside every cap (0.0003 mm < 0.4 x 0.001 mm), yet a grid of 0.001 mm over a CT would need
    # more memory than any machine: the variants are made without it, and say why.
    raw = yaml.safe_load(POLICY.read_text())
    raw["transforms"]["elastic"] = {"control_spacing_mm": 0.001, "max_displacement_mm": 0.0003}
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(policy), "--by", "A. Steward"]) == 0
    out = tmp_path / "out"
    assert _run(policy, small_archive, out, keyfile) == 0
    lines = [json.loads(line) for line in layout.log_path(out).read_text().splitlines()]
    variants = [r for _, r in records.of_type(lines, records.VariantDerive)]
    assert variants and all(ELASTIC_TOO_FINE in r.not_applied for r in variants)
    assert not any(r.params.get("elastic") for r in variants)
    assert main(["audit", "verify", str(out)]) == 0
