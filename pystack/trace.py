"""Tracepoints and packet paths, named after Linux's (include/trace/events/*.h).

Read first: include/trace/events/net.h, skb.h, tcp.h, sock.h, napi.h, irq.h.

Two mechanisms, both free when nobody listens:
- `Tracer.emit(net, name, **fields)` for tracepoints; call sites test `tracer.active` first.
- `PathTrace`, hung on one skb (`skb.trace`) to follow one packet: every function on the
  path calls `skb.trace.hop(net, "ip_rcv")` when `skb.trace is not None`. The trace travels
  with the frame across wires, so the path continues on the receiving host.
"""

from __future__ import annotations

from typing import Any, Callable

import attrs
import trio

__all__ = ["Tracer", "TraceEvent", "PathTrace", "Hop"]


@attrs.frozen
class TraceEvent:
    time: float
    host: str
    cpu: int
    context: str
    name: str
    fields: dict[str, Any]

    def __str__(self) -> str:
        args = " ".join(f"{k}={v}" for k, v in self.fields.items())
        return f"{self.time:12.6f} {self.host:>8} cpu{self.cpu} {self.context:<8} {self.name} {args}"


def _context(net: Any) -> tuple[str, int, str]:
    host = net.host
    cpu = host.this_cpu
    if cpu.hardirq_count:
        ctx = "hardirq"
    elif cpu.serving_softirq:
        ctx = "softirq"
    else:
        ctx = "process"
    return host.name, cpu.id, ctx


class Tracer:
    """The tracepoints of one network: subscribers get every event they match."""

    def __init__(self) -> None:
        self.active = False
        self._subscribers: list[tuple[Callable[[str], bool], Callable[[TraceEvent], None]]] = []

    def subscribe(self, callback: Callable[[TraceEvent], None],
                  match: Callable[[str], bool] | None = None) -> Callable[[], None]:
        entry = (match or (lambda name: True), callback)
        self._subscribers.append(entry)
        self.active = True

        def unsubscribe() -> None:
            self._subscribers.remove(entry)
            self.active = bool(self._subscribers)
        return unsubscribe

    def emit(self, net: Any, name: str, **fields: Any) -> None:
        host, cpu, ctx = _context(net)
        event = TraceEvent(trio.current_time(), host, cpu, ctx, name, fields)
        for match, callback in self._subscribers:
            if match(name):
                callback(event)


@attrs.frozen
class Hop:
    time: float
    host: str
    cpu: int
    context: str
    function: str

    def __str__(self) -> str:
        return f"{self.time:10.6f}s  {self.host:>8} cpu{self.cpu} {self.context:<8} {self.function}"


class PathTrace:
    """The functions one packet passed through, in order, across hosts."""

    def __init__(self) -> None:
        self.hops: list[Hop] = []

    def hop(self, net: Any, function: str) -> None:
        if net is None:
            self.hops.append(Hop(trio.current_time(), "?", 0, "?", function))
            return
        host, cpu, ctx = _context(net)
        self.hops.append(Hop(trio.current_time(), host, cpu, ctx, function))

    def functions(self) -> list[str]:
        return [h.function for h in self.hops]

    def __str__(self) -> str:
        return "\n".join(str(h) for h in self.hops)
