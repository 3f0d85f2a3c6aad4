"""The published policy schema and its error messages.

The schema (JSON Schema draft 2020-12) is data: ``medaug/policy/data/policy.schema.json``,
published unchanged as ``docs/policy.schema.json`` so editors and CI can check
policies with the same file. This module turns schema violations into short
messages that name the key path and the reason, never the offending value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError

_MAX_KEY_CHARS = 40


@lru_cache(maxsize=1)
def policy_schema() -> Mapping[str, Any]:
    """The policy JSON Schema, as a mapping.

    Examples
    --------
    >>> policy_schema()["$schema"]
    'https://json-schema.org/draft/2020-12/schema'
    """
    text = resources.files("medaug.policy").joinpath("data/policy.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _is_strict_integer(checker: object, instance: object) -> bool:
    # JSON Schema counts 2.0 as an integer; a seed or a row count of 2.0 would
    # then reach code that needs a Python int, so only true integers pass.
    return isinstance(instance, int) and not isinstance(instance, bool)


_StrictValidator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_strict_integer),
)


@lru_cache(maxsize=1)
def _validator() -> Any:
    schema = policy_schema()
    Draft202012Validator.check_schema(schema)
    return _StrictValidator(schema)


def describe_key(key: object) -> str:
    """A key as it may appear in a message: short printable names only.

    Policy keys are not patient data, but a message never prints a value of
    unbounded size, so a long or unprintable key is described by its length.

    Examples
    --------
    >>> describe_key("flip")
    'flip'
    >>> describe_key("x" * 100)
    '<a key of 100 characters>'
    """
    if not isinstance(key, str):
        return f"<a key of type {type(key).__name__}>"
    if 0 < len(key) <= _MAX_KEY_CHARS and key.isprintable():
        return key
    return f"<a key of {len(key)} characters>"


def key_path(parts: Iterable[object]) -> str:
    """Dotted key path with list indices, e.g. ``deid.burned_in_rules[0].regions``.

    Examples
    --------
    >>> key_path(["transforms", "rotation", "max_degrees"])
    'transforms.rotation.max_degrees'
    >>> key_path(["deid", "burned_in_rules", 0, "regions", 1])
    'deid.burned_in_rules[0].regions[1]'
    >>> key_path([])
    '(top level)'
    """
    out = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + describe_key(part)
    return out or "(top level)"


def _number(value: object) -> str:
    """A schema limit as text (limits come from the schema, not the policy)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


_JSON_TYPES = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "empty",
}


def _reasons(error: ValidationError) -> list[tuple[list[object], str]]:
    """Paths and reasons of one schema error, without the instance value."""
    path = list(error.absolute_path)
    keyword = error.validator
    limit = error.validator_value
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    if keyword == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = [k for k in error.instance if k not in schema.get("properties", {})]
        # One message per unknown key, at the unknown key's own path.
        return [(path + [key], f"unknown key; allowed: {', '.join(allowed)}") for key in extra]
    if keyword == "required":
        return [(path + [key], "is required") for key in limit if key not in error.instance]
    if keyword == "type":
        wanted = _JSON_TYPES.get(str(limit), str(limit))
        hint = ""
        if limit == "string" and "pattern" in schema:
            hint = " (quote it in YAML)"
        elif limit == "string":
            hint = " (quote it if YAML read it as a number, date or boolean)"
        return [(path, f"must be {wanted}{hint}")]
    if keyword == "enum":
        return [(path, f"must be one of: {', '.join(str(v) for v in limit)}")]
    if keyword == "pattern":
        return [(path, _pattern_reason(path, schema))]
    if keyword == "minimum":
        return [(path, f"must be at least {_number(limit)}")]
    if keyword == "maximum":
        return [(path, f"must be at most {_number(limit)}")]
    if keyword == "exclusiveMinimum":
        return [(path, f"must be greater than {_number(limit)}")]
    if keyword == "exclusiveMaximum":
        return [(path, f"must be less than {_number(limit)}")]
    if keyword == "minLength":
        return [(path, "must not be empty" if limit == 1 else f"must have at least {limit} characters")]
    if keyword == "maxLength":
        return [(path, f"must have at most {limit} characters")]
    if keyword == "minItems":
        return [(path, "must not be empty" if limit == 1 else f"must have at least {limit} items")]
    if keyword == "maxItems":
        return [(path, f"must have at most {limit} items")]
    if keyword == "uniqueItems":
        return [(path, "must not repeat an item")]
    return [(path, f"fails the schema rule {keyword!s}")]


def _pattern_reason(path: Sequence[object], schema: Mapping[str, Any]) -> str:
    """Say what a pattern means in words rather than as a regular expression."""
    leaf = path[-1] if path else ""
    if leaf == "id":
        return "must be a slug: lowercase letters, digits and single hyphens"
    if leaf == "version":
        return "must be letters, digits and . + _ - (starting with a letter or digit)"
    if leaf == "element":
        return 'must be a quoted hex byte like "0x10"'
    if len(path) >= 2 and path[-2] == "modalities":
        return "must be a DICOM Modality code (upper-case letters, digits, underscore), e.g. CT"
    return f"must match the pattern {schema.get('pattern', '?')}"


def schema_errors(instance: object) -> list[str]:
    """Every schema violation of ``instance`` as ``"key.path: reason"``, sorted by path.

    Parameters
    ----------
    instance : object
        The parsed policy (JSON-compatible data).

    Returns
    -------
    list of str
        Empty when the instance is valid.

    Examples
    --------
    >>> schema_errors({"id": "Bad Id"})[0]
    'deid: is required'
    """
    found: set[tuple[str, str]] = set()
    for error in _validator().iter_errors(instance):
        for path, reason in _reasons(error):
            found.add((key_path(path), reason))
    return [f"{p}: {r}" for p, r in sorted(found)]
