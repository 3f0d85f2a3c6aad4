"""The hash-chained audit log: JSON Lines, one canonical record per line.

Every record carries ``seq`` (0, 1, 2, ...) and ``prev``, the SHA-256 of the
previous line's bytes (64 zeros for the first). Editing, inserting, deleting or
reordering a line breaks the chain at a sequence number that
:func:`check_chain` reports; truncating the tail is caught by comparing the
last line's hash (the *head*) with the one the manifest records.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medaug.canonical import canonical_json, sha256_hex

GENESIS = "0" * 64


def chain_records(records: Iterable[dict[str, Any]]) -> Iterator[str]:
    """Number and link records; yields each canonical line (without newline).

    Parameters
    ----------
    records : iterable of dict
        Record bodies; must not hold ``seq`` or ``prev`` already.
    """
    prev = GENESIS
    for seq, body in enumerate(records):
        if "seq" in body or "prev" in body:
            raise ValueError("record bodies may not set seq or prev")
        line = canonical_json({**body, "seq": seq, "prev": prev})
        prev = sha256_hex(line)
        yield line


def head_of(lines: Iterable[str]) -> str:
    """Hash of the last line (the chain's head); :data:`GENESIS` for no lines."""
    head = GENESIS
    for line in lines:
        head = sha256_hex(line)
    return head


@dataclass(frozen=True)
class ChainProblem:
    """One break in the chain, located by line number (1-based) and sequence number."""

    line: int
    seq: int | None
    problem: str


def read_lines(path: Path) -> list[str]:
    """The log's lines without their newlines (an empty trailing line is dropped)."""
    text = path.read_text(encoding="ascii")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def check_chain(lines: list[str]) -> tuple[list[dict[str, Any]], list[ChainProblem]]:
    """Parse and check every link; returns the records and the problems found."""
    import json

    records: list[dict[str, Any]] = []
    problems: list[ChainProblem] = []
    prev = GENESIS
    for number, line in enumerate(lines, start=1):
        try:
            record = json.loads(line)
        except ValueError:
            problems.append(ChainProblem(number, None, "line is not JSON"))
            prev = sha256_hex(line)
            continue
        if not isinstance(record, dict):
            problems.append(ChainProblem(number, None, "line is not a JSON object"))
            prev = sha256_hex(line)
            continue
        seq = record.get("seq") if isinstance(record.get("seq"), int) else None
        if canonical_json(record) != line:
            problems.append(ChainProblem(number, seq, "record is not in canonical form (edited)"))
        if seq != number - 1:
            problems.append(ChainProblem(number, seq, f"sequence number out of order (expected {number - 1})"))
        if record.get("prev") != prev:
            problems.append(ChainProblem(number, seq, "previous-record hash does not match (edited, inserted, deleted or reordered)"))
        records.append(record)
        prev = sha256_hex(line)
    return records, problems
