"""Route lookup for input and output, as net/ipv4/route.c.

Read first: net/ipv4/route.c (ip_route_output_key_hash_rcu, __mkroute_output,
ip_route_input_slow, ip_error), include/net/route.h (struct rtable), RFC 1812 §5.3.7
(martian addresses).

A lookup returns an `Rtable` (Linux's `struct rtable`, a dst): the device, the next hop, the
route type, the source address and what to do with the packet (`input`/`output`). Results are
cached per (daddr, saddr, device) and thrown away whenever the FIB's generation changes, so the
common case is one dict probe per packet. A socket holding a dst re-routes when its `genid` is
no longer the FIB's.

Path MTU (RFC 1191; ip_rt_update_pmtu, __ip_rt_update_pmtu, update_or_create_fnhe,
rt_bind_exception, ipv4_mtu): a fragmentation-needed message records the smaller MTU as a
next-hop exception of the route used (fib.py), valid `net.ipv4.route.mtu_expires` (600 s) and
never below `min_pmtu` (552). Output lookups for that destination through that route carry it
(`rt.pmtu`, `rt.expires`), cached ones are updated in place, and `dst_mtu()` falls back to the
route's or device's MTU once it has expired.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable, Final

import trio

from ...kernel.errors import KernelError
from ...uapi.ip import (INADDR_BROADCAST, ipv4_is_lbcast, ipv4_is_loopback, ipv4_is_multicast,
                        ipv4_is_zeronet)
from ..core.dev import IFF_LOOPBACK
from .devinet import RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, inet_select_addr
from ..core import drop_reason as dr
from ..core.drop_reason import kfree_skb
from .ip_forward import ip_forward
from .ip_output import ip_output
from .fib import (RTN_BLACKHOLE, RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST, RTN_PROHIBIT,
                  RTN_UNICAST, RTN_UNREACHABLE, FibAlias, FibNhException)

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.net_namespace import Net

RT_CACHE_MAX: Final = 4096


class RouteError(Exception):
    """A lookup that failed; `errno` is what a syscall would report."""

    def __init__(self, err: int):
        super().__init__(err)
        self.errno = err


class Rtable:
    """`struct rtable`: the result of a route lookup (a dst entry)."""

    __slots__ = ("dev", "type", "gateway", "daddr", "saddr", "genid", "input", "output",
                 "error", "mtu", "is_input", "expires", "pmtu", "mtu_locked", "fa")

    def __init__(self, dev: "NetDevice", type_: int, gateway: int, daddr: int, saddr: int,
                 genid: int):
        self.dev = dev
        self.type = type_
        self.gateway = gateway  # 0 when the destination is on-link
        self.daddr = daddr
        self.saddr = saddr
        self.genid = genid
        self.input: Callable[[Any], None] | None = None
        self.output: Callable[[Any], int] | None = None
        self.error = 0
        self.mtu = 0  # the route's mtu metric; 0: the device's MTU
        self.is_input = False
        self.pmtu = 0  # a learned path MTU (rt_pmtu), valid until `expires`
        self.expires = 0.0
        self.mtu_locked = False
        self.fa: FibAlias | None = None  # the route this dst came from

    def nexthop(self, daddr: int) -> int:
        """rt_nexthop: the gateway, or the destination itself when it is on-link."""
        return self.gateway or daddr

    def dst_mtu(self) -> int:
        """ipv4_mtu: the learned path MTU while it lasts, else the route's, else the device's."""
        pmtu = self.pmtu
        if pmtu and trio.current_time() < self.expires:
            return pmtu
        return self.mtu or self.dev.mtu

    def bind_exception(self, fnhe: FibNhException) -> None:
        """rt_bind_exception / fill_route_from_fnhe."""
        self.pmtu = fnhe.pmtu
        self.expires = fnhe.expires
        self.mtu_locked = fnhe.mtu_locked

    def __repr__(self) -> str:
        from ...uapi.ip import ip_str
        via = f" via {ip_str(self.gateway)}" if self.gateway else ""
        return f"<Rtable {ip_str(self.daddr)}{via} dev {self.dev.name} type {self.type}>"


def _cache(net: "Net") -> dict:
    """The route cache, emptied first if the FIB changed since it was filled."""
    v4 = net.ipv4
    if v4.rt_cache_genid != v4.fib.genid:
        v4.rt_cache.clear()
        v4.rt_cache_genid = v4.fib.genid
    return v4.rt_cache


def _cache_add(cache: dict, key: tuple, rt: "Rtable") -> None:
    """Keep `rt`; a cache grown past RT_CACHE_MAX starts again from empty."""
    cache[key] = rt
    if len(cache) > RT_CACHE_MAX:
        cache.clear()


def ip_route_output(net: "Net", daddr: int, saddr: int = 0, oif: "NetDevice | None" = None,
                    *, tos: int = 0) -> Rtable:
    """ip_route_output_key: where a locally generated packet to `daddr` goes.

    Raises RouteError(ENETUNREACH) when nothing matches, as Linux's connect/sendto report.
    """
    key = (daddr, saddr, oif, 0)
    v4 = net.ipv4
    cache = v4.rt_cache
    if v4.rt_cache_genid != v4.fib.genid:  # _cache(net), inline on the per-packet lookups
        cache = _cache(net)
    rt = cache.get(key)
    if rt is None:
        rt = _route_output_slow(net, daddr, saddr, oif)
        _cache_add(cache, key, rt)
    return rt


def _route_output_slow(net: "Net", daddr: int, saddr: int, oif: "NetDevice | None") -> Rtable:
    fib = net.ipv4.fib
    genid = fib.genid
    lo = net.loopback_dev
    if saddr:
        if ipv4_is_multicast(saddr) or ipv4_is_lbcast(saddr):
            raise RouteError(errno.EINVAL)
    if not daddr:
        # A packet to 0.0.0.0 goes to ourselves (Linux treats it as the local address).
        daddr = saddr or 0x7F000001
    if oif is not None and (ipv4_is_lbcast(daddr) or ipv4_is_multicast(daddr)):
        if not saddr:
            saddr = inet_select_addr(oif, 0, RT_SCOPE_LINK)
        rt = Rtable(oif, RTN_BROADCAST if ipv4_is_lbcast(daddr) else RTN_MULTICAST, 0, daddr,
                    saddr, genid)
        rt.output = ip_output
        return rt
    fa = fib.lookup(daddr)
    if fa is None:
        raise RouteError(errno.ENETUNREACH)
    if fa.type == RTN_UNREACHABLE:
        raise RouteError(errno.EHOSTUNREACH)
    if fa.type == RTN_PROHIBIT:
        raise RouteError(errno.EACCES)
    if fa.type == RTN_BLACKHOLE:
        raise RouteError(errno.EINVAL)
    if fa.type == RTN_LOCAL:
        if not saddr:
            saddr = fa.prefsrc or daddr
        rt = Rtable(lo, RTN_LOCAL, 0, daddr, saddr, genid)
        rt.output = ip_output
        rt.fa = fa
        return rt
    dev = fa.dev
    if oif is not None and dev is not oif:
        # A socket bound to a device only uses routes through it; on-link otherwise.
        dev = oif
        gateway = 0
    else:
        gateway = fa.gateway if fa.scope == RT_SCOPE_UNIVERSE else 0
    type_ = fa.type
    if ipv4_is_lbcast(daddr):
        type_ = RTN_BROADCAST
        gateway = 0  # __mkroute_output: a broadcast route has no nexthop info (fi = NULL)
    if not saddr:
        saddr = fa.prefsrc or inet_select_addr(dev, gateway or daddr, RT_SCOPE_LINK)
    rt = Rtable(dev, type_, gateway, daddr, saddr, genid)
    rt.mtu = fa.mtu
    rt.output = ip_output
    rt.fa = fa
    fnhe = fib.exception(fa, daddr)
    if fnhe is not None and trio.current_time() < fnhe.expires:
        rt.bind_exception(fnhe)
    return rt


def ip_route_output_sk(sk: Any, daddr: int) -> Rtable:
    """ip_route_connect for a socket: the route to `daddr` from the socket's bound device and
    source address. No route raises KernelError with its errno (ENETUNREACH counts
    OutNoRoutes)."""
    net = sk.sk_net
    oif = net.dev_index.get(sk.sk_bound_dev_if) if sk.sk_bound_dev_if else None
    try:
        return ip_route_output(net, daddr, sk.inet_saddr, oif)
    except RouteError as e:
        if e.errno == errno.ENETUNREACH:
            net.mib.ip["OutNoRoutes"] += 1
        raise KernelError(e.errno) from None


def ip_rt_update_pmtu(rt: Rtable, mtu: int) -> None:
    """__ip_rt_update_pmtu: the path to `rt.daddr` takes at most `mtu` bytes. Record it as
    an exception of the route, and update `rt` and the cached dsts for that destination."""
    if rt.mtu_locked or rt.fa is None or rt.is_input:
        return
    net = rt.dev.nd_net
    s = net.sysctl
    old_mtu = rt.dst_mtu()
    if old_mtu < mtu:
        return
    lock = False
    if mtu < s.ip_rt_min_pmtu:
        lock = True
        mtu = min(old_mtu, s.ip_rt_min_pmtu)
    now = trio.current_time()
    if rt.pmtu == mtu and not lock and now < rt.expires - s.ip_rt_mtu_expires / 2:
        return  # learned recently already
    fib = net.ipv4.fib
    # The route as the FIB has it now (a dst held across a route change may name one gone).
    fa = rt.fa if rt.genid == fib.genid else fib.lookup(rt.daddr)
    if fa is None:
        return
    fnhe = fib.update_or_create_fnhe(fa, rt.daddr, mtu, lock, now + s.ip_rt_mtu_expires)
    rt.bind_exception(fnhe)
    for cached in _cache(net).values():
        if cached.fa is fa and cached.daddr == rt.daddr and not cached.is_input:
            cached.bind_exception(fnhe)


def ipv4_sk_update_pmtu(sk: Any, daddr: int, mtu: int) -> None:
    """ipv4_sk_update_pmtu: a datagram socket's fragmentation-needed, for its route to
    `daddr` (its cached dst when that still holds, else a fresh lookup)."""
    net = sk.sk_net
    rt = sk.sk_dst_cache
    if rt is None or rt.genid != net.ipv4.fib.genid or rt.daddr != daddr:
        oif = net.dev_index.get(sk.sk_bound_dev_if) if sk.sk_bound_dev_if else None
        try:
            rt = ip_route_output(net, daddr, sk.inet_saddr, oif)
        except RouteError:
            return
    ip_rt_update_pmtu(rt, mtu)


def ip_route_input(skb: Any, daddr: int, saddr: int, dev: "NetDevice") -> int:
    """ip_route_input_noref: set skb.dst for a received packet. Returns 0 or an errno,
    with the drop counted by the caller."""
    net = dev.nd_net
    key = (daddr, saddr, dev, 1)
    v4 = net.ipv4
    cache = v4.rt_cache
    if v4.rt_cache_genid != v4.fib.genid:  # _cache(net), inline
        cache = _cache(net)
    rt = cache.get(key)
    if rt is None:
        rt = _route_input_slow(net, daddr, saddr, dev)
        _cache_add(cache, key, rt)
    skb.dst = rt
    return rt.error


def _route_input_slow(net: "Net", daddr: int, saddr: int, dev: "NetDevice") -> Rtable:
    fib = net.ipv4.fib
    genid = fib.genid
    rt = Rtable(dev, RTN_UNICAST, 0, daddr, 0, genid)
    rt.is_input = True
    # Martian sources (RFC 1812 §5.3.7), as ip_route_input_slow rejects them.
    if ipv4_is_multicast(saddr) or ipv4_is_lbcast(saddr):
        rt.error = errno.EINVAL
        rt.input = ip_error
        return rt
    if ipv4_is_lbcast(daddr) or (saddr == 0 and daddr == 0):
        rt.type = RTN_BROADCAST
        rt.input = None  # ip_local_deliver, dispatched by ip_rcv_finish
        return rt
    if ipv4_is_zeronet(saddr) or ipv4_is_zeronet(daddr):
        rt.error = errno.EINVAL
        rt.input = ip_error
        return rt
    if not dev.flags & IFF_LOOPBACK and (ipv4_is_loopback(daddr) or ipv4_is_loopback(saddr)):
        rt.error = errno.EINVAL
        rt.input = ip_error
        return rt
    if ipv4_is_multicast(daddr):
        rt.type = RTN_MULTICAST
        rt.error = errno.EINVAL  # no multicast routing or group membership yet
        rt.input = ip_error
        return rt
    fa = fib.lookup(daddr)
    if fa is None:
        rt.type = RTN_UNREACHABLE
        rt.error = errno.ENETUNREACH if dev.ip_ptr.forwarding else errno.EHOSTUNREACH
        rt.input = ip_error
        return rt
    if fa.type == RTN_BROADCAST:
        rt.type = RTN_BROADCAST
        rt.input = None  # ip_local_deliver, dispatched by ip_rcv_finish
        return rt
    if fa.type == RTN_LOCAL:
        rt.type = RTN_LOCAL
        rt.input = None  # ip_local_deliver, dispatched by ip_rcv_finish
        return rt
    if not dev.ip_ptr.forwarding:
        rt.type = RTN_UNREACHABLE
        rt.error = errno.EHOSTUNREACH
        rt.input = ip_error
        return rt
    if fa.type != RTN_UNICAST:
        rt.type = fa.type
        rt.error = {RTN_UNREACHABLE: errno.EHOSTUNREACH, RTN_PROHIBIT: errno.EACCES}.get(
            fa.type, errno.EINVAL)
        rt.input = ip_error
        return rt
    rt.dev = fa.dev
    rt.gateway = fa.gateway if fa.scope == RT_SCOPE_UNIVERSE else 0
    rt.mtu = fa.mtu
    rt.input = ip_forward
    rt.output = ip_output
    return rt


def ip_error(skb: Any) -> None:
    """dst.input of an unroutable packet: count and drop (a host does not forward)."""
    net = skb.dev.nd_net
    err = skb.dst.error
    if err == errno.ENETUNREACH:
        net.mib.ipext["InNoRoutes"] += 1
        kfree_skb(skb, dr.IP_INNOROUTES)
    else:
        net.mib.ip["InAddrErrors"] += 1
        kfree_skb(skb, dr.IP_INADDRERRORS)


__all__ = ["Rtable", "RouteError", "ip_route_output", "ip_route_output_sk", "ip_route_input",
           "ip_rt_update_pmtu", "ipv4_sk_update_pmtu", "INADDR_BROADCAST", "RT_SCOPE_HOST"]
