"""The forwarding information base, as net/ipv4/fib_frontend.c, fib_trie.c, fib_semantics.c.

Read first: net/ipv4/fib_trie.c (fib_table_lookup: longest prefix, then lowest metric),
net/ipv4/fib_frontend.c (fib_add_ifaddr: the routes an address brings, the local and main
tables), `ip route show table local` on any Linux box.

Two tables, as Linux has by default: `local` (255: the host's own addresses, loopback's /8,
broadcast addresses) searched first, then `main` (254: connected subnets, gateways, default).
A table is a dict per prefix length, probed from the longest present length down: at most 33
dict lookups whatever the number of routes. Every change bumps `genid`, which invalidates the
route cache in route.py.

Next-hop exceptions (`struct fib_nh_exception`, include/net/ip_fib.h): what was learned about
one destination reached through one route — a path MTU, with its expiry. They belong to the
route: deleting the route deletes them, and a destination reached through another route does
not see them. `ip route show cache` lists them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from ...uapi.ip import ip_str
from .devinet import RT_SCOPE_HOST, RT_SCOPE_LINK, RT_SCOPE_UNIVERSE, InIfaddr, inet_make_mask

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.net_namespace import Net

RTN_UNICAST: Final = 1
RTN_LOCAL: Final = 2
RTN_BROADCAST: Final = 3
RTN_ANYCAST: Final = 4
RTN_MULTICAST: Final = 5
RTN_BLACKHOLE: Final = 6
RTN_UNREACHABLE: Final = 7
RTN_PROHIBIT: Final = 8
RTN_NAMES = {RTN_UNICAST: "unicast", RTN_LOCAL: "local", RTN_BROADCAST: "broadcast",
             RTN_BLACKHOLE: "blackhole", RTN_UNREACHABLE: "unreachable",
             RTN_PROHIBIT: "prohibit", RTN_MULTICAST: "multicast", RTN_ANYCAST: "anycast"}

RT_TABLE_MAIN: Final = 254
RT_TABLE_LOCAL: Final = 255

RTPROT_KERNEL: Final = "kernel"
RTPROT_BOOT: Final = "boot"
RTPROT_STATIC = "static"

SCOPE_NAMES = {RT_SCOPE_UNIVERSE: "global", RT_SCOPE_LINK: "link", RT_SCOPE_HOST: "host"}


@attrs.frozen
class FibAlias:
    """One route: what `ip route` prints on one line."""
    dst: int
    prefixlen: int
    type: int
    dev: "NetDevice | None"
    gateway: int = 0
    prefsrc: int = 0
    metric: int = 0
    scope: int = RT_SCOPE_UNIVERSE
    protocol: str = RTPROT_BOOT
    table: int = RT_TABLE_MAIN
    mtu: int = 0

    def __str__(self) -> str:
        if self.prefixlen == 0 and self.table == RT_TABLE_MAIN:
            head = "default"
        elif self.prefixlen == 32:
            head = ip_str(self.dst)
        else:
            head = f"{ip_str(self.dst)}/{self.prefixlen}"
        if self.table != RT_TABLE_MAIN or self.type != RTN_UNICAST:
            head = f"{RTN_NAMES[self.type]} {head}"
        parts = [head]
        if self.gateway:
            parts.append(f"via {ip_str(self.gateway)}")
        if self.dev is not None:
            parts.append(f"dev {self.dev.name}")
        if self.protocol != RTPROT_BOOT:
            parts.append(f"proto {self.protocol}")
        if self.scope != RT_SCOPE_UNIVERSE:
            parts.append(f"scope {SCOPE_NAMES.get(self.scope, self.scope)}")
        if self.prefsrc:
            parts.append(f"src {ip_str(self.prefsrc)}")
        if self.metric:
            parts.append(f"metric {self.metric}")
        if self.mtu:
            parts.append(f"mtu {self.mtu}")
        return " ".join(parts)


class FibTable:
    def __init__(self, table_id: int):
        self.id = table_id
        self._by_len: dict[int, dict[int, list[FibAlias]]] = {}
        self._lens: list[int] = []  # prefix lengths present, longest first

    def insert(self, fa: FibAlias, excl: bool = False) -> None:
        """Add a route. FileExistsError for a duplicate; with `excl` (NLM_F_EXCL, what
        `ip route add` asks) any route of the same prefix and metric is one."""
        aliases = self._by_len.get(fa.prefixlen, {}).get(fa.dst, [])
        for old in aliases:
            if old.metric == fa.metric and (excl or (
                    old.type == fa.type and old.dev is fa.dev and old.gateway == fa.gateway)):
                raise FileExistsError(f"route {fa} exists already")
        if fa.prefixlen not in self._lens:
            self._lens.append(fa.prefixlen)
            self._lens.sort(reverse=True)
        aliases = self._by_len.setdefault(fa.prefixlen, {}).setdefault(fa.dst, [])
        aliases.append(fa)
        aliases.sort(key=lambda a: a.metric)

    def delete(self, dst: int, prefixlen: int, *, gateway: int | None = None,
               dev: "NetDevice | None" = None, metric: int | None = None) -> FibAlias:
        aliases = self._by_len.get(prefixlen, {}).get(dst, [])
        for fa in aliases:
            if gateway is not None and fa.gateway != gateway:
                continue
            if dev is not None and fa.dev is not dev:
                continue
            if metric is not None and fa.metric != metric:
                continue
            aliases.remove(fa)
            if not aliases:
                del self._by_len[prefixlen][dst]
                if not self._by_len[prefixlen]:
                    del self._by_len[prefixlen]
                    self._lens.remove(prefixlen)
            return fa
        raise LookupError(f"no route {ip_str(dst)}/{prefixlen} to delete")

    def lookup(self, daddr: int) -> FibAlias | None:
        by_len = self._by_len
        for plen in self._lens:
            mask = (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0
            aliases = by_len[plen].get(daddr & mask)
            if aliases:
                for fa in aliases:
                    if fa.dev is None or fa.dev.flags & 1:  # IFF_UP
                        return fa
        return None

    def routes(self) -> list[FibAlias]:
        out = []
        for plen in sorted(self._by_len, reverse=False):
            for dst in sorted(self._by_len[plen]):
                out.extend(self._by_len[plen][dst])
        # `ip route`'s order (a fib_trie walk): by address, the longer prefix first.
        out.sort(key=lambda fa: (fa.prefixlen != 0, fa.dst, -fa.prefixlen, fa.metric))
        return out


# How many next-hop exceptions a host keeps; past it the least recently updated goes (Linux
# bounds each next hop's hash chain instead, FNHE_RECLAIM_DEPTH).
FNHE_MAX = 4096  # not Final: a test lowers it


class FibNhException:
    """`struct fib_nh_exception`: a path MTU learned for `daddr` through route `fa`."""

    __slots__ = ("fa", "daddr", "pmtu", "expires", "mtu_locked")

    def __init__(self, fa: FibAlias, daddr: int, pmtu: int, expires: float, locked: bool):
        self.fa = fa
        self.daddr = daddr
        self.pmtu = pmtu
        self.expires = expires
        self.mtu_locked = locked


class Fib:
    """The per-namespace pair of tables, the generation counter and next-hop exceptions."""

    def __init__(self) -> None:
        self.local = FibTable(RT_TABLE_LOCAL)
        self.main = FibTable(RT_TABLE_MAIN)
        self.genid = 0
        # (daddr, route) → exception, least recently updated first. A route is one FibAlias
        # object; live routes are never equal to each other, so equality is identity here.
        self.exceptions: dict[tuple[int, FibAlias], FibNhException] = {}

    def exception(self, fa: FibAlias, daddr: int) -> FibNhException | None:
        return self.exceptions.get((daddr, fa)) if self.exceptions else None

    def update_or_create_fnhe(self, fa: FibAlias, daddr: int, pmtu: int, locked: bool,
                              expires: float) -> FibNhException:
        key = (daddr, fa)
        fnhe = self.exceptions.pop(key, None)
        if fnhe is None:
            fnhe = FibNhException(fa, daddr, pmtu, expires, locked)
            if len(self.exceptions) >= FNHE_MAX:
                del self.exceptions[next(iter(self.exceptions))]
        else:
            fnhe.pmtu = pmtu
            fnhe.mtu_locked = locked
            fnhe.expires = expires
        self.exceptions[key] = fnhe
        return fnhe

    def table(self, table_id: int) -> FibTable:
        return self.local if table_id == RT_TABLE_LOCAL else self.main

    def insert(self, fa: FibAlias, excl: bool = False) -> None:
        self.table(fa.table).insert(fa, excl)
        self.genid += 1

    def delete(self, table_id: int, dst: int, prefixlen: int, **match) -> FibAlias:
        fa = self.table(table_id).delete(dst, prefixlen, **match)
        self.genid += 1
        if self.exceptions:  # what was learned through the route goes with it
            self.exceptions = {k: e for k, e in self.exceptions.items() if e.fa is not fa}
        return fa

    def lookup(self, daddr: int) -> FibAlias | None:
        """fib_lookup: the local table, then main."""
        fa = self.local.lookup(daddr)
        if fa is not None:
            return fa
        return self.main.lookup(daddr)


def fib_add_ifaddr(net: "Net", ifa: InIfaddr, prim: InIfaddr | None = None) -> None:
    """The routes an address brings (fib_add_ifaddr). `prim` is the primary address of the
    subnet (the address itself unless it is a secondary): its address is the routes' source,
    and a secondary brings only its local route, the subnet's routes being there already."""
    from ..core.dev import IFF_LOOPBACK

    fib = net.ipv4.fib
    dev = ifa.dev
    src = (prim or ifa).local
    mask = inet_make_mask(ifa.prefixlen)
    prefix = ifa.local & mask
    fib.insert(FibAlias(ifa.local, 32, RTN_LOCAL, dev, prefsrc=src, scope=RT_SCOPE_HOST,
                        protocol=RTPROT_KERNEL, table=RT_TABLE_LOCAL))
    if prefix and not ifa.secondary and (prefix != ifa.local or ifa.prefixlen < 32):
        if dev.flags & IFF_LOOPBACK:
            fib.insert(FibAlias(prefix, ifa.prefixlen, RTN_LOCAL, dev, prefsrc=ifa.local,
                                scope=RT_SCOPE_HOST, protocol=RTPROT_KERNEL,
                                table=RT_TABLE_LOCAL))
        else:
            fib.insert(FibAlias(prefix, ifa.prefixlen, RTN_UNICAST, dev, prefsrc=ifa.local,
                                scope=RT_SCOPE_LINK, protocol=RTPROT_KERNEL,
                                table=RT_TABLE_MAIN))
        if ifa.prefixlen < 31:
            fib.insert(FibAlias(prefix | (~mask & 0xFFFFFFFF), 32, RTN_BROADCAST, dev,
                                prefsrc=ifa.local, scope=RT_SCOPE_LINK,
                                protocol=RTPROT_KERNEL, table=RT_TABLE_LOCAL))


def inet_addr_type(net: "Net", addr: int) -> int:
    """The route type of `addr` as seen from this host (RTN_LOCAL for its own addresses)."""
    if addr == 0 or addr == 0xFFFFFFFF:
        return RTN_BROADCAST
    if (addr & 0xF0000000) == 0xE0000000:
        return RTN_MULTICAST
    fa = net.ipv4.fib.local.lookup(addr)
    if fa is not None:
        return fa.type
    return RTN_UNICAST
