"""Segment bursts (pystack/drivers/net/nic.py, GsoBurst): a TCP GSO packet the emulated NIC
takes whole and the wire carries as one must change nothing anyone can see. Each scenario
runs twice, once with bursts and once with every packet cut into frames by software GSO, and
everything observable must agree: what the reader got and when, every counter of both hosts
(SNMP, netstat, softnet, devices, drops), every packet IP receives (bytes, checksum state,
GSO shape, truesize), the TCP states at the end, the switch's and the wires' counters.
"""

from __future__ import annotations

import socket

import pytest
import trio
import trio.testing

import pystack
from pystack.drivers.net import nic as nic_module
from pystack.net.core.netfilter import NF_ACCEPT, NF_INET_PRE_ROUTING, nf_register_hook

from nethelpers import (connected_pair, python_only, recv_until_eof, send_all, sk_of,
                        two_hosts)

patches_the_nic = python_only("turns bursts off and counts them by patching the NIC class")


def _tcp_state(sock) -> tuple:
    sk = sk_of(sock)
    return (sk.snd_cwnd, sk.snd_ssthresh, sk.srtt_us, sk.snd_una, sk.snd_nxt, sk.rcv_nxt,
            sk.total_retrans, sk.sk_wmem_queued)


async def _scenario(*, flows: int, size: int, rx_ring: int | None, reader_pause: float,
                    both_ways: bool, delay: float = 0.0, switch: bool | str = True,
                    mtu: int = 1500) -> dict:
    net = pystack.Network(seed=4)
    a, b = net.add_host("a"), net.add_host("b")
    if switch == "router":  # a .1 — .2 r .1 — .2 b: r forwards GRO's packets (GSO again)
        sw = None
        r = net.add_router("r")
        net.add_link(a, r, subnet="10.0.1.0/24")
        link = net.add_link(r, b, subnet="10.0.2.0/24", rx_ring=rx_ring)
        a.add_route("default", via="10.0.1.2")
        b.add_route("default", via="10.0.2.1")
    elif switch:
        sw = net.add_switch("sw0")
        net.add_link(a, sw, subnet="10.0.0.0/24", mtu=mtu)
        link = net.add_link(b, sw, subnet="10.0.0.0/24", rx_ring=rx_ring, mtu=mtu)
    else:
        sw = None
        link = net.add_link(b, a, subnet="10.0.0.0/24", rx_ring=rx_ring)  # b = .1, a = .2
    if delay:
        link.a_to_b.set(delay=delay)  # b → switch only: b's bursts go frame by frame
    timeline: list[tuple] = []
    states: list[tuple] = []
    packets: list[tuple] = []

    def record(skb, state) -> int:
        """Every packet IP receives on either host, as the stack sees it after GRO."""
        packets.append((skb.dev.nd_net.host.name, bytes(skb.buf[skb.data:skb.tail]),
                        skb.ip_summed, skb.csum_start - skb.data, skb.csum_offset,
                        skb.gso_size, skb.gso_segs, skb.truesize, skb.pkt_type))
        return NF_ACCEPT
    for h in (a, b):
        nf_register_hook(h.net, NF_INET_PRE_ROUTING, record)
    async with net:
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(8)
        pairs = []
        for _ in range(flows):
            cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
            await cli.connect((b.addresses("eth0")[0].split("/")[0], 80))
            conn, _ = await srv.accept()
            pairs.append((cli, conn))
        data = bytes(range(256)) * (size // 256)

        async def send(s) -> None:
            view = memoryview(data)
            while view:
                n = await s.send(view[:65536])
                view = view[n:]
            s.shutdown(socket.SHUT_WR)

        async def read(i: int, s) -> None:
            got = 0
            while chunk := await s.recv(65536):
                got += len(chunk)
                timeline.append((i, trio.current_time(), len(chunk)))
                if reader_pause:
                    await trio.sleep(reader_pause)
            assert got == len(data)

        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                for i, (cli, conn) in enumerate(pairs):
                    nursery.start_soon(send, cli)
                    nursery.start_soon(read, i, conn)
                    if both_ways:
                        nursery.start_soon(send, conn)
                        nursery.start_soon(read, 100 + i, cli)
        for cli, conn in pairs:
            states.append(_tcp_state(cli))
            states.append(_tcp_state(conn))
        end = trio.current_time()
    return {"packets": packets, "timeline": timeline, "states": states, "end": end,
            "hosts": {name: h.stats() for name, h in net.hosts.items()},
            "switch": (sw.forwarded, sw.flooded, sw.filtered) if sw else None,
            "ports": [(p.tx_frames, p.lost_frames) for link in net.links for p in (link.a, link.b)]}


SCENARIOS = {
    "one flow": dict(flows=1, size=3_000_000, rx_ring=None, reader_pause=0.0, both_ways=False),
    "three flows, bursts split by the poll's budget": dict(
        flows=3, size=1_000_000, rx_ring=None, reader_pause=0.0, both_ways=False),
    "both ways at once": dict(flows=1, size=1_000_000, rx_ring=None, reader_pause=0.0,
                              both_ways=True),
    "a small rx ring that overflows": dict(flows=2, size=1_000_000, rx_ring=64,
                                           reader_pause=0.0, both_ways=False),
    "a slow reader": dict(flows=1, size=500_000, rx_ring=None, reader_pause=0.002,
                          both_ways=False),
    "two hosts on one wire": dict(flows=2, size=1_000_000, rx_ring=None, reader_pause=0.0,
                                  both_ways=True, switch=False),
    "jumbo frames (larger than the 2 KiB rx buffers)": dict(
        flows=1, size=2_000_000, rx_ring=None, reader_pause=0.0, both_ways=False, mtu=9000),
    "through a router": dict(flows=2, size=1_000_000, rx_ring=None, reader_pause=0.0,
                             both_ways=True, switch="router"),
    "a delayed wire after the switch": dict(flows=2, size=1_000_000, rx_ring=None,
                                            reader_pause=0.0, both_ways=True, delay=0.001),
}


@pytest.mark.parametrize("name", SCENARIOS)
@patches_the_nic
def test_bursts_change_nothing_observable(name, monkeypatch) -> None:
    def run(**kwargs) -> dict:
        return trio.run(lambda: _scenario(**kwargs),
                        clock=trio.testing.MockClock(autojump_threshold=0))

    taken = []
    real = nic_module.EthernetNic._receive_run
    monkeypatch.setattr(nic_module.EthernetNic, "_receive_run",
                        lambda self, napi, burst, count, last:
                        taken.append((count, last)) or real(self, napi, burst, count, last))
    with_bursts = run(**SCENARIOS[name])
    assert taken, "the scenario never took the burst path"
    if name.startswith("three flows"):
        assert any(not last for _, last in taken)  # a burst was cut by the poll's budget
    monkeypatch.setattr(nic_module.EthernetNic, "xmit_gso_segments", lambda self, skb: None)
    frame_by_frame = run(**SCENARIOS[name])
    for key in with_bursts:
        assert with_bursts[key] == frame_by_frame[key], key


async def test_a_bulk_transfer_between_hosts_crosses_the_wire_in_bursts() -> None:
    # No patching: this one runs under the compiled build too, where a driver method
    # overridden the wrong way once left every GSO packet to software segmentation.
    async with two_hosts() as (net, a, b, link):
        cli, srv = await connected_pair(a, b, "10.0.0.2")
        data = bytes(range(256)) * 1024
        got = bytearray()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(recv_until_eof, srv, got)
            await send_all(cli, data)
            cli.close()
        assert bytes(got) == data
        nic = a.net.dev_base["eth0"]
        assert nic.tx_bursts > 0 and nic.stats.tx_packets > 180  # 256 KiB in 1448-byte frames
