"""Output route lookup and its cache (pystack/net/ipv4/route.py), alone and under a socket."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import socket
from typing import AsyncIterator

import pytest
import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import ARP, Ether

from pystack.net.ipv4.fib import RTN_BROADCAST, RTN_LOCAL, RTN_UNICAST
from pystack.net.ipv4.route import RouteError, ip_route_output
from pystack.pcap import read_pcapng
from pystack.uapi.ethernet import mac_str

from nethelpers import lan, udp

IP_RECVERR = 11  # include/uapi/linux/in.h (not in Python's socket module)


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def ip_text(addr: int) -> str:
    return str(ipaddress.IPv4Address(addr))


# -- ip_route_output -------------------------------------------------------------------------------

async def test_an_on_link_destination_has_no_gateway():
    async with lan(1) as (net, a):
        rt = ip_route_output(a.net, ip("10.0.0.7"))
        assert (rt.dev.name, rt.gateway, rt.type, ip_text(rt.saddr)) == (
            "eth0", 0, RTN_UNICAST, "10.0.0.1")
        assert rt.nexthop(ip("10.0.0.7")) == ip("10.0.0.7")


async def test_a_gatewayed_destination_goes_to_the_gateway():
    async with lan(1) as (net, a):
        a.add_route("192.0.2.0/24", via="10.0.0.254")
        rt = ip_route_output(a.net, ip("192.0.2.1"))
        assert (rt.dev.name, ip_text(rt.gateway), ip_text(rt.saddr)) == (
            "eth0", "10.0.0.254", "10.0.0.1")
        assert rt.nexthop(ip("192.0.2.1")) == ip("10.0.0.254")


async def test_our_own_address_routes_through_loopback():
    async with lan(1) as (net, a):
        rt = ip_route_output(a.net, ip("10.0.0.1"))
        assert (rt.dev.name, rt.type, ip_text(rt.saddr)) == ("lo", RTN_LOCAL, "10.0.0.1")
        rt = ip_route_output(a.net, ip("127.1.2.3"))
        assert (rt.dev.name, rt.type, ip_text(rt.saddr)) == ("lo", RTN_LOCAL, "127.0.0.1")


async def test_the_subnet_broadcast_is_a_broadcast_route():
    async with lan(1) as (net, a):
        rt = ip_route_output(a.net, ip("10.0.0.255"))
        assert (rt.dev.name, rt.type, rt.gateway) == ("eth0", RTN_BROADCAST, 0)


async def test_the_limited_broadcast_has_no_gateway_even_by_the_default_route():
    async with lan(1) as (net, a):
        a.add_route("default", via="10.0.0.254")
        rt = ip_route_output(a.net, ip("255.255.255.255"))
        assert (rt.dev.name, rt.type, rt.gateway) == ("eth0", RTN_BROADCAST, 0)


async def test_no_match_is_enetunreach():
    async with lan(1) as (net, a):
        with pytest.raises(RouteError) as e:
            ip_route_output(a.net, ip("192.0.2.1"))
        assert e.value.errno == errno.ENETUNREACH


async def test_a_given_source_address_is_kept():
    async with lan(1) as (net, a):
        a.add_address("eth0", "10.0.0.100/24")
        rt = ip_route_output(a.net, ip("10.0.0.7"), ip("10.0.0.100"))
        assert ip_text(rt.saddr) == "10.0.0.100"


async def test_the_source_is_the_address_on_the_outgoing_subnet():
    async with lan(1) as (net, a):
        a.add_address("eth0", "192.168.1.1/24")
        assert ip_text(ip_route_output(a.net, ip("192.168.1.9")).saddr) == "192.168.1.1"
        assert ip_text(ip_route_output(a.net, ip("10.0.0.9")).saddr) == "10.0.0.1"


async def test_lookups_are_cached_until_the_fib_changes():
    async with lan(1) as (net, a):
        a.add_route("default", via="10.0.0.254")
        first = ip_route_output(a.net, ip("192.0.2.1"))
        assert ip_route_output(a.net, ip("192.0.2.1")) is first
        a.add_route("192.0.2.0/24", via="10.0.0.253")
        second = ip_route_output(a.net, ip("192.0.2.1"))
        assert second is not first and ip_text(second.gateway) == "10.0.0.253"
        a.del_route("192.0.2.0/24")
        assert ip_text(ip_route_output(a.net, ip("192.0.2.1")).gateway) == "10.0.0.254"


async def test_a_new_route_ends_enetunreach_at_once():
    async with lan(1) as (net, a):
        s = udp(a)
        with pytest.raises(OSError) as e:
            await s.sendto(b"x", ("192.0.2.1", 9))
        assert e.value.errno == errno.ENETUNREACH
        a.add_route("default", via="10.0.0.254")
        assert await s.sendto(b"x", ("192.0.2.1", 9)) == 1


async def test_a_deleted_route_fails_a_connected_socket_at_once():
    async with lan(1) as (net, a):
        a.add_route("192.0.2.0/24", via="10.0.0.254")
        s = udp(a)
        await s.connect(("192.0.2.1", 9))
        a.del_route("192.0.2.0/24")
        with pytest.raises(OSError) as e:
            await s.send(b"x")
        assert e.value.errno == errno.ENETUNREACH


def _udp_dst_macs(path) -> list[str]:
    """The destination MAC of each UDP frame a sent, in order."""
    out = []
    for p in read_pcapng(path):
        if p.interface_name == "a:eth0":
            frame = Ether(p.data)
            if UDP in frame and frame[IP].src == "10.0.0.1":
                out.append(frame.dst)
    return out


async def test_a_more_specific_route_takes_effect_for_a_connected_socket(tmp_path):
    # b and c stand in for two routers: only the frames' next hop (destination MAC) matters.
    path = tmp_path / "route.pcapng"
    async with lan(3) as (net, a, b, c):
        cap = net.capture(str(path))
        a.add_route("default", via="10.0.0.2")
        s = udp(a)
        await s.connect(("192.0.2.1", 9))
        await s.send(b"via b")
        await trio.sleep(1)
        a.add_route("192.0.2.0/24", via="10.0.0.3")
        await s.send(b"via c")
        await trio.sleep(1)
        cap.close()
        b_mac = mac_str(b.interface("eth0").dev_addr)
        c_mac = mac_str(c.interface("eth0").dev_addr)
    assert _udp_dst_macs(path) == [b_mac, c_mac]


# -- a gateway that does not answer ---------------------------------------------------------------

async def _send_via_silent_gateway(a, recverr: bool):
    a.add_route("192.0.2.0/24", via="10.0.0.99")  # on the subnet, but nobody has it
    s = udp(a)
    if recverr:
        s.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    await s.connect(("192.0.2.1", 9))
    await s.send(b"hello?")
    return s


async def test_a_silent_gateway_gives_the_connected_socket_ehostunreach():
    async with lan(2) as (net, a, b):
        s = await _send_via_silent_gateway(a, recverr=True)
        start = trio.current_time()
        with trio.fail_after(30), pytest.raises(OSError) as e:
            await s.recv(100)
        assert e.value.errno == errno.EHOSTUNREACH
        # three solicits, neigh.default.retrans_time (1 s) apart, then the queue is dropped
        assert trio.current_time() - start == pytest.approx(3.0)
        assert a.neighbour_state("10.0.0.99") == "FAILED"
        assert a.drops() == {"NEIGH_FAILED": 1}
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1


async def test_without_ip_recverr_the_host_unreachable_is_not_reported():
    # ICMP_HOST_UNREACH is a soft error (icmp_err_convert: fatal = 0); __udp4_lib_err reports
    # soft errors only to sockets with IP_RECVERR, connected or not.
    async with lan(2) as (net, a, b):
        s = await _send_via_silent_gateway(a, recverr=False)
        await trio.sleep(10)
        assert a.neighbour_state("10.0.0.99") == "FAILED"
        assert a.stats()["Icmp"]["InDestUnreachs"] == 1  # the local ICMP error was made
        assert s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        with pytest.raises(BlockingIOError):
            await s.recv(100, socket.MSG_DONTWAIT)


async def test_the_gateway_is_solicited_not_the_destination(tmp_path):
    path = tmp_path / "arp.pcapng"
    async with lan(2) as (net, a, b):
        cap = net.capture(str(path))
        await _send_via_silent_gateway(a, recverr=False)
        await trio.sleep(10)
        cap.close()
    targets = [Ether(p.data)[ARP].pdst for p in read_pcapng(path)
               if p.interface_name == "a:eth0" and ARP in Ether(p.data)]
    assert targets == ["10.0.0.99"] * 3


# -- path MTU exceptions (ip_rt_update_pmtu) ------------------------------------------------

@contextlib.asynccontextmanager
async def routed(n: int = 2) -> AsyncIterator[tuple]:
    """lan(n) with a's default route through b."""
    async with lan(n) as (net, a, b, *rest):
        a.add_route("default", via="10.0.0.2")
        yield (net, a, b, *rest)


async def test_a_learned_path_mtu_lasts_mtu_expires_then_the_device_mtu_is_back():
    from pystack.net.ipv4.route import ip_rt_update_pmtu
    async with routed() as (net, a, b):
        rt = ip_route_output(a.net, ip("192.0.2.7"))
        ip_rt_update_pmtu(rt, 1280)
        learned = trio.current_time()
        assert rt.dst_mtu() == 1280
        again = ip_route_output(a.net, ip("192.0.2.7"))
        assert again.dst_mtu() == 1280
        assert ip_route_output(a.net, ip("192.0.2.8")).dst_mtu() == 1500  # one destination
        await trio.sleep(0.25)
        assert str(a.routes("cache")) == (
            "192.0.2.7 via 10.0.0.2 dev eth0\n    cache expires 599sec mtu 1280")
        await trio.sleep(learned + 600 - trio.current_time() - 0.001)
        assert rt.dst_mtu() == 1280
        await trio.sleep(0.002)
        assert rt.dst_mtu() == 1500 and again.dst_mtu() == 1500
        assert str(a.routes("cache")) == "" and a.route_get("192.0.2.7").mtu is None


async def test_a_path_mtu_is_never_raised_and_never_below_min_pmtu():
    from pystack.net.ipv4.route import ip_rt_update_pmtu
    async with routed() as (net, a, b):
        rt = ip_route_output(a.net, ip("192.0.2.7"))
        ip_rt_update_pmtu(rt, 1600)
        assert rt.dst_mtu() == 1500 and str(a.routes("cache")) == ""
        ip_rt_update_pmtu(rt, 1280)
        ip_rt_update_pmtu(rt, 1400)  # bigger than what was learned: ignored
        assert rt.dst_mtu() == 1280
        ip_rt_update_pmtu(rt, 300)  # below net.ipv4.route.min_pmtu: 552, and locked
        assert rt.dst_mtu() == 552 and rt.mtu_locked
        assert str(a.route_get("192.0.2.7")).endswith(" mtu lock 552")
        ip_rt_update_pmtu(rt, 400)
        assert rt.dst_mtu() == 552
        a.set_sysctl("net.ipv4.route.mtu_expires", 30)
        rt2 = ip_route_output(a.net, ip("192.0.2.9"))
        ip_rt_update_pmtu(rt2, 1000)
        assert a.route_get("192.0.2.9").expires == 30
        await trio.sleep(31)
        assert rt2.dst_mtu() == 1500


async def test_route_get_prints_like_ip_route_get():
    async with routed() as (net, a, b):
        assert str(a.route_get("10.0.0.2")) == "10.0.0.2 dev eth0 src 10.0.0.1 uid 0\n    cache"
        assert str(a.route_get("192.0.2.1")) == (
            "192.0.2.1 via 10.0.0.2 dev eth0 src 10.0.0.1 uid 0\n    cache")
        assert str(a.route_get("10.0.0.1")) == (
            "local 10.0.0.1 dev lo src 10.0.0.1 uid 0\n    cache <local>")
        assert str(a.route_get("10.0.0.255")) == (
            "broadcast 10.0.0.255 dev eth0 src 10.0.0.1 uid 0\n    cache <local,brd>")
        a.add_route("198.51.100.0/24", via="10.0.0.2", mtu=1400)
        assert a.route_get("198.51.100.1").mtu == 1400
        with pytest.raises(ValueError, match="cache"):
            a.routes("nonsense")


async def test_exceptions_are_bounded():
    from pystack.net.ipv4 import fib as fibmod
    from pystack.net.ipv4.route import ip_rt_update_pmtu
    async with routed() as (net, a, b):
        limit = fibmod.FNHE_MAX
        fibmod.FNHE_MAX = 3
        try:
            for i in range(5):
                ip_rt_update_pmtu(ip_route_output(a.net, ip("192.0.2.0") + i), 1280)
        finally:
            fibmod.FNHE_MAX = limit
        assert [r.dst for r in a.routes("cache")] == ["192.0.2.2", "192.0.2.3", "192.0.2.4"]


async def test_a_dst_held_across_a_route_change_records_on_the_route_in_the_fib_now():
    from pystack.net.ipv4.route import ip_rt_update_pmtu
    async with routed() as (net, a, b):
        a.add_route("192.0.2.0/24", via="10.0.0.2")
        old = ip_route_output(a.net, ip("192.0.2.7"))
        a.del_route("192.0.2.0/24", via="10.0.0.2")  # gone: the default route carries it now
        ip_rt_update_pmtu(old, 1280)
        assert a.route_get("192.0.2.7").mtu == 1280
        a.del_route("default", via="10.0.0.2")
        assert str(a.routes("cache")) == ""  # learned on the default route, gone with it
