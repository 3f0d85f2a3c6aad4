"""The allowed-kind checker: every field of every audit record is of a known, harmless kind.

The log is published with the dataset, so it may hold only codes, numbers,
digests, keyed pseudonyms, new UIDs (``2.25.<integer>``), relative output paths
of the documented form, the policy's own content, its approval and software
versions (``docs/audit.md``). Each record type's fields and the kind of each
come from the record definitions (:mod:`medaug.dataset.records`); here each kind
is a check. A field outside the record type, or a value not of its kind, is a
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

from medaug.dataset import layout, records
from medaug.screen import screen_string, strings

#: A kind checks one value; it returns True when the value is of that kind.
Kind = Callable[[Any], bool]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_NEW_UID = re.compile(r"2\.25\.(0|[1-9][0-9]{0,38})")
_PATIENT = re.compile(r"[A-Z2-7]{16}|UNKNOWN")
_SOURCE = re.compile(r"F-[0-9a-f]{24}")
_CODE = re.compile(r"[a-z0-9][a-z0-9-]{0,63}(:[A-Za-z][A-Za-z0-9_]{0,63})?")
_MODALITY = re.compile(r"[A-Z][A-Z0-9]{1,15}")
_VERSION = re.compile(r"[0-9A-Za-z][0-9A-Za-z.+!_-]{0,39}")
_PACKAGE = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")
_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})")

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


def _short_text(v: Any) -> bool:
    return isinstance(v, str) and 0 < len(v) <= 128


def _seed(v: Any) -> bool:
    return isinstance(v, dict) and set(v) == {"run_seed", "variant"} and all(_count(x) for x in v.values())


def _output_path(v: Any) -> bool:
    return isinstance(v, str) and layout.is_output_path(v)


#: Every kind a record field may declare (:mod:`medaug.dataset.records`), by name.
KINDS: dict[str, Kind] = {
    "format": _literal(layout.DATASET_FORMAT),
    "versions": _versions,
    "fingerprint": _match(_HEX16),
    "uid": _UID,
    "optional-uid": _optional(_UID),
    "patient": _match(_PATIENT),
    "modality": _match(_MODALITY),
    "series-kind": _literal("2D", "stack", "multi-frame"),
    "label-kind": _literal("SEG", "RTSTRUCT"),
    "ratios": _list_of(_list_of(lambda v: _number(v) and v >= 0, max_len=1024), max_len=4096),
    "shape": _list_of(_count, max_len=4),
    "codes": _list_of(_match(_CODE), max_len=64),
    "code": _match(_CODE),
    "count": _count,
    "number": _number,
    "source": _match(_SOURCE),
    "params": _params,
    "seed": _seed,
    "output-path": _output_path,
    "digest": _DIGEST,
    "short-text": _short_text,
    "instant": _match(_ISO_INSTANT),
    "version": _match(_VERSION),
    "reason-counts": _reason_counts,
    "policy-content": _policy_content,
    "boxes": _list_of(lambda b: isinstance(b, list) and len(b) == 4 and all(_count(x) for x in b), max_len=4096),
}

#: Record type -> {field: spec}, from the record definitions (``seq``, ``prev``, ``type`` common to all).
SCHEMAS: dict[str, dict[str, records.FieldSpec]] = records.schemas()

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
        body = {k: v for k, v in record.items() if k not in records.CHAIN_FIELDS}
        found.extend(_check_fields(seq, "", body, schema))
    for path, value in strings(record):
        found.extend(KindViolation(seq, path, why) for why in screen_string(value, date_allowed=path in _DATE_ALLOWED, structural=_structural))
    return found


def _check_fields(
    seq: int | None, prefix: str, value: dict[str, Any], schema: dict[str, records.FieldSpec]
) -> list[KindViolation]:
    found: list[KindViolation] = []
    for name, spec in schema.items():
        where = f"{prefix}{name}"
        if name not in value:
            if not spec.optional:
                found.append(KindViolation(seq, where, "missing"))
        elif spec.record is not None:
            if not isinstance(value[name], dict):
                found.append(KindViolation(seq, where, "value is not of the field's kind"))
            else:
                found.extend(_check_fields(seq, where + ".", value[name], records.sub_schema(spec.record)))
        elif spec.kind is None or not KINDS[spec.kind](value[name]):
            found.append(KindViolation(seq, where, "value is not of the field's kind"))
    for name in value:
        if name not in schema:
            found.append(KindViolation(seq, f"{prefix}{name}", "field is not part of the record type"))
    return found


def _structural(value: str) -> bool:
    """Digests, pseudonyms, new UIDs and output paths: random digits may look like a date by chance."""
    return any(p.fullmatch(value) for p in (_HEX64, _HEX16, _NEW_UID, _SOURCE)) or layout.is_output_path(value)
