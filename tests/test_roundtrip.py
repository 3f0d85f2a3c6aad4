"""Read → write → read keeps stored pixel values exactly and geometry within 1e-4 mm.

Sources are synthetic series built by :mod:`tests.write_helpers` and every
series of the fixture archive; they are read with :mod:`medaug.ingest`,
written with :func:`medaug.write.write_series` and read again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from medaug.geometry import Geometry
from medaug.ingest.image import SeriesImage
from medaug.write import write_series
from tests.write_helpers import (
    BUILDERS,
    CT_IMAGE,
    UID_PREFIX,
    along_normal,
    build_ct,
    build_stack,
    fixture_series,
    load_one,
    load_ref,
    stored_by_position,
)


def _new_uids(n: int) -> tuple[str, list[str]]:
    return generate_uid(UID_PREFIX), [generate_uid(UID_PREFIX) for _ in range(n)]


def check_roundtrip(image: SeriesImage, outdir: Path) -> SeriesImage:
    """Write ``image``, read it back, and assert values and geometry survived."""
    n_files = 1 if image.multiframe else image.geometry.shape[0]
    series_uid, sops = _new_uids(n_files)
    result = write_series(image, outdir, series_uid=series_uid, sop_instance_uids=sops)
    assert result.clipped == 0
    assert [p.name for p in result.paths] == [f"{k + 1}.dcm" for k in range(n_files)]
    again = load_one(outdir)
    assert again.multiframe == image.multiframe
    assert again.modality == image.modality
    assert again.photometric == image.photometric
    assert again.stored_range == image.stored_range
    assert again.geometry.shape == image.geometry.shape
    np.testing.assert_array_equal(again.rescale, image.rescale)
    np.testing.assert_array_equal(again.data, image.data)
    np.testing.assert_allclose(again.geometry.affine, image.geometry.affine, atol=1e-4, rtol=0)
    return again


def test_roundtrip_of_every_fixture_series(archive: Path, manifest: dict[str, Any], tmp_path: Path) -> None:
    pairs = fixture_series(archive, manifest)
    assert len(pairs) == len(manifest["series"]) > 0
    for name, ref in pairs:
        image = load_ref(ref)
        check_roundtrip(image, tmp_path / name)
        # pydicom alone sees the source's stored values at the source's positions.
        stored, positions = stored_by_position(sorted((tmp_path / name).glob("*.dcm")))
        src_stored, src_positions = stored_by_position(ref.files, force=True)
        np.testing.assert_array_equal(stored, src_stored, err_msg=name)
        # Uneven stacks (a gap, irregular steps) keep every slice at its real position too.
        np.testing.assert_allclose(positions, src_positions, atol=1e-4, rtol=0, err_msg=name)


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_roundtrip_keeps_stored_values_and_geometry(kind: str, tmp_path: Path) -> None:
    source = BUILDERS[kind](tmp_path / "src", np.random.default_rng(7))
    image = load_one(source.directory)
    np.testing.assert_allclose(image.geometry.affine, source.geometry.affine, atol=1e-4, rtol=0)
    check_roundtrip(image, tmp_path / "out")
    # Independent of medaug's reader: pydicom sees the same stored values at the same places.
    out_files = sorted((tmp_path / "out").glob("*.dcm"))
    stored, positions = stored_by_position(out_files)
    np.testing.assert_array_equal(stored.reshape(source.stored.shape), source.stored)
    src_stored, src_positions = stored_by_position(source.files)
    np.testing.assert_array_equal(stored, src_stored)
    np.testing.assert_allclose(positions, src_positions, atol=1e-4, rtol=0)


def test_written_objects_keep_iod_and_take_new_identifiers(tmp_path: Path) -> None:
    source = build_ct(tmp_path / "src", np.random.default_rng(1))
    image = load_one(source.directory)
    series_uid, sops = _new_uids(4)
    for_uid = generate_uid(UID_PREFIX)
    result = write_series(
        image, tmp_path / "out", series_uid=series_uid, sop_instance_uids=sops,
        frame_of_reference_uid=for_uid, file_names=["a.dcm", "b.dcm", "c.dcm", "d.dcm"], derived=True,
    )
    src = pydicom.dcmread(source.files[0])
    for k, path in enumerate(result.paths):
        ds = pydicom.dcmread(path)
        assert ds.SOPClassUID == CT_IMAGE
        assert ds.file_meta.MediaStorageSOPClassUID == CT_IMAGE
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID == sops[k]
        assert ds.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert ds.file_meta.ImplementationClassUID.startswith("2.25.")
        assert ds.SeriesInstanceUID == series_uid
        assert ds.FrameOfReferenceUID == for_uid
        assert ds.InstanceNumber == k + 1
        assert list(ds.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]
        assert ds.StudyInstanceUID == src.StudyInstanceUID  # the writer leaves the rest to deid
        assert ds.SliceLocation == pytest.approx(float(image.geometry.slice_position(k) @ image.geometry.normal), abs=1e-4)
        assert path.read_bytes()[128:132] == b"DICM"


# -- property-based round trip -----------------------------------------------------------


def _rotation(q: tuple[float, float, float, float]) -> NDArray[np.float64]:
    w, x, y, z = np.asarray(q) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


_DTYPES = [("<i2", 16), ("<i2", 12), ("<u2", 16), ("<u2", 10), ("u1", 8), ("u1", 6)]

quaternions = st.tuples(*[st.floats(-1, 1) for _ in range(4)]).filter(lambda q: sum(v * v for v in q) > 0.05)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    q=quaternions,
    spacing=st.tuples(*[st.floats(0.2, 6.0) for _ in range(3)]),
    origin=st.tuples(*[st.floats(-300, 300) for _ in range(3)]),
    dtype_bits=st.sampled_from(_DTYPES),
    order_seed=st.integers(0, 2**32 - 1),
    rescale=st.sampled_from([(1.0, 0.0), (1.0, -1024.0), (0.5, 10.0), (2.0, -3.0)]),
)
def test_roundtrip_any_orientation_spacing_order_and_type(
    tmp_path_factory: pytest.TempPathFactory,
    q: tuple[float, float, float, float],
    spacing: tuple[float, float, float],
    origin: tuple[float, float, float],
    dtype_bits: tuple[str, int],
    order_seed: int,
    rescale: tuple[float, float],
) -> None:
    tmp = tmp_path_factory.mktemp("prop")
    rot = _rotation(q)
    geometry = Geometry.from_arrays((4, 8, 8), spacing, origin, rot)
    rng = np.random.default_rng(order_seed)
    order = [int(v) for v in rng.permutation(4)]
    dtype = np.dtype(dtype_bits[0])
    source = build_stack(
        tmp / "src", kind="CT", geometry=geometry, dtype=dtype, bits_stored=dtype_bits[1],
        rescale=rescale, rng=rng, file_order=order,
    )
    image = load_one(source.directory)
    # The reader orders slices along the normal; the generator's k may run the other way.
    np.testing.assert_allclose(image.geometry.affine, along_normal(geometry).affine, atol=1e-4, rtol=0)
    check_roundtrip(image, tmp / "out")
    stored, positions = stored_by_position(sorted((tmp / "out").glob("*.dcm")))
    src_stored, src_positions = stored_by_position(source.files)
    np.testing.assert_array_equal(stored, src_stored)
    np.testing.assert_allclose(positions, src_positions, atol=1e-4, rtol=0)
