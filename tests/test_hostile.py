"""Hostile archives at ingest: every entry accounted for, nothing outside read, memory bounded.

Archives are made in code: links in and out of the archive, dangling and looping
links, a FIFO, a device file (when mknod is allowed), an unlistable folder, a
deflate bomb, impossible geometry, deeply nested sequences and a file replaced
between the header and the pixel pass. Each test checks the reason code and the
accounting: entries of the walk = files behind a volume + quarantined + DICOMDIRs.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import stat
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, RLELossless

from medaug.errors import InputError
from medaug.ingest import inflate, limits, load_series, reasons, scan_archive
from medaug.ingest.archive import ArchiveScan
from medaug.ingest.discover import walk_entries
from medaug.ingest.headers import InstanceRecord, read_record
from medaug.ingest.inspect import summarise
from medaug.ingest.pixels import decode_file
from tests.ingest_helpers import make_dataset, save, write_stack

POSITIONS = [(0.0, 0.0, float(z)) for z in range(3)]


def _accounted(scan: ArchiveScan) -> int:
    """Entries the scan accounts for: files behind a volume, quarantined entries, DICOMDIRs."""
    used = sum(len(ref.records) for ref in scan.series)
    return used + len(scan.quarantined) + len(scan.directories)


def _reasons(scan: ArchiveScan) -> dict[str, str]:
    """Reason of each quarantined entry, by its path relative to the archive."""
    return {q.path.relative_to(scan.root).as_posix(): q.reason for q in scan.quarantined}


def _stack(root: Path) -> Path:
    write_stack(root / "stack", POSITIONS)
    return root


def test_link_to_a_file_inside_is_followed_and_its_double_accounted(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    (root / "alias.dcm").symlink_to(root / "stack" / "slice001.dcm")
    scan = scan_archive(root)
    # alias.dcm sorts first: it is read, and the file walked directly is the duplicate.
    assert _reasons(scan) == {"stack/slice001.dcm": reasons.DUPLICATE_INSTANCE}
    assert scan.file_count == 4 == _accounted(scan)
    assert [len(ref.records) for ref in scan.series] == [3]


def test_link_leading_outside_is_refused_and_never_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _stack(tmp_path / "archive")
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = save(make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None), outside / "secret.dcm")
    (root / "out-file").symlink_to(secret)
    (root / "out-folder").symlink_to(outside, target_is_directory=True)
    (root / "stack" / "up").symlink_to("../../outside/secret.dcm")
    opened: list[str] = []
    real_open, real_fileio, real_stat = builtins.open, io.FileIO, os.stat

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.path.realpath(file) if isinstance(file, (str, Path)) else "")
        return real_open(file, *args, **kwargs)

    def spy_fileio(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.path.realpath(file) if isinstance(file, (str, Path)) else "")
        return real_fileio(file, *args, **kwargs)

    def spy_stat(path: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(path, (str, Path)):
            opened.append(os.path.realpath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(io, "FileIO", spy_fileio)
    monkeypatch.setattr(os, "stat", spy_stat)
    scan = scan_archive(root)
    _ = scan.series
    monkeypatch.undo()
    assert _reasons(scan) == {
        "out-file": reasons.OUTSIDE_ARCHIVE,
        "out-folder": reasons.OUTSIDE_ARCHIVE,
        "stack/up": reasons.OUTSIDE_ARCHIVE,
    }
    assert not [p for p in opened if p.startswith(str(outside.resolve()))]
    assert scan.file_count == 6 == _accounted(scan)


def test_dangling_link_is_broken_link(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    (root / "gone.dcm").symlink_to(root / "nowhere.dcm")
    scan = scan_archive(root)
    assert _reasons(scan) == {"gone.dcm": reasons.BROKEN_LINK}
    assert scan.file_count == 4 == _accounted(scan)


def test_link_loops_are_link_loop(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    (root / "stack" / "self").symlink_to(".", target_is_directory=True)  # a link to the folder holding it
    (root / "stack" / "top").symlink_to("..", target_is_directory=True)
    scan = scan_archive(root)
    assert _reasons(scan) == {
        "a": reasons.LINK_LOOP,
        "b": reasons.LINK_LOOP,
        "stack/self": reasons.LINK_LOOP,
        "stack/top": reasons.LINK_LOOP,
    }
    assert scan.file_count == 7 == _accounted(scan)


def test_folder_links_inside_are_followed_once(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    (root / "again").symlink_to("stack", target_is_directory=True)
    (root / "twice").symlink_to("stack", target_is_directory=True)
    scan = scan_archive(root)
    # again/ is walked first (sorted bytes), so the files under stack/ are the duplicates;
    # a second link to the same folder is refused instead of walked again.
    got = _reasons(scan)
    assert got.pop("twice") == reasons.DUPLICATE_FOLDER
    assert got == {f"stack/slice00{n}.dcm": reasons.DUPLICATE_INSTANCE for n in range(3)}
    assert scan.file_count == 7 == _accounted(scan)
    assert [p.relative_to(root).as_posix() for p in scan.series[0].files] == [f"again/slice00{n}.dcm" for n in range(3)]


def test_fifo_is_not_a_regular_file(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    os.mkfifo(root / "pipe")  # opening it would block the scan
    scan = scan_archive(root)
    assert _reasons(scan) == {"pipe": reasons.NOT_A_REGULAR_FILE}
    assert scan.file_count == 4 == _accounted(scan)


def test_device_file_is_not_a_regular_file(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    try:
        os.mknod(root / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except (PermissionError, OSError):
        pytest.skip("mknod is not permitted here")
    scan = scan_archive(root)
    assert _reasons(scan) == {"null": reasons.NOT_A_REGULAR_FILE}
    assert scan.file_count == 4 == _accounted(scan)


def test_unlistable_folder_is_the_accounted_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root, for whom chmod 000 does not stop a listing: the refusal is simulated.
    root = _stack(tmp_path / "archive")
    locked = root / "locked"
    write_stack(locked, POSITIONS[:1], series_uid="1.2.826.0.1.3680043.10.1.1.9")
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    scan = scan_archive(root)
    assert _reasons(scan) == {"locked": reasons.UNREADABLE_FOLDER}
    assert scan.file_count == 4 == _accounted(scan)


def _zero_blocks(count: int) -> bytes:
    """Raw deflate data inflating to ``count`` MiB of zeros, made from one repeated block.

    After a full flush the compressor starts afresh, so every later MiB of zeros
    compresses to the same bytes: the stream is built without compressing gigabytes.
    """
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    zeros = bytes(1 << 20)
    first = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    assert c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH) == block
    return first + block * (count - 1)


def _deflate_bomb(path: Path, inflated_mib: int) -> Path:
    """A deflated DICOM file whose dataset is followed by ``inflated_mib`` MiB of zeros."""
    save(make_dataset(np.zeros((4, 5), np.int16), transfer_syntax=DeflatedExplicitVRLittleEndian), path)
    layout = inflate.deflated_layout(path)
    assert layout is not None
    raw = path.read_bytes()
    dataset = zlib.decompress(raw[layout[1]:], -zlib.MAX_WBITS)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    head = c.compress(dataset) + c.flush(zlib.Z_FULL_FLUSH)
    tail = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush()  # the final (empty) block
    with open(path, "wb") as fh:
        fh.write(raw[:layout[1]])
        fh.write(head)
        fh.write(_zero_blocks(inflated_mib))
        fh.write(tail)
    return path


_BOMB_CHILD = """
import json, sys
from pathlib import Path
from medaug.errors import InputError
from medaug.ingest import scan_archive
from medaug.ingest.pixels import decode_file
root = Path(sys.argv[1])
scan = scan_archive(root)
try:
    decode_file(root / "bomb.dcm")
    pixel = None
except InputError as exc:
    pixel = exc.reason
status = Path("/proc/self/status").read_text()
hwm_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
print(json.dumps({"scan": [q.reason for q in scan.quarantined], "files": scan.file_count,
                  "series": scan.series_count, "pixel": pixel, "hwm_bytes": hwm_kb * 1024}))
"""


def test_deflate_bomb_is_too_large_in_bounded_memory(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    mib = limits.MAX_INFLATED_BYTES // (1 << 20) + 8  # over the cap, so well over 1 GiB
    bomb = _deflate_bomb(root / "bomb.dcm", mib)
    assert bomb.stat().st_size < 16 << 20
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", _BOMB_CHILD, str(root)], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(out.stdout)
    assert result["scan"] == [reasons.TOO_LARGE]
    assert result["pixel"] == reasons.TOO_LARGE
    assert result["files"] == 4 and result["series"] == 1
    assert result["hwm_bytes"] < 10**9


def test_small_deflated_file_reads_through_the_stream(tmp_path: Path) -> None:
    arr = (np.arange(20, dtype=np.int16).reshape(4, 5) * 7).astype(np.int16)
    path = save(make_dataset(arr, transfer_syntax=DeflatedExplicitVRLittleEndian), tmp_path / "a" / "d.dcm")
    rec = read_record(path)
    assert rec.transfer_syntax == DeflatedExplicitVRLittleEndian
    decoded = decode_file(path, identity=(rec.identity_salt, rec.identity))
    np.testing.assert_array_equal(decoded.frames[0], arr)


def test_rle_claiming_huge_image_is_too_large(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    ds = make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None, series_uid="1.2.826.0.1.3680043.10.1.1.7")
    ds.Rows = ds.Columns = limits.MAX_DIMENSION
    ds.file_meta.TransferSyntaxUID = RLELossless
    segment = struct.pack("<16I", 2, 64, 68, *([0] * 13)) + b"\x81\x00" * 2  # two tiny segments
    ds.PixelData = encapsulate([segment])
    ds["PixelData"].VR = "OB"
    path = save(ds, root / "rle.dcm")
    scan = scan_archive(root)
    assert _reasons(scan) == {"rle.dcm": reasons.TOO_LARGE}
    assert scan.file_count == 4 == _accounted(scan)
    with pytest.raises(InputError) as err:
        decode_file(path)
    assert err.value.reason == reasons.TOO_LARGE


@pytest.mark.parametrize("spacing", [(-0.5, 0.5), (0.0, 0.5), (0.5, 1e-4), (2e3, 0.5)])
def test_impossible_pixel_spacing_is_bad_geometry(tmp_path: Path, spacing: tuple[float, float]) -> None:
    root = _stack(tmp_path / "archive")
    save(make_dataset(np.zeros((4, 5), np.int16), spacing=spacing, series_uid="1.2.826.0.1.3680043.10.1.1.8"), root / "odd.dcm")
    scan = scan_archive(root)
    assert _reasons(scan) == {"odd.dcm": reasons.BAD_GEOMETRY}
    assert scan.file_count == 4 == _accounted(scan)


def test_imager_pixel_spacing_is_checked_too(tmp_path: Path) -> None:
    ds = make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None)
    ds.ImagerPixelSpacing = ["0", "0.1"]
    with pytest.raises(InputError) as err:
        read_record(save(ds, tmp_path / "dx.dcm"))
    assert err.value.reason == reasons.BAD_GEOMETRY


def test_slice_thickness_counts_only_when_geometry_uses_it(tmp_path: Path) -> None:
    used = make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None)  # no positions: thickness is the step
    used.SliceThickness = "0"
    with pytest.raises(InputError) as err:
        read_record(save(used, tmp_path / "used.dcm"))
    assert err.value.reason == reasons.BAD_GEOMETRY
    ignored = make_dataset(np.zeros((4, 5), np.int16))  # a positioned slice: steps come from positions
    ignored.SliceThickness = "-5"
    assert read_record(save(ignored, tmp_path / "ignored.dcm")).slice_thickness is None


@pytest.mark.parametrize(("slope", "intercept"), [(1e7, 0.0), (1.0, 1e8), (float("inf"), 0.0), (1.0, float("nan"))])
def test_absurd_rescale_is_bad_header(tmp_path: Path, slope: float, intercept: float) -> None:
    root = _stack(tmp_path / "archive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that 'inf' is no valid DS: the point of the test
        ds = make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None, slope=slope, intercept=intercept,
                          series_uid="1.2.826.0.1.3680043.10.1.1.6")
        path = save(ds, root / "odd.dcm")
    scan = scan_archive(root)
    assert _reasons(scan) == {"odd.dcm": reasons.BAD_HEADER}
    assert scan.file_count == 4 == _accounted(scan)
    with pytest.raises(InputError) as err:
        decode_file(path)
    assert err.value.reason == reasons.BAD_HEADER


def _nested(path: Path, depth: int) -> Path:
    """A valid slice with a Referenced Image Sequence nested ``depth`` deep (undefined lengths) before Pixel Data."""
    save(make_dataset(np.zeros((4, 5), np.int16), ipp=None, iop=None, series_uid="1.2.826.0.1.3680043.10.1.1.5"), path)
    raw = path.read_bytes()
    at = raw.rindex(b"\xe0\x7f\x10\x00")
    opening = struct.pack("<HH", 0x0008, 0x1140) + b"SQ\x00\x00" + struct.pack("<I", 0xFFFFFFFF)
    opening += struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF)
    closing = struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    path.write_bytes(raw[:at] + opening * depth + closing * depth + raw[at:])
    return path


def test_deep_nesting_is_bad_header_at_the_header_pass(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    path = _nested(root / "deep.dcm", 5000)
    scan = scan_archive(root)
    assert [(q.reason, q.detail) for q in scan.quarantined] == [(reasons.BAD_HEADER, "sequences nested too deeply")]
    assert scan.file_count == 4 == _accounted(scan)
    report = summarise(scan_archive(root))
    assert report["quarantined"]["by_reason"][reasons.BAD_HEADER]["count"] == 1
    assert report["series_count"] == 1
    with pytest.raises(InputError) as err:
        decode_file(path)
    assert err.value.reason == reasons.BAD_HEADER


def test_file_swapped_between_passes_is_changed_during_run(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    scan = scan_archive(root)
    ref = scan.series[0]
    victim = ref.files[1]
    other = make_dataset((np.arange(20, dtype=np.int16).reshape(4, 5) + 100), ipp=POSITIONS[1])
    other.PatientName = "Othername^Plantedvalu"  # another patient, same length: the same file size
    other.PatientID = "OTHERID-9876"
    # generate_uid() gives UIDs of varying length: keep the victim's, so the file size is the same.
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = ref.records[1].sop_uid
    size = victim.stat().st_size
    save(other, victim)
    assert victim.stat().st_size == size
    loaded = load_series(ref)
    assert [(q.path, q.reason) for q in loaded.quarantined] == [(victim, reasons.CHANGED_DURING_RUN)]
    assert loaded.image.data.shape[0] == 2
    assert len(loaded.image.headers) + len(loaded.quarantined) == len(ref.records)


def test_file_swapped_between_header_and_pixel_read_is_changed_during_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pixel Data over DEFER_BYTES is read after the header, when pydicom first touches it; the
    # file is replaced by another of the same size at that moment. No read may reopen the path
    # (a reopen would read the other file's pixels unchecked), and the slice is refused.
    import pydicom.filereader

    from medaug.ingest.pixels import DEFER_BYTES

    side = 768
    assert side * side * 2 > DEFER_BYTES
    root = tmp_path / "archive"
    write_stack(root / "stack", POSITIONS, rows=side, cols=side)
    ref = scan_archive(root).series[0]
    victim = ref.files[1]
    other = make_dataset(np.full((side, side), 7, np.int16), ipp=POSITIONS[1])
    other.SOPInstanceUID = other.file_meta.MediaStorageSOPInstanceUID = UID(ref.records[1].sop_uid)
    replacement = save(other, tmp_path / "replacement.dcm")
    assert replacement.stat().st_size == victim.stat().st_size
    real_read, real_open = pydicom.filereader.read_deferred_data_element, builtins.open
    reopened: list[str] = []
    reads: list[int] = []

    def swap_then_read(*args: Any) -> Any:
        reads.append(len(reads))
        if len(reads) == 2:  # the second slice's Pixel Data: one deferred value per slice, in order
            os.replace(replacement, victim)
        return real_read(*args)

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, Path)) and Path(file).name.startswith("slice"):
            reopened.append(Path(file).name)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(pydicom.filereader, "read_deferred_data_element", swap_then_read)
    monkeypatch.setattr(builtins, "open", spy_open)
    loaded = load_series(ref)
    monkeypatch.undo()
    assert not replacement.exists()  # the swap happened, during the pixel read
    assert reopened == []
    assert [(q.path, q.reason) for q in loaded.quarantined] == [(victim, reasons.CHANGED_DURING_RUN)]
    assert loaded.image.data.shape[0] == 2


def test_link_swapped_in_after_the_walk_is_never_read(tmp_path: Path) -> None:
    # Between the walk and the pixel pass, a slice is replaced by a link to another patient's
    # file outside the archive: the open finds another inode and stops before reading a byte.
    root = _stack(tmp_path / "archive")
    ref = scan_archive(root).series[0]
    victim = ref.files[1]
    outside = tmp_path / "elsewhere.dcm"
    outside.write_bytes(victim.read_bytes())  # even the same bytes: it is not the file the walk found
    victim.unlink()
    victim.symlink_to(outside)
    loaded = load_series(ref)
    assert [(q.path, q.reason) for q in loaded.quarantined] == [(victim, reasons.CHANGED_DURING_RUN)]
    assert loaded.image.data.shape[0] == 2


@pytest.mark.parametrize("swap", ["link-outside", "fifo"])
def test_entry_swapped_between_the_walk_and_the_header_pass(tmp_path: Path, swap: str) -> None:
    root = _stack(tmp_path / "archive")
    entries = [e for e in walk_entries(root) if e.reason is None]
    victim = entries[0]
    assert victim.file_id is not None
    victim.path.unlink()
    if swap == "fifo":
        os.mkfifo(victim.path)  # an open that blocked would hang the run here
        expected_reason = reasons.NOT_A_REGULAR_FILE
    else:
        outside = tmp_path / "elsewhere.dcm"
        write_stack(tmp_path / "other", POSITIONS[:1])
        next((tmp_path / "other").rglob("*.dcm")).rename(outside)
        victim.path.symlink_to(outside)
        expected_reason = reasons.CHANGED_DURING_RUN
    with pytest.raises(InputError) as err:
        read_record(victim.path, expected=victim.file_id)
    assert err.value.reason == expected_reason
    assert read_record(entries[1].path, expected=entries[1].file_id).file_id == entries[1].file_id


def test_identity_is_a_salted_digest_only(tmp_path: Path) -> None:
    path = save(make_dataset(np.zeros((4, 5), np.int16)), tmp_path / "a.dcm")
    first, second = read_record(path), read_record(path)
    assert first.identity != second.identity  # a random salt per read (per scan)
    assert read_record(path, salt=first.identity_salt).identity == first.identity
    assert not {"patient_name", "PatientName"} & set(InstanceRecord.__dataclass_fields__)
    assert b"Fakename" not in first.identity + first.identity_salt


def test_working_memory_budget_is_checked_before_loading(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    ref = scan_archive(root).series[0]
    need = limits.series_working_bytes((3, 4, 5), spacing_mm=ref.geometry.spacing)
    assert limits.series_working_bytes((3, 4, 5), spacing_mm=ref.geometry.spacing, control_spacing_mm=0.1) > need
    with pytest.raises(InputError) as err:
        load_series(ref, budget=need - 1)
    assert err.value.reason == reasons.TOO_LARGE
    assert load_series(ref, budget=need).image.data.shape == (3, 4, 5)


def test_inspect_counts_walk_refusals_like_the_scan(tmp_path: Path) -> None:
    root = _stack(tmp_path / "archive")
    (root / "gone").symlink_to("nowhere")
    os.mkfifo(root / "pipe")
    (root / "out").symlink_to(tmp_path)
    report = summarise(scan_archive(root))
    by_reason = report["quarantined"]["by_reason"]
    assert {code: entry["count"] for code, entry in by_reason.items()} == {
        reasons.BROKEN_LINK: 1, reasons.NOT_A_REGULAR_FILE: 1, reasons.OUTSIDE_ARCHIVE: 1,
    }
    assert report["files"] == 6 == report["quarantined"]["count"] + sum(s["files"] for s in report["series"])
    assert all(code in reasons.FILE_REASONS for code in by_reason)


def test_walk_order_is_sorted_bytes_with_folders_and_links(tmp_path: Path) -> None:
    root = tmp_path / "archive"
    (root / "b").mkdir(parents=True)
    (root / "b" / "x").write_bytes(b"1")
    (root / "b.txt").write_bytes(b"1")
    (root / "a-link").symlink_to("b", target_is_directory=True)
    got = [e.path.relative_to(root).as_posix() for e in walk_entries(root)]
    # "b.txt" < "b/x" because "." < "/" in bytes: the order of the full paths.
    assert got == ["a-link/x", "b.txt", "b/x"]
