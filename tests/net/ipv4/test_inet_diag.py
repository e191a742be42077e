"""`ss -o`'s timer column (pystack/net/ipv4/inet_diag.py, shown by `host.sockets()`): which
timer a TCP socket has armed, when it fires and how many retransmissions it has made, as
Linux's inet_diag reports them, and printed the way iproute2's ss prints them.

Read first: net/ipv4/inet_diag.c (inet_sk_diag_fill), misc/ss.c (print_ms_timer).
"""

from __future__ import annotations

import contextlib
import socket

import pytest
import trio

import pystack
from pystack.net.core.netfilter import NF_DROP, NF_INET_LOCAL_IN, nf_register_hook
from pystack.net.ipv4.inet_diag import format_ms_timer

from nethelpers import connected_pair

PORT = 5000


@pytest.mark.parametrize("seconds, text", [(0.2, "200ms"), (0.05, "050ms"), (1.5, "1.500ms"),
                                           (37, "37sec"), (59.999, "59sec"), (72, "1min12sec"),
                                           (605.5, "10min"), (7200, "120min")])
def test_times_print_as_ss_prints_them(seconds, text) -> None:
    assert format_ms_timer(seconds) == text


@contextlib.asynccontextmanager
async def connected(seed: int):
    """Hosts a and b 10 ms apart, and a TCP connection from a (client) to b (accepted)."""
    net = pystack.Network(seed=seed)
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24").set(delay=0.01)
    async with net:
        with trio.fail_after(5):
            c, conn = await connected_pair(a, b, "10.0.0.2", PORT)
        yield a, b, c, conn


def _row(host, state):
    [row] = [r for r in host.sockets() if r.state == state and r.peer != "0.0.0.0:*"]
    return row


async def test_retransmit_timer_is_on_and_counts_retransmissions() -> None:
    async with connected(5) as (a, b, c, conn):
        idle = _row(a, "ESTAB")
        assert (idle.timer, idle.retrans) == ("off", 0) and "timer:" not in str(idle)
        nf_register_hook(b.net, NF_INET_LOCAL_IN, lambda skb, st: NF_DROP)  # b goes silent
        await c.send(b"x" * 100)
        sent = _row(a, "ESTAB")
        # RTO after one 20 ms round trip: srtt + 4 * rttvar, floored at TCP_RTO_MIN (200 ms).
        assert sent.timer == "on" and sent.retrans == 0
        assert 0.2 <= sent.timer_left <= 1.0
        # Step from one expiry to the next: first the tail loss probe (which counts no
        # retransmission), then RTOs, each one counted and each twice the last.
        steps = []
        for _ in range(4):
            await trio.sleep(_row(a, "ESTAB").timer_left + 0.001)
            row = _row(a, "ESTAB")
            assert row.timer == "on"
            steps.append((row.retrans, row.timer_left))
        assert [r for r, _ in steps] == [0, 1, 2, 3]
        assert steps[2][1] == pytest.approx(2 * steps[1][1], abs=0.002)
        assert steps[3][1] == pytest.approx(2 * steps[2][1], abs=0.002)
        assert str(row).endswith(f"timer:(on,{format_ms_timer(row.timer_left)},3)")


async def test_keepalive_and_timewait_timers() -> None:
    async with connected(6) as (a, b, c, conn):
        c.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        row = _row(a, "ESTAB")
        assert row.timer == "keepalive" and row.timer_left == pytest.approx(7200)
        assert "timer:(keepalive,120min,0)" in str(row)
        c.close()
        with trio.fail_after(5):
            assert await conn.recv(10) == b""
        conn.close()
        await trio.sleep(1)
        tw = _row(a, "TIME-WAIT")
        assert tw.timer == "timewait" and 58 < tw.timer_left < 60
        assert str(tw).endswith("timer:(timewait,58sec,0)") or \
            str(tw).endswith("timer:(timewait,59sec,0)")


async def test_zero_window_probe_timer_shows_persist() -> None:
    async with connected(7) as (a, b, c, conn):
        with trio.move_on_after(5):  # b never reads: its window closes and a's send blocks
            while True:
                await c.send(b"y" * 65536)
        await trio.sleep(1)
        row = _row(a, "ESTAB")
        assert row.timer == "persist" and row.timer_left > 0
        assert row.send_q > 0
