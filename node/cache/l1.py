"""L1: the in-process cache of ready-to-send resolve answers.

Entries are keyed by ``<identifier key>`` for the full public view (the hot path) and
``<identifier key>\\x1f<view>`` for other views, so invalidating an identifier drops all
of its views. Reads take no lock (a dict lookup under the GIL); writes and eviction do.
Bounded by entries and bytes; eviction is oldest-inserted first, which for a cache whose
entries live until invalidated behaves close to LRU at a fraction of the cost.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

VIEW_SEP = "\x1f"


@dataclass(slots=True)
class Entry:
    """A cached answer. ``response`` is a serialised ResolveResponse; ``None`` means the
    identifier does not exist (a negative entry, whose ``message`` is the error text)."""

    response: bytes | None
    expires: float
    payload: bytes = b""
    signature: bytes = b""
    key_id: str = ""
    algorithm: str = ""
    etag: str = ""
    message: str = ""
    # Other doors' encodings of this same answer (e.g. Handle REST JSON), made on first
    # use and dropped with the entry: a hot HTTP resolve is a lookup too.
    renditions: dict[str, bytes] | None = None

    def size(self) -> int:
        return 64 + len(self.response or b"") + len(self.payload) + len(self.signature)


class L1Cache:
    """Bounded in-process cache with explicit invalidation."""

    def __init__(self, max_entries: int, max_bytes: int,
                 clock: object = time.monotonic) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # OrderedDict, not dict: evicting the oldest with popitem(last=False) is O(1),
        # whereas next(iter(dict)) after many deletions at the front scans dummy slots.
        self._data: OrderedDict[str, Entry] = OrderedDict()
        self._views: dict[str, set[str]] = {}
        self._bytes = 0
        self._lock = threading.Lock()
        self.invalidations = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._data)

    @property
    def bytes(self) -> int:
        return self._bytes

    def get(self, cache_key: str, now: float) -> Entry | None:
        entry = self._data.get(cache_key)
        if entry is None or entry.expires <= now:
            return None
        return entry

    def put(self, key: str, view: str, entry: Entry, generation: int) -> bool:
        """Insert unless an invalidation happened since ``generation`` was read (the loaded
        answer may then be older than the write that caused it). True when inserted."""
        if self.max_entries == 0:
            return False
        size = entry.size()
        if size > self.max_bytes:
            return False
        cache_key = key + VIEW_SEP + view if view else key
        with self._lock:
            if generation != self.invalidations:
                return False
            old = self._data.pop(cache_key, None)
            if old is not None:
                self._bytes -= old.size()
            while self._data and (len(self._data) >= self.max_entries
                                  or self._bytes + size > self.max_bytes):
                self._bytes -= self._data.popitem(last=False)[1].size()
                self.evictions += 1
            self._data[cache_key] = entry
            self._bytes += size
            if view:
                self._views.setdefault(key, set()).add(view)
        return True

    def invalidate(self, key: str) -> None:
        self.invalidate_many((key,))

    def invalidate_many(self, keys: Iterable[str]) -> None:
        """Drop every view of each key; one lock and one generation step for the batch."""
        with self._lock:
            self.invalidations += 1
            data, views = self._data, self._views
            for key in keys:
                old = data.pop(key, None)
                if old is not None:
                    self._bytes -= old.size()
                if key in views:
                    for view in views.pop(key):
                        old = data.pop(key + VIEW_SEP + view, None)
                        if old is not None:
                            self._bytes -= old.size()

    def clear(self) -> None:
        with self._lock:
            self.invalidations += 1
            self._data.clear()
            self._views.clear()
            self._bytes = 0
