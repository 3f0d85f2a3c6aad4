"""Generate the reviewed phrase list: descriptions Clean Descriptors may keep verbatim.

A phrase is kept only when the *whole* normalised description is a sentence of the list's
grammar, ``[MODALITY] ([REGION] [PLANE] SEQUENCE [SEQUENCE] [PLANE] | REGION [PLANE])``, whose units
are whole terms, never single words of free text (word-by-word allow lists are not safe: the
standard's own code meanings hold surnames such as Boyd, Dodd or Hunter). The units are:

- planes and sequences: the scanner-protocol lexicon below;
- regions: the CID 4 Anatomic Region meanings of pydicom's code dictionary (upper case) and the
  Body Part Examined defined terms medaug's synthesized descriptions use;

minus every region holding a word of the *name deny list*, built here from the same code
dictionary: every capitalised word that stands inside a code meaning after its first word
(an eponym: "Boyd perforating vein", "Circle of Willis"). Numbers are never on the list; a
description with a number is kept only through the patterns in
``medaug.deid.descriptions`` (thickness, b-value, kernel).

Usage::

    python scripts/generate_phrase_list.py          # writes medaug/deid/data/reviewed_phrases.json
"""

from __future__ import annotations

import json
import re
import sys
from importlib import metadata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "medaug" / "deid" / "data" / "reviewed_phrases.json"

PLANES = ("AX", "AXIAL", "SAG", "SAGITTAL", "COR", "CORONAL", "OBL", "OBLIQUE", "3D", "2D")
SEQUENCES = (
    "T1", "T2", "PD", "FLAIR", "STIR", "DWI", "ADC", "SWI", "MPRAGE", "SPACE", "TSE", "FSE", "GRE", "EPI",
    "TOF", "MRA", "DIXON", "VIBE", "HASTE", "TRUFI", "LOCALIZER", "SCOUT", "SURVEY", "TOPOGRAM", "CALIBRATION",
    "T1 POST", "T1 PRE", "T1 FS", "T2 FS", "T2 STAR", "DTI", "PERFUSION", "BOLD", "SPECTROSCOPY",
    "PLAIN", "CONTRAST", "ARTERIAL", "VENOUS", "PORTAL VENOUS", "DELAYED", "NON CONTRAST", "ANGIO", "CTA",
    "HELICAL", "SPIRAL", "LOW DOSE", "ROUTINE", "STANDARD", "BONE", "LUNG", "SOFT TISSUE", "MIP", "MPR",
    "PA", "AP", "LAT", "LATERAL", "PA AND LATERAL", "PORTABLE", "SUPINE", "ERECT",
)


def _meanings() -> list[str]:
    from pydicom.sr._cid_dict import cid_concepts
    from pydicom.sr.codedict import codes

    found: list[str] = []
    for cid in sorted(cid_concepts):
        collection = getattr(codes, f"cid{cid}", None)
        if collection is None:
            continue
        for keyword in collection.dir():
            try:
                found.append(str(getattr(collection, keyword).meaning))
            except (AttributeError, ValueError, RuntimeError):  # a keyword in two schemes: skipped
                continue
    return found


#: Words title case leaves in lower case ("Neck and Chest" is title case, not sentence case).
_FUNCTION_WORDS = frozenset("and or of the with without in on to for by at from via as a an per".split())


def name_deny_list(meanings: list[str]) -> set[str]:
    """Words of code meanings that read as proper nouns (eponyms), so possible surnames.

    In a sentence-case meaning (a later word starts in lower case, "Boyd perforating vein"),
    a capitalised word after the first is a proper noun; so is its first word when that word
    never appears in lower case in any meaning of the dictionary (``chest`` does, ``Boyd``
    never does). Title-case meanings ("Left Ventricle") say nothing either way.
    """
    lower_anywhere = {w for m in meanings for w in re.findall(r"\b[a-z][a-z'’]+", m)}
    deny: set[str] = set()
    for meaning in meanings:
        words = re.findall(r"[A-Za-z][A-Za-z'’]+", meaning)
        if not any(w[0].islower() and w.lower() not in _FUNCTION_WORDS for w in words[1:]):
            continue  # title case ("Neck and Chest") or one word: no sign of a proper noun
        for position, word in enumerate(words):
            base = word.rstrip("'’s") if word.endswith(("'s", "’s")) else word
            proper = word[0].isupper() and (position > 0 or base.lower() not in lower_anywhere)
            if proper and not base.isupper():
                deny.add(base.upper())
    return deny


def units() -> tuple[dict[str, list[str]], int]:
    """The phrase grammar's units by class (deny-listed and numbered units removed), and the deny list's size."""
    from pydicom.sr.codedict import codes

    from medaug.deid.descriptions import DEFINED_TERMS, MODALITIES

    deny = name_deny_list(_meanings())
    regions = {str(getattr(codes.cid4, k).meaning).upper() for k in codes.cid4.dir()}

    regions |= set(DEFINED_TERMS.values())

    def clean(items: set[str] | tuple[str, ...], *, screened: bool) -> list[str]:
        return sorted(u for u in items if re.fullmatch(r"[A-Z0-9 ]+", u) and not re.search(r"[0-9]{3,}", u)
                      and not (screened and set(u.split()) & deny))

    # The lexicon is written here, term by term; only the dictionary's meanings need the deny list.
    lexicon = {"planes": clean(PLANES, screened=False), "sequences": clean(SEQUENCES, screened=False),
               "modalities": sorted(MODALITIES)}
    return {"regions": clean(regions, screened=True), **lexicon}, len(deny)


def main() -> int:
    found, denied = units()
    data = {
        "source": f"pydicom {metadata.version('pydicom')} code dictionaries; lexicon in scripts/generate_phrase_list.py",
        "grammar": "[MODALITY] ([REGION] [PLANE] SEQUENCE [SEQUENCE] [PLANE] | REGION [PLANE])",
        "deny_list_words": denied,
        **found,
    }
    OUT.write_text(json.dumps(data, indent=0, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {sum(len(v) for v in found.values())} units ({denied} deny-list words) to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
