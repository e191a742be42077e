"""Tracepoints (pystack/trace.py and the emit calls along the kernel path): one TCP exchange
between two hosts, with one data segment dropped by netfilter and one connect refused,
must fire each tracepoint the design names, in the context Linux fires it, with fields that
add up; `Network.trace` filters by prefix and unsubscribes.

Read first: DESIGN.md §7 (trace); Linux's include/trace/events/{net,skb,tcp,sock,irq,napi}.h.
"""

from __future__ import annotations

import errno
import socket

import pytest
import trio

import pystack
from pystack.kernel.sched import current
from pystack.net.core.netfilter import NF_ACCEPT, NF_DROP, NF_INET_LOCAL_IN, nf_register_hook

PORT = 5000
DATA = bytes(range(256)) * 12  # 3072 bytes: three segments

LINUX_TRACEPOINTS = {"net:netif_receive_skb", "net:net_dev_xmit", "skb:kfree_skb",
                     "tcp:tcp_retransmit_skb", "tcp:tcp_probe", "sock:inet_sock_set_state",
                     "irq:softirq_entry", "irq:softirq_exit", "napi:napi_poll"}
SOCKET_EVENTS = {"EVENT_SOCKET", "EVENT_BIND", "EVENT_LISTEN", "EVENT_CONNECT", "EVENT_ACCEPT",
                 "EVENT_SOCK_SENDMSG", "EVENT_SOCK_RECVMSG", "TCP_SENDMSG", "TCP_TRANSKB",
                 "TCP_DATA_QUEUE"}


async def _exchange() -> list:
    net = pystack.Network(seed=3)
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b, subnet="10.0.0.0/24").set(delay=0.001)
    events: list = []
    dropped = []

    def drop_first_data_segment(skb, state) -> int:
        if not dropped and skb.tail - skb.data > 1000:  # a full-sized data segment
            dropped.append(skb)
            return NF_DROP
        return NF_ACCEPT

    async with net:
        net.trace(events.append)
        nf_register_hook(b.net, NF_INET_LOCAL_IN, drop_first_data_segment)
        ls = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await ls.bind(("", PORT))
        ls.listen(4)
        c = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with trio.fail_after(60):
            await c.connect(("10.0.0.2", PORT))
            conn, _ = await ls.accept()
            await c.send(DATA)
            got = bytearray()
            while len(got) < len(DATA):
                got += await conn.recv(65536)
        assert got == DATA
        refused = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with pytest.raises(ConnectionRefusedError) as exc, trio.fail_after(60):
            await refused.connect(("10.0.0.2", PORT + 1))
        assert exc.value.errno == errno.ECONNREFUSED
        for s in (refused, c, conn, ls):
            s.close()
        await trio.sleep(1)
    assert len(dropped) == 1
    return events


async def test_one_tcp_exchange_fires_every_named_tracepoint() -> None:
    events = await _exchange()
    names = {e.name for e in events}
    assert LINUX_TRACEPOINTS <= names, LINUX_TRACEPOINTS - names
    assert SOCKET_EVENTS <= names, SOCKET_EVENTS - names
    times = [e.time for e in events]
    assert times == sorted(times)  # delivered as they happen, in virtual time


async def test_tracepoints_fire_in_linux_context_and_fields_add_up() -> None:
    events = await _exchange()
    by_name: dict[str, list] = {}
    for e in events:
        by_name.setdefault(e.name, []).append(e)
    # Receive runs in NET_RX softirq; the syscall events in the calling process.
    assert {e.context for e in by_name["net:netif_receive_skb"]} == {"softirq"}
    assert {e.context for e in by_name["EVENT_SOCK_SENDMSG"]} == {"process"}
    assert all(e.fields["pid"] > 0 and e.fields["comm"] for e in by_name["EVENT_SOCKET"])
    assert {e.fields["rc"] for e in by_name["net:net_dev_xmit"]} == {0}
    # softirq_entry/exit nest properly on each host's CPU and name the same vector.
    stacks: dict[tuple[str, int], list[int]] = {}
    for e in events:
        stack = stacks.setdefault((e.host, e.cpu), [])
        if e.name == "irq:softirq_entry":
            assert e.context == "softirq"
            stack.append(e.fields["vec"])
        elif e.name == "irq:softirq_exit":
            assert stack.pop() == e.fields["vec"]
    assert all(not s for s in stacks.values())
    assert "NET_RX" in {e.fields["action"] for e in by_name["irq:softirq_entry"]}
    # The bytes: what the application wrote went into the stack once, reached b's receive
    # queue at least once, and one segment was sent twice.
    assert sum(e.fields["len"] for e in by_name["TCP_SENDMSG"]) == len(DATA)
    queued = [e for e in by_name["TCP_DATA_QUEUE"] if e.host == "b"]
    assert sum(e.fields["len"] for e in queued) >= len(DATA)
    assert {e.fields["sport"] for e in queued} == {PORT}  # the accepted socket's
    assert len(by_name["tcp:tcp_retransmit_skb"]) >= 1
    reasons = {e.fields["reason"] for e in by_name["skb:kfree_skb"]}
    assert {"NETFILTER_DROP", "NO_SOCKET"} <= reasons
    probes = [e for e in by_name["tcp:tcp_probe"] if e.host == "a"]
    assert probes and all(e.fields["snd_cwnd"] > 0 for e in probes)
    # tcp_probe fires as a segment arrives, before its ACK is processed: snd_una only grows,
    # and by the last ACK everything the application wrote has been sent.
    unas = [e.fields["snd_una"] for e in probes]
    assert unas == sorted(unas)
    assert (probes[-1].fields["snd_nxt"] - unas[0]) % 2**32 == len(DATA)


async def test_trace_filters_by_prefix_and_unsubscribes() -> None:
    net = pystack.Network(seed=1)
    a, b = net.add_host("a"), net.add_host("b")
    net.add_link(a, b)
    net_only: list = []
    everything: list = []
    async with net:
        stop = net.trace(net_only.append, match="net:")
        net.trace(everything.append)
        assert await a.ping("10.0.0.2") is not None
        stop()
        seen = len(net_only)
        assert await a.ping("10.0.0.2") is not None
    assert seen and len(net_only) == seen
    assert {e.name.split(":")[0] for e in net_only} == {"net"}
    assert len(everything) > seen


async def test_a_send_event_names_the_cpu_of_the_process_that_sends() -> None:
    # Two processes of a two-CPU host take turns sending: each EVENT_SOCK_SENDMSG must name
    # the sender's own CPU, not the one the previous system call ran on.
    net = pystack.Network(seed=1)
    a = net.add_host("a", cpus=2)
    events: list = []
    async with net:
        rx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await rx.bind(("127.0.0.1", PORT))
        async with a.process("one") as one, a.process("two") as two:
            assert one.cpu is not two.cpu
            senders = []
            for task in (one, two):
                token = current.set(task)
                try:
                    senders.append((task, a.socket(socket.AF_INET, socket.SOCK_DGRAM)))
                finally:
                    current.reset(token)
            net.trace(events.append, match="EVENT_SOCK_SENDMSG")
            cpus = []
            for task, tx in senders + senders:
                await tx.sendto(b"x", ("127.0.0.1", PORT))
                cpus.append(task.cpu.id)
    assert [e.cpu for e in events] == cpus == [one.cpu.id, two.cpu.id] * 2
