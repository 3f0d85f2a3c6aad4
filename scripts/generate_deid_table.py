"""Generate medaug's de-identification action table from the DICOM standard's data.

Reads PS3.15 Table E.1-1 (2024b, normalised, with the 35 attributes added by the
2026c edition) from the reference folder and the IOD tables shipped by highdicom,
and writes ``medaug/deid/data/annex_e_table.json``: one row per attribute (basic
profile action and the action of every option), the special rows (curves,
overlays, private attributes), and, for every attribute whose basic action is a
compound code (``Z/D``, ``X/Z``, ``X/D``, ``X/Z/D``, ``X/Z/U*``), its Type in each
IOD, so the engine can resolve the code per SOP class.

Usage::

    python scripts/generate_deid_table.py [REFERENCE_DIR] [-o OUT]

``REFERENCE_DIR`` defaults to ``../shared/reference`` relative to the repository.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from medaug.deid.options import TABLE_OPTIONS

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
DEFAULT_OUT = REPO / "medaug" / "deid" / "data" / "annex_e_table.json"
CSV_NAME = "table_E1-1_2024b_normalized.csv"
JSON_NAME = "confidentiality_profile_attributes.json"

# The option columns of Table E.1-1, in the order the table shows them.
OPTION_COLUMNS = TABLE_OPTIONS
COMPOUND = {"Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"}
VALID_ACTIONS = {"D", "Z", "X", "K", "C", "U"} | COMPOUND
# Strictness of a Type: a lower rank demands more of the attribute's presence.
TYPE_RANK = {"1": 0, "1C": 0, "2": 1, "2C": 1, "3": 2}
TYPE_NAME = {0: "1", 1: "2", 2: "3"}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tag_hex(text: str) -> str:
    """``"(0008,0050)"`` -> ``"00080050"``; patterns keep their letters upper-cased."""
    return text.strip().strip("()").replace(",", "").upper()


def read_rows(reference: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows of Table E.1-1 as (attribute rows, pattern rows)."""
    rows: list[dict[str, Any]] = []
    patterns: list[dict[str, Any]] = []
    with open(reference / CSV_NAME, newline="", encoding="utf-8") as fh:
        for rec in csv.DictReader(fh):
            tag = _tag_hex(rec["tag"])
            in_2024b = bool(rec["basic_profile"])
            basic = rec["basic_profile"] or rec["basic_profile_2026c_per_kitware"]
            if basic not in VALID_ACTIONS:
                raise ValueError(f"unknown action {basic!r} for {tag}")
            options = {col: rec[col] for col in OPTION_COLUMNS if rec[col]}
            row = {
                "tag": tag,
                "keyword": rec["keyword"],
                "name": rec["name"].split(" [only in")[0],
                "basic": basic,
                "options": options,
                "edition": "2024b" if in_2024b else "2026c",
            }
            if "X" in tag[:4] or not all(c in "0123456789ABCDEF" for c in tag):
                patterns.append(row)
            else:
                rows.append(row)
    return rows, patterns


def read_types(compound: dict[str, str], highdicom_standard: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """SOP class -> IOD, and per IOD the Type of each compound-action attribute.

    ``compound`` maps keyword -> tag hex. Per IOD, ``top`` holds the Type of the
    attribute at the top level of the dataset and ``nested`` the strictest Type
    among its occurrences inside sequences (1C counts as 1, 2C as 2).
    """
    sop_map: dict[str, str] = json.loads((highdicom_standard / "sop_class_iod_map.json").read_text())
    iod_modules: dict[str, list[dict[str, str]]] = json.loads((highdicom_standard / "iod_module_map.json").read_text())
    module_attrs: dict[str, list[dict[str, Any]]] = json.loads(
        (highdicom_standard / "module_attribute_map.json").read_text()
    )
    iods: dict[str, Any] = {}
    for iod, modules in sorted(iod_modules.items()):
        top: dict[str, int] = {}
        nested: dict[str, int] = {}
        for module in modules:
            for attr in module_attrs.get(module["key"], []):
                tag = compound.get(attr["keyword"])
                if tag is None:
                    continue
                rank = TYPE_RANK.get(attr["type"], 2)
                # A user-optional module cannot make its attributes mandatory.
                if module.get("usage") == "U":
                    rank = 2
                where = nested if attr["path"] else top
                where[tag] = min(where.get(tag, 2), rank)
        iods[iod] = {
            "top": {t: TYPE_NAME[r] for t, r in sorted(top.items())},
            "nested": {t: TYPE_NAME[r] for t, r in sorted(nested.items())},
        }
    return dict(sorted(sop_map.items())), iods


def build(reference: Path) -> dict[str, Any]:
    """The whole table as a JSON-serialisable dict."""
    try:
        import highdicom
    except ImportError:
        sys.exit("generate_deid_table: needs highdicom for the IOD tables; pip install -e '.[tables]'")

    standard = Path(highdicom.__file__).parent / "_standard"
    rows, patterns = read_rows(reference)
    compound = {r["keyword"]: r["tag"] for r in rows if r["basic"] in COMPOUND and r["keyword"]}
    sop_classes, iods = read_types(compound, standard)
    return {
        "edition": "DICOM PS3.15 2024b Table E.1-1, plus the 35 attributes added by 2026c",
        "source": {
            CSV_NAME: _sha256(reference / CSV_NAME),
            JSON_NAME: _sha256(reference / JSON_NAME),
            "highdicom": f"highdicom {highdicom.__version__} _standard/{{sop_class_iod_map,iod_module_map,module_attribute_map}}.json",
        },
        "generated_by": "scripts/generate_deid_table.py",
        "rows": rows,
        "patterns": patterns,
        "sop_classes": sop_classes,
        "iods": iods,
    }


def check_against_json(table: dict[str, Any], reference: Path) -> None:
    """Cross-check the basic actions of the 2024b rows against the upstream JSON."""
    upstream = {
        _tag_hex(r["tag"]): r["basicProfile"] for r in json.loads((reference / JSON_NAME).read_text())
    }
    for row in table["rows"]:
        if row["edition"] == "2024b" and row["tag"] in upstream and upstream[row["tag"]] != row["basic"]:
            raise ValueError(f"{row['tag']}: CSV and JSON disagree on the basic action")


def main(argv: list[str] | None = None) -> int:
    """Generate the table; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("reference", nargs="?", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("-o", "--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    table = build(args.reference)
    check_against_json(table, args.reference)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(table['rows'])} rows, {len(table['patterns'])} patterns, "
          f"{len(table['iods'])} IODs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
