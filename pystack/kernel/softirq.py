"""Softirqs and the per-CPU interrupt state, as kernel/softirq.c.

Read first: kernel/softirq.c (__do_softirq, raise_softirq_irqoff, local_bh_enable, irq_exit,
run_ksoftirqd), include/linux/preempt.h (what in_interrupt() counts).

Softirqs run where Linux runs them. A syscall that raises one inside a bh-disabled section
(`dev_queue_xmit` is one) runs the pending work at `local_bh_enable`, inline in the caller's
task: a loopback send reaches the receiving socket with no task switch. ksoftirqd takes over
only when `__do_softirq` passes its restart limit, or when the softirq is raised with the CPU
idle — which in the emulation means from the wire: a frame "DMA'd" into a NIC's ring raises its
IRQ from the wire's task, not from any context of the host.

That last case differs from Linux on purpose. Linux's `irq_exit` runs softirqs on the way out
of the hardirq. Here a wire deposits a whole burst at one instant of virtual time; running
softirq after each frame would drain the ring before the next frame landed, something a real
NIC at line rate never sees. Waking ksoftirqd instead lets the burst accumulate in the ring, so
NAPI polls it in batches, the IRQ stays masked meanwhile, and ring overflow happens as it does
on hardware.

Everything here is synchronous: softirq handlers never await.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

if TYPE_CHECKING:
    from .sched import Cpu

HI_SOFTIRQ: Final = 0
TIMER_SOFTIRQ: Final = 1
NET_TX_SOFTIRQ: Final = 2
NET_RX_SOFTIRQ: Final = 3
NR_SOFTIRQS: Final = 4
SOFTIRQ_NAMES = ("HI", "TIMER", "NET_TX", "NET_RX")

# __do_softirq gives up after this many restarts and leaves the rest to ksoftirqd. (Linux also
# stops after 2 ms of CPU time; no CPU time passes inside synchronous code in virtual time.)
MAX_SOFTIRQ_RESTART: Final = 10

SoftirqHandler = Callable[["Cpu"], None]

# The vector numbers set in each pending mask, lowest first (the order __do_softirq runs them).
_PENDING_VECTORS: Final = tuple(tuple(nr for nr in range(NR_SOFTIRQS) if mask & (1 << nr))
                         for mask in range(1 << NR_SOFTIRQS))


def in_interrupt(cpu: "Cpu") -> bool:
    """Hardirq, softirq being served, or bottom halves disabled."""
    return bool(cpu.hardirq_count or cpu.softirq_count)


def wakeup_softirqd(cpu: "Cpu") -> None:
    cpu.wake_ksoftirqd()


def raise_softirq(cpu: "Cpu", nr: int) -> None:
    """`raise_softirq_irqoff`: mark pending; wake ksoftirqd unless an exit path will run it."""
    cpu.softirq_pending |= 1 << nr
    if not (cpu.hardirq_count or cpu.softirq_count):
        cpu.wake_ksoftirqd()


def local_bh_disable(cpu: "Cpu") -> None:
    cpu.softirq_count += 1


def local_bh_enable(cpu: "Cpu") -> None:
    """Leave a bh-disabled section; run pending softirqs here if this was the outermost one."""
    cpu.softirq_count -= 1
    if not cpu.softirq_count and not cpu.hardirq_count and cpu.softirq_pending:
        __do_softirq(cpu)


def do_softirq(cpu: "Cpu") -> None:
    if in_interrupt(cpu) or not cpu.softirq_pending:
        return
    __do_softirq(cpu)


def __do_softirq(cpu: "Cpu") -> None:
    host = cpu.host
    prev_cpu = host.this_cpu
    host.this_cpu = cpu
    cpu.softirq_count += 1
    was_serving = cpu.serving_softirq
    cpu.serving_softirq = True
    vec = cpu.softirq_vec
    counts = cpu.softirq_counts
    tracer = host.net.tracer
    restart = MAX_SOFTIRQ_RESTART
    try:
        while True:
            pending = cpu.softirq_pending
            cpu.softirq_pending = 0
            for nr in _PENDING_VECTORS[pending]:
                counts[nr] += 1
                if tracer.active:
                    tracer.emit(host.net, "irq:softirq_entry", vec=nr, action=SOFTIRQ_NAMES[nr])
                    vec[nr](cpu)
                    tracer.emit(host.net, "irq:softirq_exit", vec=nr, action=SOFTIRQ_NAMES[nr])
                else:
                    vec[nr](cpu)
            if not cpu.softirq_pending:
                break
            restart -= 1
            if not restart:
                cpu.wake_ksoftirqd()
                break
    finally:
        cpu.serving_softirq = was_serving
        cpu.softirq_count -= 1
        host.this_cpu = prev_cpu


def irq_enter(cpu: "Cpu") -> None:
    cpu.hardirq_count += 1


def irq_exit(cpu: "Cpu") -> None:
    """Leave hardirq. Pending softirqs go to ksoftirqd (see the module docstring for why)."""
    cpu.hardirq_count -= 1
    if not cpu.hardirq_count and not cpu.softirq_count and cpu.softirq_pending:
        cpu.wake_ksoftirqd()
