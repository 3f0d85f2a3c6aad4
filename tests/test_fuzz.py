"""Fuzz campaign: hostile bytes never crash, hang or leak.

Hypothesis mutates the bytes of fixture files (bit flips, truncations,
insertions, deletions and corrupted element length fields) with a fixed seed
(``derandomize=True``), so every run tries the same cases. Each mutated file is
put in a fresh folder (with two intact slices of its series, sometimes) and
goes through the header pass and the pixel pass. The file must end either
behind a loaded slice or quarantined with a known reason code; nothing else may
escape, no case may run longer than :data:`CASE_SECONDS`, and no planted
identifying value may appear in an error message or a quarantine detail.
"""

from __future__ import annotations

import copy
import logging
import shutil
import signal
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medaug.deid.engine import deidentify
from medaug.deid.keys import Key
from medaug.deid.options import DeidOptions
from medaug.errors import DeidentificationError, InputError
from medaug.ingest.archive import scan_archive
from medaug.ingest.reasons import ALL_REASONS, FILE_REASONS
from medaug.ingest.volume import LoadedSeries, load_series

pytestmark = pytest.mark.slow

#: Fixture files mutated: one per encoding and layout the archive has.
SEEDS = ("ct_chest", "ct_rle", "ct_nometa", "ct_j2k", "ct_enhanced", "us_rgb", "cr_chest", "mr_sagittal", "ct_tilt")
#: Cases in the ingest campaign (the issue asks for at least 1,000).
INGEST_CASES = 2000
#: Cases also pushed through de-identification.
DEID_CASES = 200
#: Cases the outcome test runs of its own.
OUTCOME_CASES = 1000
#: Longest a single case may take before it counts as a hang.
CASE_SECONDS = 20.0
#: Longest run of inserted bytes (keeps every mutated file small).
MAX_INSERT = 64

# Value Representations whose explicit-VR length field is 4 bytes (after 2 reserved bytes).
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
_SUSPICIOUS_LENGTHS = (0, 1, 2, 3, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFE, 0xFFFFFFFF)


class Hang(BaseException):
    """A case ran past its time limit (BaseException: code under test may catch Exception)."""


@contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    """Raise :class:`Hang` in this thread when the block runs longer than ``seconds``."""

    def expire(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"case ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass(frozen=True)
class Seed:
    """One fixture file to mutate, its intact siblings and where its length fields are."""

    name: str
    data: bytes
    siblings: tuple[bytes, ...]
    length_fields: tuple[tuple[int, int], ...]  # (offset, width in bytes)


def length_fields(data: bytes) -> list[tuple[int, int]]:
    """Offsets and widths of the top-level element length fields (and encapsulated item lengths).

    A small little-endian walker, explicit or implicit VR, enough to aim
    corruption at length fields; it stops at anything it does not understand.
    """
    pos = 132 if data[128:132] == b"DICM" else 0
    out: list[tuple[int, int]] = []
    while pos + 8 <= len(data):
        group, element = struct.unpack_from("<HH", data, pos)
        vr = data[pos + 4 : pos + 6]
        explicit = vr.isalpha() and vr.isupper()
        if explicit and vr in _LONG_VRS:
            offset, width, value = pos + 8, 4, pos + 12
        elif explicit:
            offset, width, value = pos + 6, 2, pos + 8
        else:
            offset, width, value = pos + 4, 4, pos + 8
        if offset + width > len(data):
            break
        out.append((offset, width))
        length = int.from_bytes(data[offset : offset + width], "little")
        if length == 0xFFFFFFFF:
            if (group, element) == (0x7FE0, 0x0010):
                out.extend(_item_lengths(data, value))
            break  # undefined-length sequence: the walker does not descend
        pos = value + length
    return out


def _item_lengths(data: bytes, pos: int) -> list[tuple[int, int]]:
    """Length fields of the items of encapsulated Pixel Data starting at ``pos``."""
    out: list[tuple[int, int]] = []
    while pos + 8 <= len(data) and data[pos : pos + 4] == b"\xfe\xff\x00\xe0":
        out.append((pos + 4, 4))
        pos += 8 + int.from_bytes(data[pos + 4 : pos + 8], "little")
    return out


def load_seeds(archive: Path, manifest: dict[str, Any]) -> list[Seed]:
    """The seed files with up to two intact siblings each, from the session archive."""
    by_name = {s["name"]: s for s in manifest["series"]}
    seeds = []
    for name in SEEDS:
        files = by_name[name]["files"]
        data = (archive / files[0]).read_bytes()
        siblings = tuple((archive / f).read_bytes() for f in files[1:3])
        seeds.append(Seed(name, data, siblings, tuple(length_fields(data))))
    return seeds


# --- mutations -----------------------------------------------------------------------------

Mutation = tuple[Any, ...]
#: A position, as a fraction of the current length in millionths (integers spread wider than floats).
SCALE = 1_000_000
_where = st.integers(0, SCALE - 1)

_flip = st.tuples(st.just("flip"), _where, st.integers(1, 255))
_truncate = st.tuples(st.just("truncate"), _where)
_insert = st.tuples(st.just("insert"), _where, st.binary(min_size=1, max_size=MAX_INSERT))
_delete = st.tuples(st.just("delete"), _where, st.integers(1, MAX_INSERT))
_length = st.tuples(
    st.just("length"),
    _where,
    st.one_of(st.sampled_from(_SUSPICIOUS_LENGTHS), st.integers(0, 0xFFFFFFFF), st.integers(-8, 8)),
)
# Length-field corruption and flips are the richest for a parser; weight them up.
_mutation = st.one_of(_length, _length, _length, _flip, _flip, _flip, _insert, _delete, _truncate)


def mutate(seed: Seed, mutations: list[Mutation]) -> bytes:
    """Apply ``mutations`` in order; positions are millionths of the current length."""
    data = bytearray(seed.data)
    for m in mutations:
        kind = m[0]
        at = min(m[1] * len(data) // SCALE, max(len(data) - 1, 0))
        if kind == "flip" and data:
            data[at] ^= m[2]
        elif kind == "truncate":
            del data[at:]
        elif kind == "insert":
            data[at:at] = m[2]
        elif kind == "delete":
            del data[at : at + m[2]]
        elif kind == "length" and seed.length_fields:
            offset, width = seed.length_fields[m[1] * len(seed.length_fields) // SCALE]
            if offset + width > len(data):
                continue
            old = int.from_bytes(data[offset : offset + width], "little")
            # Small values are deltas from the true length (off by a few bytes); large ones replace it.
            new = old + m[2] if -8 <= m[2] <= 8 and m[2] not in (0, 1, 2, 3) else m[2]
            new %= 1 << (8 * width)
            data[offset : offset + width] = new.to_bytes(width, "little")
    return bytes(data)


case_strategy = st.tuples(
    st.integers(0, len(SEEDS) - 1),
    st.lists(_mutation, min_size=1, max_size=4),
    st.booleans(),
)

#: Health checks a campaign may trip: its cases are slow and large, and one campaign (a
#: per-test fixture) deliberately tallies all of a test's examples.
CAMPAIGN_CHECKS = [
    HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much, HealthCheck.function_scoped_fixture,
]

# --- the campaign --------------------------------------------------------------------------


class Campaign:
    """Runs cases in a scratch folder and checks the three promises."""

    def __init__(self, seeds: list[Seed], planted: list[str], scratch: Path) -> None:
        self.seeds = seeds
        self.planted = planted
        self.scratch = scratch
        self.outcomes: dict[str, int] = {}

    def assert_no_leak(self, text: str, where: str) -> None:
        """No planted value in ``text``."""
        leaked = [v for v in self.planted if v in text]
        assert not leaked, f"planted value of length {len(leaked[0])} leaked into {where}"

    def ingest(self, seed_index: int, mutations: list[Mutation], with_siblings: bool) -> list[LoadedSeries]:
        """Scan and load one mutated file; return what loaded."""
        seed = self.seeds[seed_index]
        case = self.scratch / "case"
        shutil.rmtree(case, ignore_errors=True)
        case.mkdir()
        target = case / "IM0001.dcm"
        target.write_bytes(mutate(seed, mutations))
        if with_siblings:
            for n, sibling in enumerate(seed.siblings, start=2):
                (case / f"IM{n:04d}.dcm").write_bytes(sibling)
        loaded: list[LoadedSeries] = []
        with time_limit(CASE_SECONDS):
            scan = scan_archive(case)
            accounted = [q.path for q in scan.quarantined]
            for q in scan.quarantined:
                assert q.reason in FILE_REASONS, f"unknown reason code {q.reason!r}"
                self.assert_no_leak(q.detail, "a quarantine detail")
                self.count(q.reason)
            for ref in scan.series:
                try:
                    result = load_series(ref)
                except InputError as exc:
                    assert exc.reason in ALL_REASONS, f"unknown reason code {exc.reason!r}"
                    self.assert_no_leak(str(exc), "an InputError message")
                    self.count(exc.reason)
                    accounted.extend(ref.files)
                    continue
                for q in result.quarantined:
                    assert q.reason in FILE_REASONS, f"unknown reason code {q.reason!r}"
                    self.assert_no_leak(q.detail, "a quarantine detail")
                    self.count(q.reason)
                    accounted.append(q.path)
                used = set(ref.files) - {q.path for q in result.quarantined}
                assert len(result.image.headers) == (1 if result.image.multiframe else len(used))
                assert all(p in ALL_REASONS for p in result.image.problems)
                accounted.extend(used)
                self.count("loaded")
                loaded.append(result)
        assert target in accounted, "the mutated file is neither loaded nor quarantined"
        assert sorted(map(str, accounted)) == sorted(map(str, set(accounted))), "a file is accounted twice"
        return loaded

    def count(self, outcome: str) -> None:
        """Tally an outcome (for the report at the end)."""
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class LogTap(logging.Handler):
    """Keeps the text of every log record any library emits during the campaign."""

    def __init__(self) -> None:
        super().__init__(level=logging.NOTSET)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:  # noqa: D102 - a logging.Handler
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + str(record.exc_info[1])
        self.texts.append(text)


@pytest.fixture(scope="module")
def seeds(archive: Path, manifest: dict[str, Any]) -> list[Seed]:
    """The fixture files the cases mutate (read-only, so the module's tests share them)."""
    return load_seeds(archive, manifest)


@pytest.fixture
def campaign(seeds: list[Seed], manifest: dict[str, Any], tmp_path: Path) -> Iterator[Campaign]:
    """Each test's own campaign: the seeds, planted values, a scratch folder and a fresh tally;
    checks the logs at the end."""
    planted = sorted({str(p["value"]) for p in manifest["planted"] if str(p["value"]).strip()})
    tap = LogTap()
    root = logging.getLogger()
    root.addHandler(tap)
    try:
        yield Campaign(seeds, planted, tmp_path)
    finally:
        root.removeHandler(tap)
    leaked = [t for t in tap.texts if any(v in t for v in planted)]
    assert not leaked, f"{len(leaked)} log records quote a planted value"


def test_length_walker_finds_fields(campaign: Campaign) -> None:
    """The length-field aim works: every seed has many fields, encapsulated ones include items."""
    for seed in campaign.seeds:
        assert len(seed.length_fields) > 10, seed.name
    rle = next(s for s in campaign.seeds if s.name == "ct_rle")
    assert any(rle.data[o - 4 : o] == b"\xfe\xff\x00\xe0" for o, _ in rle.length_fields)


def test_intact_seeds_load(campaign: Campaign) -> None:
    """Unmutated seeds load (so the campaign mutates usable files, not already-refused ones)."""
    for i, seed in enumerate(campaign.seeds):
        loaded = campaign.ingest(i, [], True)
        assert loaded, seed.name


@settings(
    derandomize=True,
    database=None,
    max_examples=INGEST_CASES,
    deadline=None,
    suppress_health_check=CAMPAIGN_CHECKS,
)
@given(case=case_strategy)
def test_mutated_file_is_loaded_or_quarantined(campaign: Campaign, case: tuple[int, list[Mutation], bool]) -> None:
    """Each mutated file ends loaded or quarantined with a known reason; no crash, hang or leak."""
    seed_index, mutations, with_siblings = case
    campaign.ingest(seed_index, mutations, with_siblings)


@settings(
    derandomize=True,
    database=None,
    max_examples=DEID_CASES,
    deadline=None,
    suppress_health_check=CAMPAIGN_CHECKS,
)
@given(case=case_strategy)
def test_mutated_headers_deidentify_or_refuse(campaign: Campaign, case: tuple[int, list[Mutation], bool]) -> None:
    """Headers of mutated files that load are de-identified or refused with a reason, never a crash or leak."""
    seed_index, mutations, with_siblings = case
    key = Key(bytes(range(32)))
    options = DeidOptions()
    for result in campaign.ingest(seed_index, mutations, with_siblings):
        for header in result.image.headers:
            # Warnings are recorded, not raised: pydicom warns while copying or converting a
            # damaged value, and the check is that no warning text quotes a planted value.
            with time_limit(CASE_SECONDS), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    clean, _report = deidentify(copy.deepcopy(header), options, key)
                except DeidentificationError as exc:
                    assert exc.reason, "a refusal without a reason code"
                    campaign.assert_no_leak(str(exc), "a DeidentificationError message")
                    clean = None
            for w in caught:
                campaign.assert_no_leak(str(w.message), "a warning")
            if clean is None:
                continue
            # Mutations may garble a value, but an intact planted value must not survive.
            campaign.assert_no_leak(_text_of(clean), "a de-identified header")


def _text_of(ds: Any) -> str:
    """Every element value of a dataset (recursively) as text, for the leak check."""
    parts: list[str] = []
    with warnings.catch_warnings():
        # Converting a damaged value warns (quoting it); only the text is wanted here.
        warnings.simplefilter("ignore")
        elements = list(ds.iterall())
    for elem in elements:
        value = elem.value
        if isinstance(value, bytes):
            parts.append(value.decode("latin-1"))
        elif elem.VR != "SQ":
            parts.append(str(value))
    return "\n".join(parts)


def test_campaign_reached_every_outcome(campaign: Campaign) -> None:
    """The mutations are neither all harmless nor all fatal: both outcomes and several reasons occur.

    Runs its own cases (the same fixed ones the ingest test starts with), so it holds alone
    and in any order.
    """

    @settings(
        derandomize=True, database=None, max_examples=OUTCOME_CASES, deadline=None, suppress_health_check=CAMPAIGN_CHECKS
    )
    @given(case=case_strategy)
    def run_case(case: tuple[int, list[Mutation], bool]) -> None:
        campaign.ingest(*case)

    run_case()
    print("fuzz outcomes:", dict(sorted(campaign.outcomes.items())))
    assert campaign.outcomes.get("loaded", 0) > 100
    reasons = set(campaign.outcomes) - {"loaded"}
    # Four or more reasons: which rare ones (bad-header) a seeded campaign reaches has been seen
    # to vary between a run of this file and a run of the whole suite.
    assert len(reasons) >= 4, sorted(reasons)
