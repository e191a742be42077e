"""ICMP echo ("ping") endpoints, after net/ipv4/ping.c.

Read first: net/ipv4/ping.c (ping_rcv, ping_err, ping_lookup by ident).

`host.ping()` opens an endpoint keyed by an echo identifier; replies and errors quoting that
identifier are matched here in softirq and handed to the waiting endpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ...uapi.icmp import ICMP_ECHO, ICMP_HDR
from ..core.drop_reason import consume_skb

if TYPE_CHECKING:
    from ..core.net_namespace import Net
    from ..core.skbuff import SkBuff


class PingEndpoint:
    """An ident and two callbacks: reply(seq, payload) and error(type, code, info)."""

    __slots__ = ("ident", "on_reply", "on_error")

    def __init__(self, ident: int, on_reply: Callable[[int, bytes], None],
                 on_error: Callable[[int, int, int], None]):
        self.ident = ident
        self.on_reply = on_reply
        self.on_error = on_error


def ping_rcv(net: "Net", skb: "SkBuff") -> None:
    _t, _c, _ck, rest = ICMP_HDR.unpack_from(skb.buf, skb.data)
    ep = net.ipv4.ping_table.get(rest >> 16)
    if ep is not None:
        ep.on_reply(rest & 0xFFFF, bytes(skb.buf[skb.data + 8:skb.tail]))
    consume_skb(skb)


def ping_err(skb: "SkBuff", type_: int, code: int, info: int) -> None:
    """Error handler for IPPROTO_ICMP: an error quoting one of our echo requests."""
    net = skb.dev.nd_net
    inner = skb.data
    ihl = (skb.buf[inner] & 15) * 4
    t = inner + ihl
    if skb.buf[t] != ICMP_ECHO:
        return
    ident = (skb.buf[t + 4] << 8) | skb.buf[t + 5]
    ep = net.ipv4.ping_table.get(ident)
    if ep is not None:
        ep.on_error(type_, code, info)
