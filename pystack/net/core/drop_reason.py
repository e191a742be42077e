"""Why a packet was dropped, as include/net/dropreason-core.h.

Read first: include/net/dropreason-core.h (the enum and what each reason means),
net/core/skbuff.c (kfree_skb_reason), net/core/drop_monitor.c.

Every drop goes through `kfree_skb(skb, reason)`: the reason is counted per host and handed to
the `skb:kfree_skb` tracepoint, so "why was my packet dropped" always has an answer.
The names are Linux's, without the SKB_DROP_REASON_ prefix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .skbuff import SkBuff

NOT_SPECIFIED = "NOT_SPECIFIED"
NO_SOCKET = "NO_SOCKET"
PKT_TOO_SMALL = "PKT_TOO_SMALL"
TCP_CSUM = "TCP_CSUM"
UDP_CSUM = "UDP_CSUM"
ICMP_CSUM = "ICMP_CSUM"
NETFILTER_DROP = "NETFILTER_DROP"
OTHERHOST = "OTHERHOST"
IP_CSUM = "IP_CSUM"
IP_INHDR = "IP_INHDR"
IP_NOPROTO = "IP_NOPROTO"
IP_INADDRERRORS = "IP_INADDRERRORS"
IP_INNOROUTES = "IP_INNOROUTES"
IP_OUTNOROUTES = "IP_OUTNOROUTES"
IP_RPFILTER = "IP_RPFILTER"
SOCKET_RCVBUFF = "SOCKET_RCVBUFF"
SOCKET_CLOSE = "SOCKET_CLOSE"
PROTO_MEM = "PROTO_MEM"
NEIGH_CREATEFAIL = "NEIGH_CREATEFAIL"
NEIGH_FAILED = "NEIGH_FAILED"
NEIGH_QUEUEFULL = "NEIGH_QUEUEFULL"
NEIGH_DEAD = "NEIGH_DEAD"
QDISC_DROP = "QDISC_DROP"
CPU_BACKLOG = "CPU_BACKLOG"
UNHANDLED_PROTO = "UNHANDLED_PROTO"
PKT_TOO_BIG = "PKT_TOO_BIG"
DEV_READY = "DEV_READY"
HDR_TRUNC = "HDR_TRUNC"
INVALID_PROTO = "INVALID_PROTO"
IP_FRAG_UNSUPPORTED = "IP_FRAGMENT"  # fragments: reassembly comes with the routers work
DUP_FRAG = "DUP_FRAG"
FRAG_REASM_TIMEOUT = "FRAG_REASM_TIMEOUT"
UNICAST_IN_L2_MULTICAST = "UNICAST_IN_L2_MULTICAST"
ARP_INVALID = "INVALID_PROTO"


def skb_net(skb: "SkBuff"):
    """The namespace an skb belongs to, for counting: its device's, its socket's, or its
    route's device's."""
    dev = skb.dev
    if dev is not None:
        return dev.nd_net
    sk = skb.sk
    if sk is not None:
        return sk.sk_net
    dst = skb.dst  # a control segment on its way out: its route knows the device
    if dst is not None and dst.dev is not None:
        return dst.dev.nd_net
    return None


def kfree_skb(skb: "SkBuff", reason: str = NOT_SPECIFIED) -> None:
    """Free a packet that was dropped, counting why."""
    net = skb_net(skb)
    if net is not None:
        drops = net.drop_reasons
        drops[reason] = drops.get(reason, 0) + 1
        tracer = net.tracer
        if tracer.active:
            tracer.emit(net, "skb:kfree_skb", reason=reason, len=skb.tail - skb.data,
                        protocol=skb.protocol)
    if skb.trace is not None:
        skb.trace.hop(net, f"kfree_skb({reason})")
    d = skb.destructor
    if d is not None:
        skb.destructor = None
        d(skb)


def consume_skb(skb: "SkBuff") -> None:
    """Free a packet that was used as intended (not a drop)."""
    d = skb.destructor
    if d is not None:
        skb.destructor = None
        d(skb)
