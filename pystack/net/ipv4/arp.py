"""ARP for IPv4 over Ethernet, as net/ipv4/arp.c.

Read first: RFC 826, net/ipv4/arp.c (arp_rcv, arp_process, arp_solicit, arp_error_report,
arp_send), Documentation/networking/ip-sysctl.rst (arp_accept, arp_ignore, arp_announce).

We answer requests for our own addresses on the device they arrive on, and learn the sender
of any request for us (STALE, as neigh_event_ns does). Replies update an entry we already have
(arp_accept=0: unsolicited replies create nothing) to REACHABLE. Solicits are broadcast while
INCOMPLETE and unicast to the known address when probing a STALE entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import trio

from ...uapi.arp import ARP_HDR, ARP_LEN, ARPHRD_ETHER, ARPOP_REPLY, ARPOP_REQUEST
from ...uapi.ethernet import BROADCAST, ETH_HLEN, ETH_P_ARP, ETH_P_IP
from ...uapi.icmp import ICMP_DEST_UNREACH, ICMP_HOST_UNREACH
from ..core import drop_reason as dr
from ..core.dev import IFF_LOOPBACK, IFF_NOARP, dev_queue_xmit
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.neighbour import (NEIGH_UPDATE_F_OVERRIDE, NUD_NOARP, NUD_PROBE, NUD_REACHABLE,
                              NUD_STALE, NUD_VALID, NeighOps, Neighbour, NeighTable,
                              neigh_update)
from ..core.skbuff import PACKET_HOST, PACKET_OTHERHOST, alloc_skb
from ..ethernet.eth import eth_header
from .devinet import RT_SCOPE_LINK, inet_select_addr
from .fib import RTN_LOCAL, RTN_UNICAST, inet_addr_type

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.net_namespace import Net
    from ..core.skbuff import SkBuff

_unpack_arp: Final = ARP_HDR.unpack_from
_pack_arp: Final = ARP_HDR.pack_into


class ArpOps(NeighOps):
    def solicit(self, neigh: Neighbour, skb: "SkBuff | None") -> None:
        arp_solicit(neigh, skb)

    def error_report(self, neigh: Neighbour, skb: "SkBuff") -> None:
        arp_error_report(neigh, skb)


def neigh_connected_output(neigh: Neighbour, skb: "SkBuff") -> int:
    """Fill in the Ethernet header from a resolved entry and queue the frame."""
    dev = neigh.dev
    eth_header(skb, dev, ETH_P_IP, neigh.ha)
    skb.dev = dev
    return dev_queue_xmit(skb)


def arp_tbl_create(net: "Net") -> NeighTable:
    return NeighTable(net, ArpOps(), neigh_connected_output)


def arp_send(net: "Net", op: int, dev: "NetDevice", tip: int, dest_hw: bytes | None, sip: int,
             target_hw: bytes | None) -> None:
    """Build and transmit one ARP packet."""
    if dev.flags & IFF_NOARP:
        return
    skb = alloc_skb(ARP_LEN, headroom=ETH_HLEN + 2)
    off = skb.put(ARP_LEN)
    skb.reset_network_header()
    sha = dev.dev_addr
    _pack_arp(skb.buf, off, ARPHRD_ETHER, ETH_P_IP, 6, 4, op, sha, sip.to_bytes(4, "big"),
              target_hw or b"\0" * 6, tip.to_bytes(4, "big"))
    eth_header(skb, dev, ETH_P_ARP, dest_hw or BROADCAST)
    skb.dev = dev
    skb.protocol = ETH_P_ARP
    dev_queue_xmit(skb)


def arp_solicit(neigh: Neighbour, skb: "SkBuff | None") -> None:
    dev = neigh.dev
    net = dev.nd_net
    target = neigh.primary_key
    # arp_announce=0: the source of the packet that triggered us, if it is ours; else the
    # device's address for the target's subnet.
    saddr = 0
    if skb is not None and skb.network_header >= 0:
        from ...uapi.ip import IP_HDR
        candidate = IP_HDR.unpack_from(skb.buf, skb.network_header)[8]
        if inet_addr_type(net, candidate) == RTN_LOCAL:
            saddr = candidate
    if not saddr:
        saddr = inet_select_addr(dev, target, RT_SCOPE_LINK)
    s = net.sysctl
    probes = neigh.probes - s.neigh_ucast_solicit
    dest_hw = None
    if probes < 0:
        # Unicast probe of an entry we hold an address for (PROBE state).
        if neigh.nud_state & NUD_VALID or neigh.nud_state & NUD_PROBE:
            dest_hw = neigh.ha
    else:
        probes -= s.neigh_app_solicit
        if probes < 0:
            return  # app probes: a user-space daemon would ask; there is none
    if net.tracer.active:
        from ...uapi.ip import ip_str
        net.tracer.emit(net, "arp:arp_solicit", target=ip_str(target), dev=dev.name,
                        unicast=dest_hw is not None)
    arp_send(net, ARPOP_REQUEST, dev, target, dest_hw, saddr, None)


def arp_error_report(neigh: Neighbour, skb: "SkBuff") -> None:
    """The neighbour did not answer: tell the sender with a local ICMP host unreachable."""
    from .icmp import icmp_send
    icmp_send(skb, ICMP_DEST_UNREACH, ICMP_HOST_UNREACH, 0)


def arp_rcv(skb: "SkBuff", dev: "NetDevice") -> None:
    net = dev.nd_net
    if skb.trace is not None:
        skb.trace.hop(net, "arp_rcv")
    if dev.flags & (IFF_NOARP | IFF_LOOPBACK) or skb.pkt_type == PACKET_OTHERHOST:
        consume_skb(skb)
        return
    if skb.tail - skb.data < ARP_LEN:
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    hrd, pro, hln, pln, op, sha, sip_b, tha, tip_b = _unpack_arp(skb.buf, skb.data)
    if hrd != ARPHRD_ETHER or pro != ETH_P_IP or hln != 6 or pln != 4:
        kfree_skb(skb, dr.INVALID_PROTO)
        return
    if op not in (ARPOP_REQUEST, ARPOP_REPLY):
        kfree_skb(skb, dr.INVALID_PROTO)
        return
    arp_process(net, skb, dev, op, bytes(sha), int.from_bytes(sip_b, "big"),
                int.from_bytes(tip_b, "big"), bytes(tha))


def arp_process(net: "Net", skb: "SkBuff", dev: "NetDevice", op: int, sha: bytes, sip: int,
                tip: int, tha: bytes = b"\0" * 6) -> None:
    tbl = net.ipv4.arp_tbl
    if sha[0] & 1 or (tip >> 28) == 0xE or tip == 0xFFFFFFFF:
        kfree_skb(skb, dr.INVALID_PROTO)  # multicast sender or target: not for ARP
        return
    if (tip >> 24) == 127:
        kfree_skb(skb, dr.INVALID_PROTO)  # never answer for loopback addresses on a wire
        return
    # arp_ignore=0: answer for any address of this host, on whichever device asks (Linux's
    # weak host model).
    tip_is_ours = inet_addr_type(net, tip) == RTN_LOCAL
    if op == ARPOP_REQUEST and sip == 0:
        # Duplicate address detection probe (RFC 5227): answer, learn nothing.
        if tip_is_ours:
            arp_send(net, ARPOP_REPLY, dev, sip, sha, tip, sha)
        consume_skb(skb)
        return
    if op == ARPOP_REQUEST and tip_is_ours:
        # neigh_event_ns: learn the asker, then answer it.
        n = tbl.create(sip, dev)
        neigh_update(n, sha, NUD_STALE, NEIGH_UPDATE_F_OVERRIDE)
        arp_send(net, ARPOP_REPLY, dev, sip, sha, tip, sha)
        consume_skb(skb)
        return
    n = tbl.lookup(sip, dev)
    if n is not None:
        # A reply to us (or a request we overheard) updates what we know. Only a unicast
        # reply asserts reachability. A different address replaces the known one only after
        # `locktime` since the entry's last update, or for a gratuitous ARP: of several
        # replies back to back, the first wins (arp_process).
        state = NUD_REACHABLE if op == ARPOP_REPLY and skb.pkt_type == PACKET_HOST else NUD_STALE
        override = (trio.current_time() > n.updated + net.sysctl.neigh_locktime
                    or arp_is_garp(net, op, sip, tip, sha, tha))
        if n.nud_state & NUD_NOARP:
            consume_skb(skb)
            return
        neigh_update(n, sha, state, NEIGH_UPDATE_F_OVERRIDE if override else 0)
    consume_skb(skb)


def arp_is_garp(net: "Net", op: int, sip: int, tip: int, sha: bytes, tha: bytes) -> bool:
    """A gratuitous ARP: sender and target address equal (a reply also repeats its hardware
    address as target), for a unicast address that is not ours."""
    if sip != tip:
        return False
    if op == ARPOP_REPLY and sha != tha:
        return False
    return inet_addr_type(net, sip) == RTN_UNICAST


__all__ = ["arp_rcv", "arp_send", "arp_tbl_create", "neigh_connected_output", "arp_solicit"]
