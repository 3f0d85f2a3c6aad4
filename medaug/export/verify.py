"""``medaug audit verify EXPORTDIR``: check an export folder against its manifest.

Checks, each reported under its name:

``manifest``
    the export manifest exists and has the export format, and every label map
    it lists belongs to a volume it lists (the same dataset series);
``files``
    every listed file (volumes, label maps, index files) exists with its
    SHA-256, and no file the manifest does not list lies in the export folder;
``source``
    (with ``against``, the dataset the export was made from) the dataset's audit
    log head and length are the ones the manifest records.

Problems name paths inside the export (built from pseudonyms), never a value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medaug.audit.verify import CheckOutcome, Problem
from medaug.canonical import FileDigests
from medaug.export.manifest import MANIFEST_NAME, ExportManifest, manifest_path

#: Names of the checks, in the order they are reported.
CHECKS = ("manifest", "files", "source")


@dataclass
class ExportVerifyResult(CheckOutcome):
    """Outcome of :func:`verify_export` (same JSON shape as a dataset's verification where it overlaps)."""

    files: int = 0
    layout: str = ""
    log_head: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (what ``--json`` prints)."""
        return {
            "ok": self.ok,
            "kind": "export",
            "layout": self.layout,
            "files": self.files,
            "log_head": self.log_head,
            "checks": self.check_states(),
            "problems": [p.to_json() for p in self.problems],
        }


def verify_export(exportdir: Path, *, against: Path | None = None) -> ExportVerifyResult:
    """Check an export folder written by ``medaug export``.

    Parameters
    ----------
    exportdir : Path
        The export folder.
    against : Path, optional
        The dataset it was made from; its log head must be the recorded one.

    Returns
    -------
    ExportVerifyResult
    """
    from medaug.audit.chain import head_of, read_lines
    from medaug.dataset import layout

    exportdir = Path(exportdir)
    result = ExportVerifyResult(checked=[c for c in CHECKS if c != "source" or against is not None])
    add = result.problems.append
    try:
        manifest = ExportManifest.from_json(json.loads(manifest_path(exportdir).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc if isinstance(exc, ValueError) and not isinstance(exc, UnicodeDecodeError) else "unreadable"
        add(Problem("manifest", f"the export manifest cannot be read: {reason}", path=MANIFEST_NAME))
        return result
    result.layout = manifest.layout
    result.log_head = manifest.source.log_head

    listed = {f.path: f for f in manifest.files}
    if len(listed) != len(manifest.files):
        add(Problem("manifest", "a path is listed twice", path=MANIFEST_NAME))
    volumes = {f.series for f in manifest.files if f.series is not None and f.label is None}
    for entry in manifest.files:
        if entry.label is not None and entry.series not in volumes:
            add(Problem("manifest", "a label map whose series has no volume in the export", path=entry.path))
    inside = {}
    for rel, entry in sorted(listed.items()):
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            add(Problem("manifest", "a listed path leaves the export folder", path=MANIFEST_NAME))
        else:
            inside[rel] = entry
    present = {rel for rel in inside if (exportdir / rel).is_file()}
    # The volumes are hashed in parallel threads, in the order they are checked.
    with FileDigests(exportdir / rel for rel in inside if rel in present) as digests:
        for rel, entry in inside.items():
            if rel not in present:
                add(Problem("files", "a listed file is missing", path=rel))
            elif digests.digest(exportdir / rel) != entry.sha256:
                add(Problem("files", "the file's SHA-256 is not the recorded one (changed after export)", path=rel))
            else:
                result.files += 1
    for file in sorted(exportdir.rglob("*")):
        if file.is_dir():
            continue
        rel = file.relative_to(exportdir).as_posix()
        if rel != MANIFEST_NAME and rel not in listed:
            add(Problem("files", "a file the export manifest does not list", path=f"file {_number(exportdir, file)}"))

    if against is not None:
        against = Path(against)
        try:
            lines = read_lines(layout.log_path(against))
        except (OSError, UnicodeDecodeError):
            add(Problem("source", "the dataset's audit log cannot be read", path=layout.LAYOUT.log))
        else:
            if head_of(lines) != manifest.source.log_head or len(lines) != manifest.source.log_records:
                add(Problem("source", "the dataset's log head is not the one the export was made from",
                            path=layout.LAYOUT.log))
    return result


def _number(root: Path, file: Path) -> int:
    """The 1-based number of ``file`` among the export's files in sorted order (an unlisted name may be anything)."""
    files = sorted(p for p in root.rglob("*") if not p.is_dir())
    return files.index(file) + 1


def format_result(result: ExportVerifyResult) -> str:
    """Human-readable report: one line per check, then the problems."""
    out = [f"export ({result.layout or 'unknown layout'}): {result.files} files verified"]
    for check in result.checked:
        out.append(f"  {check:<9} {'FAIL' if result.failed(check) else 'ok'}")
    for p in result.problems:
        out.append(f"  - {p}")
    out.append("export verified" if result.ok else "EXPORT FAILED VERIFICATION")
    return "\n".join(out) + "\n"


__all__ = ["CHECKS", "ExportVerifyResult", "format_result", "verify_export"]
