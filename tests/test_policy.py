"""Policy loading: safe YAML, the published schema, rules across keys, clinical caps."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from medaug.augment.spec import ElasticSpec, IntensitySpec, RotationSpec
from medaug.errors import PolicyError
from medaug.policy import load_policy, policy_from_mapping
from medaug.policy.load import MAX_POLICY_BYTES

REPO = Path(__file__).resolve().parents[1]


def base() -> dict[str, Any]:
    """A valid CT policy, as parsed data."""
    return {
        "id": "test-ct",
        "version": "1",
        "description": "a test policy",
        "modalities": ["CT"],
        "deid": {"options": ["retain_long_modified_dates"]},
        "variants_per_series": 2,
        "include_original": True,
        "seed": 7,
        "transforms": {
            "rotation": {"max_degrees": 5, "max_tilt_degrees": 2},
            "elastic": {"control_spacing_mm": 40, "max_displacement_mm": 4},
            "intensity": {"max_shift": 5},
        },
    }


def refused(raw: Any) -> str:
    with pytest.raises(PolicyError) as info:
        policy_from_mapping(raw)
    return str(info.value)


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the parsed Policy -------------------------------------------------------------------------


def test_valid_policy_parses_every_field() -> None:
    raw = base()
    raw["deid"] = {
        "options": ["retain_safe_private", "clean_descriptors", "clean_pixel_data"],
        "safe_private": [{"creator": "ACME 1.1", "element": "0x1A"}],
        "burned_in_rules": [
            {"manufacturer": "M", "model": "X", "rows": 100, "columns": 200, "regions": [[10, 0, 200, 10]]}
        ],
    }
    raw["output"] = {"transfer_syntax": "rle-lossless"}
    policy = policy_from_mapping(raw)
    assert policy.id == "test-ct" and policy.version == "1" and policy.modalities == ("CT",)
    assert policy.variants_per_series == 2 and policy.include_original is True and policy.seed == 7
    assert set(policy.deid.names) == {"retain_safe_private", "clean_descriptors", "clean_pixel_data"}
    assert policy.deid.safe_private[0].creator == "ACME 1.1"
    assert policy.deid.safe_private[0].element_byte == 0x1A
    rule = policy.deid.burned_in_rules[0]
    assert (rule.manufacturer, rule.model, rule.rows, rule.columns) == ("M", "X", 100, 200)
    assert rule.regions == ((10, 0, 190, 10),)  # the engine's (x, y, width, height)
    assert policy.augment.rotation == RotationSpec(max_degrees=5, max_tilt_degrees=2)
    assert policy.augment.elastic == ElasticSpec(control_spacing_mm=40, max_displacement_mm=4)
    assert policy.augment.intensity == IntensitySpec(max_shift=5)
    assert policy.augment.interpolation == "linear"
    assert policy.output.transfer_syntax == "rle-lossless"
    assert policy.output.transfer_syntax_uid == "1.2.840.10008.1.2.5"
    assert policy.covers("CT") and not policy.covers("MR")
    assert policy.raw == raw


def test_defaults_for_optional_sections() -> None:
    raw = base()
    raw["variants_per_series"] = 0
    del raw["transforms"]
    policy = policy_from_mapping(raw)
    assert policy.augment.rotation is None and policy.augment.elastic is None
    assert policy.output.transfer_syntax_uid == "1.2.840.10008.1.2.1"
    assert policy.deid.safe_private == () and policy.deid.burned_in_rules == ()


def test_policy_keeps_its_own_copy_of_the_content() -> None:
    raw = base()
    policy = policy_from_mapping(raw)
    raw["transforms"]["rotation"]["max_degrees"] = 14
    assert policy.raw["transforms"]["rotation"]["max_degrees"] == 5


# --- the published schema ----------------------------------------------------------------------


def test_published_schema_is_the_one_used() -> None:
    shipped = (REPO / "medaug" / "policy" / "data" / "policy.schema.json").read_bytes()
    assert (REPO / "docs" / "policy.schema.json").read_bytes() == shipped


def _object_schemas(schema: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(schema, dict):
        if schema.get("type") == "object":
            found.append((where, schema))
        for key, sub in schema.get("properties", {}).items():
            found += _object_schemas(sub, f"{where}/{key}")
        if isinstance(schema.get("items"), dict):
            found += _object_schemas(schema["items"], f"{where}/items")
    return found


def test_schema_is_strict_and_documented() -> None:
    schema = json.loads((REPO / "docs" / "policy.schema.json").read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    objects = _object_schemas(schema)
    assert len(objects) >= 9
    for where, obj in objects:
        assert obj.get("additionalProperties") is False, where
        for key, prop in obj["properties"].items():
            assert prop.get("description"), f"{where}/{key}"
            if isinstance(prop.get("items"), dict):
                assert prop["items"].get("description"), f"{where}/{key}/items"


def test_schema_options_match_the_annex_e_options() -> None:
    schema = json.loads((REPO / "docs" / "policy.schema.json").read_text())
    names = schema["properties"]["deid"]["properties"]["options"]["items"]["enum"]
    assert sorted(names) == sorted(
        [
            "clean_pixel_data",
            "clean_recognizable_visual_features",
            "clean_graphics",
            "clean_structured_content",
            "clean_descriptors",
            "retain_long_full_dates",
            "retain_long_modified_dates",
            "retain_patient_characteristics",
            "retain_device_identity",
            "retain_institution_identity",
            "retain_uids",
            "retain_safe_private",
        ]
    )


# --- schema errors name the key path and the reason -----------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda r: r.pop("seed"), "seed: is required"),
        (lambda r: r.update(seed=-1), "seed: must be at least 0"),
        (lambda r: r.update(seed=1.0), "seed: must be an integer"),
        (lambda r: r.update(version=1.0), "version: must be a string"),
        (lambda r: r.update(id="Not A Slug"), "id: must be a slug"),
        (lambda r: r.update(modalities=[]), "modalities: must not be empty"),
        (lambda r: r.update(modalities=["ct"]), "modalities[0]: must be a DICOM Modality code"),
        (lambda r: r.update(variants_per_series=101), "variants_per_series: must be at most 100"),
        (lambda r: r.update(include_original="yes"), "include_original: must be true or false"),
        (lambda r: r.update(colour="red"), "colour: unknown key"),
        (lambda r: r["transforms"].update(flip={"axis": 0}), "transforms.flip: unknown key"),
        (lambda r: r["transforms"].update(interpolation="nearest"), "transforms.interpolation: must be one of"),
        (lambda r: r["transforms"]["rotation"].update(max_degrees=-1), "transforms.rotation.max_degrees: must be at least 0"),
        (lambda r: r["transforms"]["rotation"].update(max_degrees="5"), "transforms.rotation.max_degrees: must be a number"),
        (lambda r: r["transforms"]["rotation"].update(axis="z"), "transforms.rotation.axis: unknown key"),
        (lambda r: r["transforms"]["elastic"].pop("control_spacing_mm"), "transforms.elastic.control_spacing_mm: is required"),
        (lambda r: r["transforms"]["elastic"].update(control_spacing_mm=0), "transforms.elastic.control_spacing_mm: must be greater than 0"),
        (lambda r: r["transforms"]["intensity"].update(bias_order=1.5), "transforms.intensity.bias_order: must be an integer"),
        (lambda r: r["deid"].update(options=["retain_everything"]), "deid.options[0]: must be one of"),
        (lambda r: r["deid"].update(options=["retain_uids", "retain_uids"]), "deid.options: must not repeat an item"),
        (lambda r: r["deid"].update(safe_private=[{"creator": "A", "element": 16}]), "deid.safe_private[0].element: must be a string (quote it in YAML)"),
        (lambda r: r["deid"].update(safe_private=[{"creator": "A", "element": "0x100"}]), 'deid.safe_private[0].element: must be a quoted hex byte like "0x10"'),
        (
            lambda r: r["deid"].update(burned_in_rules=[{"manufacturer": "M", "model": "X", "rows": 9, "columns": 9, "regions": [[0, 0, 1]]}]),
            "deid.burned_in_rules[0].regions[0]: must have at least 4 items",
        ),
        (lambda r: r.update(output={"transfer_syntax": "jpeg-baseline"}), "output.transfer_syntax: must be one of"),
    ],
)
def test_schema_errors_name_the_key_path(change: Any, expected: str) -> None:
    raw = base()
    change(raw)
    message = refused(raw)
    assert "does not match the schema" in message
    assert expected in message


def test_all_schema_problems_are_reported_at_once() -> None:
    raw = base()
    del raw["id"], raw["seed"]
    raw["transforms"]["flip"] = {}
    message = refused(raw)
    assert "(3 problems)" in message
    for expected in ("id: is required", "seed: is required", "transforms.flip: unknown key"):
        assert expected in message


def test_many_problems_are_counted_not_all_listed() -> None:
    raw = base()
    for n in range(30):
        raw[f"extra{n:02d}"] = n
    message = refused(raw)
    assert "(30 problems)" in message and "... and 10 more" in message
    assert "extra19: unknown key" in message and "extra20" not in message


def test_messages_never_repeat_values_of_unbounded_size() -> None:
    raw = base()
    planted = "Doe^Jane-" + "Q" * 5000
    raw["id"] = planted
    raw["modalities"] = [planted]
    raw["deid"]["safe_private"] = [{"creator": "A", "element": planted}]
    raw["transforms"][planted] = 1
    raw["transforms"]["rotation"]["max_degrees"] = planted
    message = refused(raw)
    assert "Doe^Jane" not in message and "QQQQ" not in message
    assert "transforms.<a key of 5009 characters>: unknown key" in message
    assert len(message) < 2000


# --- rules across keys -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda r: r["deid"].update(options=["retain_long_full_dates", "retain_long_modified_dates"]),
            "deid.options: retain_long_full_dates and retain_long_modified_dates exclude each other",
        ),
        (
            lambda r: r["deid"].update(safe_private=[{"creator": "A", "element": "0x10"}]),
            "deid.safe_private: has entries but deid.options lacks retain_safe_private",
        ),
        (
            lambda r: r["deid"].update(
                burned_in_rules=[{"manufacturer": "M", "model": "X", "rows": 10, "columns": 20, "regions": [[0, 0, 21, 5]]}]
            ),
            "deid.burned_in_rules[0].regions[0]: needs x0 < x1 <= columns and y0 < y1 <= rows",
        ),
        (
            lambda r: r["deid"].update(
                burned_in_rules=[{"manufacturer": "M", "model": "X", "rows": 10, "columns": 20, "regions": [[5, 5, 5, 6]]}]
            ),
            "deid.burned_in_rules[0].regions[0]: needs x0 < x1",
        ),
        (lambda r: r.update(transforms={"interpolation": "cubic"}), "variants_per_series: is above 0 but transforms names no transform"),
        (lambda r: r.update(variants_per_series=0, include_original=False), "include_original: is false and variants_per_series is 0"),
    ],
)
def test_inconsistent_policies_are_refused(change: Any, expected: str) -> None:
    raw = base()
    change(raw)
    assert expected in refused(raw)


# --- hard clinical caps ------------------------------------------------------------------------


def _with(modalities: list[str], transforms: dict[str, Any]) -> dict[str, Any]:
    raw = base()
    raw["modalities"] = modalities
    raw["transforms"] = transforms
    return raw


@pytest.mark.parametrize(
    ("modalities", "transforms", "expected"),
    [
        (["CT"], {"rotation": {"max_degrees": 16}}, "transforms.rotation.max_degrees = 16 exceeds the CT cap of 15"),
        (["CT"], {"rotation": {"max_degrees": 40}}, "transforms.rotation.max_degrees = 40 exceeds the CT cap of 15"),
        (["CT"], {"rotation": {"max_degrees": 15.0000001}}, "max_degrees = 15.0000001 exceeds the CT cap of 15"),
        (["MR"], {"rotation": {"max_degrees": 15.5}}, "transforms.rotation.max_degrees = 15.5 exceeds the MR cap of 15"),
        (["DX"], {"rotation": {"max_degrees": 11}}, "transforms.rotation.max_degrees = 11 exceeds the radiography (DX) cap of 10"),
        (["CR"], {"rotation": {"max_degrees": 10.5}}, "transforms.rotation.max_degrees = 10.5 exceeds the radiography (CR) cap of 10"),
        (["CT"], {"rotation": {"max_degrees": 5, "max_tilt_degrees": 11}}, "transforms.rotation.max_tilt_degrees = 11 exceeds the CT cap of 10"),
        (["DX"], {"rotation": {"max_degrees": 5, "max_tilt_degrees": 1}}, "transforms.rotation.max_tilt_degrees = 1 exceeds the radiography (DX) cap of 0"),
        (
            ["CT"],
            {"elastic": {"control_spacing_mm": 20, "max_displacement_mm": 8}},
            "transforms.elastic.max_displacement_mm = 8 is not below the fold-free cap of 0.4 x control_spacing_mm = 8",
        ),
        (
            ["MR"],
            {"elastic": {"control_spacing_mm": 20, "max_displacement_mm": 9}},
            "transforms.elastic.max_displacement_mm = 9 is not below the fold-free cap",
        ),
        (
            ["CT"],
            {"elastic": {"control_spacing_mm": 100, "max_displacement_mm": 11}},
            "transforms.elastic.max_displacement_mm = 11 exceeds the cap of 10 mm",
        ),
        (["CT"], {"intensity": {"max_shift": 8}}, "transforms.intensity.max_shift = 8 exceeds the CT cap of 7"),
        (["CT"], {"intensity": {"max_scale": 0.01}}, "transforms.intensity.max_scale = 0.01 exceeds the CT cap of 0"),
        (["MR"], {"intensity": {"max_scale": 0.11}}, "transforms.intensity.max_scale = 0.11 exceeds the MR cap of 0.1"),
        (["MR"], {"intensity": {"max_bias": 0.2}}, "transforms.intensity.max_bias = 0.2 exceeds the MR cap of 0.1"),
        (["MR"], {"intensity": {"max_shift": 1}}, "transforms.intensity.max_shift = 1 exceeds the MR cap of 0"),
        (["MR"], {"intensity": {"max_bias": 0.05, "bias_order": 4}}, "transforms.intensity.bias_order = 4 exceeds the cap of 3"),
        (["US"], {"rotation": {"max_degrees": 1}}, "transforms: modality US has no clinical caps"),
        (["MG"], {"intensity": {"max_scale": 0.01}}, "transforms: modality MG has no clinical caps"),
    ],
)
def test_each_cap_violation_is_refused_naming_key_and_cap(
    modalities: list[str], transforms: dict[str, Any], expected: str
) -> None:
    message = refused(_with(modalities, transforms))
    assert "exceeds a clinical cap" in message
    assert expected in message


def test_strictest_cap_of_all_listed_modalities_applies() -> None:
    # 12 degrees is fine for CT alone, not once DX is listed beside it.
    assert policy_from_mapping(_with(["CT"], {"rotation": {"max_degrees": 12}})).augment.rotation is not None
    message = refused(_with(["CT", "DX"], {"rotation": {"max_degrees": 12}}))
    assert "exceeds the radiography (DX) cap of 10" in message
    assert "CT cap" not in message


def test_values_at_the_cap_are_accepted() -> None:
    cases: list[tuple[list[str], dict[str, Any]]] = [
        (["CT"], {"rotation": {"max_degrees": 15, "max_tilt_degrees": 10}, "intensity": {"max_shift": 7}}),
        (["MR"], {"rotation": {"max_degrees": 15}, "intensity": {"max_scale": 0.1, "max_bias": 0.1, "bias_order": 3}}),
        (["CR", "DX"], {"rotation": {"max_degrees": 10}, "intensity": {"max_scale": 0.1}}),
        (["CT"], {"elastic": {"control_spacing_mm": 30, "max_displacement_mm": 10}}),
        (["CT"], {"elastic": {"control_spacing_mm": 20, "max_displacement_mm": 7.999}}),
    ]
    for modalities, transforms in cases:
        policy_from_mapping(_with(modalities, transforms))


def test_uncapped_modality_may_be_deidentified_without_transforms() -> None:
    raw = _with(["US", "MG"], {})
    raw["variants_per_series"] = 0
    assert policy_from_mapping(raw).modalities == ("US", "MG")


_CAPS: dict[str, dict[str, float]] = {  # the caps as docs/plausibility.md states them: an oracle independent of caps.py
    "CT": {"max_degrees": 15, "max_tilt_degrees": 10, "max_shift": 7, "max_scale": 0, "max_bias": 0},
    "MR": {"max_degrees": 15, "max_tilt_degrees": 10, "max_shift": 0, "max_scale": 0.1, "max_bias": 0.1},
    "CR": {"max_degrees": 10, "max_tilt_degrees": 0, "max_shift": 0, "max_scale": 0.1, "max_bias": 0.1},
    "DX": {"max_degrees": 10, "max_tilt_degrees": 0, "max_shift": 0, "max_scale": 0.1, "max_bias": 0.1},
}


def _maybe(values: st.SearchStrategy[float]) -> st.SearchStrategy[float]:
    # Zero often, so that a modality's zero caps are met as well as exceeded.
    return st.one_of(st.just(0.0), values)


@settings(max_examples=300, deadline=None)
@given(
    modalities=st.lists(st.sampled_from(sorted(_CAPS)), min_size=1, max_size=2, unique=True),
    degrees=st.floats(0, 20),
    tilt=_maybe(st.floats(0, 14)),
    shift=_maybe(st.floats(0, 10)),
    scale=_maybe(st.floats(0, 0.15)),
    bias=_maybe(st.floats(0, 0.15)),
    bias_order=st.integers(0, 5),
    spacing=st.floats(1, 60),
    displacement=st.floats(0, 15),
)
def test_validation_agrees_with_the_caps(
    modalities: list[str],
    degrees: float,
    tilt: float,
    shift: float,
    scale: float,
    bias: float,
    bias_order: int,
    spacing: float,
    displacement: float,
) -> None:
    values = {"max_degrees": degrees, "max_tilt_degrees": tilt, "max_shift": shift, "max_scale": scale, "max_bias": bias}
    raw = _with(
        modalities,
        {
            "rotation": {"max_degrees": degrees, "max_tilt_degrees": tilt},
            "intensity": {"max_shift": shift, "max_scale": scale, "max_bias": bias, "bias_order": bias_order},
            "elastic": {"control_spacing_mm": spacing, "max_displacement_mm": displacement},
        },
    )
    expected = {key for m in modalities for key, cap in _CAPS[m].items() if values[key] > cap}
    if bias > 0 and bias_order > 3:
        expected.add("bias_order")
    if displacement >= 0.4 * spacing or displacement > 10:
        expected.add("max_displacement_mm")
    if not expected:
        policy = policy_from_mapping(raw)
        assert policy.augment.rotation == RotationSpec(max_degrees=degrees, max_tilt_degrees=tilt)
        return
    message = refused(raw)
    for key in expected:
        assert f".{key} = " in message
    for key in set(values) - expected:
        assert f".{key} = " not in message


# --- the policy file: safe YAML and canonical content ------------------------------------------------


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, yaml.safe_dump(base()))
    assert load_policy(path).id == "test-ct"


def test_content_hash_ignores_comments_order_and_layout(tmp_path: Path) -> None:
    block = write(tmp_path, "# a comment\n" + yaml.safe_dump(base(), sort_keys=True), "a.yaml")
    raw = base()
    reordered = {key: raw[key] for key in reversed(list(raw))}
    flow = write(tmp_path, "# another comment\n" + yaml.safe_dump(reordered, sort_keys=False, default_flow_style=True), "b.yaml")
    commented = write(
        tmp_path,
        yaml.safe_dump(base(), sort_keys=False).replace("seed: 7", "seed: 7   # why seven").replace("id: test-ct", "id: 'test-ct'"),
        "c.yaml",
    )
    hashes = {load_policy(p).content_sha256 for p in (block, flow, commented)}
    assert len(hashes) == 1
    # The documented definition: SHA-256 of canonical JSON (sorted keys, no whitespace).
    canonical = json.dumps(base(), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert hashes == {hashlib.sha256(canonical.encode("utf-8")).hexdigest()}


def test_content_hash_changes_with_any_value() -> None:
    first = policy_from_mapping(base()).content_sha256
    for change in (
        lambda r: r.update(seed=8),
        lambda r: r.update(description="a test policy."),
        lambda r: r["transforms"]["rotation"].update(max_degrees=4),
        lambda r: r["deid"]["options"].append("clean_descriptors"),
    ):
        raw = copy.deepcopy(base())
        change(raw)
        assert policy_from_mapping(raw).content_sha256 != first


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: &x [1]\nb: *x\n", "line 2: YAML aliases (*name) are not allowed"),
        ("id: a\nseed: 1\nid: b\n", "line 3: duplicate key id"),
        ("base: &b {seed: 1}\nother:\n  <<: {seed: 2}\n", "line 3: YAML merge keys (<<) are not allowed"),
        ("id: [1\nseed: 2\n", "not valid YAML: line 2"),
        ("!!python/object:os.system {}\n", "not valid YAML"),
        ("", "(top level): a policy must be a mapping"),
        ("- id\n- seed\n", "(top level): a policy must be a mapping"),
        ("seed: .nan\n", "seed: must be a finite number"),
        ("seed: .inf\n", "seed: must be a finite number"),
        ("version: 2024-01-01\n", "version: a YAML date is not allowed here (quote it to make a string)"),
        ("deid:\n  1: x\n", "deid.<a key of type int>: keys must be strings"),
        ("a: " + "[" * 20000 + "]" * 20000 + "\n", "not valid YAML: nested too deeply"),
        ("a:\n  b:\n    c:\n      d:\n        e:\n          f:\n            g:\n              h:\n"
         "                i:\n                  j:\n                    k:\n                      l:\n"
         "                        m:\n                          n:\n                            o:\n"
         "                              p:\n                                q: 1\n", "nested too deeply"),
    ],
)
def test_unsafe_or_non_json_yaml_is_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, text))
    assert expected in str(info.value)


def test_yaml_unquoted_hex_element_is_explained(tmp_path: Path) -> None:
    text = yaml.safe_dump(base()).replace(
        "deid:\n", "deid:\n  safe_private:\n  - creator: ACME\n    element: 0x10\n"
    )
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, text))
    assert "deid.safe_private[0].element: must be a string (quote it in YAML)" in str(info.value)


def test_file_problems_are_refused(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="policy file missing.yaml not found"):
        load_policy(tmp_path / "missing.yaml")
    big = write(tmp_path, "# " + "x" * MAX_POLICY_BYTES + "\n", "big.yaml")
    with pytest.raises(PolicyError, match="larger than 256 KiB"):
        load_policy(big)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("description: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(PolicyError, match="not UTF-8 text"):
        load_policy(latin)
    with pytest.raises(PolicyError, match="cannot be read"):
        load_policy(tmp_path)
