"""Policies: what medaug may do, validated against a schema and hard clinical caps, and approved::

    from medaug.policy import check_approval, load_policy
    policy = load_policy(path)                 # PolicyError if invalid or over a cap
    approval = check_approval(policy, path)    # PolicyError if unapproved or altered
"""

from medaug.policy.approval import Approval, approval_path, approve, check_approval
from medaug.policy.load import load_policy, policy_from_mapping
from medaug.policy.model import OutputPolicy, Policy

__all__ = [
    "Approval",
    "OutputPolicy",
    "Policy",
    "approval_path",
    "approve",
    "check_approval",
    "load_policy",
    "policy_from_mapping",
]
