"""De-identification throughput: medaug against the floor and the peers people use.

Run ``python -m benchmarks.bench_deid [--files N] [--out-json PATH]``. It writes N
(default 400) synthetic CT slices of 512x512 with identifying values, then times,
each in its own subprocess and on the same files, read -> process -> write for:

- ``floor``: pydicom read + write, no change (nothing can be faster than this);
- ``medaug``: :func:`medaug.deid.engine.deidentify`, Basic Profile;
- ``dicognito``, ``dicom-anonymizer``, ``deid``: their default de-identification,
  run with the interpreter of the benchmark environment ``.venv-bench-deid``
  (created with ``python3 -m venv .venv-bench-deid &&
  .venv-bench-deid/bin/pip install dicognito dicom-anonymizer deid``); a peer
  whose environment is missing is reported as skipped.

Only standard-library imports at module level: the same file is the worker run
inside the peers' environment, where medaug is not installed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH_VENV_PYTHON = REPO / ".venv-bench-deid" / "bin" / "python"
TOOLS = ("floor", "medaug", "dicognito", "dicom-anonymizer", "deid")
TARGET_RATIO = 0.85


def make_slices(folder: Path, count: int) -> list[Path]:
    """Write `count` 512x512 CT slices carrying names, IDs, dates, UIDs and private tags."""
    import numpy as np
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence
    from pydicom.uid import generate_uid

    from fixtures import factory

    rng = np.random.default_rng(20240301)
    study, series, frame = (str(generate_uid()) for _ in range(3))
    paths = []
    for i in range(count):
        ds = factory.image_dataset("1.2.840.10008.5.1.4.1.1.2", generate_uid(), source_ae="CT_SCANNER_AE")
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240301"
        ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101500"
        ds.AccessionNumber = "ACC12345678"
        ds.Modality = "CT"
        ds.Manufacturer = "ACME"
        ds.InstitutionName = "St Elsewhere General Hospital"
        ds.InstitutionAddress = "1 Main Street, Springfield"
        ds.ReferringPhysicianName = "Welby^Marcus"
        ds.StationName = "CTROOM1"
        ds.StudyDescription = "CT CHEST W CONTRAST"
        ds.SeriesDescription = "AXIAL 1.0 B30f"
        ds.OperatorsName = "Operator^Olga"
        ds.ManufacturerModelName = "Scanner 9000"
        ds.PatientName = "Doe^Jane^Q"
        ds.PatientID = "MRN00012345"
        ds.PatientBirthDate = "19700214"
        ds.PatientSex = "F"
        ds.PatientAge = "054Y"
        ds.PatientWeight = "70"
        ds.DeviceSerialNumber = "SN-4711"
        ds.SoftwareVersions = "VA48"
        ds.ProtocolName = "CHEST ROUTINE"
        ds.SliceThickness = "1.0"
        ds.KVP = "120"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.StudyID = "S1"
        ds.SeriesNumber = 2
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [-250.0, -250.0, -100.0 + i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = -100.0 + i
        ref = Dataset()
        ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ref.ReferencedSOPInstanceUID = generate_uid()
        ds.ReferencedImageSequence = Sequence([ref])
        factory.pixel_module(ds, rows=512, cols=512, bits_stored=12, signed=False)
        ds.PixelSpacing = [0.7, 0.7]
        ds.RescaleIntercept = "-1024"
        ds.RescaleSlope = "1"
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        block = ds.private_block(0x0019, "ACME CT PRIVATE", create=True)
        for offset in range(0x10, 0x20):
            block.add_new(offset, "LO", f"private value {offset}")
        block2 = ds.private_block(0x0029, "ACME CSA HEADER", create=True)
        block2.add_new(0x10, "OB", bytes(rng.integers(0, 256, 2048, dtype=np.uint8)))
        ds.PixelData = rng.integers(0, 4096, (512, 512), dtype=np.uint16).tobytes()
        paths.append(factory.save(ds, folder / f"{i:05d}.dcm"))
    return paths


def _worker(tool: str, src: Path, dst: Path) -> dict[str, float]:
    """Time read -> process -> write of every file of `src` (imports excluded)."""
    import warnings

    import pydicom

    warnings.simplefilter("ignore")
    files = sorted(src.glob("*.dcm"))
    process = _processor(tool, dst)
    for path in files[:10]:  # warm caches and lazy imports outside the timing
        process(path, dst / "warm.dcm")
    start = time.perf_counter()
    for path in files:
        process(path, dst / path.name)
    seconds = time.perf_counter() - start
    del pydicom
    return {"files": len(files), "seconds": seconds}


def _processor(tool: str, dst: Path) -> Callable[[Path, Path], None]:
    import pydicom

    if tool == "floor":
        def run(path: Path, out: Path) -> None:
            pydicom.dcmread(path).save_as(out)
    elif tool == "medaug":
        from medaug.deid.engine import deidentify
        from medaug.deid.keys import Key
        from medaug.deid.options import DeidOptions

        key, options = Key(bytes(range(32))), DeidOptions()

        def run(path: Path, out: Path) -> None:
            ds, _ = deidentify(pydicom.dcmread(path), options, key)
            ds.save_as(out)
    elif tool == "dicognito":
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()

        def run(path: Path, out: Path) -> None:
            ds = pydicom.dcmread(path)
            anonymizer.anonymize(ds)
            ds.save_as(out)
    elif tool == "dicom-anonymizer":
        from dicomanonymizer import anonymize_dataset

        def run(path: Path, out: Path) -> None:
            ds = pydicom.dcmread(path)
            anonymize_dataset(ds)
            ds.save_as(out)
    elif tool == "deid":
        from deid.config import DeidRecipe
        from deid.dicom.parser import DicomParser

        recipe = DeidRecipe()

        def run(path: Path, out: Path) -> None:
            parser = DicomParser(str(path), recipe=recipe)
            parser.parse()
            parser.dicom.save_as(out)
    else:
        raise SystemExit(f"unknown tool {tool}")
    return run


def _measure(tool: str, src: Path, scratch: Path) -> dict[str, float] | None:
    python = Path(sys.executable) if tool in ("floor", "medaug") else BENCH_VENV_PYTHON
    if not python.exists():
        return None
    dst = scratch / tool
    dst.mkdir(exist_ok=True)
    proc = subprocess.run(
        [str(python), str(Path(__file__).resolve()), "--worker", tool, str(src), str(dst)],
        capture_output=True, text=True, check=False, cwd=REPO,
    )
    if proc.returncode != 0:
        print(f"{tool}: failed ({proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
        return None
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a Markdown table; returns the exit code."""
    parser = argparse.ArgumentParser(description="De-identification throughput benchmark")
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--out-json", type=Path)
    parser.add_argument("--worker", nargs=3, metavar=("TOOL", "SRC", "DST"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        tool, src, dst = args.worker
        print(json.dumps(_worker(tool, Path(src), Path(dst))))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-deid-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        make_slices(src, args.files)
        results: dict[str, float | None] = {}
        floors = []
        for tool in ("floor", "medaug", "dicognito", "dicom-anonymizer", "deid", "floor"):
            measured = _measure(tool, src, Path(tmp))
            rate = None if measured is None else measured["files"] / measured["seconds"]
            if tool == "floor" and rate is not None:
                floors.append(rate)
            else:
                results[tool] = rate
    floor = sum(floors) / len(floors) if floors else None
    rows = {"floor": floor, **results}
    print(f"De-identification of {args.files} CT slices 512x512 (files/s; ratio to the floor)\n")
    print("| tool | files/s | × floor |\n| --- | ---: | ---: |")
    for tool in TOOLS:
        rate = rows.get(tool)
        if rate is None:
            print(f"| {tool} | skipped | |")
        else:
            ratio = rate / floor if floor else float("nan")
            print(f"| {tool} | {rate:.0f} | {ratio:.2f} |")
    if args.out_json:
        args.out_json.write_text(json.dumps({"files": args.files, "rates": rows}, indent=1) + "\n")
    medaug = rows.get("medaug")
    if floor and medaug is not None:
        print(f"\nmedaug / floor = {medaug / floor:.2f} (target ≥ {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
