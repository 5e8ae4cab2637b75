"""Putting together UDP requests sent in several datagrams (node.handle.reassembly):
bounded memory per sender and in total, a timeout that drops incomplete messages, and
the RFC's error codes for fragments that do not fit. Fragments are built by the
independent encoder in tests/handle_wire.py; the clock is a variable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from node.handle import codec as c
from node.handle.reassembly import Reassembler, Refused
from tests import handle_wire as w


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def framed(request_id: int = 7, size: int = 1200) -> bytes:
    """A resolution request of about ``size`` bytes (a long authBytes field)."""
    return w.resolve_request("88.118.8/R-1", auth_bytes=b"a" * (size - 100),
                             request_id=request_id)


def feed(r: Reassembler, datagram: bytes, host: str = "10.0.0.1",
         port: int = 5000) -> object:
    env = c.decode_envelope(datagram)
    return r.add(env, datagram[c.ENVELOPE_BYTES:], host, port)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_fragments_in_any_order_give_back_the_whole_message(clock: Clock) -> None:
    r = Reassembler(clock=clock)
    whole = framed()
    parts = w.fragments(whole)
    assert len(parts) == 3
    assert feed(r, parts[2]) is None and feed(r, parts[0]) is None
    assert feed(r, parts[0]) is None  # a repeated fragment changes nothing
    got = feed(r, parts[1])
    assert isinstance(got, tuple)
    env, message = got
    assert message == whole[c.ENVELOPE_BYTES:]
    assert (env.request_id, env.sequence, env.length, env.truncated) == \
        (7, 0, len(message), False)
    assert len(r) == 0 and r.reserved == 0


def test_messages_are_told_apart_by_sender_and_request_id(clock: Clock) -> None:
    r = Reassembler(clock=clock)
    a, b = w.fragments(framed(1)), w.fragments(framed(2))
    assert feed(r, a[0]) is None and feed(r, b[0]) is None
    assert feed(r, a[1], port=5001) is None  # another sender's fragment
    assert feed(r, a[1]) is None and feed(r, b[1]) is None
    assert isinstance(feed(r, a[2]), tuple) and isinstance(feed(r, b[2]), tuple)
    assert len(r) == 1  # the other sender's message is still waiting


def test_an_incomplete_message_is_dropped_after_the_timeout(clock: Clock) -> None:
    r = Reassembler(clock=clock, timeout_seconds=5)
    parts = w.fragments(framed())
    feed(r, parts[0])
    clock.now += 4.9
    feed(r, parts[1])
    assert len(r) == 1 and r.dropped == 0
    clock.now += 0.2
    assert feed(r, parts[2]) is None  # too late: the message started afresh, incomplete
    assert r.dropped == 1 and len(r) == 1
    assert r.reserved == len(framed()) - c.ENVELOPE_BYTES


def test_memory_is_bounded_per_sender_and_in_total(clock: Clock) -> None:
    size = len(framed()) - c.ENVELOPE_BYTES
    r = Reassembler(clock=clock, per_peer_bytes=2 * size, total_bytes=3 * size)
    assert feed(r, w.fragments(framed(1))[0]) is None
    assert feed(r, w.fragments(framed(2))[0]) is None
    refused = feed(r, w.fragments(framed(3))[0])
    assert isinstance(refused, Refused) and refused.code == c.RC_SERVER_TOO_BUSY
    # the same sender from another port is the same sender
    assert isinstance(feed(r, w.fragments(framed(3))[0], port=6000), Refused)
    assert feed(r, w.fragments(framed(4))[0], host="10.0.0.2") is None
    full = feed(r, w.fragments(framed(5))[0], host="10.0.0.3")
    assert isinstance(full, Refused) and full.code == c.RC_SERVER_TOO_BUSY
    assert r.reserved == 3 * size
    clock.now += 60  # every incomplete message expires: room again
    assert feed(r, w.fragments(framed(6))[0], host="10.0.0.3") is None
    assert r.reserved == size and r.dropped == 3


@pytest.mark.parametrize("damage", ["past the end", "wrong size", "other length",
                                    "too long", "other version"])
def test_fragments_that_do_not_fit_are_a_protocol_error_and_drop_the_message(
        clock: Clock, damage: str) -> None:
    r = Reassembler(clock=clock)
    parts = [bytearray(p) for p in w.fragments(framed())]
    assert feed(r, bytes(parts[0])) is None
    bad = parts[1]
    if damage == "past the end":
        bad[12:16] = (3).to_bytes(4, "big")
    elif damage == "wrong size":
        bad = bad[:-1]
    elif damage == "other length":
        bad[16:20] = (int.from_bytes(bad[16:20], "big") + 492).to_bytes(4, "big")
    elif damage == "too long":
        bad[16:20] = (c.MAX_REQUEST_BYTES + 1).to_bytes(4, "big")
    else:
        bad[1] = 9
    refused = feed(r, bytes(bad))
    assert isinstance(refused, Refused) and refused.code == c.RC_PROTOCOL_ERROR
    assert refused.message
    if damage != "too long":  # refused before the message was looked up
        assert len(r) == 0 and r.reserved == 0


@settings(max_examples=300, derandomize=True, deadline=None)
@given(st.lists(st.tuples(
    st.integers(0, 3),  # sender
    st.integers(0, 2),  # request id
    st.integers(-1, 6),  # sequence number
    st.sampled_from([24, 491, 492, 493, 984, 1500, 3000, c.MAX_REQUEST_BYTES + 1]),
    st.one_of(st.sampled_from([24, 492]), st.integers(0, 600)),  # fragment size
    st.sampled_from([0, c.ENV_TRUNCATED, c.ENV_COMPRESSED]),
    st.floats(0, 3)), max_size=60))
def test_any_fragments_stay_within_the_bounds_and_never_raise(
        steps: list[tuple[int, int, int, int, int, int, float]]) -> None:
    clock = Clock()
    r = Reassembler(clock=clock, per_peer_bytes=4000, total_bytes=9000, timeout_seconds=5)
    for sender, request_id, sequence, length, size, flags, pause in steps:
        clock.now += pause
        env = c.Envelope(2, 10, flags, 0, 0, request_id, sequence, length)
        got = r.add(env, bytes(size), f"10.0.0.{sender}", 5000)
        if isinstance(got, tuple):
            whole, message = got
            assert len(message) == whole.length == length and not whole.truncated
        assert r.reserved <= 9000
        assert all(n <= 4000 for n in r._reserved.values())
        assert r.reserved == sum(r._reserved.values())
