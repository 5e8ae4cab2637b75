"""Credentials parsing, verification on a bounded executor, throttling and the caches."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable

import pytest

from node.security.auth import BUSY_MESSAGE, Authenticator, parse_basic
from registry.access.principals import (
    DUMMY_SECRET_HASH,
    Principal,
    StoredPrincipal,
    hash_secret,
    identity_key,
    verify_secret,
)
from registry.errors import ResourceExhausted, Unauthenticated, Unavailable
from registry.stores.memory import MemoryStore

ADMIN_ID = "300:88.118/ADMIN"
SECRET = "the-admin-secret-1"


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


class Fake:
    """Principals with cheap fake hashes (``plain$<secret>``), and a counting verifier."""

    def __init__(self, *identities: str) -> None:
        self.principals = {
            identity_key(i): StoredPrincipal(Principal.of(i),
                                             f"plain${SECRET}", 0)
            for i in identities}
        self.verified: list[str] = []  # the stored hash each verification ran against
        self.lookups: list[str] = []
        self._lock = threading.Lock()

    def lookup(self, key: str) -> StoredPrincipal | None:
        self.lookups.append(key)
        return self.principals.get(key)

    def verify(self, secret: str, stored: str) -> bool:
        with self._lock:
            self.verified.append(stored)
        return stored == f"plain${secret}"

    def auth(self, **kwargs: object) -> Authenticator:
        return Authenticator(self.lookup, verify=self.verify, **kwargs)  # type: ignore[arg-type]


def test_encoded_and_plain_identities_parse_the_same() -> None:
    assert parse_basic(basic("300%3A88.118%2FADMIN", "s:e:c")) == ("300:88.118/ADMIN", "s:e:c")
    assert parse_basic(basic("300:88.118/ADMIN", "s:e:c")) == ("300:88.118/ADMIN", "s:e:c")


@pytest.mark.parametrize("header", ["Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
                                    basic("300%3A88.118%2FADMIN", ""), "Bearer abc", "Digest x",
                                    "Basic " + "A" * 5000])
def test_malformed_credentials_are_unauthenticated_without_hashing(header: str) -> None:
    fake = Fake(ADMIN_ID)
    auth = fake.auth()
    with pytest.raises(Unauthenticated):
        auth.principal(header)
    assert fake.verified == [] and auth.checks_run == 0


def test_bearer_tokens_are_refused_without_a_token_store() -> None:
    with pytest.raises(Unauthenticated, match="bearer tokens are not enabled"):
        Fake().auth().principal("Bearer abc")


def test_real_scrypt_login_against_a_store_is_remembered() -> None:
    store = MemoryStore()
    store.add_principal(StoredPrincipal(Principal.of(ADMIN_ID),
                                        hash_secret(SECRET), 0))
    calls = 0

    def counting(secret: str, stored: str) -> bool:
        nonlocal calls
        calls += 1
        return verify_secret(secret, stored)

    now = [0.0]
    auth = Authenticator(store.get_principal, verify=counting, clock=lambda: now[0])
    good = basic("300%3A88.118%2FADMIN", SECRET)
    bad = basic("300%3A88.118%2FADMIN", "wrong-secret-here")
    principal = auth.principal(good)
    assert principal is not None and principal.key == "300:88.118/admin"
    assert auth.principal(good) == principal
    assert calls == 1
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            auth.principal(bad)
    assert calls == 2
    now[0] = 10.0  # failure memory (5 s) expired, success memory (300 s) not
    with pytest.raises(Unauthenticated):
        auth.principal(bad)
    assert auth.principal(good) is not None
    assert calls == 3
    assert auth.principal(None) is None


def test_known_unknown_and_unparsable_identities_cost_one_verification_and_read_alike() -> None:
    fake = Fake(ADMIN_ID)
    auth = fake.auth()
    messages = []
    for identity in (ADMIN_ID, "300:88.118.7/ADMIN", "garbage", "300:"):
        before = len(fake.verified)
        with pytest.raises(Unauthenticated) as caught:
            auth.principal(basic(identity, "wrong-secret-here"))
        assert len(fake.verified) == before + 1, identity
        messages.append(caught.value.message.replace(repr(identity), "<identity>"))
    assert set(messages) == {"wrong identity or secret for <identity>"}
    # The unknown ones ran against a dummy hash with the real parameters, not nothing.
    assert fake.verified[0] == f"plain${SECRET}"
    assert fake.verified[1:] == [DUMMY_SECRET_HASH] * 3
    assert DUMMY_SECRET_HASH.split("$")[:4] == hash_secret("x" * 12).split("$")[:4]
    assert not verify_secret("", DUMMY_SECRET_HASH)


def test_a_flood_of_distinct_bad_headers_does_not_evict_good_logins() -> None:
    fake = Fake(ADMIN_ID)
    auth = fake.auth(max_entries=1000)
    good = basic(ADMIN_ID, SECRET)
    assert auth.principal(good) is not None
    verified = len(fake.verified)
    for i in range(10_500):
        with pytest.raises(Unauthenticated):
            auth.principal(basic(f"300:88.118.{i}/ADMIN", "wrong-secret-here"))
    assert len(fake.verified) == verified + 10_500
    assert auth.principal(good) is not None
    assert len(fake.verified) == verified + 10_500  # served from the success cache
    assert len(auth._strikes) <= 1000  # per-identity failure counts are bounded too


def test_a_full_verification_queue_refuses_at_once_and_bounds_concurrency() -> None:
    release = threading.Event()
    fake = Fake(ADMIN_ID, "300:88.118.8/ADMIN")

    def slow(secret: str, stored: str) -> bool:
        release.wait(10)
        return fake.verify(secret, stored)

    auth = Authenticator(fake.lookup, verify=slow, hash_threads=1, queue=1)
    results: list[object] = []

    def login(identity: str) -> None:
        try:
            results.append(auth.principal(basic(identity, SECRET)))
        except Exception as exc:  # recorded for the assertion
            results.append(exc)

    def until(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 5
        while not condition():
            assert time.monotonic() < deadline
            time.sleep(0.005)

    first = threading.Thread(target=login, args=(ADMIN_ID,))
    first.start()
    until(lambda: auth.max_concurrent_checks == 1)
    second = threading.Thread(target=login, args=("300:88.118.8/ADMIN",))
    second.start()
    until(lambda: auth.pending_checks == 2)
    with pytest.raises(ResourceExhausted, match=BUSY_MESSAGE):
        auth.principal(basic("300:88.118.9/ADMIN", SECRET))
    assert auth.checks_refused_busy == 1 and auth.checks_run == 1
    release.set()
    first.join(5)
    second.join(5)
    assert all(isinstance(r, Principal) for r in results) and len(results) == 2
    assert auth.max_concurrent_checks == 1 and auth.pending_checks == 0
    # A refusal for being busy is not remembered as bad credentials.
    with pytest.raises(Unauthenticated, match="wrong identity or secret"):
        auth.principal(basic("300:88.118.9/ADMIN", SECRET))
    auth.close()


@pytest.mark.parametrize("identity", [ADMIN_ID, "300:88.118.7/ADMIN", "garbage"])
def test_repeated_failures_for_one_identity_back_off_without_hashing(identity: str) -> None:
    fake = Fake(ADMIN_ID)
    now = [0.0]
    auth = fake.auth(max_failures=3, failure_window_seconds=60, backoff_seconds=10,
                     clock=lambda: now[0])
    remembered = basic("300%3A88.118%2Fadmin", SECRET)  # the admin, logged in before
    assert auth.principal(remembered) is not None
    for i in range(3):
        now[0] += 1
        with pytest.raises(Unauthenticated):
            auth.principal(basic(identity, f"wrong-secret-{i}"))
    verified = len(fake.verified)
    with pytest.raises(ResourceExhausted, match="too many failed attempts"):
        auth.principal(basic(identity, SECRET))  # even the right secret is not checked
    with pytest.raises(ResourceExhausted):
        auth.principal(basic(identity.lower(), "wrong-secret-x"))  # nor another spelling
    assert len(fake.verified) == verified
    assert auth.principal(remembered) is not None  # a remembered login is not locked out
    with pytest.raises(Unauthenticated):  # other identities are checked as usual
        auth.principal(basic("300:88.118.9/ADMIN", "wrong-secret-y"))
    assert len(fake.verified) == verified + 1
    now[0] += 10
    if identity == ADMIN_ID:
        assert auth.principal(basic(identity, SECRET)) is not None
    else:
        with pytest.raises(Unauthenticated):
            auth.principal(basic(identity, SECRET))
    assert len(fake.verified) == verified + 2


def test_failures_outside_the_window_do_not_add_up() -> None:
    fake = Fake(ADMIN_ID)
    now = [0.0]
    auth = fake.auth(max_failures=3, failure_window_seconds=60, clock=lambda: now[0])
    for i in range(10):
        now[0] += 31  # two failures per window at most
        with pytest.raises(Unauthenticated):
            auth.principal(basic(ADMIN_ID, f"wrong-secret-{i}"))
    assert auth.principal(basic(ADMIN_ID, SECRET)) is not None
    assert auth.checks_run == 11


def test_a_verified_success_resets_the_failure_count() -> None:
    fake = Fake(ADMIN_ID)
    auth = fake.auth(max_failures=3)
    for i in range(2):
        with pytest.raises(Unauthenticated):
            auth.principal(basic(ADMIN_ID, f"wrong-secret-{i}"))
    assert auth.principal(basic(ADMIN_ID, SECRET)) is not None
    for i in range(2, 5):  # three more, each checked: the count started again
        with pytest.raises(Unauthenticated):
            auth.principal(basic(ADMIN_ID, f"wrong-secret-{i}"))
    assert auth.checks_run == 6
    with pytest.raises(ResourceExhausted):
        auth.principal(basic(ADMIN_ID, "wrong-secret-5"))


def test_store_errors_are_not_reported_or_remembered_as_bad_credentials() -> None:
    down = True

    def lookup(key: str) -> StoredPrincipal | None:
        if down:
            raise Unavailable("the store is down")
        return StoredPrincipal(Principal.of(ADMIN_ID),
                               f"plain${SECRET}", 0)

    auth = Authenticator(lookup, verify=lambda s, h: h == f"plain${s}")
    with pytest.raises(Unavailable):
        auth.principal(basic(ADMIN_ID, SECRET))
    down = False
    assert auth.principal(basic(ADMIN_ID, SECRET)) is not None


def test_a_write_to_the_identity_record_forgets_its_remembered_credentials() -> None:
    fake = Fake(ADMIN_ID)
    auth = fake.auth()
    header = basic(ADMIN_ID, SECRET)
    auth.principal(header)
    auth.principal(header)
    runs = auth.checks_run
    auth.forget(["88.118.9/other"])
    auth.principal(header)
    assert auth.checks_run == runs  # another identifier: still remembered
    auth.forget(["88.118/admin"])
    auth.principal(header)
    assert auth.checks_run == runs + 1  # checked anew against the record


def test_checks_after_close_are_unavailable() -> None:
    auth = Fake(ADMIN_ID).auth()
    auth.close()
    with pytest.raises(Unavailable, match="shutting down"):
        auth.principal(basic(ADMIN_ID, SECRET))
