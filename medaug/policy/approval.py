"""Approval: an approver's name bound to a policy's exact content.

``approve`` validates a policy and writes ``<name>.approval.json`` beside it
(``policies/ct.yaml`` → ``policies/ct.approval.json``) with the approver, the
UTC time, the policy id and version, the SHA-256 of its canonical content and
the medaug version. ``check_approval`` refuses a policy without that file or
whose content changed since. The file binds content, it does not authenticate
the approver: keep policies and approvals under version control.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medaug import __version__
from medaug.errors import PolicyError, UsageError
from medaug.inputs import read_regular_file
from medaug.policy.load import load_policy
from medaug.policy.model import Policy
from medaug.screen import screen_string
from medaug.atomic import write_atomic

APPROVAL_SUFFIX = ".approval.json"

_MAX_APPROVER_CHARS = 200
_MAX_APPROVAL_BYTES = 64 * 1024


@dataclass(frozen=True)
class Approval:
    """What an approval file records.

    Parameters
    ----------
    approved_by : str
        Name of the approver.
    approved_at : str
        UTC time of approval, ISO 8601 (``2025-01-31T12:00:00Z``).
    policy_id, policy_version : str
        The approved policy's ``id`` and ``version``.
    content_sha256 : str
        SHA-256 of the policy's canonical content when approved.
    medaug_version : str
        Version of medaug that validated it.
    """

    approved_by: str
    approved_at: str
    policy_id: str
    policy_version: str
    content_sha256: str
    medaug_version: str

    def to_dict(self) -> dict[str, str]:
        """Plain data, e.g. for the audit log's run_start record."""
        return asdict(self)


def approval_path(policy_path: Path) -> Path:
    """Where the approval of ``policy_path`` lives.

    Examples
    --------
    >>> approval_path(Path("policies/mr-brain.yaml")).as_posix()
    'policies/mr-brain.approval.json'
    """
    policy_path = Path(policy_path)
    return policy_path.with_name(policy_path.stem + APPROVAL_SUFFIX)


def _check_approver(by: str) -> str:
    name = by.strip()
    if not name:
        raise PolicyError("--by: the approver's name must not be empty")
    if len(name) > _MAX_APPROVER_CHARS or not name.isprintable():
        raise PolicyError(f"--by: the approver's name must be printable and at most {_MAX_APPROVER_CHARS} characters")
    why = screen_string(name)
    if why:
        # The approval is recorded in every audit log; audit verify screens it with the same rule.
        raise PolicyError(f"--by: the approver's name {why[0]}, which audit verify rejects in a log; "
                          "write it as 'A. Steward' or 'Anna Steward'")
    return name


def _utc_iso(now: datetime) -> str:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def approve(path: Path, by: str, *, now: datetime | None = None) -> Approval:
    """Validate the policy at ``path`` and record its approval beside it.

    Parameters
    ----------
    path : Path
        The policy file.
    by : str
        Name of the approver.
    now : datetime, optional
        Time of approval (timezone-aware); the current time when omitted.

    Returns
    -------
    Approval
        What was written to :func:`approval_path` ``(path)``, replacing any
        earlier approval.

    Raises
    ------
    PolicyError
        When the policy is invalid or exceeds a cap, or the name is unusable.
    """
    path = Path(path)
    name = _check_approver(by)
    policy = load_policy(path)
    approval = Approval(
        approved_by=name,
        approved_at=_utc_iso(now if now is not None else datetime.now(UTC)),
        policy_id=policy.id,
        policy_version=policy.version,
        content_sha256=policy.content_sha256,
        medaug_version=__version__,
    )
    text = json.dumps(approval.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    write_atomic(approval_path(path), lambda f: f.write(text.encode("utf-8")))
    return approval


def read_approval(path: Path) -> Approval:
    """Read the approval file of the policy at ``path``.

    Raises
    ------
    PolicyError
        ``"policy is not approved: no approval file"`` when it is missing, or
        a message naming the bad field when it is malformed.
    """
    where = approval_path(Path(path))
    if not where.exists() and not where.is_symlink():
        raise PolicyError("policy is not approved: no approval file")
    try:
        data = read_regular_file(where, what="approval file", max_bytes=_MAX_APPROVAL_BYTES, shown=where.name)
    except UsageError as exc:
        raise PolicyError(str(exc)) from None
    try:
        record: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise PolicyError(f"approval file {where.name} is not valid JSON") from None
    if not isinstance(record, dict):
        raise PolicyError(f"approval file {where.name} must hold a JSON object")
    fields = list(Approval.__dataclass_fields__)
    for key in fields:
        if not isinstance(record.get(key), str):
            raise PolicyError(f"approval file {where.name}: {key} is missing or not a string")
    return Approval(**{key: record[key] for key in fields})


def check_approval(policy: Policy, path: Path) -> Approval:
    """The approval of ``policy`` (loaded from ``path``), if it still holds.

    Parameters
    ----------
    policy : Policy
        The loaded policy.
    path : Path
        The file it was loaded from; the approval is looked up beside it.

    Returns
    -------
    Approval

    Raises
    ------
    PolicyError
        ``"policy is not approved: no approval file"``, or ``"policy changed
        after approval: content hash differs"``, or a malformed approval file.
    """
    approval = read_approval(path)
    if approval.content_sha256 != policy.content_sha256:
        raise PolicyError("policy changed after approval: content hash differs")
    if approval.policy_id != policy.id or approval.policy_version != policy.version:
        raise PolicyError("the approval names another policy id or version than the policy")
    for field_name, text in approval.to_dict().items():
        if field_name != "approved_at" and screen_string(text):
            raise PolicyError(f"approval file: {field_name} looks like an identifier, which audit verify rejects")
    return approval
