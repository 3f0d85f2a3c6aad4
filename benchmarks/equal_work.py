"""Did a run do the whole job? The check that makes a speed comparison one of equal work.

:func:`check_outputs` looks at what a pipeline wrote for some source series —
``medaug run``'s dataset or the composite peer's folder — and lists every way
it falls short of the job: an output that does not parse or whose pixels do
not decode, a missing or extra series, a series whose geometry is not its
source's, a variant whose pixels are another output's (not transformed), a
source identifier left in the element it came from, and, when dciodvfy is
given, an error kind dciodvfy reports for an output but for none of the
sources. ``make bench`` fails when the list is not empty.

Problems name outputs by number, never by a value, as everywhere in medaug.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import warnings
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

#: Elements whose source values must not be in the same element of any output.
IDENTIFYING = ("PatientName", "PatientID", "AccessionNumber", "StudyInstanceUID", "SeriesInstanceUID",
               "SOPInstanceUID", "FrameOfReferenceUID")

#: What a dciodvfy message quotes, except the names after ``Element=`` and ``Module=``.
_NOT_A_NAME = re.compile(r"(?<!Element=)(?<!Module=)<[^>]*>|\"[^\"]*\"|\d+")


def dciodvfy_kinds(path: Path, tool: str) -> set[str]:
    """The kinds of error dciodvfy reports for a file.

    Each ``Error`` message with the attribute and module it names, its quoted
    values and numbers dropped (they differ once a file is de-identified).

    Parameters
    ----------
    path : Path
        The DICOM file.
    tool : str
        Path of the dciodvfy executable.
    """
    proc = subprocess.run([tool, str(path)], capture_output=True, text=True, errors="replace", check=False)
    return {_NOT_A_NAME.sub("", line) for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")}


def _geometry(ds: Dataset) -> tuple[Any, ...]:
    """One slice's place on the grid, rounded below any encoding noise."""
    return (
        tuple(round(float(v), 2) for v in ds.ImagePositionPatient),
        tuple(round(float(v), 4) for v in ds.ImageOrientationPatient),
        tuple(round(float(v), 4) for v in ds.PixelSpacing),
        int(ds.Rows),
        int(ds.Columns),
    )


def _series_geometry(slices: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return tuple(sorted(slices))


def check_outputs(
    sources: Sequence[Sequence[Path]], outputs: Sequence[Path], *, copies: int, dciodvfy: str | None = None,
    dciodvfy_per_series: int = 2,
) -> list[str]:
    """Every way ``outputs`` fall short of ``copies`` valid series per source series.

    Parameters
    ----------
    sources : sequence of sequences of Path
        The files of each source series the run was given.
    outputs : sequence of Path
        Every image file the run wrote for them.
    copies : int
        Output series per source series (the original, if written, and each variant).
    dciodvfy : str, optional
        Path of dciodvfy; without it the validator check is left out.
    dciodvfy_per_series : int
        How many files of each output series dciodvfy looks at (the first ones by position).

    Returns
    -------
    list of str
        The problems; empty when the outputs do the whole job.
    """
    problems: list[str] = []
    with warnings.catch_warnings():
        # pydicom warns about harmless oddities; what counts here is whether a file parses.
        warnings.simplefilter("ignore")
        source_geometries: Counter[tuple[Any, ...]] = Counter()
        identifiers: dict[str, set[str]] = {name: set() for name in IDENTIFYING}
        first_sources = []
        for files in sources:
            headers = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
            source_geometries[_series_geometry([_geometry(ds) for ds in headers])] += 1
            for ds in headers:
                for name in IDENTIFYING:
                    if str(ds.get(name, "")):
                        identifiers[name].add(str(ds.get(name)))
            first_sources.append(files[0])

        # Per output series: each slice's place, output number and pixel digest.
        series: dict[str, list[tuple[tuple[Any, ...], int, bytes]]] = {}
        for number, path in enumerate(outputs, start=1):
            try:
                ds = pydicom.dcmread(path)
                pixels = ds.pixel_array
                place = _geometry(ds)
            except Exception:  # noqa: BLE001 - any failure to read is the finding
                problems.append(f"output {number} does not parse as a DICOM image")
                continue
            if pixels.shape[-2:] != (ds.Rows, ds.Columns):
                problems.append(f"output {number}: pixel data does not decode to Rows x Columns")
            for name in IDENTIFYING:
                if str(ds.get(name, "")) in identifiers[name]:
                    problems.append(f"output {number} keeps a source value of {name}")
            pixel_digest = hashlib.sha256(pixels.tobytes()).digest()
            series.setdefault(str(ds.SeriesInstanceUID), []).append((place, number, pixel_digest))

    if len(series) != copies * len(sources):
        problems.append(f"{len(series)} output series where {copies} x {len(sources)} = "
                        f"{copies * len(sources)} were expected")
    output_geometries: Counter[tuple[Any, ...]] = Counter()
    digests: Counter[str] = Counter()
    for slices in series.values():
        slices.sort()
        output_geometries[_series_geometry([place for place, _, _ in slices])] += 1
        digests[hashlib.sha256(b"".join(d for _, _, d in slices)).hexdigest()] += 1
    expected = Counter({geometry: copies * n for geometry, n in source_geometries.items()})
    if output_geometries != expected:
        unmatched = sum((output_geometries - expected).values())
        problems.append(f"the geometry of {unmatched} output series is not that of a source series, "
                        "or a source series lacks some of its outputs")
    repeated = sum(n - 1 for n in digests.values() if n > 1)
    if repeated:
        problems.append(f"{repeated} output series repeat the pixels of another (a variant not transformed)")

    if dciodvfy is not None:
        before: set[str] = set()
        for path in first_sources:
            before |= dciodvfy_kinds(path, dciodvfy)
        for slices in series.values():
            for _, number, _ in slices[:dciodvfy_per_series]:
                if dciodvfy_kinds(outputs[number - 1], dciodvfy) - before:
                    problems.append(f"output {number}: dciodvfy reports an error kind no source has")
    return problems
