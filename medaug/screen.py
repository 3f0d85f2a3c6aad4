"""The one rule for text that looks like an identifier: a person name, a date, a foreign UID.

``policy validate``, ``policy approve``, ``run`` (which loads the policy) and
``audit verify`` (which screens every string of the log, the recorded policy
and its approval included) all apply :func:`screen_string`, so a text that one
of them accepts the others accept too: an approval can never lead to a dataset
that verify rejects for good.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

_LOOKS_DATE = re.compile(r"(?<![0-9])(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])")
_LOOKS_ISO_DATE = re.compile(r"(?<![0-9])[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?![0-9])")
_LOOKS_UID = re.compile(r"(?<![0-9.])[0-9]+(\.[0-9]+){3,}(?![0-9.])")
_LOOKS_NAME = re.compile(r"\b[A-Z][a-z]+(-[A-Z][a-z]+)?, [A-Z][a-z]+\b")


def screen_string(
    value: str, *, date_allowed: bool = False, structural: Callable[[str], bool] | None = None
) -> list[str]:
    """What in ``value`` looks like an identifier (a list of reasons; empty when nothing does).

    Parameters
    ----------
    value : str
        The text.
    date_allowed : bool
        Do not report dates (a field that is a timestamp by design).
    structural : callable, optional
        True for values of a fixed machine-made form (digests, pseudonyms): their
        digits may look like a date by chance, so only names are screened.

    Examples
    --------
    >>> screen_string("DOE^JOHN")
    ['looks like a person name (^)']
    >>> screen_string("Steward, Anna")
    ['looks like a person name (Lastname, First)']
    >>> screen_string("2.25.1234")
    []
    >>> screen_string("1.2.840.99.1")
    ['looks like a UID outside 2.25']
    """
    why: list[str] = []
    if "^" in value:
        why.append("looks like a person name (^)")
    elif _LOOKS_NAME.search(value):
        why.append("looks like a person name (Lastname, First)")
    if structural is not None and structural(value):
        return why
    if not date_allowed and (_LOOKS_DATE.search(value) or _LOOKS_ISO_DATE.search(value)):
        why.append("looks like a date")
    for m in _LOOKS_UID.finditer(value):
        if not m.group(0).startswith("2.25.") and not _is_version_like(m.group(0)):
            why.append("looks like a UID outside 2.25")
            break
    return why


def _is_version_like(text: str) -> bool:
    """Short dotted numbers such as ``3.11.4.1`` are versions, not UIDs."""
    parts = text.split(".")
    return len(parts) <= 4 and all(len(part) <= 3 for part in parts)


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string of a JSON-like value (mapping keys included) with its key path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str):
                yield sub + " (key)", k
            yield from strings(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from strings(v, f"{path}[{i}]")
