"""The L2 value format: exact round trips, and anything else is refused, never served."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.cache.l1 import Entry
from node.cache.l2 import FORMAT_VERSION, CodecError, decode, encode

WALL, MONO = 1_760_000_000.0, 5_000.0


def positive() -> Entry:
    return Entry(b"\x0a\x03resp", MONO + 120, b"payload", b"sig", "k-1", "Ed25519", "s1f")


def test_a_positive_entry_round_trips_with_its_sequence() -> None:
    data = encode(positive(), 31, wall_now=WALL, mono_now=MONO)
    entry, sequence = decode(data, wall_now=WALL, mono_now=MONO)
    assert entry == positive()
    assert sequence == 31


def test_a_negative_entry_stays_negative() -> None:
    negative = Entry(None, MONO + 30, message="identifier 88.118.8/x not found")
    entry, sequence = decode(encode(negative, 7, wall_now=WALL, mono_now=MONO),
                             wall_now=WALL, mono_now=MONO)
    assert entry.response is None
    assert entry.message == negative.message
    assert sequence == 7


def test_expiry_travels_as_wall_clock_time_between_processes() -> None:
    data = encode(positive(), 1, wall_now=WALL, mono_now=MONO)
    # Another process: different monotonic origin, read 20 s later.
    entry, _ = decode(data, wall_now=WALL + 20, mono_now=99.0)
    assert entry.expires == pytest.approx(99.0 + 100)


@pytest.mark.parametrize("data", [
    b"",
    b"\x01",
    b"hello world, not an entry",
    bytes([FORMAT_VERSION + 1]) + b"\x01" + b"\x00" * 60,
    bytes([0]) + b"\x01" + b"\x00" * 60,
])
def test_foreign_or_other_version_bytes_are_refused(data: bytes) -> None:
    with pytest.raises(CodecError):
        decode(data, wall_now=WALL, mono_now=MONO)


def test_truncation_and_trailing_bytes_are_refused() -> None:
    data = encode(positive(), 1, wall_now=WALL, mono_now=MONO)
    for cut in range(len(data)):
        with pytest.raises(CodecError):
            decode(data[:cut], wall_now=WALL, mono_now=MONO)
    with pytest.raises(CodecError):
        decode(data + b"\x00", wall_now=WALL, mono_now=MONO)


def test_unknown_flags_and_non_finite_expiry_are_refused() -> None:
    data = bytearray(encode(positive(), 1, wall_now=WALL, mono_now=MONO))
    data[1] = 0x80
    with pytest.raises(CodecError):
        decode(bytes(data), wall_now=WALL, mono_now=MONO)
    data = bytearray(encode(positive(), 1, wall_now=WALL, mono_now=MONO))
    struct.pack_into("<d", data, 2, float("nan"))
    with pytest.raises(CodecError):
        decode(bytes(data), wall_now=WALL, mono_now=MONO)


def test_a_positive_entry_without_a_signature_is_refused() -> None:
    hollow = Entry(b"resp", MONO + 10, b"payload", b"", "k", "Ed25519", "s1")
    with pytest.raises(CodecError):
        decode(encode(hollow, 1, wall_now=WALL, mono_now=MONO), wall_now=WALL, mono_now=MONO)


@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_or_raise_codec_error_only(data: bytes) -> None:
    with contextlib.suppress(CodecError):
        decode(data, wall_now=WALL, mono_now=MONO)


@given(st.binary(min_size=1, max_size=64), st.binary(max_size=64), st.binary(min_size=1),
       st.text(max_size=20), st.integers(min_value=0, max_value=2**63))
def test_any_entry_round_trips(response: bytes, payload: bytes, signature: bytes,
                               message: str, sequence: int) -> None:
    entry = Entry(response, MONO + 5, payload or b"p", signature, "k", "Ed25519", "s1", message)
    got, seq = decode(encode(entry, sequence, wall_now=WALL, mono_now=MONO),
                      wall_now=WALL, mono_now=MONO)
    assert got == entry
    assert seq == sequence
