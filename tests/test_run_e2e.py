"""End-to-end `medaug run` on the synthetic archive: privacy, accounting, validity, determinism."""

from __future__ import annotations

import filecmp
import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
import pytest

from medaug.audit.chain import check_chain, head_of, read_lines
from medaug.audit.verify import verify_dataset
from medaug.cli import main
from medaug.dataset import layout
from medaug.ingest.archive import scan_archive
from tests.conftest import REPO, external

CT_POLICY = REPO / "policies" / "ct-chest-conservative.yaml"


def _run(archive: Path, out: Path, key: Path, *extra: str, policy: Path = CT_POLICY) -> int:
    return main(["run", str(policy), str(archive), str(out), "--key", str(key), *extra])


@pytest.fixture(scope="session")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "run.key"
    assert main(["keygen", str(path)]) == 0
    return path


@pytest.fixture(scope="session")
def dataset(archive: Path, key: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """One run with 1 worker; returns (outdir, stdout, stderr)."""
    out = tmp_path_factory.mktemp("run") / "out"
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "medaug"), "run", str(CT_POLICY), str(archive), str(out), "--key", str(key), "--workers", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 3, result.stderr  # the archive holds bad files on purpose
    return out, result.stdout, result.stderr


# Times of day are kept by design under Retain Longitudinal Modified Dates (dates move by
# whole days; docs/deid.md), which the CT policy selects; every other planted kind must go.
_KEPT_KINDS = {"time"}


def _planted(manifest: dict[str, Any]) -> list[str]:
    return sorted({p["value"] for p in manifest["planted"] if len(p["value"]) >= 4 and p["kind"] not in _KEPT_KINDS})


def test_no_planted_value_reaches_any_output(dataset: tuple[Path, str, str], manifest: dict[str, Any]) -> None:
    out, stdout, stderr = dataset
    planted = _planted(manifest)
    texts = {"stdout": stdout, "stderr": stderr}
    for path in sorted(out.rglob("*")):
        rel = path.relative_to(out).as_posix()
        texts[f"name:{rel}"] = rel
        if path.is_file():
            data = path.read_bytes()
            for value in planted:
                for encoded in {value.encode("utf-8"), value.encode("latin-1", "ignore")}:
                    assert encoded not in data, f"a planted value leaked into {rel}"
    for where, text in texts.items():
        for value in planted:
            assert value not in text, f"a planted value leaked into {where.split(':')[0]}"


def test_every_input_is_accounted_for(dataset: tuple[Path, str, str], manifest: dict[str, Any], archive: Path) -> None:
    out, stdout, _ = dataset
    records, problems = check_chain(read_lines(out / "audit" / "log.jsonl"))
    assert not problems
    by_type = Counter(r["type"] for r in records)
    end = records[-1]
    assert end["type"] == "run_end"
    n_files = sum(1 for p in archive.rglob("*") if p.is_file())
    assert end["counts"]["inputs"] == n_files
    assert by_type["ingest"] + by_type["label"] + by_type["quarantine"] + by_type["skip"] + by_type["index"] == n_files
    # Out of scope (the ultrasound under the CT policy) is reported apart, not as unusable.
    skips = Counter(r["reason"] for r in records if r["type"] == "skip")
    assert skips and set(skips) <= {"modality-not-in-policy", "body-part-not-in-policy"}
    assert "out of scope" in stdout
    reasons = Counter(r["reason"] for r in records if r["type"] == "quarantine")
    for bad in manifest["bad"]:
        assert reasons[bad["reason"]] >= 1, bad["reason"]
    expected_bad = Counter(b["reason"] for b in manifest["bad"])
    for reason, count in expected_bad.items():
        assert reasons[reason] == count
        assert f"{reason}" in stdout
    assert by_type["output"] == end["counts"]["files_written"] == sum(1 for _ in (out / "dicom").rglob("*.dcm"))
    # The labelled CT's SEG and RTSTRUCT are carried into every series written from it (the
    # labelled MR's are out of scope with their series, as skips above); the summary counts them.
    labels = [r for r in records if r["type"] == "label"]
    covered = {s["name"] for s in manifest["series"] if s["modality"] == "CT"}
    assert Counter(r["kind"] for r in labels) == Counter(x["kind"] for x in manifest["labels"] if x["series"] in covered)
    written = Counter(r["series"] for r in records if r["type"] == "derive")
    label_outputs = [r for r in records if r["type"] == "output" and layout.label_number(r["path"]) is not None]
    assert labels and len(label_outputs) == sum(written[r["series"]] for r in labels)
    assert f"label objects    : {len(labels)} carried, as {len(label_outputs)} label files" in stdout
    manifest_out = json.loads((out / "manifest.json").read_text())
    assert manifest_out["log"]["head"] == head_of(read_lines(out / "audit" / "log.jsonl"))


def test_dataset_verifies_and_parameters_stay_in_bounds(dataset: tuple[Path, str, str]) -> None:
    out, _, _ = dataset
    result = verify_dataset(out)
    assert result.ok, [p.message for p in result.problems]
    records, _ = check_chain(read_lines(out / "audit" / "log.jsonl"))
    policy = records[0]["policy"]["content"]["transforms"]
    derived = [r for r in records if r["type"] == "derive" and r["params"] is not None]
    assert derived
    for r in derived:
        params = r["params"]
        if params["rotation"] is not None:  # None: an uneven stack gets intensity changes only
            assert abs(params["rotation"]["degrees"]) <= policy["rotation"]["max_degrees"]
        assert abs(params["intensity"]["shift"]) <= policy["intensity"]["max_shift"]
        assert r["min_jacobian"] > 0
    assert any(r["params"]["rotation"] is not None for r in derived)


def test_outputs_are_marked_and_reference_no_source_uid(dataset: tuple[Path, str, str], manifest: dict[str, Any]) -> None:
    out, _, _ = dataset
    source_uids = {p["value"] for p in manifest["planted"] if p["kind"] == "uid"}
    variant_frames: set[str] = set()
    original_frames: set[str] = set()
    for path in sorted((out / "dicom").rglob("1.dcm")):
        ds = pydicom.dcmread(path)
        purposes = [item.PurposeOfReferenceCodeSequence[0].CodeValue for item in ds.ContributingEquipmentSequence]
        assert "109104" in purposes
        assert ds.PatientIdentityRemoved == "YES"
        for elem in ds.iterall():
            if elem.VR == "UI":
                values = elem.value if isinstance(elem.value, list) else [elem.value]
                assert not set(map(str, values)) & source_uids
        if path.parent.name.endswith("-v0"):
            assert "DerivationCodeSequence" not in ds
            original_frames.add(str(ds.get("FrameOfReferenceUID", "")))
        else:
            assert list(ds.ImageType)[0] == "DERIVED"
            assert "DerivationCodeSequence" in ds
            variant_frames.add(str(ds.get("FrameOfReferenceUID", "")))
    records, _ = check_chain(read_lines(out / "audit" / "log.jsonl"))
    new_frames = {r["frame_of_reference"] for r in records if r["type"] == "derive" and r.get("frame_of_reference")}
    # Spatially transformed variants live in a Frame of Reference of their own.
    assert new_frames and new_frames <= variant_frames and not new_frames & original_frames


@pytest.mark.external
def test_outputs_pass_dciodvfy_with_no_new_error(dataset: tuple[Path, str, str], archive: Path) -> None:
    out, _, _ = dataset
    tool = external("dciodvfy")

    def errors(path: Path) -> set[str]:
        text = subprocess.run([tool, str(path)], capture_output=True, text=True, check=False).stderr
        return {line.strip() for line in text.splitlines() if line.startswith("Error")}

    source_errors: set[str] = set()
    for ref in scan_archive(archive).series:
        source_errors |= errors(ref.files[0])
    checked = 0
    for path in sorted((out / "dicom").rglob("*.dcm")):
        new = errors(path) - source_errors
        assert not new, f"{path.relative_to(out)}: {sorted(new)}"
        checked += 1
    assert checked > 100


@pytest.mark.external
def test_dcm2niix_gives_the_original_its_source_affine(dataset: tuple[Path, str, str], archive: Path, tmp_path: Path) -> None:
    import numpy as np

    from tests.test_validators import dcm2niix, nifti_affine

    out, _, _ = dataset
    external("dcm2niix")

    def volumes(directory: Path, dest: Path) -> list[tuple[Any, Any]]:
        # dcm2niix also exports source overlays as *_ROI* volumes; de-identification removes overlays.
        return [nifti_affine(p) for p in dcm2niix(directory, dest) if "_ROI" not in p.name]

    originals = {d: volumes(d, tmp_path / "out" / d.name) for d in sorted((out / "dicom").rglob("*-v0"))}
    checked = 0
    for number, ref in enumerate(scan_archive(archive).series):
        if ref.modality != "CT" or len(ref.files) < 8 or ref.problems:
            continue
        links = tmp_path / f"src{number}"
        links.mkdir()
        for n, path in enumerate(ref.files, start=1):
            (links / f"{n}.dcm").symlink_to(path)
        source = volumes(links, tmp_path / f"nii{number}")
        if not source:
            continue  # dcm2niix cannot read this source (no file meta)
        dims, affine = source[0]
        same = [
            d for d, vols in originals.items()
            if vols and vols[0][0] == dims and np.allclose(vols[0][1], affine, atol=1e-4, rtol=0)
        ]
        assert same, f"series {number}: no de-identified original has the source's affine"
        checked += 1
    assert checked >= 3


def test_one_and_two_workers_give_identical_datasets(
    dataset: tuple[Path, str, str], archive: Path, key: Path, tmp_path: Path
) -> None:
    out, _, _ = dataset
    two = tmp_path / "two"
    assert _run(archive, two, key, "--workers", "2") == 3
    _assert_same_tree(out, two)


def test_every_output_of_a_run_is_what_dcmwrite_would_have_written(
    dataset: tuple[Path, str, str], archive: Path, key: Path, tmp_path: Path
) -> None:
    """The run's template writer against pydicom's dcmwrite: every file of every variant, byte for byte."""
    from dataclasses import replace

    from medaug.deid.keys import load_key
    from medaug.pipeline.context import RunContext
    from medaug.pipeline.run import iter_in_process, run
    from medaug.policy.load import load_policy

    def with_dcmwrite(tasks: Any, ctx: RunContext) -> Any:
        assert ctx.writer == "template"  # what a run uses
        return iter_in_process(tasks, replace(ctx, writer="dcmwrite"))

    out, _, _ = dataset
    reference = tmp_path / "dcmwrite"
    run(load_policy(CT_POLICY), CT_POLICY, archive, reference, load_key(key), executor=with_dcmwrite)
    variants = {p.parent.name.rsplit("-", 1)[-1] for p in out.rglob("*.dcm")}
    assert len(list(out.rglob("*.dcm"))) >= 100 and {"v0", "v1", "v2"} <= variants
    _assert_same_tree(out, reference)


def test_interrupted_run_resumes_to_the_same_dataset(
    dataset: tuple[Path, str, str], archive: Path, key: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _, _ = dataset
    partial = tmp_path / "partial"
    from medaug.pipeline import task as task_module

    real = task_module.run_series
    calls = {"n": 0}

    def dying(t: Any, ctx: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C mid-run
        return real(t, ctx)

    monkeypatch.setattr("medaug.pipeline.executors.run_series", dying)
    assert _run(archive, partial, key, "--workers", "1") == 130
    assert not (partial / "manifest.json").exists()
    assert len(list((partial / ".work" / "series").glob("*.json"))) == 3
    monkeypatch.setattr("medaug.pipeline.executors.run_series", real)
    # Without --resume the half-done folder is refused, not overwritten.
    assert _run(archive, partial, key, "--workers", "1") == 2
    assert _run(archive, partial, key, "--workers", "1", "--resume") == 3
    _assert_same_tree(out, partial)


def test_resume_refuses_another_key(archive: Path, key: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert _run(archive, out, key, "--workers", "1") == 3
    other = tmp_path / "other.key"
    assert main(["keygen", str(other)]) == 0
    assert _run(archive, out, other, "--workers", "1", "--resume") == 2


def _approved_copy(tmp_path: Path, edit: str | None = None, *, approve: bool = True) -> Path:
    policy = tmp_path / "policy.yaml"
    text = CT_POLICY.read_text()
    policy.write_text(text)
    if approve:
        assert main(["policy", "approve", str(policy), "--by", "Test Steward"]) == 0
    if edit is not None:
        policy.write_text(text.replace("max_degrees: 5 ", edit))
    return policy


def test_unapproved_policy_is_refused(archive: Path, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = _approved_copy(tmp_path, approve=False)
    assert _run(archive, tmp_path / "out", key, policy=policy) == 2
    assert "not approved" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_policy_changed_after_approval_is_refused(
    archive: Path, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = _approved_copy(tmp_path, edit="max_degrees: 6 ")
    assert _run(archive, tmp_path / "out", key, policy=policy) == 2
    assert "changed after approval" in capsys.readouterr().err


def test_policy_over_a_cap_is_refused(archive: Path, key: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = _approved_copy(tmp_path, edit="max_degrees: 40 ", approve=False)
    assert _run(archive, tmp_path / "out", key, policy=policy) == 2
    err = capsys.readouterr().err
    assert "transforms.rotation.max_degrees" in err and "15" in err


def test_missing_key_is_a_usage_error(archive: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(CT_POLICY), str(archive), str(tmp_path / "out")]) == 2
    assert "key" in capsys.readouterr().err
    assert main(["run", str(CT_POLICY), str(archive), str(tmp_path / "out"), "--key", str(tmp_path / "none")]) == 2


def _assert_same_tree(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    match, mismatch, errors = filecmp.cmpfiles(a, b, files_a, shallow=False)
    assert not mismatch and not errors


def test_bundled_policies_validate(capsys: pytest.CaptureFixture[str]) -> None:
    for policy in sorted((REPO / "policies").glob("*.yaml")):
        assert main(["policy", "validate", str(policy)]) == 0, policy.name


@pytest.mark.slow
def test_pool_workers_compile_the_kernels_from_a_cold_cache(archive: Path, key: Path, tmp_path: Path) -> None:
    """A fresh install has no compiled kernels: pool workers compile them and no series fails."""
    import os

    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    result = subprocess.run(
        [str(REPO / ".venv" / "bin" / "medaug"), "run", str(CT_POLICY), str(archive), str(tmp_path / "out"),
         "--key", str(key), "--workers", "2"],
        capture_output=True, text=True, check=False, env=env,
    )
    assert result.returncode == 3, result.stderr
    assert "internal-error" not in result.stdout
    assert verify_dataset(tmp_path / "out").ok
