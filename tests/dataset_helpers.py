"""Helpers of the scale, fault and export tests: compare datasets, check their audit log, search an export."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medaug.audit.chain import check_chain, head_of, read_lines


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_nothing_planted(folder: Path, planted: Iterable[str]) -> None:
    """No ``planted`` value is in the bytes (gzip streams inflated) or the relative name of a file under ``folder``."""
    values = sorted(set(planted))
    assert values
    for rel, data in tree(folder).items():
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        for value in values:
            assert value.encode("utf-8") not in data, f"a planted {value!r} is in an exported file"
            assert value not in rel, f"a planted {value!r} is in an exported file name"


def assert_same_dataset(expected: Path, got: Path) -> None:
    """The two dataset folders hold the same files with the same bytes."""
    a, b = tree(expected), tree(got)
    assert sorted(b) == sorted(a), f"file sets differ: {sorted(set(a) ^ set(b))[:5]}"
    different = [name for name in a if a[name] != b[name]]
    assert not different, f"{len(different)} files differ, e.g. {different[0]}"


def assert_verifiable(outdir: Path) -> None:
    """The log's chain is intact, its head is the manifest's, no output is recorded twice, no temporary is left."""
    lines = read_lines(outdir / "audit" / "log.jsonl")
    records, problems = check_chain(lines)
    assert not problems, problems[:3]
    manifest = json.loads((outdir / "manifest.json").read_text())
    assert manifest["log"]["head"] == head_of(lines)
    assert manifest["log"]["records"] == len(lines)
    outputs = [r["path"] for r in records if r["type"] == "output"]
    assert len(outputs) == len(set(outputs)), "an output is recorded twice"
    on_disk = {p.relative_to(outdir).as_posix() for p in (outdir / "dicom").rglob("*") if p.is_file()}
    assert on_disk == set(outputs), "files on disk and output records differ"
    assert not list(outdir.rglob(".*.tmp")), "a temporary file was left behind"
    assert not (outdir / ".work").exists()


def run_unscoped(policy: str, archive: Path, root: Path) -> tuple[Path, list[dict[str, Any]]]:
    """``medaug run`` of a bundled policy with its scope removed (every series of its modalities) over
    ``archive``, into ``root / "out"`` with a new key: the dataset and its audit records."""
    import yaml

    from medaug.cli import main
    from medaug.deid.keys import write_key

    key = root / "k.key"
    write_key(key)
    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "policies" / f"{policy}.yaml").read_text())
    del raw["scope"]
    path = root / "p.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["policy", "approve", str(path), "--by", "A. Steward"]) == 0
    out = root / "out"
    assert main(["run", str(path), str(archive), str(out), "--key", str(key), "--workers", "1"]) == 0
    return out, [json.loads(line) for line in (out / "audit" / "log.jsonl").read_text().splitlines()]
