"""TCP delivers the exact bytes, in order, both ways, whatever the link does (issue 3,
point 2): a hypothesis property over payload sizes and link fault profiles.

Each example runs its own network in its own `trio.run` on an autojump MockClock (hypothesis
drives a plain function, so tests/conftest.py's runner does not apply). Every wait has a
virtual deadline: the autojump clock cannot detect a deadlock where every task waits forever
with no timer, so `trio.fail_after` turns a hang into a failure. TCP_USER_TIMEOUT bounds how
long either end retransmits into a dead link.

`test_exact_bytes_over_loss_and_delay` covers the profile the brief asked for (loss up to 30%,
one-way delay); `test_exact_bytes_over_reordering_duplication_and_corruption` adds netem's
reorder, duplicate and corrupt knobs (pystack/net/sched/sch_netem.py), which the issue's
point 2 names.
"""

from __future__ import annotations

import random
import socket

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pystack
from pystack.net.socket import sockfd_lookup

AF_INET, SOCK_STREAM = socket.AF_INET, socket.SOCK_STREAM
IPPROTO_TCP = socket.IPPROTO_TCP
PORT = 5000
# At 30% loss each way an RTO retransmission and its ACK both arrive about half the time, and
# the RTO is capped at 120 s: with 600 s of TCP_USER_TIMEOUT, five failures in a row (about
# 2.5% per stall) ended a connection with ETIMEDOUT, as Linux would. An hour keeps "the
# connection gave up" out of a property about the byte stream; virtual time makes it free.
DEADLINE = 30000.0  # virtual seconds for one whole exchange
USER_TIMEOUT_MS = 3_600_000


async def _exchange(seed: int, up: bytes, down: bytes, netem: dict) -> dict:
    """a connects to b over a link impaired by `netem`; each sends its payload and shuts
    down its write side while reading the other's to EOF; then both close. Returns what
    arrived and how the ends finished."""
    net = pystack.Network(seed=seed)
    a, b = net.add_host("a"), net.add_host("b")
    link = net.add_link(a, b, subnet="10.0.0.0/24")
    result: dict = {}
    async with net:
        with trio.fail_after(DEADLINE):
            ls = b.socket(AF_INET, SOCK_STREAM)
            ls.setsockopt(IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
            await ls.bind(("", PORT))
            ls.listen(4)
            c = a.socket(AF_INET, SOCK_STREAM)
            c.setsockopt(IPPROTO_TCP, socket.TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
            await c.connect(("10.0.0.2", PORT))
            conn, _ = await ls.accept()
            ls.close()
            # Impair the link once connected: the property is about the byte stream. (Under
            # loss the handshake may legitimately fail: three lost ARP requests make the
            # connect fail with EHOSTUNREACH, as on Linux — arp_error_report → tcp_v4_err.)
            link.set(**netem)
            got_up, got_down = bytearray(), bytearray()

            async def send(s, data):
                view = memoryview(data)
                sent = 0
                while sent < len(data):
                    sent += await s.send(view[sent:])
                s.shutdown(socket.SHUT_WR)

            async def recv(s, into):
                while True:
                    chunk = await s.recv(65536)
                    if not chunk:
                        return
                    into += chunk

            async with trio.open_nursery() as nursery:
                nursery.start_soon(send, c, up)
                nursery.start_soon(send, conn, down)
                nursery.start_soon(recv, conn, got_up)
                nursery.start_soon(recv, c, got_down)
            # Both ends have read to EOF: each got the other's FIN. The last ACK of the close
            # may still be lost, and no TCP can make sure both ends learn of a clean close
            # (the two generals): a FIN retransmitted after a long backoff can find the peer's
            # TIME_WAIT gone, and the RSTs it draws lost too, which ends in
            # TCPAbortOnTimeout on Linux as here (seed 0, 73849 bytes down at 28% loss). The
            # property is about the byte stream, so the close runs on a healed link.
            link.set(**{k: 0.0 for k in netem if k != "delay"})
            result["up"], result["down"] = bytes(got_up), bytes(got_down)
            result["errors"] = [sockfd_lookup(s.task, s.fileno())[1].sk.sk_err for s in (c, conn)]
            c.close()
            conn.close()
            # Long enough for FIN retransmissions and TIME_WAIT's 60 s to run out.
            await trio.sleep(600)
            result["left"] = [str(r) for h in (a, b) for r in h.sockets()]
            result["aborts"] = {
                name: n for h in (a, b) for group in ("Tcp", "TcpExt")
                for name, n in h.stats()[group].items()
                if n and (name == "EstabResets" or name.startswith("TCPAbortOn"))}
    return result


def _run(seed: int, up_len: int, down_len: int, netem: dict) -> None:
    rng = random.Random(seed)
    up, down = rng.randbytes(up_len), rng.randbytes(down_len)
    r = trio.run(_exchange, seed, up, down, netem,
                 clock=trio.testing.MockClock(autojump_threshold=0))
    assert r["up"] == up, f"a→b: {len(r['up'])} of {len(up)} bytes, or out of order"
    assert r["down"] == down, f"b→a: {len(r['down'])} of {len(down)} bytes, or out of order"
    assert r["errors"] == [0, 0]
    # A clean close: no connection was reset or aborted (EstabResets counts ESTABLISHED or
    # CLOSE_WAIT → CLOSE), and nothing is left once TIME_WAIT is over. (A RST may still be
    # sent: a stray ACK reordered behind the last one reaches the passive closer after it
    # closed, and finds no socket — tcp_v4_rcv → tcp_v4_send_reset, as on Linux.)
    assert r["aborts"] == {}
    assert r["left"] == []


sizes = st.integers(min_value=0, max_value=300_000)


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), up_len=sizes, down_len=sizes,
       loss=st.floats(0.0, 0.3), delay=st.floats(0.0, 0.05))
def test_exact_bytes_over_loss_and_delay(seed, up_len, down_len, loss, delay):
    _run(seed, up_len, down_len, {"loss": loss, "delay": delay})


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**16), up_len=sizes, down_len=sizes,
       loss=st.floats(0.0, 0.3), delay=st.floats(0.001, 0.05),
       reorder=st.floats(0.0, 0.3), duplicate=st.floats(0.0, 0.1),
       corrupt=st.floats(0.0, 0.1))
def test_exact_bytes_over_reordering_duplication_and_corruption(
        seed, up_len, down_len, loss, delay, reorder, duplicate, corrupt):
    # netem reorders by sending some frames at once past delayed ones (reorder with gap 1):
    # it needs a delay to reorder anything.
    _run(seed, up_len, down_len, {"loss": loss, "delay": delay, "reorder": reorder,
                                  "duplicate": duplicate, "corrupt": corrupt})
