"""The change feed that mirrors, standbys and the top-level node follow.

Followers see private values, so following needs rights (asked of the access policy):
the whole log for the node admin, one prefix for whoever holds rights on it. An open
feed holds a server thread, so their number is bounded.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator

from node.observe.metrics import Metrics
from node.service.admission import Admission
from node.service.caller import Authenticate, Caller
from registry.access.policy import AccessPolicy, Permission
from registry.errors import IdnodeError, ResourceExhausted
from registry.identifier import Handle, Prefix
from registry.record import Change
from registry.store import Store
from registry.views import without_secrets

PAGE = 500
POLL_SECONDS = 0.05
IDLE_SECONDS = 1.0


class Follow:
    """Changes after a sequence, then new ones as they commit, until told to stop."""

    def __init__(self, store: Store, policy: AccessPolicy, auth: Authenticate,
                 metrics: Metrics, *, max_followers: int = 8,
                 admission: Admission | None = None) -> None:
        self.store = store
        self.policy = policy
        self.auth = auth
        self.admission = admission if admission is not None else Admission(auth)
        self.metrics = metrics
        self.max_followers = max_followers
        self._followers = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()

    def changes(self, caller: Caller, sequence: int, prefix_text: str = "",
                active: Callable[[], bool] = lambda: True) -> Iterator[Change]:
        """Check rights and the bound before the first change is read, then stream.

        Raises before yielding anything when the caller may not follow; the generator
        ends when ``active()`` turns false or the node stops (followers resume by
        sequence).
        """
        principal = self.admission.authenticate(caller)
        prefix = Prefix.parse(prefix_text) if prefix_text else None
        if prefix is None:
            self.policy.require_node_admin(
                principal, doing="follow the whole change log; set prefix to follow your own")
        else:
            self.policy.require_prefix(principal, Permission.READ_VALUE, prefix,
                                       doing=f"follow the changes of {prefix.text}")

        def visible(change: Change) -> bool:
            """Inside the asked prefix, and the caller may read the changed identifier's
            private values (a derived prefix may belong to someone else)."""
            key_prefix = change.key.partition("/")[0]
            if prefix is not None and not prefix.contains(key_prefix):
                return False
            try:
                handle = Handle.parse(change.handle)
            except IdnodeError:
                return False
            return self.policy.permits(principal, Permission.READ_VALUE, handle)
        return self._stream(sequence, visible, active)

    def _stream(self, sequence: int, visible: Callable[[Change], bool],
                active: Callable[[], bool]) -> Iterator[Change]:
        # Counted from the first read on: a feed that is never iterated holds nothing.
        with self._lock:
            if self._followers >= self.max_followers:
                raise ResourceExhausted(f"at most {self.max_followers} change followers")
            self._followers += 1
            self.metrics.followers.set(self._followers)
        try:
            while active() and not self._stopping.is_set():
                changes = self.store.changes_since(sequence, PAGE)
                for change in changes:
                    sequence = change.sequence
                    if visible(change):
                        yield dataclasses.replace(change,
                                                  values=without_secrets(change.values))
                if len(changes) < PAGE:
                    self.metrics.follower_lag.set(max(0, self.store.last_sequence() - sequence))
                    self._wait(sequence)
        finally:
            with self._lock:
                self._followers -= 1
                self.metrics.followers.set(self._followers)

    def _wait(self, sequence: int) -> None:
        """Until the store has something newer (``ChangeLog.wait_for_changes``, which
        every backend implements its own way), or a short idle period passed (so a
        closed stream is noticed), in slices so that shutdown is prompt."""
        deadline = time.monotonic() + IDLE_SECONDS
        while not self._stopping.is_set() and time.monotonic() < deadline:
            if self.store.wait_for_changes(sequence, POLL_SECONDS):
                return

    def stop(self) -> None:
        """End every feed (graceful shutdown)."""
        self._stopping.set()


__all__ = ["Follow"]
