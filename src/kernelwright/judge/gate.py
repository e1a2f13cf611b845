"""Who may use the GPU now: checks share it, a timed batch has it alone.

The loop checks several candidates at once while the timer measures one. A check's GPU work comes
in short requests (one call of the answer, one reference run); the timer's in one timed batch.
`shared()` is held around each of the former, `alone()` around each of the latter: a timed batch
waits only for the requests in flight, and no new one starts until it is done (writer first).

The gate is also where abandoned work stops. A thread doing work on behalf of a Ticket runs it
inside `working_for(ticket)`; once the ticket is abandoned (`abandon()`), that thread's next
`shared()` or `alone()`, or the one it is waiting in, raises Abandoned instead of giving it the GPU
(with the gate disabled too). Every GPU request of the judges passes the gate, so work the loop
no longer wants (a budget stop, Ctrl-C) ends at its next request; the loop kills the worker
process of the request in progress itself.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterable, Iterator


class Abandoned(Exception):
    """Raised in a thread whose ticket was abandoned when it asks the gate for the GPU."""


class Ticket:
    """One piece of work done in some thread (a candidate's check and timing)."""

    def __init__(self, label: str = "") -> None:
        self.label = label
        self.abandoned = False
        self.thread: int | None = None  # native id of the thread working for it, once it started


class GpuGate:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0  # timed batches waiting: new shared users hold back for them
        self._local = threading.local()  # .ticket: the work this thread is doing now

    # -- abandonment ------------------------------------------------------------------------
    @contextmanager
    def working_for(self, ticket: Ticket) -> Iterator[Ticket]:
        """Run the body on behalf of `ticket` (in this thread): abandoning it stops the body at
        its next gate request. Nests; the previous ticket is restored after."""
        before = getattr(self._local, "ticket", None)
        ticket.thread = threading.get_native_id()
        self._local.ticket = ticket
        try:
            if ticket.abandoned:
                raise Abandoned(f"{ticket.label or 'work'} was abandoned before it started")
            yield ticket
        finally:
            self._local.ticket = before

    def abandon(self, tickets: Iterable[Ticket]) -> None:
        """Abandon these tickets: their threads' gate requests raise Abandoned from now on,
        waiting ones included."""
        with self._cond:
            for t in tickets:
                t.abandoned = True
            self._cond.notify_all()

    def _revoked(self) -> bool:
        t = getattr(self._local, "ticket", None)
        return t is not None and t.abandoned

    def _raise_if_revoked(self) -> None:
        if self._revoked():
            raise Abandoned(f"{self._local.ticket.label or 'work'} was abandoned")

    # -- the gate ---------------------------------------------------------------------------
    @contextmanager
    def shared(self) -> Iterator[None]:
        self._raise_if_revoked()
        if not self.enabled:
            yield
            return
        with self._cond:
            self._cond.wait_for(lambda: self._revoked() or (not self._alone and not self._waiting))
            self._raise_if_revoked()
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        self._raise_if_revoked()
        if not self.enabled:
            yield
            return
        with self._cond:
            self._waiting += 1
            try:
                self._cond.wait_for(lambda: self._revoked() or (not self._alone and self._shared == 0))
                self._raise_if_revoked()
            finally:
                self._waiting -= 1
                self._cond.notify_all()  # shared users held back for this batch may go on
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


NO_GATE = GpuGate(enabled=False)
