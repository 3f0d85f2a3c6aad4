"""Golden files: the exact de-identified header of every kind of object, and one exact variant.

Where exact output matters, a property is not enough: these files pin every
element medaug writes (tag, VR, value; pixel data as a digest), so any change to
the action table, the pseudonyms, the date shift or the resampling kernel shows
up as a readable diff. The goldens are themselves test snapshots, so they are
also searched for every value the fixture generator planted.

Regenerate after an intended change with ``MEDAUG_UPDATE_GOLDEN=1 pytest
tests/test_golden.py`` and review the diff before committing it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from medaug.augment.bspline import free_mask, grid_shape
from medaug.augment.elastic import ElasticParams
from medaug.augment.intensity import IntensityParams
from medaug.augment.rotation import RotationParams
from medaug.augment.variant import VariantParams, apply_variant
from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.errors import DeidentificationError
from medaug.geometry import Geometry

GOLDEN = Path(__file__).parent / "golden"
UPDATE = bool(os.environ.get("MEDAUG_UPDATE_GOLDEN"))
# A fixed, public test key: the goldens are reproducible and hold nothing secret.
KEY = Key(bytes(range(32)))
WRITER_META = {"FileMetaInformationGroupLength", "ImplementationClassUID", "ImplementationVersionName"}
ALL_RETAIN = DeidOptions.from_names(
    [
        "retain_long_modified_dates",
        "retain_patient_characteristics",
        "retain_device_identity",
        "retain_institution_identity",
        "clean_descriptors",
        "clean_structured_content",
        "clean_graphics",
    ]
)


def _value(element: pydicom.DataElement) -> str:
    if element.VR in ("OB", "OW", "OF", "OD", "OL", "OV", "UN") or isinstance(element.value, bytes):
        raw = element.value or b""
        return f"<{len(raw)} bytes sha256 {hashlib.sha256(raw).hexdigest()[:16]}>"
    if element.VM > 1:
        return "\\".join(str(v) for v in element.value)
    return "" if element.value is None else str(element.value)


def dump(ds: Dataset, indent: str = "") -> list[str]:
    """One line per element (sequence items nested), independent of pydicom's repr."""
    lines = []
    for element in ds:
        head = f"{indent}{element.tag} {element.VR} {element.keyword or '?'}"
        if element.VR == "SQ":
            lines.append(f"{head} [{len(element.value)} items]")
            for number, item in enumerate(element.value):
                lines.append(f"{indent}  item {number}")
                lines.extend(dump(item, indent + "    "))
        else:
            lines.append(f"{head} = {_value(element)}")
    return lines


def _check(name: str, text: str, planted: list[str]) -> None:
    for value in planted:
        assert value not in text, f"planted value {value!r} reached the golden {name}"
    path = GOLDEN / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"{path} is missing: run with MEDAUG_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden file"


# What the retain options keep on purpose (PS3.15 Table E.1-1): institution and device
# identity, patient characteristics, and times of day under Modified Dates (docs/deid.md).
RETAINED = {"InstitutionName", "InstitutionAddress", "InstitutionalDepartmentName", "StationName",
            "DeviceSerialNumber", "PatientAge"}


def _planted(manifest: dict[str, Any], *, retaining: bool) -> list[str]:
    """Planted values a golden must not hold (under ``retaining``, less what the options keep)."""
    values = []
    for p in manifest["planted"]:
        if p["kind"] == "path" or "DICOMDIR" in p["where"]:
            continue
        keyword = p["where"].rsplit("/", 1)[-1]
        if retaining and (keyword in RETAINED or p["kind"] == "time"):
            continue
        values.append(str(p["value"]))
    return values


def _deid_text(path: Path, options: DeidOptions) -> str:
    ds = pydicom.dcmread(path, force=True)  # some fixture files have no preamble
    try:
        out, _ = deidentify(ds, options, KEY)
    except DeidentificationError as exc:
        return f"# refused: {exc}\n"
    meta = Dataset()
    for element in out.file_meta:
        # The fixture writer's name and version (pydicom's) and the length they imply
        # are the input's, not medaug's; the writer replaces them on output.
        if element.keyword not in WRITER_META:
            meta.add(element)
    lines = ["# file meta", *dump(meta), "# dataset", *dump(out)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("profile", ["basic", "retain"])
def test_deidentified_headers_match_their_goldens(archive: Path, manifest: dict[str, Any], profile: str) -> None:
    options = DeidOptions() if profile == "basic" else ALL_RETAIN
    planted = _planted(manifest, retaining=profile == "retain")
    for series in manifest["series"]:
        text = _deid_text(archive / series["files"][0], options)
        _check(f"deid/{profile}/{series['name']}.txt", text, planted)


def test_golden_dump_shows_a_change() -> None:
    # The comparison can fail: one changed value changes the dump.
    ds = Dataset()
    ds.PatientSex = "F"
    before = dump(ds)
    ds.PatientSex = "M"
    assert dump(ds) != before


def _phantom() -> tuple[np.ndarray, Geometry]:
    shape = (6, 24, 20)
    geometry = Geometry.axial(shape, spacing=(2.5, 0.8, 0.8))
    k, j, i = np.meshgrid(*(np.arange(n, dtype=np.float64) for n in shape), indexing="ij")
    body = ((j - 11.5) / 9.0) ** 2 + ((i - 9.5) / 8.0) ** 2 < 1.0
    volume = np.where(body, 40.0 + 3.0 * k, -1000.0)
    volume[(np.abs(j - 11.5) < 2.5) & (np.abs(i - 9.5) < 2.5)] = 700.0
    return volume.astype(np.int16), geometry


@pytest.mark.parametrize("order", ["linear", "cubic"])
def test_variant_matches_its_golden(order: str) -> None:
    volume, geometry = _phantom()
    control = np.zeros(grid_shape(geometry, 6.0) + (3,))
    free = free_mask(geometry, 6.0)
    rng = np.random.default_rng(7)
    # mm, well inside the fold-free bound (0.4 x the 6 mm control spacing)
    control[free] = rng.uniform(-1.5, 1.5, int(free.sum()))
    params = VariantParams(
        rotation=RotationParams(4.0),
        elastic=ElasticParams.from_array(6.0, control),
        intensity=IntensityParams(shift=-5.0, scale=0.02, bias_terms=((1, 0, 0), (0, 1, 1)), bias_coefficients=(0.01, -0.02)),
        interpolation=order,
    )
    result = apply_variant(volume, geometry, params, modality="CT", value_range=(-1024.0, 3071.0), out_dtype=np.int16)
    text = json.dumps({"shape": list(result.data.shape), "values": result.data.ravel().tolist()}) + "\n"
    _check(f"variant/{order}.json", text, [])
