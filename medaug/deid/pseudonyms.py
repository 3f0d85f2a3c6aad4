"""Keyed pseudonyms: UIDs, patient IDs and names, source files, per-patient date offsets.

Each pseudonym is an HMAC-SHA-256 of the original value under a subkey of its
kind, so the same key maps the same value to the same pseudonym in every file and
every run, while someone holding the original values but not the key cannot
recompute (or even test) the mapping.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache

from medaug.deid.keys import Key

#: Range of the per-patient date shift, in whole days (inclusive): between about
#: ten years and one year into the past. Never zero, so no date survives.
DATE_OFFSET_MIN_DAYS = -3652
DATE_OFFSET_MAX_DAYS = -366

# Caches are bounded so a long run over many patients keeps constant memory.
_CACHE_LIMIT = 65536


class Pseudonymizer:
    """Pseudonyms under one key.

    Parameters
    ----------
    key : Key
        The secret key; each kind of pseudonym uses its own subkey.

    Examples
    --------
    >>> p = Pseudonymizer(Key(bytes(32)))
    >>> p.uid("1.2.3").startswith("2.25.")
    True
    """

    def __init__(self, key: Key) -> None:
        self.fingerprint = key.fingerprint
        self._uid_key = key.subkey("uid")
        self._pid_key = key.subkey("patient-id")
        self._name_key = key.subkey("patient-name")
        self._date_key = key.subkey("date-offset")
        self._source_key = key.subkey("source-file")
        self._uids: dict[str, str] = {}

    def uid(self, original: str) -> str:
        """``2.25.<integer>`` from the first 128 bits of the HMAC (at most 44 characters)."""
        found = self._uids.get(original)
        if found is None:
            digest = hmac.new(self._uid_key, original.encode("ascii", "replace"), hashlib.sha256).digest()
            found = "2.25." + str(int.from_bytes(digest[:16], "big"))
            if len(self._uids) >= _CACHE_LIMIT:
                self._uids.clear()
            self._uids[original] = found
        return found

    def patient_id(self, identity: str) -> str:
        """A 16-character Patient ID pseudonym (upper-case letters and digits)."""
        return _b32(hmac.new(self._pid_key, identity.encode("utf-8"), hashlib.sha256).digest())

    def patient_name(self, identity: str) -> str:
        """A Patient's Name pseudonym, ``ANON^<16 characters>``."""
        return "ANON^" + _b32(hmac.new(self._name_key, identity.encode("utf-8"), hashlib.sha256).digest())

    def source_file(self, relative_path: str) -> str:
        """``F-`` and 24 hex digits naming a source file by its path relative to the archive.

        Lets ``audit trace`` find the source of an output with the key, while the
        log holds nothing that someone without the key can link to a file.
        """
        digest = hmac.new(self._source_key, relative_path.encode("utf-8", "surrogateescape"), hashlib.sha256)
        return "F-" + digest.hexdigest()[:24]

    def date_offset(self, identity: str) -> int:
        """The patient's whole-day date shift, within the documented range."""
        digest = hmac.new(self._date_key, identity.encode("utf-8"), hashlib.sha256).digest()
        span = DATE_OFFSET_MAX_DAYS - DATE_OFFSET_MIN_DAYS + 1
        return DATE_OFFSET_MIN_DAYS + int.from_bytes(digest[:8], "big") % span


@lru_cache(maxsize=8)
def pseudonymizer(key: Key) -> Pseudonymizer:
    """The (shared) :class:`Pseudonymizer` of ``key``: its subkeys are derived once per process."""
    return Pseudonymizer(key)


def patient_identity(patient_id: str, patient_name: str) -> str:
    """The string that identifies a patient for pseudonyms: the ID, else the name."""
    patient_id = patient_id.strip()
    return f"id:{patient_id}" if patient_id else f"name:{patient_name.strip()}"


def _b32(digest: bytes) -> str:
    return base64.b32encode(digest[:10]).decode("ascii")
