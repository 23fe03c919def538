"""Injectable clocks for the local-cluster simulation.

The simulation core (kubelet, scheduler, workload driver, usage integration) never calls
``time.time()`` directly: it asks a clock. Two implementations:

* :class:`RealClock` -- wall-clock seconds since the epoch (``time.time``); ``sleep`` really sleeps.
  Used by the live cluster (``python -m local_cluster up``).
* :class:`VirtualClock` -- a number that only moves when told to (``advance``/``sleep``/``set``),
  so a simulated day can be replayed in seconds with no HTTP and no Prometheus.

Both are callables returning the current time in seconds (float), so they can also be passed
wherever a ``clock=`` function is expected (e.g. the mock EC2 store).
"""
from __future__ import annotations

import threading
import time


class RealClock:
    """Wall-clock time in seconds since the Unix epoch."""

    virtual = False

    def now(self) -> float:
        return time.time()

    __call__ = now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """Manually advanced time in seconds. ``start`` defaults to 1,767,225,600 (2026-01-01T00:00:00Z)
    so timestamps derived from it look like real ones. Thread-safe."""

    virtual = True

    def __init__(self, start: float = 1767225600.0):
        self._now = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    __call__ = now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError(f"VirtualClock.advance: seconds must be >= 0, got {seconds!r}")
        with self._lock:
            self._now += float(seconds)
            return self._now

    def set(self, t: float) -> None:
        with self._lock:
            if t < self._now:
                raise ValueError(f"VirtualClock.set: time cannot go backwards ({t} < {self._now})")
            self._now = float(t)

    def sleep(self, seconds: float) -> None:
        """Sleeping on a virtual clock advances it instantly."""
        if seconds > 0:
            self.advance(seconds)
