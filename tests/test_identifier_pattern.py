"""Property: the release gate's prefix-tree pattern finds what a plain alternation finds."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from medaug.deid.identifiers import Identifiers

# Values sharing long prefixes (instance UIDs of one series) and text over a small alphabet, so
# values, their prefixes and their neighbours all occur in the text often.
_CHARS = "12.abAB é_"
_values = st.lists(st.text(_CHARS, min_size=1, max_size=8).map(lambda t: "1.2." + t), min_size=1, max_size=30)


def _plain(values: list[str]) -> re.Pattern[str]:
    ordered = sorted({v.lower() for v in values}, key=lambda v: (-len(v), v))
    body = "|".join(re.escape(v) for v in ordered)
    return re.compile(rf"(?<![A-Za-z0-9])(?:{body})(?![A-Za-z0-9])", re.IGNORECASE)


@settings(max_examples=300, deadline=None)
@given(values=_values, filler=st.lists(st.text(_CHARS, max_size=6), max_size=12), data=st.data())
def test_the_gate_pattern_matches_what_a_plain_alternation_matches(values: list[str], filler: list[str],
                                                                   data: st.DataObject) -> None:
    ids = Identifiers()
    for v in values:
        ids.values[v.lower()] = "uid"
    compiled = ids.pattern()
    assert compiled is not None
    text, raw, _ = compiled
    pieces = [data.draw(st.sampled_from(values + filler)) if filler else v for v in values]
    haystack = " ".join(p.upper() if i % 3 == 0 else p for i, p in enumerate(pieces + filler))
    plain = _plain(values)
    assert [m.span() for m in text.finditer(haystack)] == [m.span() for m in plain.finditer(haystack)]
    encoded = haystack.encode("utf-8")
    plain_raw = re.compile(plain.pattern.encode("utf-8"), re.IGNORECASE)
    assert [m.span() for m in raw.finditer(encoded)] == [m.span() for m in plain_raw.finditer(encoded)]
