"""`medaug policy validate` and `medaug policy approve`, run in-process."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from medaug.cli import main
from medaug.policy import approval_path, load_policy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "mr.yaml"
    shutil.copyfile(REPO / "policies" / "mr-brain.yaml", path)
    return path


@pytest.mark.parametrize("path", sorted((REPO / "policies").glob("*.yaml")), ids=lambda p: p.stem)
def test_validate_bundled_policy(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"valid: policy {path.stem} version 1" in out
    assert f"content sha256: {load_policy(path).content_sha256}" in out
    assert "approval: approved by medaug example policies at " in out


def test_validate_reports_a_missing_approval_without_failing(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "validate", str(policy_file)]) == 0
    assert "approval: policy is not approved: no approval file" in capsys.readouterr().out


def test_validate_over_cap_exits_2_naming_key_and_cap(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_file.write_text(policy_file.read_text().replace("max_scale: 0.05", "max_scale: 0.11"))
    assert main(["policy", "validate", str(policy_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "transforms.intensity.max_scale = 0.11 exceeds the MR cap of 0.1" in captured.err


def test_validate_unknown_transform_exits_2(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy_file.write_text(policy_file.read_text().replace("transforms:\n", "transforms:\n  flip: {axis: 0}\n"))
    assert main(["policy", "validate", str(policy_file)]) == 2
    assert "transforms.flip: unknown key" in capsys.readouterr().err


def test_validate_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "validate", str(tmp_path / "none.yaml")]) == 2
    assert "policy file none.yaml not found" in capsys.readouterr().err


def test_approve_then_validate(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "approve", str(policy_file), "--by", "Dr. A. Steward"]) == 0
    out = capsys.readouterr().out
    assert "approved policy mr-brain version 1" in out and "by Dr. A. Steward" in out
    assert approval_path(policy_file).is_file()
    assert main(["policy", "validate", str(policy_file)]) == 0
    assert "approval: approved by Dr. A. Steward" in capsys.readouterr().out
    # Altered after approval: validate still passes the content but says run will refuse it.
    policy_file.write_text(policy_file.read_text().replace("seed: 20240602", "seed: 1"))
    assert main(["policy", "validate", str(policy_file)]) == 0
    assert "policy changed after approval: content hash differs" in capsys.readouterr().out


def test_approve_invalid_policy_exits_2_and_writes_nothing(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy_file.write_text(policy_file.read_text().replace("max_degrees: 5 ", "max_degrees: 16"))
    assert main(["policy", "approve", str(policy_file), "--by", "Dr. A. Steward"]) == 2
    assert "transforms.rotation.max_degrees = 16 exceeds the MR cap of 15" in capsys.readouterr().err
    assert not approval_path(policy_file).exists()


def test_approve_without_name_is_a_usage_error(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["policy", "approve", str(policy_file)])
    assert info.value.code == 2
    assert "--by" in capsys.readouterr().err
