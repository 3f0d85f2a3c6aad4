"""Approval binds a name to a policy's exact content; bundled policies are valid and approved."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from medaug import __version__
from medaug.errors import PolicyError
from medaug.policy import Approval, approval_path, approve, check_approval, load_policy
from medaug.policy.caps import CAPS

REPO = Path(__file__).resolve().parents[1]
BUNDLED = sorted((REPO / "policies").glob("*.yaml"))
NOW = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "ct.yaml"
    shutil.copyfile(REPO / "policies" / "ct-chest-conservative.yaml", path)
    return path


def test_the_three_example_policies_are_bundled() -> None:
    assert [p.name for p in BUNDLED] == ["ct-chest-conservative.yaml", "mr-brain.yaml", "radiography.yaml"]


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_policy_validates_and_its_approval_matches(path: Path) -> None:
    policy = load_policy(path)
    assert policy.id == path.stem
    approval = check_approval(policy, path)
    assert approval.policy_id == policy.id and approval.policy_version == policy.version
    assert approval.content_sha256 == policy.content_sha256
    assert approval.approved_by == "medaug example policies"
    # Documented: a reader learns from the file itself why each bound was chosen.
    comments = [line for line in path.read_text().splitlines() if line.lstrip().startswith("#")]
    assert len(comments) >= 5
    assert all(m in CAPS for m in policy.modalities)
    assert policy.variants_per_series > 0 and policy.include_original


def test_bundled_policies_stay_well_inside_their_caps() -> None:
    ct, mr, xr = (load_policy(p) for p in BUNDLED)
    assert ct.augment.rotation is not None and ct.augment.rotation.max_degrees <= 5
    assert ct.augment.intensity is not None and ct.augment.intensity.max_shift <= 5
    assert set(ct.deid.names) >= {"retain_long_modified_dates", "clean_descriptors"}
    assert mr.augment.intensity is not None
    assert mr.augment.intensity.max_shift == 0 and mr.augment.intensity.max_scale == 0.05
    assert xr.augment.elastic is None
    assert xr.augment.rotation is not None and xr.augment.rotation.max_tilt_degrees == 0


def test_approve_writes_the_record_beside_the_policy(policy_file: Path) -> None:
    approval = approve(policy_file, "  Dr. A. Steward ", now=NOW)
    assert approval == Approval(
        approved_by="Dr. A. Steward",
        approved_at="2025-03-04T03:06:07Z",
        policy_id="ct-chest-conservative",
        policy_version="1",
        content_sha256=load_policy(policy_file).content_sha256,
        medaug_version=__version__,
    )
    where = approval_path(policy_file)
    assert where == policy_file.parent / "ct.approval.json"
    assert json.loads(where.read_text()) == approval.to_dict()
    assert where.stat().st_mode & 0o777 == 0o644
    assert check_approval(load_policy(policy_file), policy_file) == approval


def test_unapproved_policy_is_refused(policy_file: Path) -> None:
    with pytest.raises(PolicyError, match="^policy is not approved: no approval file$"):
        check_approval(load_policy(policy_file), policy_file)


def test_policy_changed_after_approval_is_refused(policy_file: Path) -> None:
    approve(policy_file, "Dr. A. Steward", now=NOW)
    text = policy_file.read_text()
    policy_file.write_text(text.replace("max_degrees: 5 ", "max_degrees: 6 "))
    with pytest.raises(PolicyError, match="^policy changed after approval: content hash differs$"):
        check_approval(load_policy(policy_file), policy_file)


def test_comment_and_layout_edits_keep_the_approval(policy_file: Path) -> None:
    approve(policy_file, "Dr. A. Steward", now=NOW)
    data = yaml.safe_load(policy_file.read_text())
    policy_file.write_text("# rewritten by a formatter\n" + yaml.safe_dump(data, sort_keys=True, default_flow_style=True))
    assert check_approval(load_policy(policy_file), policy_file).approved_by == "Dr. A. Steward"


def test_invalid_policy_cannot_be_approved(policy_file: Path) -> None:
    policy_file.write_text(policy_file.read_text().replace("max_degrees: 5 ", "max_degrees: 40"))
    with pytest.raises(PolicyError, match="max_degrees = 40 exceeds the CT cap of 15"):
        approve(policy_file, "Dr. A. Steward", now=NOW)
    assert not approval_path(policy_file).exists()


@pytest.mark.parametrize("name", ["", "   ", "a\nb", "x" * 201])
def test_unusable_approver_names_are_refused(policy_file: Path, name: str) -> None:
    with pytest.raises(PolicyError, match="--by"):
        approve(policy_file, name, now=NOW)
    assert not approval_path(policy_file).exists()


def test_naive_time_is_refused(policy_file: Path) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        approve(policy_file, "Dr. A. Steward", now=datetime(2025, 1, 1))


def test_default_time_is_now_in_utc(policy_file: Path) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    approved = datetime.fromisoformat(approve(policy_file, "Dr. A. Steward").approved_at)
    assert approved.utcoffset() == timedelta(0)
    assert before <= approved <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must hold a JSON object"),
        ('{"approved_by": "x"}', "approved_at is missing or not a string"),
    ],
)
def test_malformed_approval_file_is_refused(policy_file: Path, content: str, expected: str) -> None:
    approval_path(policy_file).write_text(content)
    with pytest.raises(PolicyError, match=expected):
        check_approval(load_policy(policy_file), policy_file)
