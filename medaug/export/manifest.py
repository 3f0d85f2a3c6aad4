"""The export manifest: the one definition of what an export folder holds.

Written last by :func:`medaug.export.export_dataset` and read by
:func:`medaug.export.verify.verify_export`. It names every file of the export
with its SHA-256 (paths relative to the export folder, POSIX) and, for a label
map, which label object it holds and its values; every series or label object
of the dataset that was not exported with its reason code; the layout; and the
audit-log head of the dataset the export was made from, so an export can be
tied to one verified dataset.

Nothing in it comes from an archive: paths are built from pseudonyms, layout
tokens and variant numbers, reasons are codes, digests are hex, label names
are rebuilt from segment numbers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


#: Format of the export manifest (its ``format`` field).
EXPORT_FORMAT = "medaug-export/1"

#: File name of the manifest inside the export folder.
MANIFEST_NAME = "medaug-export.json"


def manifest_path(exportdir: Path) -> Path:
    """The manifest of an export folder."""
    return exportdir / MANIFEST_NAME


def is_export(folder: Path) -> bool:
    """Whether ``folder`` holds an export manifest."""
    return manifest_path(folder).is_file()


@dataclass(frozen=True)
class ExportedLabel:
    """What a label map file holds.

    Attributes
    ----------
    object : int
        The label object's number in its series (``label-<n>.dcm`` of the dataset).
    kind : str
        ``SEG`` or ``RTSTRUCT``.
    layers : int
        1 for a 3-D map; more when segments overlap (a 4-D map, layers on the fourth axis).
    values : mapping
        De-identified segment label -> value, for the segments of this object.
    """

    object: int
    kind: str
    layers: int
    values: Mapping[str, int]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"object": self.object, "kind": self.kind, "layers": self.layers, "values": dict(self.values)}

    @classmethod
    def from_json(cls, data: Any) -> "ExportedLabel":
        """Read a parsed ``label`` entry (raises KeyError, TypeError or ValueError when malformed)."""
        values = data["values"]
        if not isinstance(values, dict):
            raise TypeError
        return cls(int(data["object"]), str(data["kind"]), int(data["layers"]),
                   {str(k): int(v) for k, v in values.items()})


@dataclass(frozen=True)
class ExportedFile:
    """One file of the export.

    Attributes
    ----------
    path : str
        Relative to the export folder (POSIX).
    sha256 : str
        Hex SHA-256 of its bytes.
    series : str or None
        The dataset's series folder (relative, pseudonymous) it was made from;
        None for index files (``dataset.json``, the datalist).
    label : ExportedLabel or None
        For a label map, what it holds; None for volumes and index files.
    """

    path: str
    sha256: str
    series: str | None = None
    label: ExportedLabel | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {"path": self.path, "sha256": self.sha256, "series": self.series,
                "label": None if self.label is None else self.label.to_json()}


@dataclass(frozen=True)
class SkippedSeries:
    """A series folder of the dataset, or one of its label objects (``label``), that was not exported, with a reason code."""

    series: str
    reason: str
    label: int | None = None


@dataclass(frozen=True)
class SourceRef:
    """The dataset an export was made from: its format and its audit log's head and length."""

    format: str
    log_head: str
    log_records: int


@dataclass(frozen=True)
class ExportManifest:
    """What an export folder is.

    Attributes
    ----------
    layout : str
        ``nnunet``, ``monai`` or ``nifti``.
    medaug : str
        Version of medaug that wrote it.
    source : SourceRef
        The dataset it came from.
    files : tuple of ExportedFile
        Every file of the export besides the manifest.
    skipped : tuple of SkippedSeries
        Series not exported, each with a reason code.
    options : mapping
        Layout options (``dataset_id`` and ``name`` for nnU-Net).
    format : str
        :data:`EXPORT_FORMAT`.
    """

    layout: str
    medaug: str
    source: SourceRef
    files: tuple[ExportedFile, ...]
    skipped: tuple[SkippedSeries, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    format: str = EXPORT_FORMAT

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (the manifest file's content)."""
        return {
            "format": self.format,
            "layout": self.layout,
            "medaug": self.medaug,
            "options": dict(self.options),
            "source": {"format": self.source.format, "log_head": self.source.log_head,
                       "log_records": self.source.log_records},
            "files": [f.to_json() for f in self.files],
            "skipped": [{"series": s.series, "reason": s.reason, "label": s.label} for s in self.skipped],
        }

    def to_bytes(self) -> bytes:
        """The manifest file's bytes (sorted keys, indented, ASCII, a final newline)."""
        return (json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode("ascii")

    @classmethod
    def from_json(cls, data: Any) -> "ExportManifest":
        """Read a parsed manifest.

        Raises
        ------
        ValueError
            Naming the key that is missing or of the wrong type.
        """
        if not isinstance(data, dict):
            raise ValueError("the manifest is not a JSON object")
        if data.get("format") != EXPORT_FORMAT:
            raise ValueError(f"format is not {EXPORT_FORMAT}")
        try:
            src = data["source"]
            source = SourceRef(str(src["format"]), str(src["log_head"]), int(src["log_records"]))
            files = tuple(
                ExportedFile(str(f["path"]), str(f["sha256"]), None if f.get("series") is None else str(f["series"]),
                             None if f.get("label") is None else ExportedLabel.from_json(f["label"]))
                for f in data["files"]
            )
            skipped = tuple(SkippedSeries(str(s["series"]), str(s["reason"]),
                                          None if s.get("label") is None else int(s["label"]))
                            for s in data["skipped"])
            options = data.get("options", {})
            if not isinstance(options, dict):
                raise TypeError
            return cls(str(data["layout"]), str(data["medaug"]), source, files, skipped, options)
        except KeyError as exc:
            raise ValueError(f"the manifest lacks the key {exc.args[0]!s:.32}") from None
        except (TypeError, ValueError):
            raise ValueError("a manifest entry has the wrong type") from None


__all__ = [
    "EXPORT_FORMAT",
    "MANIFEST_NAME",
    "ExportManifest",
    "ExportedFile",
    "ExportedLabel",
    "SkippedSeries",
    "SourceRef",
    "is_export",
    "manifest_path",
]
