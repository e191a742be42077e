"""CPUs, ksoftirqd, and tasks (processes), as kernel/sched and kernel/softirq.c's threads.

Read first: kernel/softirq.c (run_ksoftirqd, smpboot threads), include/linux/sched.h
(task_struct: pid, comm, files, cred), include/linux/cred.h.

Each emulated CPU has one trio task, `ksoftirqd/N`. It parks until a softirq is pending or
the CPU's next timer is due (the local timer interrupt, folded into the same task so that a
timer costs one task switch, not two), then runs `__do_softirq`. A process context is an
application's own trio task, marked by the `current` context variable: trio copies context
variables into tasks spawned from it, so a nursery opened inside `host.process()` belongs to
that process too.
"""

from __future__ import annotations

import contextvars
import math
from collections import deque
from typing import TYPE_CHECKING, Any, Final

import trio

from .ktime import kclock
from .softirq import (NET_RX_SOFTIRQ, NET_TX_SOFTIRQ, NR_SOFTIRQS, TIMER_SOFTIRQ,
                      __do_softirq)
from .timer import TimerBase

if TYPE_CHECKING:
    from ..fs.file import FdTable
    from ..host import Host

__all__ = ["Cpu", "Task", "Cred", "current", "run_ksoftirqd", "CAP_NET_BIND_SERVICE",
           "CAP_NET_ADMIN", "CAP_NET_RAW"]

CAP_NET_BIND_SERVICE: Final = 10
CAP_NET_BROADCAST: Final = 11
CAP_NET_ADMIN: Final = 12
CAP_NET_RAW: Final = 13
ALL_CAPS = frozenset({CAP_NET_BIND_SERVICE, CAP_NET_BROADCAST, CAP_NET_ADMIN, CAP_NET_RAW})


class Cpu:
    """One CPU of a host: interrupt state, softnet_data, its timers and its ksoftirqd."""

    def __init__(self, host: "Host", index: int):
        self.host = host
        self.id = index
        # preempt_count, split as Linux splits it
        self.hardirq_count = 0
        self.softirq_count = 0  # serving softirq, or bottom halves disabled
        self.serving_softirq = False  # in_serving_softirq(): running handlers now
        self.softirq_pending = 0
        self.softirq_vec: list[Any] = [_no_handler] * NR_SOFTIRQS
        self.softirq_counts = [0] * NR_SOFTIRQS  # as /proc/softirqs
        # struct softnet_data
        self.poll_list: list[Any] = []  # NAPI instances with work, in order
        self.input_pkt_queue: deque[Any] = deque()  # the loopback/netif_rx backlog
        self.backlog: Any = None  # the NAPI instance that drains input_pkt_queue
        self.output_queue: list[Any] = []  # qdiscs to run from NET_TX
        self.processed = 0
        self.dropped = 0
        self.time_squeeze = 0
        self.received_rps = 0
        # the local timer interrupt
        self.timers = TimerBase(on_earlier=self._timer_earlier)
        # ksoftirqd parking
        self._lot = trio.lowlevel.ParkingLot()
        self._sleep_until = math.inf
        self._running = False

    def __repr__(self) -> str:
        return f"<Cpu {self.host.name}/{self.id}>"

    def wake_ksoftirqd(self) -> None:
        if self._lot:
            self._lot.unpark_all()

    def _timer_earlier(self, expires: float) -> None:
        if expires < self._sleep_until and self._lot:
            self._lot.unpark_all()

    def softnet_stat(self) -> dict[str, int]:
        return {"processed": self.processed, "dropped": self.dropped,
                "time_squeeze": self.time_squeeze, "received_rps": self.received_rps}


def _no_handler(cpu: Cpu) -> None:
    pass


def run_timer_softirq(cpu: Cpu) -> None:
    cpu.timers.run_timers(kclock.now())


async def run_ksoftirqd(cpu: Cpu) -> None:
    """The body of ksoftirqd/N. Runs until cancelled with the host."""
    cpu.softirq_vec[TIMER_SOFTIRQ] = run_timer_softirq
    timers = cpu.timers
    lot = cpu._lot
    while True:
        now = kclock.now()
        if timers.next_expiry() <= now:
            cpu.softirq_pending |= 1 << TIMER_SOFTIRQ
        if cpu.softirq_pending and not cpu.softirq_count and not cpu.hardirq_count:
            __do_softirq(cpu)
            # cond_resched(): let the processes run between two rounds.
            await trio.lowlevel.checkpoint()
            continue
        deadline = timers.next_expiry()
        cpu._sleep_until = deadline
        try:
            if deadline == math.inf:
                await lot.park()
            else:
                with trio.move_on_at(deadline):
                    await lot.park()
        finally:
            cpu._sleep_until = math.inf


def seed_trio_scheduler(seed: int) -> bool:
    """Make trio's choice among tasks that became runnable together follow `seed`.

    trio shuffles each batch of runnable tasks with a module-level `random.Random`
    (`trio._core._run._r`), the hook its Hypothesis support seeds too. Seeding it makes a
    scenario run the same way every time. Returns False if trio no longer has that hook
    (a test guards this, so a trio upgrade that removes it is noticed).

    Seeding alone is not enough: a batch starts in the order its tasks became runnable, and
    tasks whose deadlines fall at one instant wake in the order of their cancel scopes'
    `id()`, a memory address that changes from process to process (with PYTHONHASHSEED, for
    one). So this also sets the flag trio's Hypothesis plugin sets
    (`_ALLOW_DETERMINISTIC_SCHEDULING`), under which each batch is first sorted by task
    creation order, then shuffled by the seeded generator.
    """
    import random

    from trio._core import _run
    r = getattr(_run, "_r", None)
    if not isinstance(r, random.Random) or not hasattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING"):
        return False
    r.seed(seed)
    _run._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    return True


# The task_struct of the code running now; None outside every process context.
current: contextvars.ContextVar["Task | None"] = contextvars.ContextVar(
    "pystack_current", default=None)


class Cred:
    """`struct cred`, reduced to what the network stack asks: ids and capabilities."""

    __slots__ = ("uid", "gid", "caps")

    def __init__(self, uid: int = 0, gid: int = 0, caps: frozenset[int] = ALL_CAPS):
        self.uid = uid
        self.gid = gid
        self.caps = caps

    def capable(self, cap: int) -> bool:
        return cap in self.caps


class Task:
    """`task_struct` of an emulated process: pid, name, fd table, credentials, CPU."""

    def __init__(self, host: "Host", pid: int, comm: str, files: "FdTable", cpu: Cpu,
                 cred: Cred | None = None):
        self.host = host
        self.pid = pid
        self.comm = comm
        self.files = files
        self.cpu = cpu
        self.cred = cred or Cred()
        self.exited = False

    def __repr__(self) -> str:
        return f"<Task {self.host.name}:{self.pid} {self.comm}>"

    def drop_capability(self, cap: int) -> None:
        """Drop one capability (e.g. CAP_NET_BIND_SERVICE) from this process."""
        self.cred = Cred(self.cred.uid, self.cred.gid, self.cred.caps - {cap})

    def capable(self, cap: int) -> bool:
        return self.cred.capable(cap)


__all__ += ["NET_RX_SOFTIRQ", "NET_TX_SOFTIRQ"]
