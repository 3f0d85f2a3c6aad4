"""The secret pseudonymisation key: writing, loading and per-kind subkeys.

A key file holds 256 random bits as 64 hexadecimal digits. Pseudonyms never use
the key directly: each kind of pseudonym (UIDs, patient IDs, names, date offsets)
has its own subkey, derived with HMAC-SHA-256, so one kind of pseudonym reveals
nothing about another.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from medaug.errors import UsageError
from medaug.inputs import others_can_read, read_regular_file

KEY_BYTES = 32
_HEX_DIGITS = 2 * KEY_BYTES


@dataclass(frozen=True)
class Key:
    """A loaded 256-bit secret key.

    Parameters
    ----------
    secret : bytes
        The 32 key bytes. Never printed: ``repr`` shows the fingerprint only.
    """

    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise UsageError(f"a key must be {KEY_BYTES} bytes long")

    def subkey(self, kind: str) -> bytes:
        """The subkey of one kind of pseudonym (e.g. ``"uid"``, ``"patient-id"``)."""
        return hmac.new(self.secret, b"medaug/subkey/" + kind.encode("ascii"), hashlib.sha256).digest()

    @property
    def fingerprint(self) -> str:
        """A short hash of a derived subkey: identifies the key in logs, reveals nothing."""
        return hashlib.sha256(self.subkey("fingerprint")).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"Key(fingerprint={self.fingerprint!r})"


def write_key(path: Path) -> None:
    """Write a new random key to `path`, readable by its owner only.

    The file is created atomically with ``O_EXCL`` and mode 0600, so an existing
    key is never overwritten and the secret is never world-readable, not even
    for an instant.

    Parameters
    ----------
    path : Path
        Where to write the key; must not exist.

    Raises
    ------
    UsageError
        If `path` exists or cannot be created.
    """
    write_secret_file(path, (secrets.token_hex(KEY_BYTES) + "\n").encode("ascii"))


def write_secret_file(path: Path, data: bytes) -> None:
    """Create ``path`` readable by its owner only (0600) and write ``data``; never overwrite.

    Raises
    ------
    UsageError
        If ``path`` exists or cannot be created or written (a partial file is removed).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"key file already exists, refusing to overwrite: {path}") from None
    except OSError as exc:
        raise UsageError(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise UsageError(f"cannot write key file {path}: {exc.strerror}") from None


def load_key(path: Path) -> Key:
    """Load a key written by :func:`write_key`.

    Parameters
    ----------
    path : Path
        The key file.

    Returns
    -------
    Key

    Raises
    ------
    UsageError
        If the file is missing, not a regular file, readable by other users,
        unreadable or does not hold exactly 64 hex digits.
    """
    if not Path(path).exists():
        raise UsageError(f"key file not found: {path}")
    raw = read_regular_file(Path(path), what="key file", max_bytes=4096)
    text = raw.strip()
    if len(text) != _HEX_DIGITS:
        raise UsageError(f"key file has the wrong size: {path} (expected {_HEX_DIGITS} hex digits, 256 bits)")
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise UsageError(f"key file is not a hex-encoded key: {path}") from None
    if others_can_read(Path(path)):
        raise UsageError(
            f"key file {path} is readable by other users: make it private (chmod 600 {path}), as ssh requires of its keys"
        )
    return Key(secret)
