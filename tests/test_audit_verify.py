"""`medaug audit verify`, signed heads, `audit scan` and `audit trace` on a real run, tampered in every way."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medaug.canonical import canonical_json
from medaug.audit.chain import chain_records, head_of, read_lines
from medaug.audit.kinds import check_record
from medaug.audit.scan import scan_dataset
from medaug.audit.trace import trace_dataset
from medaug.audit.verify import verify_dataset
from medaug.augment.variant import violations as param_violations
from medaug.cli import EXIT_QUARANTINED, main
from medaug.dataset import layout
from medaug.deid.keys import Key, load_key

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"
LOG = Path("audit") / "log.jsonl"


@pytest.fixture(scope="session")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    assert main(["keygen", str(root / "key")]) == 0
    assert main(["keygen", str(root / "other")]) == 0
    assert main(["keygen", "--signing", str(root / "sign")]) == 0
    return {"key": root / "key", "other": root / "other", "sign": root / "sign", "pub": root / "sign.pub"}


@pytest.fixture(scope="session")
def run_dir(archive: Path, keys: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One signed run of the CT policy over the fixture archive (tests copy it before changing it)."""
    out = tmp_path_factory.mktemp("run") / "out"
    code = main(
        ["run", str(POLICY), str(archive), str(out), "--key", str(keys["key"]), "--workers", "1",
         "--signing-key", str(keys["sign"])]
    )
    assert code == EXIT_QUARANTINED
    return out


@pytest.fixture
def dataset(run_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the run to tamper with."""
    return Path(shutil.copytree(run_dir, tmp_path / "out"))


def _records(outdir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in read_lines(outdir / LOG)]


def _write_lines(outdir: Path, lines: list[str]) -> None:
    (outdir / LOG).write_text("\n".join(lines) + "\n", encoding="ascii")


def _rechain(outdir: Path, records: list[dict[str, Any]]) -> None:
    """Rewrite the log end to end as a forger would: re-chained, manifest updated."""
    bodies = [{k: v for k, v in r.items() if k not in ("seq", "prev")} for r in records]
    lines = list(chain_records(bodies))
    _write_lines(outdir, lines)
    manifest = json.loads((outdir / "manifest.json").read_text())
    manifest["log"]["head"] = head_of(lines)
    manifest["log"]["records"] = len(lines)
    (outdir / "manifest.json").write_text(canonical_json(manifest) + "\n")


def _checks(outdir: Path, **kw: Any) -> set[str]:
    return {p.check for p in verify_dataset(outdir, **kw).problems}


# -- the log alone, built in the test -----------------------------------------------------


def test_kinds_accept_the_documented_records_and_refuse_identifiers() -> None:
    good = {"seq": 3, "prev": "a" * 64, "type": "quarantine", "source": "F-" + "0" * 24, "reason": "truncated"}
    assert check_record(good) == []
    for field, value in (
        ("reason", "DOE^JOHN"),
        ("reason", "Doe, John"),
        ("source", "20030611"),
        ("source", "1.2.840.113619.2.55"),
        ("reason", "2003-06-11"),
    ):
        bad = check_record({**good, field: value})
        assert bad and all(v.seq == 3 for v in bad)
        assert all(value not in v.problem and value not in v.field for v in bad)
    assert [v.field for v in check_record({**good, "note": "x"})] == ["note"]


def test_chain_problems_name_the_sequence_number(tmp_path: Path) -> None:
    bodies = [{"type": "index", "source": "F-" + f"{n:024x}"} for n in range(6)]
    lines = list(chain_records(bodies))
    out = tmp_path / "ds"
    (out / "audit").mkdir(parents=True)
    edited = lines.copy()
    edited[2] = edited[2].replace("0000002", "0000009")
    _write_lines(out, edited)
    result = verify_dataset(out)
    chain = [p for p in result.problems if p.check == "chain"]
    # The edited record still links; the next one no longer does, and names it.
    assert [(p.seq, "seq 2" in p.message) for p in chain] == [(3, True)]


def test_param_bounds_use_every_transform() -> None:
    import numpy as np

    from medaug.augment.elastic import ElasticParams
    from medaug.augment.intensity import IntensityParams
    from medaug.augment.spec import AugmentSpec, ElasticSpec, IntensitySpec
    from medaug.augment.variant import VariantParams

    spec = AugmentSpec(elastic=ElasticSpec(40.0, 4.0), intensity=IntensitySpec(max_shift=5.0))
    disp = np.zeros((3, 3, 3, 3))
    disp[1, 1, 1] = (0.0, 4.0, -3.9)
    inside = VariantParams(elastic=ElasticParams.from_array(40.0, disp), intensity=IntensityParams(-5.0, 0.0, (), ()))
    assert param_violations(inside, spec) == []
    disp[1, 1, 1, 2] = -4.2
    outside = VariantParams(elastic=ElasticParams.from_array(30.0, disp), intensity=IntensityParams(5.5, 0.0, (), ()))
    found = param_violations(outside, spec)
    assert len(found) == 3 and any("control_spacing" in m for m in found) and any("shift" in m for m in found)


# -- a real run ---------------------------------------------------------------------------


def test_a_fresh_run_verifies_with_its_public_key(run_dir: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    result = verify_dataset(run_dir, public_key=keys["pub"])
    assert result.ok, [str(p) for p in result.problems]
    assert result.files > 0 and result.records == len(read_lines(run_dir / LOG))
    assert main(["audit", "verify", str(run_dir), "--json", "--public-key", str(keys["pub"])]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["checks"]["signature"] == "pass"


def test_an_edited_parameter_is_caught_with_its_seq(dataset: Path) -> None:
    lines = read_lines(dataset / LOG)
    n = next(i for i, line in enumerate(lines) if '"type":"derive"' in line and '"rotation":{' in line)
    record = json.loads(lines[n])
    record["params"]["rotation"]["degrees"] = 40.0
    lines[n] = canonical_json(record)
    _write_lines(dataset, lines)
    result = verify_dataset(dataset)
    assert any(p.check == "chain" and p.seq == n + 1 for p in result.problems)
    assert any(p.check == "bounds" and p.seq == n for p in result.problems)
    # Re-chained so the chain holds, the bound still fails.
    records = _records(dataset)
    _rechain(dataset, records)
    assert "bounds" in _checks(dataset) and "chain" not in _checks(dataset)


def test_label_ratios_that_cannot_be_are_caught(dataset: Path) -> None:
    """A label's voxel-count ratios: 1 for the original, one row per written series, one value per segment."""
    records = _records(dataset)
    n = next(i for i, r in enumerate(records) if r["type"] == "label")
    assert len(records[n]["ratios"]) > 1 and all(v == 1.0 for v in records[n]["ratios"][0])
    for change in ("original", "row", "segment"):
        edited = json.loads(json.dumps(records))
        ratios = edited[n]["ratios"]
        if change == "original":
            ratios[0][0] = 0.5  # the de-identified original's label does not move
        elif change == "row":
            del ratios[-1]
        else:
            ratios[1].append(1.0)
        _rechain(dataset, edited)
        problems = [p for p in verify_dataset(dataset).problems if p.check != "signature" and p.check != "tail"]
        assert [(p.check, p.seq) for p in problems] == [("bounds", n)], change
    _rechain(dataset, records)  # the same records: the same head, which the signature signs
    assert verify_dataset(dataset).ok


def test_a_deleted_line_is_caught(dataset: Path) -> None:
    lines = read_lines(dataset / LOG)
    del lines[5]
    _write_lines(dataset, lines)
    result = verify_dataset(dataset)
    assert any(p.check == "chain" and p.seq == 6 for p in result.problems)
    assert result.failed("tail")


def test_two_swapped_lines_are_caught(dataset: Path) -> None:
    lines = read_lines(dataset / LOG)
    lines[4], lines[5] = lines[5], lines[4]
    _write_lines(dataset, lines)
    seqs = {p.seq for p in verify_dataset(dataset).problems if p.check == "chain"}
    assert {4, 5} <= seqs


def test_a_truncated_tail_is_caught(dataset: Path) -> None:
    lines = read_lines(dataset / LOG)
    _write_lines(dataset, lines[:-3])
    result = verify_dataset(dataset)
    assert not result.failed("chain")  # what is left still links
    assert result.failed("tail")


def test_a_replaced_output_file_is_caught_by_its_path(dataset: Path) -> None:
    files = sorted((dataset / "dicom").rglob("*.dcm"))
    files[0].write_bytes(files[1].read_bytes())
    result = verify_dataset(dataset)
    rel = files[0].relative_to(dataset).as_posix()
    assert any(p.check == "files" and p.path == rel for p in result.problems)


def test_every_edited_file_is_caught_and_reported_in_check_order(dataset: Path) -> None:
    """The files are hashed while the log is checked: each edit is still found, and the files
    check's problems stand before the policy check's, in path order."""
    files = sorted((dataset / "dicom").rglob("*.dcm"))
    edited = [files[0], files[len(files) // 2], files[-1]]
    for path in edited:
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))
    records = _records(dataset)
    records[0]["policy"]["content"]["transforms"]["rotation"]["max_degrees"] = 12
    _rechain(dataset, records)
    problems = verify_dataset(dataset).problems
    order = [p.check for p in problems]
    changed = [p.path for p in problems if p.check == "files" and "differs" in p.message]
    assert changed == sorted(path.relative_to(dataset).as_posix() for path in edited)
    assert "policy" in order and max(i for i, c in enumerate(order) if c == "files") < order.index("policy")


def test_an_extra_file_and_a_missing_file_are_caught(dataset: Path) -> None:
    files = sorted((dataset / "dicom").rglob("*.dcm"))
    shutil.copy(files[0], files[0].parent / "999.dcm")
    files[-1].unlink()
    problems = [p for p in verify_dataset(dataset).problems if p.check == "files"]
    assert any("no output record" in p.message for p in problems)
    assert any("missing" in p.message for p in problems)


def test_a_policy_edited_after_the_run_is_caught(dataset: Path) -> None:
    records = _records(dataset)
    records[0]["policy"]["content"]["transforms"]["rotation"]["max_degrees"] = 12
    _rechain(dataset, records)
    problems = [p for p in verify_dataset(dataset).problems if p.check == "policy"]
    assert problems and all(p.seq == 0 for p in problems)


def test_an_identifier_in_a_record_is_caught(dataset: Path) -> None:
    records = _records(dataset)
    n = next(i for i, r in enumerate(records) if r["type"] == "quarantine")
    records[n]["reason"] = "DOE^JOHN"
    _rechain(dataset, records)
    problems = [p for p in verify_dataset(dataset).problems if p.check == "kinds"]
    assert problems and {p.seq for p in problems} == {n}


def test_a_rewritten_signed_log_is_caught_only_with_the_public_key(dataset: Path, keys: dict[str, Path]) -> None:
    records = _records(dataset)
    drop = [i for i, r in enumerate(records) if r["type"] == "quarantine"][:1]
    kept = [r for i, r in enumerate(records) if i not in drop]
    end = kept[-1]["counts"]
    reason = records[drop[0]]["reason"]
    end["inputs"] -= 1
    end["quarantined"][reason] -= 1
    if not end["quarantined"][reason]:
        del end["quarantined"][reason]
    _rechain(dataset, kept)
    manifest = json.loads((dataset / "manifest.json").read_text())
    manifest["counts"] = end
    (dataset / "manifest.json").write_text(canonical_json(manifest) + "\n")
    # Without the key, the signature file left behind is seen to sign another head.
    unkeyed = verify_dataset(dataset)
    assert [(p.check, p.path) for p in unkeyed.problems] == [("tail", "audit/signature.json")]
    assert "stale" in unkeyed.problems[0].message and unkeyed.notes
    result = verify_dataset(dataset, public_key=keys["pub"])
    assert {p.check for p in result.problems} == {"signature"}
    (dataset / "audit" / "signature.json").unlink()
    assert verify_dataset(dataset).ok  # a consistent forgery without its signature: only the key can tell
    assert _checks(dataset, public_key=keys["pub"]) == {"signature"}


def test_verify_cli_exit_codes_and_output_name_no_value(dataset: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = read_lines(dataset / LOG)
    lines[3], lines[4] = lines[4], lines[3]
    _write_lines(dataset, lines)
    assert main(["audit", "verify", str(dataset)]) == 1
    out = capsys.readouterr().out
    assert "seq 3" in out and "NOT verified" in out


# -- scan -----------------------------------------------------------------------------------


def _plant_nested_private(path: Path, value: str) -> None:
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0011, "LEAK TEST", create=True)
    inner = Dataset()
    inner_block = inner.private_block(0x0011, "LEAK TEST", create=True)
    inner_block.add_new(0x01, "LO", value)
    block.add_new(0x02, "SQ", Sequence([inner]))
    ds.save_as(path, enforce_file_format=True)


def test_scan_finds_a_name_planted_in_a_nested_private_element(dataset: Path, archive: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = scan_dataset(dataset, archive, pixels=False)
    files = sorted(p for p in (dataset / "dicom").rglob("*") if p.is_file())
    _plant_nested_private(files[4], "PLANTED^NAME^A7Q2")
    result = scan_dataset(dataset, archive, pixels=False)
    new = [h for h in result.hits if h not in before.hits]
    assert [(h.file, h.where, h.kind) for h in new] == [(5, "(0011,1002)[0]/(0011,1001)", "name")]
    assert main(["audit", "scan", str(dataset), "--against", str(archive), "--no-pixels"]) == 1
    out = capsys.readouterr().out
    assert "output file 5 at (0011,1002)[0]/(0011,1001)" in out
    assert "PLANTED" not in out and "A7Q2" not in out


def test_scan_finds_a_source_uid_in_file_meta_and_a_date_in_a_file_name(dataset: Path, archive: Path, manifest: dict[str, Any]) -> None:
    uid = next(p["value"] for p in manifest["planted"] if p["kind"] == "uid")
    date = next(p["value"] for p in manifest["planted"] if p["kind"] == "date" and len(p["value"]) == 8)
    files = sorted(p for p in (dataset / "dicom").rglob("*") if p.is_file())
    ds = pydicom.dcmread(files[0])
    ds.file_meta.PrivateInformationCreatorUID = uid
    ds.save_as(files[0])
    files[1].rename(files[1].with_name(f"{date}.dcm"))
    hits = {(h.file, h.where, h.kind) for h in scan_dataset(dataset, archive, pixels=False).hits}
    assert (1, "(0002,0100)", "uid") in hits
    assert any(h[1] == "file name" and h[2] == "date" for h in hits)


def test_scan_is_clean_on_a_normal_run(run_dir: Path, archive: Path) -> None:
    result = scan_dataset(run_dir, archive, pixels=False)
    assert result.clean, sorted({(h.where, h.kind) for h in result.hits})


def test_scan_on_a_normal_run_finds_only_the_known_free_text_residue(run_dir: Path, archive: Path) -> None:
    # What remains after de-identification: digits in Image Comments, a name part in a request reason.
    places = {(h.where, h.kind) for h in scan_dataset(run_dir, archive, pixels=False).hits}
    assert places <= {("(0020,4000)", "text"), ("(0040,0275)[0]/(0040,1002)", "name")}


# -- trace ---------------------------------------------------------------------------------


def test_trace_maps_outputs_to_sources_and_a_patient_to_its_outputs(
    run_dir: Path, archive: Path, keys: dict[str, Path], manifest: dict[str, Any]
) -> None:
    key = load_key(keys["key"])
    result = trace_dataset(run_dir, key, archive)
    outputs = {r["path"] for r in _records(run_dir) if r["type"] == "output"}
    assert {e.output for e in result.entries} == outputs
    assert result.unmatched_sources == 0
    for e in result.entries:
        assert e.sources and all((archive / s).is_file() for s in e.sources)
    # Every variant of an original traces to the same source files as the original.
    by_series: dict[tuple[str, str], set[tuple[str, ...]]] = {}
    for e in result.entries:
        by_series.setdefault((e.patient, e.output.split("/")[2]), set()).add(e.sources)
    series = next(s for s in manifest["series"] if s["name"] == "ct_chest")
    pid = series["patient_id"]
    mine = trace_dataset(run_dir, key, archive, patient_id=pid)
    assert mine.entries and len(mine.entries) < len(result.entries)
    traced = {s for e in mine.entries for s in e.sources}
    assert {Path(f).as_posix() for f in series["files"]} <= traced
    # A label output traces to its own label object, not to the images it follows.
    labels = {x["file"] for x in manifest["labels"]}
    label_entries = [e for e in result.entries if layout.label_number(e.output) is not None]
    assert label_entries and all(len(e.sources) == 1 and e.sources[0] in labels for e in label_entries)


def test_trace_refuses_another_key(run_dir: Path, archive: Path, keys: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["audit", "trace", str(run_dir), "--key", str(keys["other"]), "--source", str(archive)])
    assert code == 2
    assert "not the key" in capsys.readouterr().err
    assert Key(load_key(keys["other"]).secret).fingerprint != load_key(keys["key"]).fingerprint
