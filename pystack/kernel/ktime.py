"""The emulated kernel's clock: `ktime_get()`, seconds on trio's clock.

Read first: include/linux/timekeeping.h (ktime_get), trio's MockClock.

Every layer reads the time (TCP alone about 35 times per echo round trip: timestamps, RTT
samples, timers, chrono), so the read must be cheap. `trio.current_time()` goes through four
Python frames; under a MockClock that never runs on its own (rate 0, the virtual time of
tests and of `make bench`) the time is simply the clock's virtual base, which
`functools.partial(getattr, clock, "_virtual_base")` reads without a Python frame at all.
`Network` binds the reader for its trio run (`bind_clock`) and unbinds it on exit; other
clocks (a running MockClock, trio's real clock) are read through their own `current_time`.
The binding is per thread, as a trio run is: two runs in two threads each see their own.

A MockClock whose `rate` is raised while bound would be read as standing still; a
`Network` run does not change its clock's rate.
"""

from __future__ import annotations

import functools
import threading
from typing import Callable

import trio
import trio.testing

__all__ = ["ktime_get", "kclock", "bind_clock", "unbind_clock"]


class _Clock(threading.local):
    # Outside a bound run: trio's own reader (raises outside a trio run, as before).
    now: Callable[[], float] = staticmethod(trio.current_time)


# Hot paths call `kclock.now()` themselves: one Python frame less than `ktime_get()`.
kclock = _Clock()


def ktime_get() -> float:
    """The current time, in seconds of trio's clock."""
    return kclock.now()


def _reader(clock: trio.abc.Clock) -> Callable[[], float]:
    if type(clock) is trio.testing.MockClock and clock.rate == 0 and hasattr(
            clock, "_virtual_base"):
        return functools.partial(getattr, clock, "_virtual_base")
    return clock.current_time


def bind_clock() -> Callable[[], float]:
    """Read the current trio run's clock cheaply from now on, in this thread. Returns the
    reader that was bound before, for `unbind_clock`."""
    previous = kclock.now
    kclock.now = _reader(trio.lowlevel.current_clock())
    return previous


def unbind_clock(previous: Callable[[], float]) -> None:
    kclock.now = previous
