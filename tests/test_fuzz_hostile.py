"""The fuzz campaign extended to file systems and policies (issue 13).

Hypothesis builds archive trees (regular DICOM and junk files, empty files, nested
folders, links to files inside, to files outside, dangling links, link loops, FIFOs)
and policy documents (the bundled policy with random keys replaced by random values of
any JSON type, huge numbers, name- and date-like text). Every archive entry must be
accounted for by the scan, with no exception; every policy must load or be refused
with a PolicyError, never a traceback. Seeded (``derandomize``): every run tries the
same cases.
"""

from __future__ import annotations

import copy
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medaug.errors import PolicyError
from medaug.ingest.archive import scan_archive
from medaug.ingest.reasons import ALL_REASONS
from medaug.policy.load import parse_yaml, policy_from_mapping

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
ARCHIVE_CASES = 500
POLICY_CASES = 700

_ENTRY = st.sampled_from(["dicom", "junk", "empty", "folder", "link-in", "link-out", "dangling", "loop", "fifo"])


@pytest.fixture(scope="module")
def dicom_bytes(archive: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(next(archive.rglob("ct_nometa")).iterdir())][:2] + [
        next(next(archive.rglob("cr_chest")).iterdir()).read_bytes()
    ]


def _build(root: Path, outside: Path, plan: list[tuple[str, int]], dicom: list[bytes]) -> int:
    """Make the tree; return the number of non-folder entries (what the scan must account for)."""
    folders = [root]
    made: list[Path] = []
    entries = 0
    for n, (kind, pick) in enumerate(plan):
        parent = folders[pick % len(folders)]
        path = parent / f"e{n}"
        if kind == "folder":
            path.mkdir()
            folders.append(path)
            continue
        entries += 1
        if kind == "dicom":
            path.write_bytes(dicom[pick % len(dicom)])
        elif kind == "junk":
            path.write_bytes(bytes(range(pick % 200)) * 3 + b"DICM")
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "link-in" and made:
            path.symlink_to(made[pick % len(made)])
        elif kind == "link-in":
            path.write_bytes(b"x")
        elif kind == "link-out":
            path.symlink_to(outside / "secret.dcm")
        elif kind == "dangling":
            path.symlink_to(parent / "nowhere")
        elif kind == "loop":
            path.symlink_to(path)
        elif kind == "fifo":
            os.mkfifo(path)
        made.append(path)
    return entries


@settings(max_examples=ARCHIVE_CASES, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(plan=st.lists(st.tuples(_ENTRY, st.integers(0, 1000)), min_size=1, max_size=12))
def test_every_entry_of_a_generated_archive_is_accounted_for(plan: list[tuple[str, int]], tmp_path_factory: pytest.TempPathFactory,
                                                             dicom_bytes: list[bytes]) -> None:
    base = tmp_path_factory.mktemp("fs")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.dcm").write_bytes(dicom_bytes[0])
    root = base / "archive"
    root.mkdir()
    entries = _build(root, outside, plan, dicom_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scan = scan_archive(root)
        used = sum(len(ref.records) for ref in scan.iter_series())
    assert scan.file_count == entries
    assert used + len(scan.quarantined) + len(scan.directories) == entries
    assert {q.reason for q in scan.quarantined} <= set(ALL_REASONS)
    shutil.rmtree(base)


def _base_policy() -> dict[str, Any]:
    raw = parse_yaml((REPO / "policies" / "ct-chest-conservative.yaml").read_text())
    assert isinstance(raw, dict)
    return raw


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from(["", "Steward, Anna", "2024-03-01", "DOE^JOHN", "1.2.840.99.1", "x" * 300, "CT", "linear"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, prefix + (i,))
    return found


@settings(max_examples=POLICY_CASES, derandomize=True, deadline=None)
@given(choice=st.integers(0, 10_000), value=_JSON, drop=st.booleans())
def test_a_mutated_policy_loads_or_is_refused_with_a_policy_error(choice: int, value: Any, drop: bool) -> None:
    raw = _base_policy()
    paths = _paths(raw)
    target = paths[choice % len(paths)]
    mutated = copy.deepcopy(raw)
    holder: Any = mutated
    for step in target[:-1]:
        holder = holder[step]
    if drop and isinstance(holder, dict):
        del holder[target[-1]]
    else:
        holder[target[-1]] = value
    try:
        policy_from_mapping(mutated)
    except PolicyError as exc:
        assert "Traceback" not in str(exc)
