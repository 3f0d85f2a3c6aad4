"""The operator's day (issue 16): scope, resume of another archive, summaries that do not mislead,
trace of an unknown ID, the report's signature status."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from medaug.audit.signing import write_signing_keypair
from medaug.cli import main

REPO = Path(__file__).resolve().parents[1]
CT = REPO / "policies" / "ct-chest-conservative.yaml"
MR = REPO / "policies" / "mr-brain.yaml"


def _copy_series(archive: Path, name: str, dest: Path) -> Path:
    shutil.copytree(next(archive.rglob(name)), dest)
    return dest


def _run(policy: Path, archive: Path, out: Path, key: Path, *extra: str) -> int:
    return main(["run", str(policy), str(archive), str(out), "--key", str(key), "--workers", "1", *extra])


def test_resume_with_another_archive_is_refused(archive: Path, keyfile: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from medaug.pipeline import task

    first = _copy_series(archive, "ct_nometa", tmp_path / "a" / "s")
    out = tmp_path / "out"

    def interrupted(*_args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(task, "process_series", interrupted)
        assert _run(CT, first.parent, out, keyfile) == 130
    other = _copy_series(archive, "ct_gap", tmp_path / "b" / "s")
    assert _run(CT, other.parent, out, keyfile, "--resume") == 2
    assert "another archive" in capsys.readouterr().err
    assert _run(CT, first.parent, out, keyfile, "--resume") == 0  # the same archive resumes


def test_out_of_scope_is_reported_apart_and_is_not_exit_3(archive: Path, keyfile: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    _copy_series(archive, "ct_nometa", root / "ct")
    _copy_series(archive, "us_rgb", root / "us")
    assert _run(CT, root, tmp_path / "out", keyfile) == 0
    out = capsys.readouterr().out
    assert "out of scope     : 1" in out and "modality-not-in-policy" in out and "quarantined      : 0" in out
    assert main(["audit", "verify", str(tmp_path / "out")]) == 0


def test_a_policy_selects_its_series_by_body_part(archive: Path, keyfile: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    _copy_series(archive, "mr_sagittal", root / "head")
    pelvis = _copy_series(archive, "mr_sagittal", root / "pelvis")
    for path in pelvis.iterdir():
        ds = pydicom.dcmread(path)
        ds.BodyPartExamined = "PELVIS"
        ds.SeriesInstanceUID = ds.SeriesInstanceUID + ".9"
        ds.SOPInstanceUID = ds.SOPInstanceUID + ".9"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.save_as(path)
    assert _run(MR, root, tmp_path / "out", keyfile) == 0
    out = capsys.readouterr().out
    assert "body-part-not-in-policy" in out
    written = {p.parent.name.rsplit("-v", 1)[0] for p in (tmp_path / "out" / "dicom").rglob("*.dcm")}
    assert len(written) == 1  # the head series only


def test_a_localizer_is_out_of_scope(archive: Path, keyfile: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    scout = _copy_series(archive, "ct_nometa", root / "scout")
    for path in scout.iterdir():
        ds = pydicom.dcmread(path, force=True)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.save_as(path)
    assert _run(CT, root, tmp_path / "out", keyfile) == 0
    assert "localizer-not-in-policy" in capsys.readouterr().out


def test_trace_tells_an_unknown_id_from_a_patient_without_outputs(archive: Path, keyfile: Path, tmp_path: Path,
                                                                  manifest: dict[str, object],
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    _copy_series(archive, "us_rgb", root / "us")  # out of scope under the CT policy: no outputs
    out = tmp_path / "out"
    assert _run(CT, root, out, keyfile) == 0
    capsys.readouterr()
    ds = pydicom.dcmread(next((root / "us").iterdir()), stop_before_pixels=True)
    base = ["audit", "trace", str(out), "--key", str(keyfile), "--source", str(root), "--patient-id"]
    assert main([*base, "NO-SUCH-ID-0000"]) == 0
    assert "no file of the archive holds this patient ID" in capsys.readouterr().out
    assert main([*base, str(ds.PatientID)]) == 0
    text = capsys.readouterr().out
    assert "has no outputs" in text and str(ds.PatientID) not in text


def test_the_report_shows_the_signature_status(archive: Path, keyfile: Path, tmp_path: Path) -> None:
    root = _copy_series(archive, "ct_nometa", tmp_path / "arc" / "s").parent
    signer = tmp_path / "signer.pem"
    public = write_signing_keypair(signer)
    out = tmp_path / "out"
    assert _run(CT, root, out, keyfile, "--signing-key", str(signer)) == 0
    assert main(["audit", "report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    assert "present, not checked" in (tmp_path / "r.html").read_text()
    assert main(["audit", "report", str(out), "-o", str(tmp_path / "r.html"), "--public-key", str(public)]) == 0
    assert "checked with the given public key: valid" in (tmp_path / "r.html").read_text()


def test_transforms_that_cannot_act_are_said_in_summary_log_and_report(archive: Path, keyfile: Path, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "arc"
    _copy_series(archive, "ct_gap", root / "gap")  # a missing slice: never resampled
    _copy_series(archive, "ct_nometa", root / "short")  # 4 slices of 5 mm: the 40 mm elastic grid is locked
    out = tmp_path / "out"
    assert _run(CT, root, out, keyfile) == 0
    text = capsys.readouterr().out
    assert "transforms not applied" in text
    assert "spatial-not-applied-irregular-grid" in text and "elastic-not-applied-short-extent" in text
    derives = [json.loads(line) for line in (out / "audit" / "log.jsonl").read_text().splitlines()]
    codes = {c for r in derives if r["type"] == "derive" for c in r.get("not_applied", [])}
    assert codes == {"spatial-not-applied-irregular-grid", "elastic-not-applied-short-extent"}
    assert main(["audit", "verify", str(out)]) == 0
    assert main(["audit", "report", str(out), "-o", str(tmp_path / "r.html")]) == 0
    assert "elastic-not-applied-short-extent" in (tmp_path / "r.html").read_text()


def test_scope_selects_by_anatomic_region_code(archive: Path, keyfile: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    import yaml
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    root = tmp_path / "arc"
    series = _copy_series(archive, "ct_nometa", root / "s")
    for path in series.iterdir():
        ds = pydicom.dcmread(path, force=True)
        del ds.BodyPartExamined
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "51185008", "SCT", "Chest"
        ds.AnatomicRegionSequence = Sequence([code])
        ds.save_as(path)
    for parts, expected in ((["51185008"], "out of scope     : 0"), (["ABDOMEN"], "body-part-not-in-policy")):
        raw = yaml.safe_load(CT.read_text())
        raw["scope"] = {"body_parts": parts}
        policy = tmp_path / f"p{parts[0]}.yaml"
        policy.write_text(yaml.safe_dump(raw))
        assert main(["policy", "approve", str(policy), "--by", "A. Steward"]) == 0
        capsys.readouterr()
        assert _run(policy, root, tmp_path / f"out{parts[0]}", keyfile) == 0
        assert expected in capsys.readouterr().out
