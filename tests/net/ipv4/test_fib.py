"""The FIB (pystack/net/ipv4/fib.py): longest-prefix match, metrics, the local and main tables,
the routes an address brings, and how `host.routes()` prints them (as `ip route` does).
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
from typing import AsyncIterator

import pytest

import pystack
from pystack.net.ipv4.devinet import RT_SCOPE_HOST, RT_SCOPE_LINK
from pystack.net.ipv4.fib import (RT_TABLE_LOCAL, RT_TABLE_MAIN, RTN_BROADCAST, RTN_LOCAL,
                                  RTN_MULTICAST, RTN_UNICAST, RTPROT_KERNEL, Fib, FibAlias,
                                  FibTable, inet_addr_type)

from nethelpers import python_only

stand_in_devices = python_only("the FIB is given stand-in devices")

IFF_UP = 1


class Dev:
    """Enough of a net_device for the FIB: a name and its flags."""

    def __init__(self, name: str, up: bool = True):
        self.name = name
        self.flags = IFF_UP if up else 0


ETH0, ETH1 = Dev("eth0"), Dev("eth1")


def ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def route(prefix: str, dev=ETH0, via: str | None = None, metric: int = 0,
          type_: int = RTN_UNICAST, table: int = RT_TABLE_MAIN) -> FibAlias:
    net = ipaddress.IPv4Network(prefix)
    return FibAlias(int(net.network_address), net.prefixlen, type_, dev,
                    gateway=ip(via) if via else 0, metric=metric, table=table)


def gateway_of(fa: FibAlias | None) -> str | None:
    return None if fa is None or not fa.gateway else str(ipaddress.IPv4Address(fa.gateway))


# -- one table -----------------------------------------------------------------------------------

@stand_in_devices
def test_longest_prefix_wins():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.8"))
    t.insert(route("10.1.0.0/16", via="1.0.0.16"))
    t.insert(route("10.1.2.0/24", via="1.0.0.24"))
    assert gateway_of(t.lookup(ip("10.1.2.3"))) == "1.0.0.24"
    assert gateway_of(t.lookup(ip("10.1.3.3"))) == "1.0.0.16"
    assert gateway_of(t.lookup(ip("10.2.0.1"))) == "1.0.0.8"
    assert t.lookup(ip("11.0.0.1")) is None


@stand_in_devices
def test_insertion_order_does_not_matter():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.1.2.0/24", via="1.0.0.24"))
    t.insert(route("0.0.0.0/0", via="1.0.0.0"))
    t.insert(route("10.0.0.0/8", via="1.0.0.8"))
    assert gateway_of(t.lookup(ip("10.1.2.3"))) == "1.0.0.24"
    assert gateway_of(t.lookup(ip("10.9.9.9"))) == "1.0.0.8"


@stand_in_devices
def test_a_host_route_beats_its_subnet():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/24", via="1.0.0.24"))
    t.insert(route("10.0.0.7/32", via="1.0.0.32"))
    assert gateway_of(t.lookup(ip("10.0.0.7"))) == "1.0.0.32"
    assert gateway_of(t.lookup(ip("10.0.0.8"))) == "1.0.0.24"


@stand_in_devices
def test_the_lower_metric_wins_whatever_the_order():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.100", metric=100))
    t.insert(route("10.0.0.0/8", via="1.0.0.10", metric=10))
    t.insert(route("10.0.0.0/8", via="1.0.0.50", metric=50))
    assert gateway_of(t.lookup(ip("10.0.0.1"))) == "1.0.0.10"


@stand_in_devices
def test_a_longer_prefix_beats_a_lower_metric():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.8", metric=0))
    t.insert(route("10.1.0.0/16", via="1.0.0.16", metric=1000))
    assert gateway_of(t.lookup(ip("10.1.0.1"))) == "1.0.0.16"


@stand_in_devices
def test_the_default_route_catches_the_rest():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/24"))
    t.insert(route("0.0.0.0/0", via="10.0.0.254"))
    assert gateway_of(t.lookup(ip("192.0.2.1"))) == "10.0.0.254"
    assert gateway_of(t.lookup(ip("255.255.255.255"))) == "10.0.0.254"
    assert gateway_of(t.lookup(ip("10.0.0.9"))) is None


@stand_in_devices
def test_a_route_through_a_device_that_is_down_is_skipped():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", dev=ETH1, via="1.0.0.1", metric=1))
    t.insert(route("10.0.0.0/8", dev=Dev("eth9", up=False), via="1.0.0.9", metric=0))
    assert gateway_of(t.lookup(ip("10.0.0.1"))) == "1.0.0.1"


@stand_in_devices
def test_an_identical_route_cannot_be_added_twice():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.1"))
    with pytest.raises(FileExistsError):
        t.insert(route("10.0.0.0/8", via="1.0.0.1"))
    t.insert(route("10.0.0.0/8", via="1.0.0.1", metric=5))  # another metric is another route
    t.insert(route("10.0.0.0/8", via="1.0.0.2"))  # the kernel's own routes may share a metric


@stand_in_devices
def test_an_exclusive_insert_refuses_any_route_of_the_same_prefix_and_metric():
    # fib_table_insert with NLM_F_EXCL (`ip route add`): same prefix, tos and priority → EEXIST.
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.1"))
    with pytest.raises(FileExistsError):
        t.insert(route("10.0.0.0/8", dev=ETH1, via="1.0.0.2"), excl=True)
    t.insert(route("10.0.0.0/8", via="1.0.0.2", metric=1), excl=True)
    assert len(t.routes()) == 2


@stand_in_devices
def test_a_refused_insert_leaves_nothing_behind():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.1"))
    with pytest.raises(FileExistsError):
        t.insert(route("10.0.0.0/8", via="1.0.0.1"))
    t.delete(ip("10.0.0.0"), 8)
    assert t.routes() == [] and t.lookup(ip("10.0.0.1")) is None


@stand_in_devices
def test_delete_removes_the_matching_route_only():
    t = FibTable(RT_TABLE_MAIN)
    t.insert(route("10.0.0.0/8", via="1.0.0.1", metric=1))
    t.insert(route("10.0.0.0/8", via="1.0.0.2", metric=2))
    t.delete(ip("10.0.0.0"), 8, gateway=ip("1.0.0.1"))
    assert gateway_of(t.lookup(ip("10.0.0.1"))) == "1.0.0.2"
    t.delete(ip("10.0.0.0"), 8)
    assert t.lookup(ip("10.0.0.1")) is None
    assert t.routes() == []
    with pytest.raises(LookupError):
        t.delete(ip("10.0.0.0"), 8)


def test_routes_lists_default_first_then_by_address_longer_prefix_first():
    t = FibTable(RT_TABLE_MAIN)
    for r in (route("192.168.0.0/16"), route("10.0.0.0/8"), route("0.0.0.0/0", via="10.0.0.1"),
              route("10.0.0.0/24")):
        t.insert(r)
    assert [f"{r.dst >> 24}/{r.prefixlen}" for r in t.routes()] == [
        "0/0", "10/24", "10/8", "192/16"]


# -- the two tables --------------------------------------------------------------------------------

@stand_in_devices
def test_the_local_table_is_searched_before_main():
    fib = Fib()
    fib.insert(route("10.0.0.1/32", type_=RTN_LOCAL, table=RT_TABLE_LOCAL))
    fib.insert(route("10.0.0.0/24"))
    fib.insert(route("10.0.0.1/32", via="10.0.0.254"))  # even a longer-or-equal main route
    assert fib.lookup(ip("10.0.0.1")).type == RTN_LOCAL
    assert fib.lookup(ip("10.0.0.2")).type == RTN_UNICAST


def test_every_change_bumps_the_generation():
    fib = Fib()
    g0 = fib.genid
    fib.insert(route("10.0.0.0/24"))
    assert fib.genid == g0 + 1
    fib.delete(RT_TABLE_MAIN, ip("10.0.0.0"), 24)
    assert fib.genid == g0 + 2


# -- a host's routes ------------------------------------------------------------------------------

@contextlib.asynccontextmanager
async def lan() -> AsyncIterator[tuple]:
    """Hosts a (10.0.0.1) and b (10.0.0.2) on switch sw0."""
    net = pystack.Network(seed=7)
    a, b = net.add_host("a"), net.add_host("b")
    sw = net.add_switch("sw0")
    net.add_link(a, sw, subnet="10.0.0.0/24")
    net.add_link(b, sw)
    async with net:
        yield net, a, b


async def test_an_address_brings_its_connected_route():
    async with lan() as (net, a, b):
        assert str(a.routes()) == "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1"
        [r] = a.routes()
        assert (r.dev.name, r.scope, r.protocol, r.gateway) == ("eth0", RT_SCOPE_LINK,
                                                                RTPROT_KERNEL, 0)


async def test_an_address_brings_local_and_broadcast_routes():
    # What `ip route show table local` printed on Linux 6.18 for the same addresses (no
    # network-address broadcast route since 5.x).
    async with lan() as (net, a, b):
        assert str(a.routes("local")).splitlines() == [
            "local 10.0.0.1 dev eth0 proto kernel scope host src 10.0.0.1",
            "broadcast 10.0.0.255 dev eth0 proto kernel scope link src 10.0.0.1",
            "local 127.0.0.0/8 dev lo proto kernel scope host src 127.0.0.1",
            "local 127.0.0.1 dev lo proto kernel scope host src 127.0.0.1",
            "broadcast 127.255.255.255 dev lo proto kernel scope link src 127.0.0.1",
        ]


async def test_each_added_address_brings_its_own_routes():
    async with lan() as (net, a, b):
        a.add_address("eth0", "192.168.5.1/24")
        a.add_address("eth0", "172.16.0.1/31")  # point-to-point: no broadcast
        main = str(a.routes()).splitlines()
        assert "192.168.5.0/24 dev eth0 proto kernel scope link src 192.168.5.1" in main
        assert "172.16.0.0/31 dev eth0 proto kernel scope link src 172.16.0.1" in main
        local = str(a.routes("local"))
        assert "local 192.168.5.1 dev eth0" in local
        assert "broadcast 192.168.5.255 dev eth0" in local
        assert "broadcast 172.16.0.1 " not in local
        assert a.addresses("eth0") == ["10.0.0.1/24", "192.168.5.1/24", "172.16.0.1/31"]


async def test_gateway_routes_print_like_ip_route():
    async with lan() as (net, a, b):
        a.add_route("default", via="10.0.0.254")
        a.add_route("192.168.0.0/16", via="10.0.0.2", metric=100)
        a.add_route("172.16.0.0/12", dev="eth0")
        assert str(a.routes()).splitlines() == [
            "default via 10.0.0.254 dev eth0",
            "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1",
            "172.16.0.0/12 dev eth0 scope link",
            "192.168.0.0/16 via 10.0.0.2 dev eth0 metric 100",
        ]


async def test_del_route_removes_it_and_a_missing_one_is_esrch():
    async with lan() as (net, a, b):
        a.add_route("192.168.0.0/16", via="10.0.0.2")
        a.del_route("192.168.0.0/16")
        assert "192.168" not in str(a.routes())
        with pytest.raises(OSError) as e:
            a.del_route("192.168.0.0/16")
        assert e.value.errno == errno.ESRCH


async def test_adding_an_existing_route_is_eexist():
    async with lan() as (net, a, b):
        a.add_route("192.168.0.0/16", via="10.0.0.2")
        with pytest.raises(OSError) as e:
            a.add_route("192.168.0.0/16", via="10.0.0.2")
        assert e.value.errno == errno.EEXIST


async def test_ip_route_add_of_the_same_prefix_and_metric_via_another_gateway_is_eexist():
    # As `ip route add` on Linux: NLM_F_EXCL refuses it (`ip route append` would not).
    async with lan() as (net, a, b):
        a.add_route("192.168.0.0/16", via="10.0.0.2")
        with pytest.raises(OSError) as e:
            a.add_route("192.168.0.0/16", via="10.0.0.3")
        assert e.value.errno == errno.EEXIST
        a.add_route("192.168.0.0/16", via="10.0.0.3", metric=1)


async def test_routes_print_in_ip_route_order():
    # The same routes on Linux 6.18 printed in exactly this order.
    async with lan() as (net, a, b):
        a.add_route("10.0.0.0/8", via="10.0.0.2")
        a.add_route("10.0.0.0/16", via="10.0.0.3", metric=5)
        a.add_route("10.0.0.0/16", via="10.0.0.4", metric=1)
        a.add_route("9.0.0.0/8", via="10.0.0.2")
        a.add_route("10.0.0.128/25", via="10.0.0.3")
        assert str(a.routes()).splitlines() == [
            "9.0.0.0/8 via 10.0.0.2 dev eth0",
            "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1",
            "10.0.0.0/16 via 10.0.0.4 dev eth0 metric 1",
            "10.0.0.0/16 via 10.0.0.3 dev eth0 metric 5",
            "10.0.0.0/8 via 10.0.0.2 dev eth0",
            "10.0.0.128/25 via 10.0.0.3 dev eth0",
        ]


async def test_a_gateway_off_every_connected_subnet_is_enetunreach():
    # fib_check_nh_v4_gw looks the gateway up with scope link: a default route does not count.
    async with lan() as (net, a, b):
        with pytest.raises(OSError) as e:
            a.add_route("192.168.0.0/16", via="172.31.0.1")
        assert e.value.errno == errno.ENETUNREACH
        a.add_route("default", via="10.0.0.254")
        with pytest.raises(OSError) as e:
            a.add_route("192.168.0.0/16", via="172.31.0.1")
        assert e.value.errno == errno.ENETUNREACH
        assert "192.168" not in str(a.routes())


async def test_inet_addr_type_knows_our_addresses():
    async with lan() as (net, a, b):
        n = a.net
        assert inet_addr_type(n, ip("10.0.0.1")) == RTN_LOCAL
        assert inet_addr_type(n, ip("127.0.0.5")) == RTN_LOCAL
        assert inet_addr_type(n, ip("10.0.0.255")) == RTN_BROADCAST
        assert inet_addr_type(n, ip("255.255.255.255")) == RTN_BROADCAST
        assert inet_addr_type(n, ip("224.0.0.1")) == RTN_MULTICAST
        assert inet_addr_type(n, ip("10.0.0.2")) == RTN_UNICAST
        assert a.net.ipv4.fib.lookup(ip("127.0.0.5")).scope == RT_SCOPE_HOST


async def test_a_second_address_in_a_subnet_is_secondary_and_brings_only_its_local_route():
    # __inet_insert_ifa marks it IFA_F_SECONDARY; fib_add_ifaddr then adds its local route
    # (with the primary as source) and no second subnet or broadcast route.
    async with lan() as (net, a, b):
        a.add_address("eth0", "10.0.0.100/24")
        assert str(a.routes()) == "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1"
        local = str(a.routes("local")).splitlines()
        assert "local 10.0.0.100 dev eth0 proto kernel scope host src 10.0.0.1" in local
        assert sum("broadcast 10.0.0.255" in line for line in local) == 1
        assert inet_addr_type(a.net, ip("10.0.0.100")) == RTN_LOCAL
        assert a.addresses("eth0") == ["10.0.0.1/24", "10.0.0.100/24"]


async def test_two_nics_on_one_subnet_each_bring_their_routes():
    # Linux 6.18 with 10.0.0.1/24 on v0 and 10.0.0.3/24 on v2 printed these same lines.
    net = pystack.Network(seed=7)
    a, b = net.add_host("a"), net.add_host("b")
    sw = net.add_switch("sw0")
    net.add_link(a, sw, subnet="10.0.0.0/24")
    net.add_link(b, sw)
    net.add_link(a, sw)  # a.eth1 = 10.0.0.3
    async with net:
        assert str(a.routes()).splitlines() == [
            "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1",
            "10.0.0.0/24 dev eth1 proto kernel scope link src 10.0.0.3",
        ]
        assert str(a.routes("local")).splitlines()[:4] == [
            "local 10.0.0.1 dev eth0 proto kernel scope host src 10.0.0.1",
            "local 10.0.0.3 dev eth1 proto kernel scope host src 10.0.0.3",
            "broadcast 10.0.0.255 dev eth0 proto kernel scope link src 10.0.0.1",
            "broadcast 10.0.0.255 dev eth1 proto kernel scope link src 10.0.0.3",
        ]
