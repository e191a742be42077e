"""The retransmit queue's bookkeeping on an ACK (tcp_input.tcp_clean_rtx_queue): it advances
RACK once per run of segments sent at one time instead of once per segment, which must leave
exactly the state the per-segment calls (the plain reading of RACK, RFC 8985 §6.2) leave.
"""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.net.core.skbuff import SkBuff
from pystack.net.ipv4.tcp import (TCPCB_EVER_RETRANS, TCPCB_LOST, TCPCB_SACKED_ACKED,
                                  TCPCB_SACKED_RETRANS, TcpSkbCb, after)
from pystack.net.ipv4.tcp_input import tcp_clean_rtx_queue
from pystack.net.ipv4.tcp_recovery import tcp_rack_advance
from pystack.kernel import ktime

from nethelpers import python_only

stand_in_sock = python_only("hands the kernel a stand-in socket")

MSS = 1448
RACK_FIELDS = ("rack_mstamp", "rack_end_seq", "rack_rtt_us", "rack_advanced")
COUNTERS = ("retrans_out", "sacked_out", "lost_out", "packets_out", "sk_wmem_queued",
            "delivered")


class FakeSock:
    """The fields tcp_clean_rtx_queue and tcp_rack_advance touch."""

    def __init__(self, queue, sack_ok, rack):
        from collections import deque
        self.rtx_queue = deque(queue)
        self.sack_ok = sack_ok
        self.min_rtt_us = 500
        self.rack_mstamp, self.rack_end_seq, self.rack_rtt_us, self.rack_advanced = rack
        for name in COUNTERS:
            setattr(self, name, 1000)


def reference(sk, ack: int, now: float):
    """tcp_clean_rtx_queue as it was: one tcp_rack_advance per segment."""
    q = sk.rtx_queue
    while q:
        skb = q[0]
        cb = skb.cb
        if after(cb.end_seq, ack):
            break
        q.popleft()
        sacked = cb.sacked
        if sacked & TCPCB_SACKED_RETRANS:
            sk.retrans_out -= 1
        if sacked & TCPCB_SACKED_ACKED:
            sk.sacked_out -= 1
        elif sk.sack_ok:
            tcp_rack_advance(sk, sacked, cb.end_seq, cb.when, now)
        if sacked & TCPCB_LOST:
            sk.lost_out -= 1
        sk.packets_out -= 1
        sk.sk_wmem_queued -= skb.truesize
        sk.delivered += 1


segment = st.tuples(st.sampled_from([0.0, 0.001, 0.002, 0.003]),  # send time
                    st.sampled_from([0, TCPCB_SACKED_ACKED, TCPCB_EVER_RETRANS,
                                     TCPCB_EVER_RETRANS | TCPCB_SACKED_RETRANS,
                                     TCPCB_LOST, TCPCB_EVER_RETRANS | TCPCB_SACKED_ACKED]))


@settings(max_examples=300, deadline=None)
@given(segs=st.lists(segment, min_size=1, max_size=12), acked=st.integers(0, 12),
       sack_ok=st.booleans(),
       rack=st.tuples(st.sampled_from([-1.0, 0.0, 0.001, 0.002, 0.004]),
                      st.integers(0, 20 * MSS), st.integers(0, 10), st.booleans()),
       base=st.sampled_from([1, 0xFFFFFFFF - 5 * MSS]))
@stand_in_sock
def test_rack_advances_as_per_segment(segs, acked, sack_ok, rack, base):
    queue = []
    seq = base
    for when, sacked in segs:
        skb = SkBuff(bytearray(MSS), 0, MSS, MSS)
        cb = skb.cb = TcpSkbCb(seq, (seq + MSS) & 0xFFFFFFFF, 0x10)
        cb.when, cb.sacked = when, sacked
        queue.append(skb)
        seq = (seq + MSS) & 0xFFFFFFFF
    ack = (base + min(acked, len(segs)) * MSS) & 0xFFFFFFFF
    # rack_end_seq in the same sequence space as the queue
    rack = (rack[0], (base + rack[1]) & 0xFFFFFFFF, rack[2], rack[3])
    now = 0.005
    fast = FakeSock(queue, sack_ok, rack)
    slow = FakeSock(copy.copy(queue), sack_ok, rack)
    clock = ktime.kclock  # (a thread-local: the reader this thread's kernel code uses)
    had_own = "now" in clock.__dict__
    saved = clock.__dict__.get("now")
    clock.now = lambda: now
    try:
        tcp_clean_rtx_queue(fast, ack)
    finally:
        if had_own:
            clock.now = saved
        else:
            del clock.now
    reference(slow, ack, now)
    assert [getattr(fast, f) for f in RACK_FIELDS] == [getattr(slow, f) for f in RACK_FIELDS]
    assert [getattr(fast, f) for f in COUNTERS] == [getattr(slow, f) for f in COUNTERS]
    assert list(fast.rtx_queue) == list(slow.rtx_queue)
