"""The dataset contract has one owner: records built through it check against the schema
verify uses, a changed layout is followed by run and verify alike, and the package's
import graph keeps the stages below the orchestrator."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from medaug.audit.chain import chain_records
from medaug.audit.kinds import KINDS, check_record
from medaug.audit.verify import verify_dataset
from medaug.cli import main
from medaug.dataset import layout
from medaug.dataset import records as rec

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "medaug"
POLICY = REPO / "policies" / "ct-chest-conservative.yaml"

UID = "2.25.123456789"
DIGEST = "ab" * 32
SOURCE = "F-" + "0" * 24
PATIENT = "ABCDEFGHIJKLMNOP"


def one_of_every_kind() -> list[rec.Record]:
    """One record of every class the contract defines, with values of the right kinds."""
    path = (layout.SeriesFolder.of(patient=PATIENT, study_uid=UID, series_uid=UID, first_instance_uid=UID, variant=1)
            .relative() / layout.image_name(1)).as_posix()
    return [
        rec.RunStart(
            policy=rec.PolicyRef(id="p", version="1", sha256=DIGEST, content={"id": "p"}),
            approval=rec.ApprovalRef(approved_by="A. Steward", approved_at="2026-01-02T03:04:05Z", policy_id="p",
                                     policy_version="1", content_sha256=DIGEST, medaug_version="0.1.0"),
            versions={"medaug": "0.1.0"},
            key_fingerprint="0123456789abcdef",
        ),
        rec.SeriesRecord(series=UID, patient=PATIENT, modality="CT", kind="stack", shape=(2, 4, 4), problems=(),
                         instances=2),
        rec.Ingest(series=UID, instance=UID, source=SOURCE),
        rec.OriginalDerive(series=UID, clipped=0),
        rec.VariantDerive(series=UID, variant=1, variant_series=UID, frame_of_reference=None,
                          params={"interpolation": "linear", "rotation": None, "elastic": None, "intensity": None},
                          seed={"run_seed": 1, "variant": 1}, min_jacobian=1.0, max_jacobian=1.0, clipped=0),
        rec.Label(series=UID, source=SOURCE, kind="SEG", segments=2, ratios=((1.0, 1.0), (0.97, 1.02))),
        rec.Redaction(series=UID, slice=0, boxes=((1, 2, 30, 9),)),
        rec.Output(path=path, sha256=DIGEST, series=UID, instance=UID, variant=1),
        rec.Quarantine(source=SOURCE, reason="not-dicom"),
        rec.Skip(source=SOURCE, reason="modality-not-in-policy"),
        rec.Index(source=SOURCE),
        rec.RunEnd(counts=rec.Counts(inputs=3, series=1, files_written=1, quarantined={"not-dicom": 1},
                                     skipped={"modality-not-in-policy": 1}, indexes=1,
                                     missing_references=0)),
    ]


def test_every_record_kind_built_through_the_contract_checks_against_verify_schema() -> None:
    import json

    built = one_of_every_kind()
    assert {type(r) for r in built} == set(rec.RECORD_CLASSES)
    for line in chain_records(r.to_json() for r in built):
        record = json.loads(line)
        assert check_record(record) == [], record["type"]
        parsed = rec.parse(record)
        assert parsed is not None and parsed.to_json() == built[record["seq"]].to_json()


def test_every_declared_kind_has_a_check() -> None:
    assert rec.kinds_used() <= set(KINDS)


def test_a_field_outside_the_contract_is_a_violation() -> None:
    body = rec.Index(source=SOURCE).to_json()
    record = {**body, "seq": 0, "prev": "0" * 64, "extra": 1}
    assert [v.field for v in check_record(record)] == ["extra"]


def test_a_changed_layout_is_followed_by_run_and_verify(tmp_path: Path, archive: Path, keyfile: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    changed = dataclasses.replace(layout.LAYOUT, images="images", series="series-{volume}-variant{variant}",
                                  image="slice{number}.dcm", label="mask{number}.dcm")
    monkeypatch.setattr(layout, "LAYOUT", changed)
    out = tmp_path / "out"
    code = main(["run", str(POLICY), str(archive), str(out), "--key", str(keyfile), "--workers", "1"])
    assert code == 3
    assert not (out / "dicom").exists()
    files = sorted(p.relative_to(out).as_posix() for p in (out / "images").rglob("*.dcm"))
    assert files and all("/series-" in f and "-variant" in f for f in files)
    # Image and label files alike are named by the changed layout (the archive has a labelled CT).
    named = {f: f.rsplit("/", 1)[1].startswith(("slice", "mask")) for f in files}
    assert all(named.values()), [f for f, ok in named.items() if not ok]
    assert any("/mask" in f for f in files) and any("/slice" in f for f in files)
    result = verify_dataset(out)
    assert result.ok, result.problems
    monkeypatch.setattr(layout, "LAYOUT", layout.Layout())
    assert not verify_dataset(out).ok  # the default layout does not describe this dataset


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_stage_imports_the_pipeline() -> None:
    offenders = []
    for path in _modules():
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("pipeline/") or rel == "cli.py":
            continue
        for module, _names in _imports(path):
            if module.startswith("medaug.pipeline"):
                offenders.append(rel)
    assert offenders == []


def test_no_module_imports_another_modules_private_names() -> None:
    offenders = []
    for path in _modules():
        package = "medaug." + ".".join(path.relative_to(PACKAGE).parts[:-1])
        for module, names in _imports(path):
            if not module.startswith("medaug"):
                continue
            for n in names:
                private = n.startswith("_") and not n.startswith("__")
                # A package's private submodule (augment._kernel) is the package's own business.
                own_submodule = module == package.rstrip(".") and (path.parent / f"{n}.py").is_file()
                if private and not own_submodule:
                    offenders.append(f"{path.relative_to(PACKAGE)}: {module}.{n}")
    assert offenders == []


@pytest.mark.parametrize("text", ["log.jsonl", "manifest.json", layout.DATASET_FORMAT])
def test_contract_strings_live_in_one_module(text: str) -> None:
    holders = [p.relative_to(PACKAGE).as_posix() for p in _modules() if text in p.read_text(encoding="utf-8")]
    assert holders == ["dataset/layout.py"]


def _field_names(cls: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def test_the_approval_sub_record_is_the_approval() -> None:
    from medaug.policy.approval import Approval

    assert _field_names(rec.ApprovalRef) == _field_names(Approval)
