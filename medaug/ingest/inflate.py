"""Read a Deflated Explicit VR Little Endian file without inflating it all at once.

pydicom inflates a deflated dataset with one ``zlib.decompress`` call, so a few
kilobytes that inflate to gigabytes (a deflate bomb) allocate gigabytes before
any check. Here the dataset is inflated in bounded chunks (``decompressobj``
with ``max_length``) and counted: :func:`inflated_size` refuses a stream over
:data:`medaug.ingest.limits.MAX_INFLATED_BYTES` having held one chunk at a time,
and :class:`InflatedFile` gives pydicom a seekable file of the File Meta (its
Transfer Syntax rewritten to Explicit VR Little Endian) followed by the
inflated dataset, inflated as it is read.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian

from medaug.ingest.files import FileId, open_file

#: Compressed bytes read, and inflated bytes produced, per step.
CHUNK = 1 << 20
#: Inflated bytes kept behind the read position, for pydicom's short backward seeks.
KEEP_BEHIND = 1 << 20
#: Bytes after the preamble read first by :func:`deflated_layout` (a File Meta group is ~200).
FIRST_READ = 4096
#: Largest File Meta group read by :func:`deflated_layout`.
MAX_META_BYTES = 1 << 20
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class InflateLimit(Exception):
    """The inflated dataset is larger than the cap."""


def deflated_layout(path: Path, expected: FileId | None = None) -> tuple[bytes, int] | None:
    """``(meta, body_offset)`` of a deflated file, ``None`` for any other file.

    ``meta`` is the preamble, ``DICM`` and the File Meta group with the
    Transfer Syntax UID (0002,0010) rewritten to Explicit VR Little Endian and
    the group length adjusted; ``body_offset`` is where the deflated dataset starts.
    ``expected`` is the file's identity at the walk (:func:`~medaug.ingest.files.open_file`).
    """
    # Every file passes here: read a few kilobytes, more only for an unusually long File Meta.
    with open_file(path, expected) as fh:
        head = fh.read(132 + FIRST_READ)
        if len(head) < 132 or head[128:132] != b"DICM":
            return None
        parsed = _meta_elements(head)
        if parsed is None and len(head) == 132 + FIRST_READ:
            head += fh.read(MAX_META_BYTES - FIRST_READ)
            parsed = _meta_elements(head)
    if parsed is None:
        return None
    pos, ts_span, length_at = parsed
    if ts_span is None or ts_span[2] != DeflatedExplicitVRLittleEndian:
        return None
    value = str(ExplicitVRLittleEndian).encode("ascii")
    value += b"\x00" * (len(value) % 2)
    element = struct.pack("<HH", 0x0002, 0x0010) + b"UI" + struct.pack("<H", len(value)) + value
    delta = len(element) - (ts_span[1] - ts_span[0])
    meta = bytearray(head[:ts_span[0]] + element + head[ts_span[1]:pos])
    if length_at is not None and length_at < ts_span[0]:
        (group_length,) = struct.unpack_from("<I", meta, length_at)
        struct.pack_into("<I", meta, length_at, max(0, group_length + delta))
    return bytes(meta), pos


def _meta_elements(head: bytes) -> tuple[int, tuple[int, int, str] | None, int | None] | None:
    """End of the File Meta group, the Transfer Syntax element's span and UID, the group length's offset.

    ``None`` when ``head`` ends inside the group.
    """
    pos, ts_span, length_at = 132, None, None
    while True:
        if pos + 8 > len(head):
            return None
        group, elem = struct.unpack_from("<HH", head, pos)
        if group != 0x0002:
            return pos, ts_span, length_at
        vr = head[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            if pos + 12 > len(head):
                return None
            (length,) = struct.unpack_from("<I", head, pos + 8)
            value_at = pos + 12
        else:
            (length,) = struct.unpack_from("<H", head, pos + 6)
            value_at = pos + 8
        end = value_at + length
        if end > len(head):
            return None
        if elem == 0x0000 and vr == b"UL" and length == 4:
            length_at = value_at
        if elem == 0x0010:
            ts_span = (pos, end, head[value_at:end].rstrip(b"\x00 ").decode("ascii", "replace"))
        pos = end


def inflated_size(path: Path, body_offset: int, *, cap: int, expected: FileId | None = None) -> int:
    """Bytes the deflated dataset inflates to, counted one chunk at a time.

    Raises
    ------
    InflateLimit
        As soon as the count passes ``cap`` (nothing beyond one chunk is held).
    zlib.error
        When the stream is not valid deflate data.
    """
    z = zlib.decompressobj(-zlib.MAX_WBITS)
    total = 0
    with open_file(path, expected) as fh:
        fh.seek(body_offset)
        data = b""
        while not z.eof:
            if not data:
                data = fh.read(CHUNK)
                if not data:
                    break
            total += len(z.decompress(data, CHUNK))
            data = z.unconsumed_tail
            if total > cap:
                raise InflateLimit
    return total


class InflatedFile(io.RawIOBase):
    """A read-only, seekable view of ``meta`` followed by the inflated dataset of ``path``.

    Reading inflates forward as needed; a seek back further than
    :data:`KEEP_BEHIND` starts inflating again from the beginning. At most a
    few chunks are held besides what the caller reads.
    """

    def __init__(self, path: Path, meta: bytes, body_offset: int, *, cap: int, expected: FileId | None = None) -> None:
        super().__init__()
        self._fh = open_file(path, expected)
        self._meta = meta
        self._body_offset = body_offset
        self._cap = cap
        self._pos = 0
        # pydicom reads deferred values back by this name: none, so nothing can reopen the
        # deflated file as if it were the inflated stream.
        self.name = ""
        self._restart()

    def _restart(self) -> None:
        self._fh.seek(self._body_offset)
        self._z = zlib.decompressobj(-zlib.MAX_WBITS)
        self._pending = b""
        self._window = bytearray()
        self._window_start = len(self._meta)
        self._eof = False

    def readable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def seekable(self) -> bool:  # noqa: D102 - io protocol
        return True

    def tell(self) -> int:  # noqa: D102 - io protocol
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:  # noqa: D102 - io protocol
        if whence == os.SEEK_SET:
            pos = offset
        elif whence == os.SEEK_CUR:
            pos = self._pos + offset
        else:
            while not self._eof:
                self._more(keep_from=self._window_start + len(self._window) - KEEP_BEHIND)
            pos = self._window_start + len(self._window) + offset
        if pos < 0:
            raise OSError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]  # noqa: D102
        out = memoryview(buffer).cast("B")
        done = 0
        while done < len(out):
            pos = self._pos
            if pos < len(self._meta):
                part = self._meta[pos:pos + len(out) - done]
            else:
                if pos < self._window_start:
                    self._restart()
                while pos >= self._window_start + len(self._window) and not self._eof:
                    self._more(keep_from=pos - KEEP_BEHIND)
                start = pos - self._window_start
                part = bytes(self._window[start:start + len(out) - done])
            if not part:
                break
            out[done:done + len(part)] = part
            done += len(part)
            self._pos += len(part)
        return done

    def _more(self, *, keep_from: int) -> None:
        """Inflate one chunk, dropping held bytes before ``keep_from``."""
        if not self._pending:
            self._pending = self._fh.read(CHUNK)
            if not self._pending:
                self._eof = True
                return
        produced = self._z.decompress(self._pending, CHUNK)
        self._pending = self._z.unconsumed_tail
        if self._z.eof:
            self._eof = True
        drop = min(len(self._window), max(0, keep_from - self._window_start))
        if drop:
            del self._window[:drop]
            self._window_start += drop
        self._window += produced
        if self._window_start + len(self._window) - len(self._meta) > self._cap:
            raise InflateLimit

    def close(self) -> None:  # noqa: D102 - io protocol
        self._fh.close()
        super().close()
