"""The composite peer: the script a user would write for the job ``medaug run`` does.

For every series folder of an archive: pydicom reads its files, dicognito
de-identifies each of them, the slices (ordered by position) become a volume
in modality units, and TorchIO warps that volume once per variant (its
``RandomAffineElasticDeformation``: rotation and B-spline elastic in one
SimpleITK resampling, TorchIO's fastest path) with the bounds and
interpolation order of the medaug policy; a uniform intensity shift follows,
as the policy's. pydicom then writes every slice of the de-identified original
and of every variant, each variant a new series. Nothing is fsynced (a script
seldom does; ``medaug run`` flushes every series to disk).

The bounds come from a job file that :func:`benchmarks.bench_throughput.composite_job`
writes from the policy, so both sides read the same policy::

    .venv-bench/bin/python benchmarks/peer_composite.py JOB.json ARCHIVE OUT

It runs with the Python of ``.venv-bench`` (``make .venv-bench/.composite``
installs dicognito there beside TorchIO); medaug is not installed there, so
only the standard library is imported at module level. It prints one JSON
line: series and files written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: TorchIO's names for the policy's interpolation orders.
INTERPOLATION = {"linear": "linear", "cubic": "bspline"}


def series_folders(archive: Path) -> list[Path]:
    """The archive's series as the script finds them: each folder holding ``.dcm`` files, sorted."""
    return sorted({path.parent for path in archive.rglob("*.dcm")})


def _transform(job: dict[str, Any]) -> Any:
    """TorchIO's combined affine + elastic transform within the job's bounds.

    The image tensor's axes are (column, row, slice), so TorchIO's third axis
    is the slice normal: the in-plane angle turns about it and the tilts about
    the other two, as medaug's rotation does for an axial stack.
    """
    import torchio as tio

    order = INTERPOLATION[job["interpolation"]]
    degrees, tilt = job["max_degrees"], job["max_tilt_degrees"]
    mk, mj, mi = job["control_points_kji"]
    return tio.RandomAffineElasticDeformation(
        affine_kwargs={
            "scales": 0,
            "degrees": (-tilt, tilt, -tilt, tilt, -degrees, degrees),
            "translation": 0,
            "image_interpolation": order,
        },
        elastic_kwargs={
            "num_control_points": (mi, mj, mk),
            "max_displacement": job["max_displacement_mm"],
            "locked_borders": 2,
            "image_interpolation": order,
        },
    )


def _ras_affine(first: Any, last: Any, count: int) -> Any:
    """The voxel-to-RAS affine of a (column, row, slice) tensor, from the first and last slice."""
    import numpy as np

    orientation = np.asarray(first.ImageOrientationPatient, dtype=float)
    row_mm, column_mm = (float(v) for v in first.PixelSpacing)
    origin = np.asarray(first.ImagePositionPatient, dtype=float)
    step = (np.asarray(last.ImagePositionPatient, dtype=float) - origin) / max(count - 1, 1)
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * column_mm
    lps[:3, 1] = orientation[3:] * row_mm
    lps[:3, 2] = step if count > 1 else np.cross(orientation[:3], orientation[3:])
    lps[:3, 3] = origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def run(job: dict[str, Any], archive: Path, out: Path) -> dict[str, int]:
    """Process the first ``job["series"]`` series of ``archive`` into ``out``; return the counts."""
    import numpy as np
    import pydicom
    import torch
    import torchio as tio
    from dicognito.anonymizer import Anonymizer
    from pydicom.uid import generate_uid

    torch.manual_seed(job["seed"])
    rng = np.random.default_rng(job["seed"])
    anonymizer = Anonymizer(seed=str(job["seed"]))
    transform = _transform(job)
    written = 0
    folders = series_folders(archive)[: job["series"]]
    for number, folder in enumerate(folders):
        slices = [pydicom.dcmread(path) for path in sorted(folder.glob("*.dcm"))]
        orientation = np.asarray(slices[0].ImageOrientationPatient, dtype=float)
        normal = np.cross(orientation[:3], orientation[3:])
        slices.sort(key=lambda ds: float(normal @ np.asarray(ds.ImagePositionPatient, dtype=float)))
        for ds in slices:
            anonymizer.anonymize(ds)
        pixels = np.stack([ds.pixel_array for ds in slices])  # (slice, row, column)
        slope, intercept = float(slices[0].RescaleSlope), float(slices[0].RescaleIntercept)
        volume = pixels.astype(np.float32) * slope + intercept
        tensor = torch.from_numpy(np.ascontiguousarray(volume.transpose(2, 1, 0))[None])
        image = tio.ScalarImage(tensor=tensor, affine=_ras_affine(slices[0], slices[-1], len(slices)))

        series_dir = out / f"{number:04d}"
        if job["include_original"]:
            (series_dir / "v0").mkdir(parents=True)
            for k, ds in enumerate(slices):
                ds.save_as(series_dir / "v0" / f"IM{k + 1:04d}.dcm")
                written += 1
        info = np.iinfo(pixels.dtype)
        for variant in range(1, job["variants"] + 1):
            warped = transform(image).data[0].numpy().transpose(2, 1, 0)
            warped = warped + rng.uniform(-job["max_shift"], job["max_shift"])
            stored = np.clip(np.rint((warped - intercept) / slope), info.min, info.max).astype(pixels.dtype)
            series_uid, frame_uid = generate_uid(), generate_uid()
            folder_out = series_dir / f"v{variant}"
            folder_out.mkdir(parents=True)
            for k, ds in enumerate(slices):
                ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
                ds.SeriesInstanceUID, ds.FrameOfReferenceUID = series_uid, frame_uid
                ds.ImageType = ["DERIVED", "SECONDARY", *list(ds.ImageType)[2:]]
                ds.PixelData = stored[k].tobytes()
                ds.save_as(folder_out / f"IM{k + 1:04d}.dcm")
                written += 1
    return {"series": len(folders), "files_written": written}


def main(argv: list[str] | None = None) -> int:
    """Read the job, run it, print the counts as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", type=Path, help="JSON bounds written by bench_throughput.composite_job")
    parser.add_argument("archive", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    print(json.dumps(run(json.loads(args.job.read_text()), args.archive, args.out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
