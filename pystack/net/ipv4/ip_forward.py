"""IPv4 forwarding, as net/ipv4/ip_forward.c.

Read first: RFC 1812 §5.2-5.3, net/ipv4/ip_forward.c (ip_forward, ip_forward_finish).

A host with forwarding on decrements TTL (time exceeded at 1), runs the FORWARD hook and sends
the packet on through the route's output. ICMP redirects are off, as `send_redirects=0` makes
them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...uapi.icmp import ICMP_EXC_TTL, ICMP_TIME_EXCEEDED
from ..core import drop_reason as dr
from ..core.drop_reason import kfree_skb
from ..core.netfilter import NF_INET_FORWARD, nf_hook
from ..core.skbuff import PACKET_HOST
from .ip_output import ip_output

if TYPE_CHECKING:
    from ..core.skbuff import SkBuff


def ip_forward(skb: "SkBuff") -> None:
    net = skb.dev.nd_net
    if skb.pkt_type != PACKET_HOST:
        kfree_skb(skb, dr.OTHERHOST)
        return
    if skb.trace is not None:
        skb.trace.hop(net, "ip_forward")
    skb.unshare()
    buf = skb.buf
    off = skb.network_header
    ttl = buf[off + 8]
    if ttl <= 1:
        from .icmp import icmp_send  # icmp imports route, which imports us
        icmp_send(skb, ICMP_TIME_EXCEEDED, ICMP_EXC_TTL, 0)
        net.mib.ip["InHdrErrors"] += 1
        kfree_skb(skb, "IP_INHDR")
        return
    # ip_decrease_ttl: incremental checksum update (RFC 1624).
    buf[off + 8] = ttl - 1
    check = ((buf[off + 10] << 8) | buf[off + 11]) + 0x0100
    check = (check & 0xFFFF) + (check >> 16)
    buf[off + 10] = check >> 8
    buf[off + 11] = check & 0xFF
    skb.data = off
    nf_hook(NF_INET_FORWARD, net, skb, skb.dev, skb.dst.dev, ip_forward_finish)


def ip_forward_finish(skb: "SkBuff") -> int:
    net = skb.dst.dev.nd_net
    net.mib.ip["ForwDatagrams"] += 1
    return ip_output(skb)
