"""The allowed-kind checker: every field of every audit record is of a known, harmless kind.

The log is published with the dataset, so it may hold only codes, numbers,
digests, keyed pseudonyms, new UIDs (``2.25.<integer>``), relative output paths
of the documented form, the policy's own content, its approval and software
versions (``docs/audit.md``). Each record type has a schema here mapping every
field to one kind; a field outside the schema, or a value not of its kind, is a
violation. On top of the schemas, every string anywhere (policy content and
approval included) is screened for what looks identifying: a DICOM person name
(``^``), ``Lastname, First``, a date (``YYYYMMDD`` or ISO ``YYYY-MM-DD``, except
the approval's ``approved_at``) or a UID outside ``2.25``. Numbers are never
treated as dates: a run seed such as 20240601 is a number by design.

Violations name the record's sequence number and the field's key path, never
the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: A kind checks one value; it returns True when the value is of that kind.
Kind = Callable[[Any], bool]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_NEW_UID = re.compile(r"2\.25\.(0|[1-9][0-9]{0,38})")
_PATIENT = re.compile(r"[A-Z2-7]{16}|UNKNOWN")
_SOURCE = re.compile(r"F-[0-9a-f]{24}")
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}(:[A-Za-z][A-Za-z0-9_]{0,63})?")
_MODALITY = re.compile(r"[A-Z][A-Z0-9]{1,15}")
_OUTPUT_PATH = re.compile(r"dicom/([A-Z2-7]{16}|UNKNOWN)/st-[0-9a-f]{12}/se-[0-9a-f]{12}-v[0-9]{1,4}/[1-9][0-9]{0,6}\.dcm")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,39}")
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")

# Screens applied to every string: what an identifier tends to look like.
_LOOKS_DATE = re.compile(r"(?<![0-9])(19|20)[0-9]{2}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])(?![0-9])")
_LOOKS_ISO_DATE = re.compile(r"(?<![0-9])[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])(?![0-9])")
_LOOKS_UID = re.compile(r"(?<![0-9.])[0-9]+(\.[0-9]+){3,}(?![0-9.])")
_LOOKS_NAME = re.compile(r"\b[A-Z][a-z]+(-[A-Z][a-z]+)?, [A-Z][a-z]+\b")


@dataclass(frozen=True)
class KindViolation:
    """A field that is not of an allowed kind.

    Attributes
    ----------
    seq : int or None
        Sequence number of the record.
    field : str
        Key path of the field inside the record (e.g. ``policy.content.description``).
    problem : str
        What is wrong, never quoting the value.
    """

    seq: int | None
    field: str
    problem: str


def _match(pattern: re.Pattern[str]) -> Kind:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


def _literal(*allowed: object) -> Kind:
    return lambda v: any(type(v) is type(a) and v == a for a in allowed)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _count(v: Any) -> bool:
    return _int(v) and v >= 0


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _optional(kind: Kind) -> Kind:
    return lambda v: v is None or kind(v)


def _list_of(kind: Kind, *, max_len: int = 1 << 20) -> Kind:
    return lambda v: isinstance(v, list) and len(v) <= max_len and all(kind(x) for x in v)


def _is_json_of_numbers(v: Any, depth: int = 0) -> bool:
    """Numbers, lists and mappings of them; strings only as interpolation names."""
    if depth > 8:
        return False
    if v is None or _number(v):
        return True
    if isinstance(v, str):
        return v in ("linear", "cubic")
    if isinstance(v, list):
        return all(_is_json_of_numbers(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _PACKAGE.fullmatch(k) and _is_json_of_numbers(x, depth + 1) for k, x in v.items())
    return False


def _params(v: Any) -> bool:
    if v is None:
        return True
    if not isinstance(v, dict) or not _is_json_of_numbers(v):
        return False
    from medaug.augment.variant import VariantParams
    from medaug.errors import TransformError

    try:
        VariantParams.from_json(v)
    except TransformError:
        return False
    return True


def _versions(v: Any) -> bool:
    return isinstance(v, dict) and all(
        isinstance(k, str) and _PACKAGE.fullmatch(k) and isinstance(x, str) and _VERSION.fullmatch(x) for k, x in v.items()
    )


def _reason_counts(v: Any) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _CODE.fullmatch(k) and _count(x) for k, x in v.items())


def _policy_content(v: Any) -> bool:
    # The policy is the steward's document, not archive data; its shape is checked by
    # re-validating it (verify), its strings by the screens below.
    return isinstance(v, dict)


_DIGEST = _match(_HEX64)
_UID = _match(_NEW_UID)
_CODE_KIND = _match(_CODE)
_SHORT_TEXT = lambda v: isinstance(v, str) and 0 < len(v) <= 128  # noqa: E731 - one-line kind

#: Record type -> {field: kind}; ``seq``, ``prev`` and ``type`` are common to all.
SCHEMAS: dict[str, dict[str, Kind]] = {
    "run_start": {
        "format": _literal("medaug-dataset/1"),
        "policy": lambda v: isinstance(v, dict),
        "approval": lambda v: isinstance(v, dict),
        "versions": _versions,
        "key_fingerprint": _match(_HEX16),
    },
    "series": {
        "series": _UID,
        "patient": _match(_PATIENT),
        "modality": _match(_MODALITY),
        "kind": _literal("2D", "stack", "multi-frame"),
        "shape": _list_of(_count, max_len=4),
        "problems": _list_of(_CODE_KIND, max_len=64),
        "instances": _count,
    },
    "ingest": {"series": _UID, "instance": _UID, "source": _match(_SOURCE)},
    "derive": {
        "series": _UID,
        "variant": _count,
        "params": _params,
        "variant_series": _UID,
        "frame_of_reference": _optional(_UID),
        "seed": lambda v: isinstance(v, dict) and set(v) == {"run_seed", "variant"} and all(_count(x) for x in v.values()),
        "min_jacobian": _number,
        "max_jacobian": _number,
        "clipped": _count,
    },
    "output": {
        "path": _match(_OUTPUT_PATH),
        "sha256": _DIGEST,
        "series": _UID,
        "instance": _UID,
        "variant": _count,
    },
    "quarantine": {"source": _match(_SOURCE), "reason": _CODE_KIND},
    "index": {"source": _match(_SOURCE)},
    "run_end": {
        "counts": lambda v: isinstance(v, dict)
        and set(v) == {"inputs", "series", "files_written", "quarantined", "indexes", "missing_references"}
        and all(_count(v[k]) for k in ("inputs", "series", "files_written", "indexes", "missing_references"))
        and _reason_counts(v["quarantined"]),
    },
}

#: Fields a record type may omit (v0 derive records carry no variant series, seed or Jacobians).
OPTIONAL: dict[str, frozenset[str]] = {
    "derive": frozenset({"variant_series", "frame_of_reference", "seed", "min_jacobian", "max_jacobian"}),
}

_SUB_SCHEMAS: dict[tuple[str, str], dict[str, Kind]] = {
    ("run_start", "policy"): {
        "id": _SHORT_TEXT,
        "version": _SHORT_TEXT,
        "sha256": _DIGEST,
        "content": _policy_content,
    },
    ("run_start", "approval"): {
        "approved_by": _SHORT_TEXT,
        "approved_at": _match(_ISO_INSTANT),
        "policy_id": _SHORT_TEXT,
        "policy_version": _SHORT_TEXT,
        "content_sha256": _DIGEST,
        "medaug_version": _match(_VERSION),
    },
}

# Where a string may legitimately look like a date (ISO instant of the approval).
_DATE_ALLOWED = frozenset({"approval.approved_at"})


def check_record(record: dict[str, Any]) -> list[KindViolation]:
    """Every field of one record against its schema and the identifier screens.

    Parameters
    ----------
    record : dict
        A parsed audit record.

    Returns
    -------
    list of KindViolation
        Empty when every field is of an allowed kind.

    Examples
    --------
    >>> check_record({"seq": 1, "prev": "0" * 64, "type": "index", "source": "F-" + "a" * 24})
    []
    >>> [v.field for v in check_record({"seq": 1, "prev": "0" * 64, "type": "index", "source": "DOE^JOHN"})]
    ['source', 'source']
    """
    seq = record.get("seq") if _count(record.get("seq")) else None
    found: list[KindViolation] = []
    rtype = record.get("type")
    if not _count(record.get("seq")):
        found.append(KindViolation(seq, "seq", "not a sequence number"))
    if not _DIGEST(record.get("prev")):
        found.append(KindViolation(seq, "prev", "not a SHA-256 digest"))
    schema = SCHEMAS.get(rtype) if isinstance(rtype, str) else None
    if schema is None:
        found.append(KindViolation(seq, "type", "not a known record type"))
    else:
        optional = OPTIONAL.get(str(rtype), frozenset())
        for name, kind in schema.items():
            if name not in record:
                if name not in optional:
                    found.append(KindViolation(seq, name, "missing"))
            elif not kind(record[name]):
                found.append(KindViolation(seq, name, "value is not of the field's kind"))
        for name in record:
            if name not in schema and name not in ("seq", "prev", "type"):
                found.append(KindViolation(seq, name, "field is not part of the record type"))
        for (owner, name), sub in _SUB_SCHEMAS.items():
            if owner == rtype and isinstance(record.get(name), dict):
                found.extend(_check_sub(seq, name, record[name], sub))
    for path, value in _strings(record, ""):
        found.extend(KindViolation(seq, path, why) for why in screen_string(value, date_allowed=path in _DATE_ALLOWED))
    return found


def _check_sub(seq: int | None, owner: str, value: dict[str, Any], schema: dict[str, Kind]) -> list[KindViolation]:
    found: list[KindViolation] = []
    for name, kind in schema.items():
        if name not in value:
            found.append(KindViolation(seq, f"{owner}.{name}", "missing"))
        elif not kind(value[name]):
            found.append(KindViolation(seq, f"{owner}.{name}", "value is not of the field's kind"))
    for name in value:
        if name not in schema:
            found.append(KindViolation(seq, f"{owner}.{name}", "field is not part of the record type"))
    return found


def _strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string (keys included) with its key path."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            if isinstance(k, str):
                yield sub + " (key)", k
            yield from _strings(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def screen_string(value: str, *, date_allowed: bool = False) -> list[str]:
    """What in ``value`` looks like an identifier (a list of reasons; empty when nothing does).

    Examples
    --------
    >>> screen_string("DOE^JOHN")
    ['looks like a person name (^)']
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
    if _structural(value):
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


def _structural(value: str) -> bool:
    """Digests, pseudonyms, new UIDs and output paths: random digits may look like a date by chance."""
    return any(p.fullmatch(value) for p in (_HEX64, _HEX16, _NEW_UID, _SOURCE, _OUTPUT_PATH))
