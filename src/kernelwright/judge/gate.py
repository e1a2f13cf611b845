"""Who may use the GPU now: checks share it, a timed batch has it alone.

The loop checks several candidates at once while the timer measures one. A check's GPU work comes
in short requests (one call of the answer, one reference run); the timer's in one timed batch.
`shared()` is held around each of the former, `alone()` around each of the latter: a timed batch
waits only for the requests in flight, and no new one starts until it is done (writer first).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator


class GpuGate:
    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._cond = threading.Condition()
        self._shared = 0
        self._alone = False
        self._waiting = 0  # timed batches waiting: new shared users hold back for them

    @contextmanager
    def shared(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with self._cond:
            self._cond.wait_for(lambda: not self._alone and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def alone(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._alone and self._shared == 0)
            self._waiting -= 1
            self._alone = True
        try:
            yield
        finally:
            with self._cond:
                self._alone = False
                self._cond.notify_all()


NO_GATE = GpuGate(enabled=False)
