"""IPv4 addresses on devices, as net/ipv4/devinet.c.

Read first: net/ipv4/devinet.c (inet_insert_ifa, inet_select_addr, inet_confirm_addr),
net/ipv4/fib_frontend.c (fib_add_ifaddr, inet_addr_type).

A device's `ip_ptr` is its `InDevice`, holding its addresses in the order they were added
(the first of a subnet is primary). Adding one installs its routes (`fib_add_ifaddr`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from ...uapi.ip import ip_str

if TYPE_CHECKING:
    from ..core.dev import NetDevice

RT_SCOPE_UNIVERSE: Final = 0
RT_SCOPE_SITE: Final = 200
RT_SCOPE_LINK: Final = 253
RT_SCOPE_HOST: Final = 254
RT_SCOPE_NOWHERE: Final = 255


def inet_make_mask(plen: int) -> int:
    return (0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF if plen else 0


@attrs.define(eq=False)
class InIfaddr:
    """`struct in_ifaddr`: one address with its prefix, broadcast and scope."""
    local: int
    prefixlen: int
    broadcast: int
    scope: int
    dev: "NetDevice"
    label: str
    # IFA_F_SECONDARY: another address of the device already holds this subnet (the primary)
    secondary: bool = False

    @property
    def mask(self) -> int:
        return inet_make_mask(self.prefixlen)

    def __str__(self) -> str:
        return f"{ip_str(self.local)}/{self.prefixlen}"


class InDevice:
    """`struct in_device`: the IPv4 side of one device."""

    def __init__(self, dev: "NetDevice"):
        self.dev = dev
        self.ifa_list: list[InIfaddr] = []
        self.forwarding = False  # IN_DEV_FORWARD, from net.ipv4.conf.*.forwarding


def inet_insert_ifa(dev: "NetDevice", local: int, prefixlen: int) -> InIfaddr:
    from .fib import fib_add_ifaddr

    in_dev = dev.ip_ptr
    mask = inet_make_mask(prefixlen)
    for ifa in in_dev.ifa_list:
        if ifa.local == local and ifa.prefixlen == prefixlen:
            raise ValueError(f"{dev.name} already has {ip_str(local)}/{prefixlen}")
    broadcast = (local | ~mask) & 0xFFFFFFFF if prefixlen < 31 else 0
    scope = RT_SCOPE_HOST if (local >> 24) == 127 else RT_SCOPE_UNIVERSE
    ifa = InIfaddr(local, prefixlen, broadcast, scope, dev, dev.name)
    # __inet_insert_ifa: an address in the subnet of one already there is its secondary.
    primary = next((p for p in in_dev.ifa_list if not p.secondary and p.prefixlen == prefixlen
                    and (p.local & mask) == (local & mask)), None)
    ifa.secondary = primary is not None
    in_dev.ifa_list.append(ifa)
    fib_add_ifaddr(dev.nd_net, ifa, primary or ifa)
    return ifa


def inet_select_addr(dev: "NetDevice", dst: int, scope: int) -> int:
    """The source address for talking to `dst` through `dev`: the device's primary address in
    dst's subnet if there is one, else its first address of a wide enough scope, else any
    such address on another device."""
    in_dev = dev.ip_ptr
    first = 0
    if in_dev is not None:
        for ifa in in_dev.ifa_list:
            if ifa.scope > scope:
                continue
            if not dst or (dst & ifa.mask) == (ifa.local & ifa.mask):
                return ifa.local
            if not first:
                first = ifa.local
    if first:
        return first
    for other in dev.nd_net.dev_base.values():
        if other.ip_ptr is None:
            continue
        for ifa in other.ip_ptr.ifa_list:
            if ifa.scope <= scope and ifa.scope < RT_SCOPE_LINK:
                return ifa.local
    return 0
