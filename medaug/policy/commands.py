"""``medaug policy validate``, ``approve`` and ``preview``.

Each raises :class:`~medaug.errors.PolicyError` for a bad policy; the CLI turns
that into exit code 2 with the message.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from medaug.errors import PolicyError
from medaug.policy.approval import approval_path, approve, check_approval
from medaug.policy.load import load_policy
from medaug.policy.model import Policy


def _summary(policy: Policy) -> str:
    transforms = [
        name
        for name, spec in (
            ("rotation", policy.augment.rotation),
            ("elastic", policy.augment.elastic),
            ("intensity", policy.augment.intensity),
        )
        if spec is not None
    ]
    return (
        f"policy {policy.id} version {policy.version}: modalities {', '.join(policy.modalities)}; "
        f"{policy.variants_per_series} variant(s) per series"
        f"{' plus the de-identified original' if policy.include_original else ''}; "
        f"transforms: {', '.join(transforms) or 'none'}"
    )


def validate_command(path: str, *, out: TextIO) -> int:
    """Check a policy against the schema and the clinical caps; report its approval.

    Parameters
    ----------
    path : str
        The policy file.
    out : text stream
        Where the report goes.

    Returns
    -------
    int
        0 when the policy is valid (approved or not: approval is reported,
        and enforced by ``medaug run``).

    Raises
    ------
    PolicyError
        When the policy is invalid or exceeds a clinical cap.
    """
    policy_path = Path(path)
    policy = load_policy(policy_path)
    print(f"valid: {_summary(policy)}", file=out)
    print(f"content sha256: {policy.content_sha256}", file=out)
    try:
        approval = check_approval(policy, policy_path)
    except PolicyError as exc:
        print(f"approval: {exc}; `medaug run` will refuse this policy", file=out)
    else:
        print(f"approval: approved by {approval.approved_by} at {approval.approved_at}", file=out)
    return 0


def approve_command(path: str, *, by: str, out: TextIO) -> int:
    """Validate a policy and record its approval beside it.

    Parameters
    ----------
    path : str
        The policy file.
    by : str
        Name of the approver.
    out : text stream
        Where the confirmation goes.

    Returns
    -------
    int
        0 once the approval file is written.

    Raises
    ------
    PolicyError
        When the policy is invalid or exceeds a clinical cap.
    """
    policy_path = Path(path)
    approval = approve(policy_path, by)
    print(
        f"approved policy {approval.policy_id} version {approval.policy_version} "
        f"(content sha256 {approval.content_sha256}) by {approval.approved_by} at {approval.approved_at}",
        file=out,
    )
    print(f"wrote {approval_path(policy_path)}", file=out)
    return 0


def preview_command(args: argparse.Namespace) -> int:
    """``policy preview POLICY SERIES_DIR --key KEY -o preview.png [--variants N]``."""
    from medaug.deid.keys import load_key
    from medaug.errors import UsageError
    from medaug.policy.preview import write_preview

    if args.variants < 0:
        raise UsageError("--variants must be 0 or more")
    layout = write_preview(
        load_policy(Path(args.policy)),
        Path(args.series_dir),
        load_key(Path(args.key)),
        Path(args.output),
        variants=args.variants,
    )
    sys.stdout.write(f"wrote {args.output}: {layout.rows} rows x {layout.columns} panels, {layout.width} x {layout.height} px\n")
    return 0
