"""The change beacon: the newest committed change-log sequence, shared by every node
process on a host through a tiny memory-mapped file in the data directory.

Writers bump it after commit and before acknowledging; readers compare it with the
sequence their L1 has applied on every resolve (one 8-byte read), and catch up from the
change log when it moved. That is what lets ``--workers N`` processes share one SQLite
store without ever serving an answer older than an acknowledged write.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_FMT = struct.Struct("<Q")


class Beacon:
    """The shared sequence (in-process only when ``path`` is None)."""

    def __init__(self, path: str | Path | None) -> None:
        self._local = 0
        self._fd = -1
        self._map: mmap.mmap | None = None
        if path is not None:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._fd).st_size < _FMT.size:
                os.ftruncate(self._fd, mmap.PAGESIZE)
            self._map = mmap.mmap(self._fd, _FMT.size)

    def read(self) -> int:
        if self._map is None:
            return self._local
        return int(_FMT.unpack_from(self._map, 0)[0])

    def bump(self, sequence: int) -> None:
        """Raise the shared sequence to ``sequence`` (never lower it)."""
        if self._map is None:
            self._local = max(self._local, sequence)
            return
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            if sequence > self.read():
                _FMT.pack_into(self._map, 0, sequence)
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
