"""Kernel timers (`timer_list`) on trio's clock, as kernel/time/timer.c.

Read first: kernel/time/timer.c (mod_timer, del_timer, run_timers), include/linux/timer.h.

A timer is a deadline and a handler; protocol code never sleeps. The base keeps a heap of
[expires, seq, timer] entries. Re-arming or cancelling a timer leaves its old entry in the
heap, stale: its timer slot is emptied (so a stale entry keeps nothing alive, not the timer
nor the object the timer's data is), and it is dropped when it reaches the top. That keeps
`mod_timer` O(log n) without searching the heap, which matters because TCP re-arms its timers
on nearly every segment. When stale entries outnumber live ones the heap is rebuilt.

Expired timers run from TIMER_SOFTIRQ on the CPU that owns the base (plain synchronous code),
in expiry order and, for equal expiry, in the order they were armed: deterministic.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Callable

__all__ = ["Timer", "TimerBase"]


class Timer:
    """`struct timer_list`: `function(timer)` runs at `expires` (seconds of trio's clock).

    A timer made with its `base` (the CPU it belongs to, as timer_setup binds one) can be
    armed and disarmed by itself, `mod` and `delete`, as Linux's mod_timer(timer, expires)
    and del_timer(timer) take only the timer."""

    __slots__ = ("function", "data", "expires", "_seq", "_base", "_entry")

    def __init__(self, function: Callable[["Timer"], Any], data: Any = None,
                 base: "TimerBase | None" = None):
        self.function = function
        self.data = data
        self.expires = math.inf
        self._seq: int | None = None  # None: not pending
        self._base = base
        self._entry: list | None = None  # its live heap entry, while pending

    def pending(self) -> bool:
        return self._seq is not None

    def mod(self, expires: float) -> bool:
        """mod_timer on the timer's own base. Returns whether it was pending before."""
        return self._base.mod_timer(self, expires)  # type: ignore[union-attr]

    def delete(self) -> bool:
        """del_timer. Returns whether it was pending."""
        return self._seq is not None and self._base.del_timer(self)  # type: ignore[union-attr]

    def __repr__(self) -> str:
        name = getattr(self.function, "__name__", repr(self.function))
        state = f"at {self.expires:.6f}" if self._seq is not None else "idle"
        return f"<Timer {name} {state}>"


class TimerBase:
    """The pending timers of one CPU, plus what is needed to wake its ksoftirqd earlier."""

    __slots__ = ("_heap", "_seq", "_live", "on_earlier")

    def __init__(self, on_earlier: Callable[[float], None] | None = None):
        self._heap: list[list] = []  # [expires, seq, timer or None once stale]
        self._seq = 0
        self._live = 0
        # Called with the new earliest deadline when a timer is armed before every other one,
        # so the sleeping ksoftirqd can shorten its sleep.
        self.on_earlier = on_earlier

    def mod_timer(self, timer: Timer, expires: float) -> bool:
        """Arm (or re-arm) `timer` for `expires`. Returns whether it was pending before."""
        was_pending = timer._seq is not None
        if was_pending:
            if timer.expires == expires and timer._base is self:
                return True
        else:
            self._live += 1
        old = timer._entry
        if old is not None:
            old[2] = None  # stale now
        self._seq += 1
        seq = self._seq
        timer._seq = seq
        timer._base = self
        timer.expires = expires
        heap = self._heap
        earliest = heap[0][0] if heap else math.inf
        entry = timer._entry = [expires, seq, timer]
        heapq.heappush(heap, entry)
        if len(heap) > 64 and len(heap) > 2 * self._live:
            self._compact()
        if expires < earliest and self.on_earlier is not None:
            self.on_earlier(expires)
        return was_pending

    def del_timer(self, timer: Timer) -> bool:
        """Disarm `timer`. Returns whether it was pending."""
        if timer._seq is None:
            return False
        timer._seq = None
        timer._entry[2] = None  # type: ignore[index]  # stale: it holds the timer no more
        timer._entry = None
        self._live -= 1
        return True

    def next_expiry(self) -> float:
        heap = self._heap
        while heap:
            entry = heap[0]
            if entry[2] is not None:
                return entry[0]
            heapq.heappop(heap)
        return math.inf

    def run_timers(self, now: float) -> int:
        """Run every timer due at `now`. Timers armed meanwhile for `now` wait for the next run."""
        heap = self._heap
        due: list[Timer] = []
        while heap and heap[0][0] <= now:
            timer = heapq.heappop(heap)[2]
            if timer is not None:
                timer._seq = None
                timer._entry = None
                self._live -= 1
                due.append(timer)
        for timer in due:
            # A handler earlier in this batch may have re-armed or cancelled a later one.
            if timer._seq is None:
                timer.function(timer)
        return len(due)

    def __len__(self) -> int:
        return self._live

    def _compact(self) -> None:
        self._heap = [e for e in self._heap if e[2] is not None]
        heapq.heapify(self._heap)
