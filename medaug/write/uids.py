"""medaug's own identifiers in written files (never derived from input values)."""

from __future__ import annotations

import hashlib

import medaug

#: A fixed root for UIDs medaug makes from a name, under the UUID-derived arc 2.25 (PS3.5 B.2).
_ROOT = "medaug.implementation"


def uid_from_name(name: str) -> str:
    """A stable ``2.25.`` UID derived from a fixed name.

    Parameters
    ----------
    name : str
        A constant label (not an input value).

    Returns
    -------
    str
        ``2.25.<decimal of the first 128 bits of SHA-256(name)>``, at most 44 characters.

    Examples
    --------
    >>> uid_from_name("x").startswith("2.25.")
    True
    """
    digest = hashlib.sha256(name.encode("utf-8")).digest()[:16]
    return "2.25." + str(int.from_bytes(digest, "big"))


#: (0002,0012) Implementation Class UID of files medaug writes.
IMPLEMENTATION_CLASS_UID = uid_from_name(_ROOT)

#: (0002,0013) Implementation Version Name (SH, at most 16 characters).
IMPLEMENTATION_VERSION_NAME = f"MEDAUG_{medaug.__version__}"[:16]
