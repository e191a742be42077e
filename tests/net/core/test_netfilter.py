"""Netfilter hooks: a test's callable decides a packet's fate at a hook (DESIGN §7)."""

import socket

import pytest
import trio

import pystack
from pystack.net.core.netfilter import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_OUT, nf_register_hook
from pystack.uapi.tcp import TCPHDR_ACK, TCPHDR_SYN


async def test_dropping_exactly_the_third_syn_ack_delays_that_connection_by_one_rto():
    net = pystack.Network(seed=11)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24").set(delay=0.001)
        events = []
        net.trace(events.append)
        seen = []

        def drop_third_syn_ack(skb, state):
            th = skb.transport_header
            if skb.buf[skb.network_header + 9] == 6 and \
                    skb.buf[th + 13] & (TCPHDR_SYN | TCPHDR_ACK) == TCPHDR_SYN | TCPHDR_ACK:
                seen.append(trio.current_time())
                if len(seen) == 3:
                    return NF_DROP
            return NF_ACCEPT

        nf_register_hook(b.net, NF_INET_LOCAL_OUT, drop_third_syn_ack)
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(8)
        times = []
        for _ in range(3):
            c = a.socket(socket.AF_INET, socket.SOCK_STREAM)
            start = trio.current_time()
            with trio.fail_after(10):
                await c.connect(("10.0.0.2", 80))
                await srv.accept()
            times.append(trio.current_time() - start)
        # Connect + accept takes a round trip and a half (the first also resolves ARP); the
        # third waits for the client's SYN retransmission one RTO (1 s) later.
        assert times[1] == pytest.approx(0.003)
        assert times[0] > times[1]
        assert times[2] == pytest.approx(1.003)
        assert len(seen) >= 4  # the SYN-ACK timer and the retransmitted SYN both answer
        drops = [e for e in events if e.name == "skb:kfree_skb"
                 and e.fields["reason"] == "NETFILTER_DROP"]
        retransmits = [e for e in events if e.name == "tcp:tcp_retransmit_skb" and e.host == "a"]
        assert [e.host for e in drops] == ["b"]
        # The client's SYN left 1 ms before its SYN-ACK was dropped; its RTO is 1 s.
        assert len(retransmits) == 1
        assert retransmits[0].time - drops[0].time == pytest.approx(0.999)
