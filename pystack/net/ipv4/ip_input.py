"""IPv4 input, as net/ipv4/ip_input.c.

Read first: RFC 791 §3.2, RFC 1122 §3.2.1 (checks a host must make), net/ipv4/ip_input.c
(ip_rcv, ip_rcv_core, ip_rcv_finish, ip_local_deliver, ip_local_deliver_finish),
net/ipv4/route.c (ip_error).

Bad input is dropped with a counted reason and never raises: a header shorter than 20 bytes,
a version other than 4, an IHL under 5, a bad checksum, or a total length beyond what arrived.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from ...lib.checksum import ip_fast_csum_at
from ...uapi.icmp import ICMP_DEST_UNREACH, ICMP_PROT_UNREACH
from ...uapi.ip import IP_ADDRS, IP_HDR, IP_MF, IP_OFFSET
from ..core import drop_reason as dr
from ..core.drop_reason import kfree_skb
from ..core.skbuff import PACKET_OTHERHOST
from ..core.netfilter import NF_INET_LOCAL_IN, NF_INET_PRE_ROUTING, nf_hook
from .fib import RTN_BROADCAST, RTN_LOCAL
from .icmp import icmp_send
from .protocol import inet_protos
from .route import ip_route_input

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.skbuff import SkBuff

_unpack_ip: Final = IP_HDR.unpack_from
_unpack_addrs: Final = IP_ADDRS.unpack_from
_unpack_vihl_tos_len: Final = struct.Struct("!BBH").unpack_from  # the header's first word

def ip_rcv(skb: "SkBuff", dev: "NetDevice") -> None:
    """ip_rcv + ip_rcv_core: validate the header, then PRE_ROUTING."""
    net = dev.nd_net
    mib = net.mib.ip
    if skb.trace is not None:
        skb.trace.hop(net, "ip_rcv")
    if skb.pkt_type == PACKET_OTHERHOST:
        kfree_skb(skb, dr.OTHERHOST)
        return
    length = skb.tail - skb.data
    mib["InReceives"] += 1
    net.mib.ipext["InOctets"] += length
    # ip_rcv_core: a header that is not all there is a header error (IP_INHDR), as is a bad
    # version or IHL; only a total length beyond what arrived is PKT_TOO_SMALL.
    if length < 20:
        mib["InHdrErrors"] += 1
        kfree_skb(skb, dr.IP_INHDR)
        return
    buf = skb.buf
    off = skb.data
    vihl, _tos, tot_len = _unpack_vihl_tos_len(buf, off)
    ihl = (vihl & 15) * 4
    if vihl >> 4 != 4 or ihl < 20 or length < ihl:
        mib["InHdrErrors"] += 1
        kfree_skb(skb, dr.IP_INHDR)
        return
    if ip_fast_csum_at(buf, off, ihl) != 0:
        net.mib.ipext["InCsumErrors"] += 1
        mib["InHdrErrors"] += 1
        kfree_skb(skb, dr.IP_CSUM)
        return
    if length < tot_len:
        net.mib.ipext["InTruncatedPkts"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    if tot_len < ihl:
        mib["InHdrErrors"] += 1
        kfree_skb(skb, dr.IP_INHDR)
        return
    # Our frames may carry Ethernet padding after the datagram: trim it.
    if tot_len < length:  # skb_trim, inline
        skb.tail = off + tot_len
    skb.network_header = off
    skb.transport_header = off + ihl
    if net.nf_hooks:
        nf_hook(NF_INET_PRE_ROUTING, net, skb, dev, None, ip_rcv_finish)
    else:
        ip_rcv_finish(skb)


def ip_rcv_finish(skb: "SkBuff") -> None:
    dev: NetDevice = skb.dev
    if skb.trace is not None:
        skb.trace.hop(dev.nd_net, "ip_rcv_finish")
    rt = skb.dst
    if rt is None or rt.type != RTN_LOCAL:
        saddr, daddr = _unpack_addrs(skb.buf, skb.network_header + 12)
        ip_route_input(skb, daddr, saddr, dev)
        rt = skb.dst
    # else a packet looped back to this host: loopback_xmit keeps the dst it was sent with
    # (skb_dst_force), a local route whose input is ip_local_deliver, and ip_rcv_finish_core
    # looks a route up only for an skb without a valid dst.
    # Linux calls dst.input; local and broadcast routes' input is ip_local_deliver, which
    # route.py cannot name without importing this module back, so those two are dispatched
    # here and the others (ip_forward, ip_error) through the route.
    if rt.type == RTN_LOCAL or rt.type == RTN_BROADCAST and not rt.error:
        ip_local_deliver(skb)
    else:
        rt.input(skb)


def ip_local_deliver(skb: "SkBuff") -> None:
    """Reassemble if needed, then LOCAL_IN."""
    dev: NetDevice = skb.dev
    net = dev.nd_net
    if skb.trace is not None:
        skb.trace.hop(net, "ip_local_deliver")
    off = skb.network_header
    frag = (skb.buf[off + 6] << 8) | skb.buf[off + 7]
    if frag & (IP_MF | IP_OFFSET):
        from .ip_fragment import ip_defrag
        whole = ip_defrag(net, skb)
        if whole is None:
            return
        skb = whole
    if net.nf_hooks:
        nf_hook(NF_INET_LOCAL_IN, net, skb, skb.dev, None, ip_local_deliver_finish)
    else:
        ip_local_deliver_finish(skb)


def ip_local_deliver_finish(skb: "SkBuff") -> None:
    dev: NetDevice = skb.dev
    net = dev.nd_net
    off = skb.network_header
    buf = skb.buf
    ihl = (buf[off] & 15) * 4
    skb.data = off + ihl
    skb.transport_header = skb.data
    proto = buf[off + 9]
    handler = inet_protos.get(proto)
    if skb.trace is not None:
        skb.trace.hop(net, "ip_local_deliver_finish")
    if handler is None:
        net.mib.ip["InUnknownProtos"] += 1
        if skb.dst is not None and skb.dst.type == RTN_LOCAL:  # only unicast to us
            icmp_send(skb, ICMP_DEST_UNREACH, ICMP_PROT_UNREACH, 0)
        kfree_skb(skb, dr.IP_NOPROTO)
        return
    net.mib.ip["InDelivers"] += 1
    handler(skb)
