"""Every kind of audit record and the manifest, as typed builders: the one definition of the log.

The run builds each record through a class here (``Output(...).to_json()``);
``audit verify``, ``report``, ``trace`` and ``scan`` read them back with
:func:`parse`; the allowed-kind checker (:mod:`medaug.audit.kinds`) takes each
record type's fields and their *kinds* from :func:`schemas`. A field added
here is written, read and checked, or the checker's test fails.

Every field declares a kind by name (``"uid"``, ``"digest"``, ``"source"``…):
what sort of value it may hold. A record may hold only codes, numbers,
digests, keyed pseudonyms, new UIDs, output paths of the layout, the policy's
own content and approval, and software versions (``docs/audit.md``).

Some record types have more than one shape (``derive`` of an original and of a
variant); their schema is the union of the shapes' fields, the fields not in
every shape optional.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, Union

from medaug.dataset.layout import DATASET_FORMAT

#: Fields every line of the log has besides its record's own: number and link.
CHAIN_FIELDS = ("seq", "prev", "type")


def _kind(name: str, **kwargs: Any) -> Any:
    return field(metadata={"kind": name}, **kwargs)


def _sub(cls: type, **kwargs: Any) -> Any:
    return field(metadata={"record": cls}, **kwargs)


def _as_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _as_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _as_json(v) for k, v in value.items()}
    return value


class _Record:
    """Base of the record classes: a type name and plain-JSON output."""

    TYPE: ClassVar[str]

    def to_json(self) -> dict[str, Any]:
        """The record's body as written to the log (``seq`` and ``prev`` are added by the chain)."""
        body = _as_json(self)
        assert isinstance(body, dict)
        return {"type": self.TYPE, **body}


# -- sub-records ---------------------------------------------------------------


@dataclass(frozen=True)
class PolicyRef:
    """The policy a run applied: its id, version, content hash and whole content."""

    id: str = _kind("short-text")
    version: str = _kind("short-text")
    sha256: str = _kind("digest")
    content: Mapping[str, Any] = _kind("policy-content")


@dataclass(frozen=True)
class ApprovalRef:
    """The approval the run checked (the fields of :class:`medaug.policy.approval.Approval`)."""

    approved_by: str = _kind("short-text")
    approved_at: str = _kind("instant")
    policy_id: str = _kind("short-text")
    policy_version: str = _kind("short-text")
    content_sha256: str = _kind("digest")
    medaug_version: str = _kind("version")


@dataclass(frozen=True)
class Counts:
    """What a run did, in numbers (``run_end`` and the manifest)."""

    inputs: int = _kind("count")
    series: int = _kind("count")
    files_written: int = _kind("count")
    quarantined: Mapping[str, int] = _kind("reason-counts")
    #: Inputs of series the policy does not cover, by reason (reported apart from the unusable).
    skipped: Mapping[str, int] = _kind("reason-counts")
    indexes: int = _kind("count")
    #: Files a DICOMDIR names that the archive lacks: counted, not inputs.
    missing_references: int = _kind("count")


# -- records -------------------------------------------------------------------


@dataclass(frozen=True)
class RunStart(_Record):
    """First record: the format, the policy and its approval, versions and the key's fingerprint."""

    TYPE: ClassVar[str] = "run_start"
    policy: PolicyRef = _sub(PolicyRef)
    approval: ApprovalRef = _sub(ApprovalRef)
    versions: Mapping[str, str] = _kind("versions")
    key_fingerprint: str = _kind("fingerprint")
    format: str = _kind("format", default=DATASET_FORMAT)


@dataclass(frozen=True)
class SeriesRecord(_Record):
    """One volume of the archive as ingested (its new UID, pseudonymous patient, shape, problems)."""

    TYPE: ClassVar[str] = "series"
    series: str = _kind("uid")
    patient: str = _kind("patient")
    modality: str = _kind("modality")
    kind: str = _kind("series-kind")
    shape: tuple[int, ...] = _kind("shape")
    problems: tuple[str, ...] = _kind("codes")
    instances: int = _kind("count")


@dataclass(frozen=True)
class Ingest(_Record):
    """One source file behind a series: its new instance UID and its keyed source pseudonym."""

    TYPE: ClassVar[str] = "ingest"
    series: str = _kind("uid")
    instance: str = _kind("uid")
    source: str = _kind("source")


@dataclass(frozen=True)
class OriginalDerive(_Record):
    """The de-identified original (variant 0) of a series: no parameters."""

    TYPE: ClassVar[str] = "derive"
    series: str = _kind("uid")
    clipped: int = _kind("count")
    variant: int = _kind("count", default=0)
    params: None = _kind("params", default=None)


@dataclass(frozen=True)
class VariantDerive(_Record):
    """One variant: realised parameters, seed, Jacobian range and the new series' UIDs."""

    TYPE: ClassVar[str] = "derive"
    series: str = _kind("uid")
    variant: int = _kind("count")
    variant_series: str = _kind("uid")
    frame_of_reference: str | None = _kind("optional-uid")
    params: Mapping[str, Any] = _kind("params")
    seed: Mapping[str, int] = _kind("seed")
    min_jacobian: float = _kind("number")
    max_jacobian: float = _kind("number")
    clipped: int = _kind("count")
    #: Transforms the policy allows that could not act on this series, and why (codes).
    not_applied: tuple[str, ...] = _kind("codes", default=())


@dataclass(frozen=True)
class Label(_Record):
    """One label object (SEG or RTSTRUCT) of the archive carried with the image series it follows."""

    TYPE: ClassVar[str] = "label"
    series: str = _kind("uid")
    source: str = _kind("source")
    kind: str = _kind("label-kind")
    segments: int = _kind("count")
    #: One row per series written from ``series``, in variant order (0, the de-identified original,
    #: first when the policy includes it); per segment, in segment order: its voxel count in that
    #: series' label over the source's (fractional segments: fractions summed; 1 for an empty one).
    ratios: tuple[tuple[float, ...], ...] = _kind("ratios")


@dataclass(frozen=True)
class Redaction(_Record):
    """Burned-in text blanked on one slice of a series: the boxes' number and places, never what they said."""

    TYPE: ClassVar[str] = "redaction"
    series: str = _kind("uid")
    slice: int = _kind("count")
    boxes: tuple[tuple[int, int, int, int], ...] = _kind("boxes")


@dataclass(frozen=True)
class Output(_Record):
    """One file of the dataset: its path, digest, series, instance and variant."""

    TYPE: ClassVar[str] = "output"
    path: str = _kind("output-path")
    sha256: str = _kind("digest")
    series: str = _kind("uid")
    instance: str = _kind("uid")
    variant: int = _kind("count")


@dataclass(frozen=True)
class Quarantine(_Record):
    """One input that was not used, with its reason code."""

    TYPE: ClassVar[str] = "quarantine"
    source: str = _kind("source")
    reason: str = _kind("code")


@dataclass(frozen=True)
class Skip(_Record):
    """One input of a series the policy does not cover (out of scope: usable, but not its job)."""

    TYPE: ClassVar[str] = "skip"
    source: str = _kind("source")
    reason: str = _kind("code")


@dataclass(frozen=True)
class Index(_Record):
    """One DICOMDIR of the archive (an index, not an image)."""

    TYPE: ClassVar[str] = "index"
    source: str = _kind("source")


@dataclass(frozen=True)
class RunEnd(_Record):
    """Last record: the run's counts."""

    TYPE: ClassVar[str] = "run_end"
    counts: Counts = _sub(Counts)


Record = Union[RunStart, SeriesRecord, Ingest, OriginalDerive, VariantDerive, Label, Redaction, Output, Quarantine, Skip, Index, RunEnd]

#: Every record class, grouped by record type.
RECORD_CLASSES: tuple[type[_Record], ...] = (
    RunStart, SeriesRecord, Ingest, OriginalDerive, VariantDerive, Label, Redaction, Output, Quarantine, Skip, Index, RunEnd,
)


@dataclass(frozen=True)
class FieldSpec:
    """One field of a record type, as the kind checker sees it.

    Attributes
    ----------
    kind : str or None
        The kind's name (None for a sub-record).
    record : type or None
        The sub-record class, whose fields have kinds of their own.
    optional : bool
        True when some shape of the record type omits the field.
    """

    kind: str | None
    record: type | None
    optional: bool


def _field_spec(f: dataclasses.Field[Any], optional: bool) -> FieldSpec:
    return FieldSpec(f.metadata.get("kind"), f.metadata.get("record"), optional)


def schemas() -> dict[str, dict[str, FieldSpec]]:
    """Record type -> field -> :class:`FieldSpec`, derived from the record classes."""
    shapes: dict[str, list[dict[str, dataclasses.Field[Any]]]] = {}
    for cls in RECORD_CLASSES:
        fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        shapes.setdefault(cls.TYPE, []).append(fields)
    out: dict[str, dict[str, FieldSpec]] = {}
    for rtype, variants in shapes.items():
        names = list(dict.fromkeys(n for v in variants for n in v))
        out[rtype] = {
            n: _field_spec(next(v[n] for v in variants if n in v), not all(n in v for v in variants)) for n in names
        }
    return out


def sub_schema(cls: type) -> dict[str, FieldSpec]:
    """Field -> :class:`FieldSpec` of a sub-record class (every field required)."""
    return {f.name: _field_spec(f, False) for f in dataclasses.fields(cls)}


def kinds_used() -> set[str]:
    """Every kind name a record or sub-record field declares."""
    found: set[str] = set()

    def visit(specs: Iterable[FieldSpec]) -> None:
        for spec in specs:
            if spec.kind is not None:
                found.add(spec.kind)
            if spec.record is not None:
                visit(sub_schema(spec.record).values())

    for schema in schemas().values():
        visit(schema.values())
    return found


R = TypeVar("R", bound=_Record)


def _build(cls: type[Any], data: Mapping[str, Any]) -> Any:
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sub = f.metadata.get("record")
        if sub is not None:
            if not isinstance(value, Mapping) or set(value) != {g.name for g in dataclasses.fields(sub)}:
                raise ValueError(f.name)
            value = _build(sub, value)
        kwargs[f.name] = value
    return cls(**kwargs)


def parse(data: Mapping[str, Any]) -> Record | None:
    """The typed record of a parsed log line, or None when it has no known shape.

    Only the shape is checked here (type and field names); whether each value is
    of its field's kind is :mod:`medaug.audit.kinds`' job.
    """
    rtype = data.get("type")
    keys = set(data) - set(CHAIN_FIELDS)
    for cls in RECORD_CLASSES:
        if cls.TYPE != rtype:
            continue
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        required = {f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING}  # type: ignore[arg-type]
        if required <= keys <= names:
            try:
                built: Record = _build(cls, data)
            except (TypeError, ValueError):
                return None
            return built
    return None


def of_type(records: Iterable[Mapping[str, Any]], cls: type[R]) -> Iterator[tuple[int | None, R]]:
    """``(seq, record)`` of every line of ``records`` that parses as ``cls``."""
    # Only lines of a type some class of ``cls`` claims can parse as one: the
    # others are passed over unparsed (the audit tools ask for every type in turn).
    types = {c.TYPE for c in RECORD_CLASSES if issubclass(c, cls)}
    for data in records:
        rtype = data.get("type")
        if not isinstance(rtype, str) or rtype not in types:
            continue
        record = parse(data)
        if isinstance(record, cls):
            seq = data.get("seq")
            yield (seq if isinstance(seq, int) and not isinstance(seq, bool) else None), record


def is_type(data: Mapping[str, Any], cls: type[_Record]) -> bool:
    """Whether a parsed line claims the record type of ``cls`` (whatever its shape)."""
    return data.get("type") == cls.TYPE


# -- the manifest ----------------------------------------------------------------


@dataclass(frozen=True)
class LogRef:
    """Where the log is, how many lines it has and the hash of its last line."""

    path: str
    records: int
    head: str


@dataclass(frozen=True)
class Manifest:
    """What a dataset is: its format, the medaug that made it, its policy, log head and counts."""

    medaug: str
    policy: Mapping[str, str]
    log: LogRef
    counts: Counts
    format: str = DATASET_FORMAT

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the manifest file's content)."""
        body = _as_json(self)
        assert isinstance(body, dict)
        return body


__all__ = [
    "CHAIN_FIELDS",
    "RECORD_CLASSES",
    "ApprovalRef",
    "Counts",
    "FieldSpec",
    "Index",
    "Ingest",
    "Label",
    "LogRef",
    "Manifest",
    "OriginalDerive",
    "Output",
    "PolicyRef",
    "Quarantine",
    "Record",
    "Redaction",
    "RunEnd",
    "RunStart",
    "SeriesRecord",
    "Skip",
    "VariantDerive",
    "is_type",
    "kinds_used",
    "of_type",
    "parse",
    "schemas",
    "sub_schema",
]
