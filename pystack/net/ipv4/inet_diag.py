"""What `ss -o` shows of a socket's timers, as net/ipv4/inet_diag.c fills idiag_timer.

Read first: net/ipv4/inet_diag.c (inet_sk_diag_fill, inet_twsk_diag_fill,
inet_req_diag_fill) and ss's print_timer/print_ms_timer in iproute2's misc/ss.c.

The retransmit timer multiplexes RTO, loss probe and zero-window probe (icsk_pending); the
keepalive timer is Linux's sk_timer. The delayed-ACK timer is never shown, as in Linux.
"""

from __future__ import annotations

from typing import Any


from ...kernel.ktime import ktime_get
from .tcp_states import TCP_NEW_SYN_RECV, TCP_TIME_WAIT
from .tcp_timer import ICSK_TIME_LOSS_PROBE, ICSK_TIME_PROBE0, ICSK_TIME_RETRANS

__all__ = ["inet_diag_timer", "format_ms_timer"]


def _left(timer: Any) -> float:
    return max(timer.expires - ktime_get(), 0.0)


def inet_diag_timer(sk: Any) -> tuple[str, float, int]:
    """(ss's timer name, seconds until it fires, retransmissions or probes so far); the name
    is one of off, on, keepalive, timewait, persist."""
    state = getattr(sk, "sk_state", None)
    if state == TCP_TIME_WAIT:
        timer = getattr(sk, "timer", None)
        return ("timewait", _left(timer), 0) if timer is not None and timer.pending() else \
            ("off", 0.0, 0)
    if state == TCP_NEW_SYN_RECV:
        timer = sk.timer
        return ("on", _left(timer), sk.num_retrans) if timer.pending() else ("off", 0.0, 0)
    pending = getattr(sk, "icsk_pending", 0)
    rtx = getattr(sk, "retransmit_timer", None)
    if pending in (ICSK_TIME_RETRANS, ICSK_TIME_LOSS_PROBE) and rtx is not None:
        return "on", _left(rtx), sk.icsk_retransmits
    if pending == ICSK_TIME_PROBE0 and rtx is not None:
        return "persist", _left(rtx), sk.icsk_probes_out
    keepalive = getattr(sk, "keepalive_timer", None)
    if keepalive is not None and keepalive.pending():
        return "keepalive", _left(keepalive), sk.icsk_probes_out
    return "off", 0.0, 0


def format_ms_timer(seconds: float) -> str:
    """A time left as ss prints it: 0.2 s is 200ms, 1.5 s is 1.500ms, 37 s is 37sec, 72 s is
    1min12sec (iproute2's print_ms_timer)."""
    timeout = int(round(seconds * 1000))
    secs, msecs = divmod(timeout, 1000)
    minutes, secs = divmod(secs, 60)
    out = ""
    if minutes:
        msecs = 0
        out = f"{minutes}min"
        if minutes > 9:
            secs = 0
    if secs:
        if secs > 9:
            msecs = 0
        out += f"{secs}{'.' if msecs else 'sec'}"
    if msecs:
        out += f"{msecs:03d}ms"
    return out
