"""``medaug inspect ARCHIVE [--json]``: what an archive holds, without one identifying value.

Series are numbered 1..n in a stable order; files are referred to by their
number in the sorted walk of the archive (links, FIFOs, devices and
unlistable folders are entries too, refused with their reason code). Only modality, kind, sizes, spacing,
an orientation label and reason codes are printed: never a name, ID, UID, date,
free text or path from the archive.

Exit status: 0 when every file was usable, 3 when some were quarantined.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from collections.abc import Callable
from typing import Any, TextIO

import numpy as np

from medaug.ingest import reasons
from medaug.ingest.archive import ArchiveScan, scan_archive
from medaug.ingest.grouping import SeriesRef

EXIT_OK = 0
EXIT_QUARANTINED = 3  # same value as medaug.cli.EXIT_QUARANTINED

#: Largest angle (degrees) between the slice normal and a patient axis still called axial/coronal/sagittal.
PLANE_TOLERANCE_DEGREES = 1.0


def orientation_label(ref: SeriesRef) -> str:
    """``axial``, ``coronal``, ``sagittal`` or ``oblique`` from the image plane; ``n/a`` without orientation."""
    if ref.records[0].iop is None:
        return "n/a"
    normal = np.abs(ref.geometry.normal)
    axis = int(np.argmax(normal))
    if np.degrees(np.arccos(min(1.0, float(normal[axis])))) > PLANE_TOLERANCE_DEGREES:
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


#: Counts the frames of a series that carry burned-in text (given by the caller: detection is deid's);
#: ``None`` when the series could not be looked at.
TextCounter = Callable[[SeriesRef], "int | None"]


def summarise(scan: ArchiveScan, *, text_counter: TextCounter | None = None) -> dict[str, Any]:
    """The inspect report as plain data (no identifying value).

    With ``text_counter``, every series also reports ``frames_with_text``: how many of its
    frames carry text in the pixels (a count, never what it says), or ``None`` when its pixels
    could not be read. ``text_counted`` says whether the count was made at all.
    """
    series = []
    # Iterating the volumes first completes the quarantine list (grouping refusals).
    for number, ref in enumerate(scan.iter_series(), start=1):
        g = ref.geometry
        series.append({
            "number": number,
            "modality": ref.modality,
            "kind": ref.kind,
            "files": len(ref.records),
            "shape": list(g.shape) + ([ref.records[0].samples] if ref.records[0].samples > 1 else []),
            "spacing_mm": [round(s, 4) for s in g.spacing],
            "orientation": orientation_label(ref),
            "problems": list(ref.problems),
        })
        if text_counter is not None:
            series[-1]["frames_with_text"] = text_counter(ref)
    by_reason: dict[str, list[int]] = {}
    for q in scan.quarantined:
        by_reason.setdefault(q.reason, []).append(q.number)
    return {
        "files": scan.file_count,
        "directories": len(scan.directories),
        # SEG and RTSTRUCT objects tied to a series of the archive (they are not series themselves).
        "label_objects": sum(len(paths) for paths in scan.labels.values()),
        "missing_references": scan.missing_references,
        "series_count": len(series),
        "text_counted": text_counter is not None,
        "series_by_modality": dict(sorted(Counter(s["modality"] for s in series).items())),
        "series": series,
        "quarantined": {
            "count": len(scan.quarantined),
            "by_reason": {
                code: {"count": len(nums), "files": sorted(nums), "meaning": reasons.describe(code)}
                for code, nums in sorted(by_reason.items())
            },
        },
    }


def run_inspect(archive: str | Path, *, as_json: bool, out: TextIO, text_counter: TextCounter | None = None) -> int:
    """Scan ``archive`` and print its summary to ``out``.

    Parameters
    ----------
    archive : str or Path
        Folder holding the archive.
    as_json : bool
        Print JSON instead of text.
    out : TextIO
        Where to print.

    Returns
    -------
    int
        0 when every file was usable; 3 when some were quarantined.

    Raises
    ------
    UsageError
        When ``archive`` is not a folder.
    """
    report = summarise(scan_archive(Path(archive)), text_counter=text_counter)
    if as_json:
        json.dump(report, out, indent=2, sort_keys=True)
        out.write("\n")
    else:
        _print_text(report, out)
    return EXIT_QUARANTINED if report["quarantined"]["count"] else EXIT_OK


def _print_text(report: dict[str, Any], out: TextIO) -> None:
    """Human-readable form of the report."""
    mods = ", ".join(f"{m} {n}" for m, n in report["series_by_modality"].items()) or "none"
    out.write(f"{report['files']} files, {report['series_count']} series ({mods})")
    if report["directories"]:
        out.write(f", {report['directories']} DICOMDIR")
    if report["label_objects"]:
        out.write(f", {report['label_objects']} label object(s)")
    out.write("\n")
    if not report["text_counted"]:
        out.write("burned-in text: not counted\n")
    for s in report["series"]:
        shape = "x".join(str(v) for v in s["shape"])
        spacing = " x ".join(f"{v:g}" for v in s["spacing_mm"])
        problems = ", ".join(s["problems"]) or "none"
        text = ""
        if report["text_counted"]:
            found = s["frames_with_text"]
            text = "; frames with burned-in text: " + ("not checked (unreadable)" if found is None else str(found))
        out.write(
            f"  series {s['number']}: {s['modality']} {s['kind']}, {s['files']} file(s), shape {shape}, "
            f"spacing {spacing} mm, {s['orientation']}; problems: {problems}{text}\n"
        )
    q = report["quarantined"]
    out.write(f"quarantined: {q['count']} entr{'y' if q['count'] == 1 else 'ies'}\n")
    for code, entry in q["by_reason"].items():
        nums = ", ".join(str(n) if n else "(missing)" for n in entry["files"])
        out.write(f"  {code}: {entry['count']} ({entry['meaning']}); file numbers {nums}\n")
    if q["count"]:
        out.write("file numbers count entries in the sorted walk of the archive (sorted bytes of the paths)\n")
