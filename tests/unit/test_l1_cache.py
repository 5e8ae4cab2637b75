"""L1: bounds, invalidation of every view, and the generation guard against stale inserts."""

from __future__ import annotations

from node.cache.l1 import VIEW_SEP, Entry, L1Cache


def entry(size: int = 10, expires: float = 100.0) -> Entry:
    return Entry(b"x" * size, expires)


def test_get_returns_live_entries_only() -> None:
    c = L1Cache(10, 10_000)
    assert c.put("k", "", entry(expires=5.0), c.invalidations)
    assert c.get("k", 4.0) is not None
    assert c.get("k", 5.0) is None


def test_entry_bound_evicts_the_oldest() -> None:
    c = L1Cache(3, 10_000)
    for k in "abcd":
        c.put(k, "", entry(), c.invalidations)
    assert len(c) == 3 and c.get("a", 0) is None and c.get("d", 0) is not None
    assert c.evictions == 1


def test_byte_bound_is_kept() -> None:
    c = L1Cache(1000, 1000)
    for i in range(20):
        c.put(str(i), "", entry(size=100), c.invalidations)
    assert c.bytes <= 1000
    assert not c.put("huge", "", entry(size=5000), c.invalidations)


def test_invalidate_drops_every_view_of_a_key() -> None:
    c = L1Cache(100, 100_000)
    c.put("k", "", entry(), c.invalidations)
    c.put("k", "p", entry(), c.invalidations)
    c.put("k", "a;t=URL", entry(), c.invalidations)
    c.put("other", "", entry(), c.invalidations)
    c.invalidate("k")
    assert c.get("k", 0) is None
    assert c.get("k" + VIEW_SEP + "p", 0) is None
    assert c.get("k" + VIEW_SEP + "a;t=URL", 0) is None
    assert c.get("other", 0) is not None
    assert c.bytes == entry().size()


def test_an_answer_loaded_before_an_invalidation_is_not_inserted() -> None:
    c = L1Cache(100, 100_000)
    generation = c.invalidations  # a reader starts loading ...
    c.invalidate("k")  # ... a write commits meanwhile ...
    assert not c.put("k", "", entry(), generation)  # ... the stale answer is dropped
    assert c.get("k", 0) is None


def test_zero_entries_disables_the_cache() -> None:
    c = L1Cache(0, 100_000)
    assert not c.put("k", "", entry(), c.invalidations)
