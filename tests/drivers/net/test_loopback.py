"""The loopback device (pystack/drivers/net/loopback.c's counterpart): loopback_xmit → netif_rx
→ the per-CPU backlog, drained by process_backlog when the sender re-enables bottom halves.
"""

from __future__ import annotations

import socket

import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pystack
from pystack.kernel.softirq import local_bh_disable, local_bh_enable
from pystack.net.core.dev import dev_queue_xmit
from pystack.net.core.skbuff import alloc_skb


def sock_of(s):
    """The kernel `sock` behind an emulated socket."""
    return s.task.files.fget(s.fileno()).private_data.sk


async def test_udp_echo_over_loopback() -> None:
    net = pystack.Network(seed=3)
    async with net:
        a = net.add_host("a")
        server = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("127.0.0.1", 7))
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.sendto(b"ping", ("127.0.0.1", 7))
        data, peer = await server.recvfrom(100)
        await server.sendto(data.upper(), peer)
        assert await client.recvfrom(100) == (b"PING", ("127.0.0.1", 7))
        lo = a.interface("lo").stats
        assert lo.tx_packets == lo.rx_packets == 2
        assert a.stats()["Udp"]["InDatagrams"] == 2


async def test_ping_over_loopback_takes_no_time_and_no_wire() -> None:
    net = pystack.Network(seed=3)
    async with net:
        a = net.add_host("a")
        assert await a.ping("127.0.0.1") == 0
        assert await a.ping("localhost") == 0
        lo = a.interface("lo").stats
        assert lo.tx_packets == lo.rx_packets == 4  # two requests, two replies
        assert a.stats()["Icmp"]["InEchos"] == a.stats()["Icmp"]["InEchoReps"] == 2


async def test_loopback_delivery_runs_in_the_senders_task() -> None:
    # Linux: loopback_xmit → netif_rx raises NET_RX; dev_queue_xmit's rcu_read_unlock_bh runs
    # it at once in the sending task (do_softirq from local_bh_enable), no ksoftirqd involved.
    net = pystack.Network(seed=3)
    async with net:
        a = net.add_host("a")
        server = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("127.0.0.1", 7))
        sk = sock_of(server)
        woken_in: list[trio.lowlevel.Task] = []
        data_ready = sk.sk_data_ready

        def spy(sk):
            woken_in.append(trio.lowlevel.current_task())
            data_ready(sk)

        sk.sk_data_ready = spy
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        path = a.follow_next_packet()
        t0 = trio.current_time()
        await client.sendto(b"x", ("127.0.0.1", 7))
        assert woken_in == [trio.lowlevel.current_task()]
        assert len(sk.sk_receive_queue) == 1
        functions = path.functions()
        for f in ("udp_sendmsg", "loopback_xmit", "enqueue_to_backlog", "process_backlog",
                  "ip_rcv", "udp_rcv", "udp_queue_rcv_skb"):
            assert f in functions
        assert functions.index("loopback_xmit") < functions.index("process_backlog")
        assert {h.time for h in path.hops} == {t0}
        assert {h.host for h in path.hops} == {"a"}


def lo_udp_frame(dport: int, payload: bytes) -> bytes:
    return bytes(Ether(dst="00:00:00:00:00:00", src="00:00:00:00:00:00")
                 / IP(src="127.0.0.1", dst="127.0.0.1") / UDP(sport=5000, dport=dport) / payload)


async def test_backlog_beyond_netdev_max_backlog_is_dropped_and_counted() -> None:
    # enqueue_to_backlog accepts while the queue holds <= netdev_max_backlog packets (Linux's
    # test is `qlen <= max_backlog`), so max_backlog + 1 fit; the rest count in softnet's
    # dropped, the device's rx_dropped and drop reason CPU_BACKLOG.
    net = pystack.Network(seed=3)
    async with net:
        a = net.add_host("a")
        a.set_sysctl("net.core.netdev_max_backlog", 10)
        server = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("127.0.0.1", 7))
        lo = a.interface("lo")
        cpu = a.cpus[0]
        # 50 packets queued within one bottom-halves-off section (as a driver or tunnel
        # calling netif_rx in a loop would): NET_RX cannot run until it ends.
        local_bh_disable(cpu)
        try:
            for i in range(50):
                frame = lo_udp_frame(7, b"%02d" % i)
                skb = alloc_skb(len(frame))
                skb.put_data(frame)
                skb.dev = lo
                dev_queue_xmit(skb)
            assert len(sock_of(server).sk_receive_queue) == 0
        finally:
            local_bh_enable(cpu)
        assert cpu.dropped == 39
        assert a.drops() == {"CPU_BACKLOG": 39}
        assert lo.stats.rx_dropped == 39
        assert a.softnet_stat()[0]["dropped"] == 39
        got = []
        with trio.move_on_after(1):
            while True:
                got.append((await server.recvfrom(10))[0])
        assert got == [b"%02d" % i for i in range(11)]
