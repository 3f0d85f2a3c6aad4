"""Canonical JSON: one byte sequence per value, so hashes are reproducible.

Keys sorted, no insignificant whitespace, ASCII only (non-ASCII escaped),
floats in Python's shortest round-trip form. The same function serves the
audit log, the manifest and the policy content hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any


def canonical_json(value: Any) -> str:
    """Serialise ``value`` canonically.

    Examples
    --------
    >>> canonical_json({"b": 1, "a": [1.5, "x"]})
    '{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def sha256_hex(data: bytes | str) -> str:
    """SHA-256 of bytes (or of a string's UTF-8 encoding), as lowercase hex."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, as lowercase hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileDigests:
    """SHA-256 of many files, hashed in background threads while the caller works on.

    ``hashlib`` releases the GIL while it hashes a block and the reads release
    it while they wait, so a few threads keep every core (and the disk's queue)
    busy while the calling thread does its own, pure-Python, checking.

    Parameters
    ----------
    paths : iterable of Path
        The files to hash, in the order they are wanted (they are started in
        this order).
    threads : int, optional
        Hashing threads; by default the cores this process may use (2 to 8).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "a"
    ...     _ = p.write_bytes(b"abc")
    ...     with FileDigests([p]) as digests:
    ...         digests.digest(p) == sha256_hex(b"abc")
    True
    """

    def __init__(self, paths: Iterable[Path], *, threads: int | None = None) -> None:
        if threads is None:
            threads = min(8, max(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2))
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="sha256")
        self._pending: dict[Path, Future[str]] = {p: self._pool.submit(sha256_file, p) for p in paths}

    def digest(self, path: Path) -> str:
        """The file's SHA-256 (hashed now when it was not among ``paths``); a read error is raised here."""
        pending = self._pending.pop(path, None)
        return sha256_file(path) if pending is None else pending.result()

    def close(self) -> None:
        """Stop: files not yet started are not hashed."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "FileDigests":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
