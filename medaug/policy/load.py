"""Load a policy file: safe YAML, the published schema, then the clinical caps.

Every problem raises :class:`~medaug.errors.PolicyError` with the key path and
the reason (all problems found at that stage, one per line); a message never
repeats a value of unbounded size from the file.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from medaug.canonical import canonical_json, sha256_hex
from medaug.augment.spec import AugmentSpec
from medaug.deid.options import BurnedInRule, DeidOptions, SafePrivate
from medaug.errors import PolicyError, TransformError, UsageError
from medaug.inputs import read_regular_file
from medaug.policy.caps import cap_violations
from medaug.policy.model import OutputPolicy, Policy, Scope, TransferSyntaxName
from medaug.policy.schema import describe_key, key_path, schema_errors
from medaug.screen import screen_string, strings

#: Largest policy file read; a policy is a page of settings, not data.
MAX_POLICY_BYTES = 256 * 1024

#: Most problems listed in one message; the rest are counted.
MAX_MESSAGES = 20

_MAX_DEPTH = 16


class _PolicyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also refuses aliases and duplicate keys.

    Aliases can expand exponentially when the content is serialised for its
    hash, and a duplicate key lets a reviewer read one value while medaug uses
    another; neither has a use in a policy.
    """

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise PolicyError(f"line {mark.line + 1}: YAML aliases (*name) are not allowed in a policy")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise PolicyError(f"line {key_node.start_mark.line + 1}: YAML merge keys (<<) are not allowed")
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # an unhashable key; PyYAML reports it below
                duplicate = False
            if duplicate:
                raise PolicyError(f"line {key_node.start_mark.line + 1}: duplicate key {describe_key(key)}")
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> object:
    """Parse policy YAML with the safe loader, refusing aliases and duplicate keys.

    Raises
    ------
    PolicyError
        With the line and column of a syntax error.
    """
    try:
        return yaml.load(text, Loader=_PolicyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        # Only the problem and its place: str(exc) would quote the line itself.
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise PolicyError(f"not valid YAML: {where}{exc.problem or 'syntax error'}") from None
    except yaml.YAMLError:
        raise PolicyError("not valid YAML") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise PolicyError("not valid YAML: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (int_max_str_digits)
        raise PolicyError("not valid YAML: a number has too many digits") from None


def _check_plain_data(value: object, path: list[object]) -> None:
    """Refuse what JSON cannot hold (dates, binary, sets, non-string keys, NaN)."""
    if len(path) > _MAX_DEPTH:
        raise PolicyError(f"{key_path(path)}: nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise PolicyError(f"{key_path(path + [describe_key(key)])}: keys must be strings (quote it in YAML)")
            _check_plain_data(item, path + [key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_plain_data(item, path + [index])
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError(f"{key_path(path)}: must be a finite number")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise PolicyError(
            f"{key_path(path)}: a YAML {type(value).__name__} is not allowed here (quote it to make a string)"
        )


def _semantic_errors(raw: Mapping[str, Any]) -> list[str]:
    """Rules across keys that a JSON Schema cannot state clearly."""
    found: list[str] = []
    deid = raw["deid"]
    options = set(deid["options"])
    if {"retain_long_full_dates", "retain_long_modified_dates"} <= options:
        found.append("deid.options: retain_long_full_dates and retain_long_modified_dates exclude each other")
    if deid.get("safe_private") and "retain_safe_private" not in options:
        found.append("deid.safe_private: has entries but deid.options lacks retain_safe_private, so none would be kept")
    for r, rule in enumerate(deid.get("burned_in_rules", [])):
        for b, (x0, y0, x1, y1) in enumerate(rule["regions"]):
            if not (x0 < x1 <= rule["columns"] and y0 < y1 <= rule["rows"]):
                found.append(
                    f"deid.burned_in_rules[{r}].regions[{b}]: needs x0 < x1 <= columns and y0 < y1 <= rows"
                )
    transforms = raw.get("transforms", {})
    augments = any(k in transforms for k in ("rotation", "elastic", "intensity"))
    if raw["variants_per_series"] > 0 and not augments:
        found.append("variants_per_series: is above 0 but transforms names no transform, so variants would be copies")
    if raw["variants_per_series"] == 0 and not raw["include_original"]:
        found.append("include_original: is false and variants_per_series is 0, so the policy writes nothing")
    return found


def _fail(stage: str, problems: list[str]) -> PolicyError:
    if len(problems) == 1:
        return PolicyError(f"{stage}: {problems[0]}")
    shown = problems[:MAX_MESSAGES]
    if len(problems) > MAX_MESSAGES:
        shown.append(f"... and {len(problems) - MAX_MESSAGES} more")
    return PolicyError(f"{stage} ({len(problems)} problems):\n  " + "\n  ".join(shown))


def _deid_options(deid: Mapping[str, Any]) -> DeidOptions:
    """The engine's options from a policy's ``deid`` mapping (boxes ``[x0, y0, x1, y1]``, ends exclusive)."""
    try:
        return DeidOptions.from_names(
            deid["options"],
            safe_private=[
                SafePrivate(creator=item["creator"], element_byte=int(item["element"], 16))
                for item in deid.get("safe_private", [])
            ],
            burned_in_rules=[
                BurnedInRule(
                    manufacturer=rule["manufacturer"],
                    model=rule["model"],
                    rows=rule["rows"],
                    columns=rule["columns"],
                    regions=tuple((b[0], b[1], b[2] - b[0], b[3] - b[1]) for b in rule["regions"]),
                )
                for rule in deid.get("burned_in_rules", [])
            ],
            reviewed_phrases=bool(deid.get("reviewed_phrases", False)),
            burned_in_text=deid.get("burned_in_text", "quarantine"),
        )
    except UsageError as exc:
        raise PolicyError(f"policy is invalid: deid: {exc}") from None


def policy_from_mapping(raw: object) -> Policy:
    """Validate parsed policy data and build the :class:`Policy`.

    Checks, in order: plain JSON-compatible data, the published schema, rules
    across keys, then the hard clinical caps of every listed modality.

    Parameters
    ----------
    raw : object
        The parsed policy file.

    Returns
    -------
    Policy

    Raises
    ------
    PolicyError
        Naming each bad key path and the reason.
    """
    if not isinstance(raw, dict):
        raise PolicyError("(top level): a policy must be a mapping of keys to values")
    _check_plain_data(raw, [])
    raw = copy.deepcopy(raw)  # the hash must describe what the Policy holds
    problems = schema_errors(raw)
    if problems:
        raise _fail("policy does not match the schema", problems)
    problems = _semantic_errors(raw)
    if problems:
        raise _fail("policy is inconsistent", problems)
    # The policy is recorded in every audit log, whose strings audit verify screens with this rule.
    problems = [f"{place}: {why} (audit verify would reject every dataset made with it)"
                for place, text in strings(raw) for why in screen_string(text)]
    if problems:
        raise _fail("policy holds text that looks like an identifier", problems)
    try:
        spec = AugmentSpec.from_mapping(raw.get("transforms", {}), path="transforms")
    except TransformError as exc:  # the schema should have caught it first
        raise PolicyError(str(exc)) from None
    modalities = tuple(raw["modalities"])
    problems = cap_violations(spec, modalities, path="transforms")
    if problems:
        raise _fail("policy exceeds a clinical cap", problems)

    deid = raw["deid"]
    output = raw.get("output", {})
    scope = raw.get("scope", {})
    return Policy(
        id=raw["id"],
        version=raw["version"],
        description=raw["description"],
        modalities=modalities,
        deid=_deid_options(deid),
        variants_per_series=raw["variants_per_series"],
        include_original=raw["include_original"],
        seed=raw["seed"],
        augment=spec,
        output=OutputPolicy(
            transfer_syntax=cast(TransferSyntaxName, output.get("transfer_syntax", "explicit-vr-little-endian"))
        ),
        raw=raw,
        content_sha256=content_sha256(raw),
        scope=Scope(
            body_parts=tuple(scope.get("body_parts", ())),
            series_kinds=tuple(scope.get("series_kinds", ("original", "derived"))),
            localizers=bool(scope.get("localizers", False)),
        ),
    )


def content_sha256(raw: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a policy's canonical content.

    The content is the parsed mapping serialised as canonical JSON (sorted
    keys, no whitespace; :func:`medaug.canonical.canonical_json`), so
    comments, key order, quoting and layout of the YAML do not change it, while
    any change of a key or value does.

    Examples
    --------
    >>> content_sha256({"b": 1, "a": 2}) == content_sha256({"a": 2, "b": 1})
    True
    """
    return sha256_hex(canonical_json(raw))


def read_policy_text(path: Path) -> str:
    """Read a policy file as UTF-8 text, within :data:`MAX_POLICY_BYTES`.

    Raises
    ------
    PolicyError
        When the file is missing, unreadable, too large or not UTF-8.
    """
    try:
        data = read_regular_file(path, what="policy file", max_bytes=MAX_POLICY_BYTES, shown=path.name)
    except UsageError as exc:
        raise PolicyError(str(exc)) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"policy file {path.name} is not UTF-8 text (byte {exc.start})") from None


def load_policy(path: Path) -> Policy:
    """Load, validate and cap-check a policy file.

    Parameters
    ----------
    path : Path
        The policy YAML file.

    Returns
    -------
    Policy

    Raises
    ------
    PolicyError
        When the file cannot be read, is not valid YAML, does not match the
        schema, is inconsistent, or exceeds a clinical cap; the message names
        each key path and the reason.
    """
    path = Path(path)
    return policy_from_mapping(parse_yaml(read_policy_text(path)))
