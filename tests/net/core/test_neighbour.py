"""The neighbour state machine (pystack/net/core/neighbour.py) driven by ARP
(pystack/net/ipv4/arp.py), on three hosts sharing a switch.

Reference: net/core/neighbour.c (__neigh_event_send, neigh_timer_handler, neigh_probe,
neigh_invalidate, neigh_update) and net/ipv4/arp.c (arp_solicit, arp_process,
arp_error_report). Timer values are the sysctl defaults of Documentation/networking/
ip-sysctl.rst: retrans_time 1 s, delay_first_probe_time 5 s, base_reachable_time 30 s,
mcast_solicit = ucast_solicit = 3.
"""

from __future__ import annotations

import errno
import itertools
import socket

import pytest
import trio
from scapy.layers.l2 import ARP, Ether

import pystack
from pystack.net.core.neighbour import neigh_confirm
from pystack.uapi.ip import ip_int
from pystack.uapi.ethernet import mac_str

DELAY = 0.001  # one way, per link: host → switch → host is 2 ms
HOP2 = 2 * DELAY
IP_RECVERR = getattr(socket, "IP_RECVERR", 11)  # include/uapi/linux/in.h


def mac(nic) -> str:
    return mac_str(nic.dev_addr)


def three_hosts(net: pystack.Network, delay: float = DELAY):
    a, b, c = (net.add_host(n) for n in "abc")
    sw = net.add_switch("sw0")
    links = [net.add_link(a, sw, subnet="10.0.0.0/24"), net.add_link(b, sw),
             net.add_link(c, sw)]
    for link in links:
        link.set(delay=delay)
    return a, b, c, links


def arp_tx(host, dev: str = "eth0") -> list[tuple[float, ARP, str]]:
    """A tap on `dev`'s transmit side: (time, ARP layer, Ethernet destination) per ARP sent."""
    sent: list[tuple[float, ARP, str]] = []

    def tap(skb, _dev, direction):
        if direction == "tx":
            frame = Ether(bytes(skb.buf[skb.data:skb.tail]))
            if ARP in frame:
                sent.append((trio.current_time(), frame[ARP], frame.dst))

    host.interface(dev).ptype_all.append(tap)
    return sent


def requests(arps):
    return [(t, arp, dst) for t, arp, dst in arps if arp.op == 1]


def neigh_events(net: pystack.Network, host: str) -> list[tuple[float, str, str, str]]:
    events: list[tuple[float, str, str, str]] = []
    net.trace(lambda ev: events.append((ev.time, ev.fields["addr"], ev.fields["old"],
                                        ev.fields["new"])) if ev.host == host else None,
              match="neigh:neigh_update")
    return events


def entry(host, addr: str, dev: str = "eth0"):
    """The `struct neighbour` for `addr` on `dev`, or None."""
    return host.net.ipv4.arp_tbl.lookup(ip_int(addr), host.interface(dev))


async def resolve(a, addr: str) -> None:
    """a resolves `addr` (one ping) and the entry is REACHABLE."""
    await a.ping(addr)
    assert a.neighbour_state(addr) == "REACHABLE"


# -- first contact -------------------------------------------------------------------------

async def test_first_datagram_waits_for_arp_and_is_delivered() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net)
        server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("0.0.0.0", 9))
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = trio.current_time()
        await client.sendto(b"first", ("10.0.0.2", 9))
        n = entry(a, "10.0.0.2")
        assert n.state_name == "INCOMPLETE"
        assert len(n.arp_queue) == 1  # the datagram waits for the reply
        data, peer = await server.recvfrom(100)
        assert data == b"first" and peer[0] == "10.0.0.1"
        # request to b, reply to a, then the queued datagram: three one-way trips
        assert trio.current_time() - t0 == pytest.approx(3 * HOP2)
        assert a.drops() == {} and b.drops() == {}
        assert a.neighbour_state("10.0.0.2") == "REACHABLE"
        assert len(n.arp_queue) == 0
        # b learned a from the request: STALE until used (neigh_event_ns)
        assert b.neighbour_state("10.0.0.1") == "STALE"


async def test_queued_datagrams_go_out_in_order_once_resolved() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net)
        server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("0.0.0.0", 9))
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(5):
            await client.sendto(b"%d" % i, ("10.0.0.2", 9))
        assert len(entry(a, "10.0.0.2").arp_queue) == 5
        assert [(await server.recvfrom(10))[0] for _ in range(5)] == [b"0", b"1", b"2", b"3",
                                                                    b"4"]
        assert a.drops() == {}


async def test_neighbour_queue_is_bounded_by_unres_qlen_bytes() -> None:
    # __neigh_event_send drops the oldest queued packets (NEIGH_QUEUEFULL) to keep the queue's
    # truesize under unres_qlen_bytes (212992).
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
        for i in range(200):
            await client.sendto(b"%03d" % i + b"." * 997, ("10.0.0.99", 9))
        n = entry(a, "10.0.0.99")
        queued = len(n.arp_queue)
        assert n.arp_queue_len_bytes <= a.sysctl.neigh_unres_qlen_bytes
        assert sum(skb.truesize for skb in n.arp_queue) == n.arp_queue_len_bytes
        assert 0 < queued < 200
        assert a.drops() == {"NEIGH_QUEUEFULL": 200 - queued}
        # the newest stay: the last datagram sent is the queue's tail
        tail = n.arp_queue[-1]
        assert bytes(tail.buf[tail.transport_header + 8:tail.transport_header + 11]) == b"199"
        await trio.sleep(5)
        assert a.drops() == {"NEIGH_QUEUEFULL": 200 - queued, "NEIGH_FAILED": queued}


async def test_ping_between_every_pair() -> None:
    net = pystack.Network(seed=11)
    async with net:
        hosts = three_hosts(net)[:3]
        for x, y in itertools.permutations(hosts, 2):
            rtt = await x.ping(y.address())
            # 2 hops each way, plus one ARP exchange if x had nothing for y yet
            assert rtt == pytest.approx(2 * HOP2) or rtt == pytest.approx(4 * HOP2)
        for x, y in itertools.permutations(hosts, 2):
            row = next(r for r in x.neighbours() if r.address == y.address())
            assert row.lladdr == mac(y.interface("eth0"))
            assert row.state in ("REACHABLE", "STALE", "DELAY")
        assert all(h.drops() == {} for h in hosts)
        assert all(h.stats()["Icmp"]["InEchos"] == 2 for h in hosts)


# -- REACHABLE → STALE --------------------------------------------------------------------------

async def test_reachable_goes_stale_after_reachable_time() -> None:
    # neigh_rand_reach_time: reachable_time is uniform in [base/2, 3*base/2).
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net)
        base = 10.0
        a.set_sysctl("net.ipv4.neigh.default.base_reachable_time", base)
        events = neigh_events(net, "a")
        await resolve(a, "10.0.0.2")
        confirmed = entry(a, "10.0.0.2").confirmed
        await trio.sleep_until(confirmed + base / 2 - 0.01)
        assert a.neighbour_state("10.0.0.2") == "REACHABLE"  # never before base/2
        await trio.sleep_until(confirmed + 1.5 * base + 0.1)
        assert a.neighbour_state("10.0.0.2") == "STALE"
        stale_at = [t for t, addr, old, new in events
                    if addr == "10.0.0.2" and (old, new) == ("REACHABLE", "STALE")]
        assert len(stale_at) == 1
        assert base / 2 <= stale_at[0] - confirmed < 1.5 * base
        # at the randomised reachable_time the table drew; the timer, due exactly then, finds
        # `now <= confirmed + reachable_time` still true and looks again HZ/100 later, as
        # Linux's neigh_timer_handler does
        reach = a.net.ipv4.arp_tbl._reachable_time
        assert stale_at[0] - confirmed == pytest.approx(reach + 0.01)


async def test_default_base_reachable_time_is_30_seconds() -> None:
    net = pystack.Network(seed=12)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        await resolve(a, "10.0.0.3")
        confirmed = entry(a, "10.0.0.3").confirmed
        await trio.sleep_until(confirmed + 15 - 0.01)
        assert a.neighbour_state("10.0.0.3") == "REACHABLE"
        await trio.sleep_until(confirmed + 45 + 0.1)
        assert a.neighbour_state("10.0.0.3") == "STALE"


async def stale(a, addr: str) -> None:
    await resolve(a, addr)
    await trio.sleep(50)  # past 3/2 of the default 30 s
    assert a.neighbour_state(addr) == "STALE"


async def test_stale_used_goes_delay_probe_reachable_by_unicast_probe() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net)
        server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("0.0.0.0", 9))
        await stale(a, "10.0.0.2")
        events = neigh_events(net, "a")
        arps = arp_tx(a)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = trio.current_time()
        await client.sendto(b"x", ("10.0.0.2", 9))
        assert a.neighbour_state("10.0.0.2") == "DELAY"
        # A STALE entry still has an address: the datagram goes at once.
        assert (await server.recvfrom(10))[0] == b"x"
        assert trio.current_time() - t0 == pytest.approx(HOP2)
        await trio.sleep_until(t0 + 5 + 1)
        assert a.neighbour_state("10.0.0.2") == "REACHABLE"
        assert [(old, new) for _t, _a, old, new in events] == [
            ("STALE", "DELAY"), ("DELAY", "PROBE"), ("PROBE", "REACHABLE")]
        assert events[1][0] == pytest.approx(t0 + 5)  # delay_first_probe_time
        assert events[2][0] == pytest.approx(t0 + 5 + 2 * HOP2)
        # one probe, unicast to the address we hold
        assert len(requests(arps)) == 1
        t, arp, dst = requests(arps)[0]
        assert t == pytest.approx(t0 + 5)
        assert arp.op == 1 and arp.pdst == "10.0.0.2"
        assert dst == mac(b.interface("eth0"))


async def test_delay_returns_to_reachable_on_confirmation_without_probing() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net)
        await stale(a, "10.0.0.2")
        arps = arp_tx(a)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = trio.current_time()
        await client.sendto(b"x", ("10.0.0.2", 9))
        assert a.neighbour_state("10.0.0.2") == "DELAY"
        await trio.sleep(1)
        neigh_confirm(entry(a, "10.0.0.2"))  # what TCP does on a new ACK
        await trio.sleep_until(t0 + 5 + 0.5)
        assert a.neighbour_state("10.0.0.2") == "REACHABLE"
        assert requests(arps) == []  # (b's own probe of a draws a reply from a)


async def test_probe_unanswered_sends_three_unicast_probes_then_fails() -> None:
    # neigh_probe calls solicit before counting the probe, so PROBE's ucast_solicit (3)
    # probes are all unicast (arp_solicit: probes - ucast_solicit < 0); mcast_resolicit 0.
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, links = three_hosts(net)
        await stale(a, "10.0.0.2")
        links[1].set(loss=1.0)  # b goes silent
        arps = arp_tx(a)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t0 = trio.current_time()
        await client.sendto(b"x", ("10.0.0.2", 9))
        await trio.sleep(20)
        assert [t - t0 for t, _arp, _dst in requests(arps)] == pytest.approx([5, 6, 7])
        assert {dst for _t, _arp, dst in requests(arps)} == {mac(b.interface("eth0"))}
        assert a.neighbour_state("10.0.0.2") == "FAILED"


# -- unknown destination ------------------------------------------------------------------------

async def test_unknown_destination_three_solicits_then_queued_packets_dropped() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        arps = arp_tx(a)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.connect(("10.0.0.99", 9))
        t0 = trio.current_time()
        for i in range(3):
            await client.send(b"%d" % i)
        assert len(entry(a, "10.0.0.99").arp_queue) == 3
        await trio.sleep(2.5)
        assert a.neighbour_state("10.0.0.99") == "INCOMPLETE"
        await trio.sleep(1)
        assert a.neighbour_state("10.0.0.99") == "FAILED"
        assert [t - t0 for t, _arp, _dst in arps] == pytest.approx([0, 1, 2])
        assert all(dst == "ff:ff:ff:ff:ff:ff" for _t, _arp, dst in arps)
        assert all(arp.op == 1 and arp.pdst == "10.0.0.99" and arp.psrc == "10.0.0.1"
                   for _t, arp, _dst in arps)
        assert a.drops() == {"NEIGH_FAILED": 3}
        assert len(entry(a, "10.0.0.99").arp_queue) == 0
        # each dropped datagram is reported with a local ICMP host unreachable
        assert a.stats()["Icmp"]["OutDestUnreachs"] == 3
        assert a.stats()["Icmp"]["InDestUnreachs"] == 3
        assert a.stats()["Icmp"]["OutRateLimitHost"] == 0  # through lo: not limited


async def test_unknown_destination_ping_raises_ehostunreach() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        t0 = trio.current_time()
        with pytest.raises(OSError) as e:
            await a.ping("10.0.0.99", timeout=10)
        assert e.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() - t0 == pytest.approx(3)
        assert a.drops() == {"NEIGH_FAILED": 1}


async def test_unknown_destination_connected_udp_with_recverr_gets_ehostunreach() -> None:
    # arp_error_report → ipv4_link_failure → icmp_send(HOST_UNREACH) to ourselves, through
    # lo; __udp4_lib_err sets sk_err = EHOSTUNREACH. icmp_err_convert marks HOST_UNREACH as
    # not fatal, so Linux reports it only to a socket with IP_RECVERR (as ping has).
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        await client.connect(("10.0.0.99", 9))
        await client.send(b"hello")
        with pytest.raises(OSError) as e:
            await client.recv(100)
        assert e.value.errno == errno.EHOSTUNREACH
        assert trio.current_time() == pytest.approx(3)
        # reported once (sock_error clears it); the next send is accepted
        assert await client.send(b"again") == 5
        await trio.sleep(5)
        with pytest.raises(OSError) as e:
            await client.send(b"third")
        assert e.value.errno == errno.EHOSTUNREACH


async def test_unknown_destination_connected_udp_without_recverr_sees_no_error() -> None:
    # The same ICMP host unreachable, not fatal (icmp_err_convert[1].fatal == 0): without
    # IP_RECVERR, __udp4_lib_err ignores it, even on a connected socket.
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net)
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await client.connect(("10.0.0.99", 9))
        await client.send(b"hello")
        await trio.sleep(5)
        assert a.drops() == {"NEIGH_FAILED": 1}
        assert client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        assert await client.send(b"again") == 5


# -- ARP requests --------------------------------------------------------------------------------

STRANGER_MAC = "02:00:00:00:00:50"


def arp_request(target: str, sender: str = "10.0.0.50") -> bytearray:
    return bytearray(bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src=STRANGER_MAC)
                           / ARP(op=1, hwsrc=STRANGER_MAC, psrc=sender,
                                 hwdst="00:00:00:00:00:00", pdst=target)))


async def test_request_for_our_address_learns_sender_stale_and_is_answered() -> None:
    net = pystack.Network(seed=11)
    async with net:
        _a, b, _c, _links = three_hosts(net)
        arps = arp_tx(b)
        b.interface("eth0").dma_rx(arp_request("10.0.0.2"))
        await trio.sleep(0.001)
        row = next(r for r in b.neighbours() if r.address == "10.0.0.50")
        assert (row.state, row.lladdr, row.dev) == ("STALE", STRANGER_MAC, "eth0")
        assert len(arps) == 1
        _t, reply, dst = arps[0]
        assert dst == STRANGER_MAC
        assert reply.op == 2
        assert (reply.hwsrc, reply.psrc) == (mac(b.interface("eth0")), "10.0.0.2")
        assert (reply.hwdst, reply.pdst) == (STRANGER_MAC, "10.0.0.50")


async def test_request_for_another_address_is_ignored() -> None:
    net = pystack.Network(seed=11)
    async with net:
        _a, b, _c, _links = three_hosts(net)
        arps = arp_tx(b)
        b.interface("eth0").dma_rx(arp_request("10.0.0.77"))
        await trio.sleep(0.001)
        assert requests(arps) == []  # (b's own probe of a draws a reply from a)
        assert b.neighbour_state("10.0.0.50") is None


async def test_unsolicited_reply_creates_no_entry() -> None:
    # arp_accept = 0: a reply (or gratuitous ARP) updates only entries we already have.
    net = pystack.Network(seed=11)
    async with net:
        _a, b, _c, _links = three_hosts(net)
        reply = bytes(Ether(dst=mac(b.interface("eth0")), src=STRANGER_MAC)
                      / ARP(op=2, hwsrc=STRANGER_MAC, psrc="10.0.0.50",
                            hwdst=mac(b.interface("eth0")), pdst="10.0.0.2"))
        b.interface("eth0").dma_rx(bytearray(reply))
        await trio.sleep(0.001)
        assert b.neighbour_state("10.0.0.50") is None


IMPOSTOR_MAC = "02:00:00:00:00:66"


def arp_reply_to(host, sender_ip: str, sender_mac: str) -> bytearray:
    ours = mac(host.interface("eth0"))
    return bytearray(bytes(Ether(dst=ours, src=sender_mac)
                           / ARP(op=2, hwsrc=sender_mac, psrc=sender_ip, hwdst=ours,
                                 pdst=host.address())))


async def test_a_second_reply_within_locktime_does_not_replace_the_address() -> None:
    # arp_process: override only once neigh.locktime (1 s) has passed since the entry was
    # updated, so of several replies back to back the first wins.
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net, delay=0.0)
        await resolve(a, "10.0.0.2")
        a.interface("eth0").dma_rx(arp_reply_to(a, "10.0.0.2", IMPOSTOR_MAC))
        await trio.sleep(0.5)
        assert entry(a, "10.0.0.2").ha == b.interface("eth0").dev_addr
        await trio.sleep(1)
        a.interface("eth0").dma_rx(arp_reply_to(a, "10.0.0.2", IMPOSTOR_MAC))
        await trio.sleep(0.01)
        row = next(r for r in a.neighbours() if r.address == "10.0.0.2")
        assert (row.lladdr, row.state) == (IMPOSTOR_MAC, "REACHABLE")


async def test_overheard_request_with_a_new_address_replaces_it_as_stale() -> None:
    # A request (not for us) from a known neighbour updates its entry, STALE: requests do
    # not assert reachability.
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net, delay=0.0)
        await resolve(a, "10.0.0.2")
        await trio.sleep(2)
        a.interface("eth0").dma_rx(bytearray(bytes(
            Ether(dst="ff:ff:ff:ff:ff:ff", src=IMPOSTOR_MAC)
            / ARP(op=1, hwsrc=IMPOSTOR_MAC, psrc="10.0.0.2", pdst="10.0.0.3"))))
        await trio.sleep(0.01)
        row = next(r for r in a.neighbours() if r.address == "10.0.0.2")
        assert (row.lladdr, row.state) == (IMPOSTOR_MAC, "STALE")


async def test_gratuitous_arp_overrides_within_locktime() -> None:
    net = pystack.Network(seed=11)
    async with net:
        a, _b, _c, _links = three_hosts(net, delay=0.0)
        await resolve(a, "10.0.0.2")
        a.interface("eth0").dma_rx(bytearray(bytes(
            Ether(dst="ff:ff:ff:ff:ff:ff", src=IMPOSTOR_MAC)
            / ARP(op=1, hwsrc=IMPOSTOR_MAC, psrc="10.0.0.2", pdst="10.0.0.2"))))
        await trio.sleep(0.01)
        row = next(r for r in a.neighbours() if r.address == "10.0.0.2")
        assert (row.lladdr, row.state) == (IMPOSTOR_MAC, "STALE")


async def test_repeated_identical_replies_do_not_extend_locktime() -> None:
    # neigh_update moves `updated` only when the state or address changes: b's own replies
    # repeating its address, every half second, do not keep the impostor locked out.
    net = pystack.Network(seed=11)
    async with net:
        a, b, _c, _links = three_hosts(net, delay=0.0)
        await resolve(a, "10.0.0.2")
        for _ in range(3):
            await trio.sleep(0.5)
            a.interface("eth0").dma_rx(arp_reply_to(a, "10.0.0.2", mac(b.interface("eth0"))))
        await trio.sleep(0.01)
        a.interface("eth0").dma_rx(arp_reply_to(a, "10.0.0.2", IMPOSTOR_MAC))
        await trio.sleep(0.01)
        assert entry(a, "10.0.0.2").ha == bytes.fromhex(IMPOSTOR_MAC.replace(":", ""))
