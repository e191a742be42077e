"""ICMP, as net/ipv4/icmp.c.

Read first: RFC 792, RFC 1122 §3.2.2 (which errors may be sent and how a host reacts),
RFC 1812 §4.3.2.8 (rate limiting), net/ipv4/icmp.c (icmp_rcv, icmp_echo, icmp_unreach,
__icmp_send, icmpv4_xrlim_allow, icmp_global_allow), net/ipv4/inetpeer.c
(inet_peer_xrlim_allow).

Errors are never sent about ICMP errors, broadcasts, multicasts, non-first fragments, or
packets from a non-unicast source. Destination-unreachable, source-quench, time-exceeded and
parameter-problem messages (icmp_ratemask 0x1818) are rate limited per destination — a token
bucket of icmp_ratelimit (1 s) per message with a burst of six — and by a global bucket of
icmp_msgs_per_sec; messages through the loopback device are never limited.
A received error goes to the error handler of the protocol it quotes (udp_err, tcp_v4_err).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

import trio

from ...lib.checksum import csum_fold, csum_partial
from ...uapi.icmp import (ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_ECHOREPLY, ICMP_FRAG_NEEDED,
                          ICMP_HDR, ICMP_PARAMETERPROB, ICMP_REDIRECT, ICMP_SOURCE_QUENCH,
                          ICMP_TIME_EXCEEDED, NR_ICMP_TYPES, icmp_is_err)
from ...uapi.ip import IP_HDR, IP_OFFSET, IPPROTO_ICMP, ipv4_is_lbcast, ipv4_is_multicast
from ..core import drop_reason as dr
from ..core.dev import IFF_LOOPBACK
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import CHECKSUM_PARTIAL, PACKET_HOST, alloc_skb, skb_checksum_help
from .fib import RTN_BROADCAST, RTN_LOCAL, RTN_MULTICAST
from .protocol import inet_err_handlers
from .ip_output import ip_build_header, ip_local_out
from .route import RouteError, ip_route_output

if TYPE_CHECKING:
    from ..core.net_namespace import Net
    from ..core.skbuff import SkBuff

XRLIM_BURST_FACTOR: Final = 6
IPTOS_TOS_MASK: Final = 0x1E
IPTOS_PREC_INTERNETCONTROL: Final = 0xC0
# The most of the offending datagram an error quotes: the whole reply fits in 576 bytes.
ICMP_ERR_QUOTE: Final = 576 - 20 - 8

_pack_icmp: Final = ICMP_HDR.pack_into


def icmp_rcv(skb: "SkBuff") -> None:
    net = skb.dev.nd_net
    mib = net.mib.icmp
    if skb.trace is not None:
        skb.trace.hop(net, "icmp_rcv")
    # Linux counts every message in InMsgs first; each failure below adds InErrors.
    mib["InMsgs"] += 1
    length = skb.tail - skb.data
    if csum_fold(csum_partial(memoryview(skb.buf)[skb.data:skb.tail])) != 0:
        mib["InCsumErrors"] += 1
        mib["InErrors"] += 1
        kfree_skb(skb, dr.ICMP_CSUM)
        return
    if length < 8:
        mib["InErrors"] += 1
        kfree_skb(skb, dr.NOT_SPECIFIED)
        return
    type_ = skb.buf[skb.data]
    net.mib.icmp_in(type_)
    if type_ > NR_ICMP_TYPES:
        mib["InErrors"] += 1  # RFC 1122 3.2.2: unknown types are silently discarded
        kfree_skb(skb, dr.UNHANDLED_PROTO)
        return
    rt = skb.dst
    if rt is not None and rt.type in (RTN_BROADCAST, RTN_MULTICAST):
        # RFC 1122 3.2.2.6: echo to broadcast may be ignored (icmp_echo_ignore_broadcasts);
        # errors addressed to a broadcast are dropped. Both count as InErrors in Linux.
        if type_ != ICMP_ECHO or net.sysctl.icmp_echo_ignore_broadcasts:
            mib["InErrors"] += 1
            kfree_skb(skb, dr.INVALID_PROTO)
            return
    if type_ == ICMP_ECHO:
        icmp_echo(net, skb)
    elif type_ == ICMP_ECHOREPLY:
        from .ping import ping_rcv
        ping_rcv(net, skb)
    elif type_ in (ICMP_DEST_UNREACH, ICMP_TIME_EXCEEDED, ICMP_SOURCE_QUENCH,
                   ICMP_PARAMETERPROB):
        icmp_unreach(net, skb)
    elif type_ == ICMP_REDIRECT:
        consume_skb(skb)  # accept_redirects on hosts: not implemented; ignored, as with 0
    else:
        consume_skb(skb)


def icmp_echo(net: "Net", skb: "SkBuff") -> None:
    if net.sysctl.icmp_echo_ignore_all:
        consume_skb(skb)
        return
    buf = skb.buf
    off = skb.network_header
    saddr = int.from_bytes(buf[off + 12:off + 16], "big")
    daddr = int.from_bytes(buf[off + 16:off + 20], "big")
    body = bytes(buf[skb.data + 4:skb.tail])  # id, seq and data, echoed back
    rt = skb.dst
    src = daddr if rt is not None and rt.type == RTN_LOCAL else 0
    icmp_reply(net, skb, ICMP_ECHOREPLY, 0, body, saddr, src)
    consume_skb(skb)


def icmp_reply(net: "Net", skb_in: "SkBuff", type_: int, code: int, body: bytes, daddr: int,
               saddr: int) -> None:
    try:
        rt = ip_route_output(net, daddr, saddr)
    except RouteError:
        net.mib.icmp["OutErrors"] += 1
        return
    tos = skb_in.buf[skb_in.network_header + 1]  # a reply keeps the request's TOS
    _icmp_push(net, rt, type_, code, body, daddr, saddr or rt.saddr, skb_in.trace, tos=tos)


def _icmp_push(net: "Net", rt, type_: int, code: int, body: bytes, daddr: int, saddr: int,
               trace=None, ttl: int | None = None, tos: int = 0) -> None:
    skb = alloc_skb(8 + len(body) - 4)
    off = skb.put(4 + len(body))
    buf = skb.buf
    buf[off] = type_
    buf[off + 1] = code
    buf[off + 2] = 0
    buf[off + 3] = 0
    buf[off + 4:off + 4 + len(body)] = body
    c = csum_fold(csum_partial(memoryview(buf)[off:skb.tail]))
    buf[off + 2] = c >> 8
    buf[off + 3] = c & 0xFF
    skb.transport_header = off
    skb.dst = rt
    skb.trace = trace
    if trace is not None:
        trace.hop(net, "icmp_push")
    ip_build_header(skb, saddr, daddr, IPPROTO_ICMP, ttl or net.sysctl.ip_default_ttl, tos)
    net.mib.icmp["OutMsgs"] += 1
    net.mib.icmp_out(type_)
    ip_local_out(net, skb)


def icmp_unreach(net: "Net", skb: "SkBuff") -> None:
    """An error about a datagram we sent: hand it to the protocol that sent it."""
    buf = skb.buf
    data = skb.data
    if skb.tail - data < 8 + 20:
        net.mib.icmp["InErrors"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    type_, code, _c, rest = ICMP_HDR.unpack_from(buf, data)
    inner = data + 8
    ihl = (buf[inner] & 15) * 4
    if buf[inner] >> 4 != 4 or ihl < 20 or skb.tail - inner < ihl + 8:
        net.mib.icmp["InErrors"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        return
    info = rest & 0xFFFF if (type_ == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED) else 0
    proto = buf[inner + 9]
    handler = inet_err_handlers.get(proto)
    if handler is not None:
        skb.data = inner  # the error handler reads the quoted header here
        handler(skb, type_, code, info)
    consume_skb(skb)


def icmp_send(skb_in: "SkBuff", type_: int, code: int, info: int) -> None:
    """__icmp_send: report an error about `skb_in` to its sender, if the rules allow."""
    buf = skb_in.buf
    off = skb_in.network_header
    if off < 0 or len(buf) - off < 20:
        return
    rt_in = skb_in.dst
    dev = rt_in.dev if rt_in is not None else skb_in.dev
    if dev is None:
        return
    net = dev.nd_net
    _v, _tos, _tl, _id, frag, _ttl, proto, _ck, saddr, daddr = IP_HDR.unpack_from(buf, off)
    # No errors about broadcasts or multicasts (as addressed or as received) ...
    if rt_in is not None and rt_in.type in (RTN_BROADCAST, RTN_MULTICAST):
        return
    if skb_in.pkt_type != PACKET_HOST and rt_in is not None and rt_in.is_input:
        return
    # ... about non-first fragments ...
    if frag & IP_OFFSET:
        return
    # ... from a source that is not one host ...
    if saddr == 0 or ipv4_is_lbcast(saddr) or ipv4_is_multicast(saddr):
        return
    # ... or about ICMP errors.
    ihl = (buf[off] & 15) * 4
    if proto == IPPROTO_ICMP and icmp_is_err(type_):
        inner_type = buf[off + ihl] if off + ihl < len(buf) else 0
        if inner_type > NR_ICMP_TYPES or icmp_is_err(inner_type):
            return
    # The source: the address the offending packet was sent to, if it was ours.
    src = daddr if rt_in is not None and rt_in.type == RTN_LOCAL else 0
    try:
        rt = ip_route_output(net, saddr, src)
    except RouteError:
        net.mib.icmp["OutErrors"] += 1
        return
    if not icmpv4_xrlim_allow(net, rt, type_, code, saddr):
        return
    end = skb_in.tail if skb_in.tail > off else len(buf)
    if skb_in.ip_summed == CHECKSUM_PARTIAL:
        skb_checksum_help(skb_in)  # the quote shows the segment as a wire would carry it
        buf = skb_in.buf
    quote = bytes(buf[off:min(end, off + ICMP_ERR_QUOTE)])
    if type_ == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
        rest = struct.pack("!HH", 0, info & 0xFFFF)
    else:
        rest = struct.pack("!I", info & 0xFFFFFFFF) if type_ == ICMP_PARAMETERPROB else b"\0" * 4
    # Errors go out as network control traffic: RT_TOS(tos) | IPTOS_PREC_INTERNETCONTROL.
    tos = (_tos & IPTOS_TOS_MASK) | IPTOS_PREC_INTERNETCONTROL
    _icmp_push(net, rt, type_, code, rest + quote, saddr, src or rt.saddr, skb_in.trace,
               tos=tos)


def icmpv4_xrlim_allow(net: "Net", rt, type_: int, code: int, daddr: int) -> bool:
    if type_ > NR_ICMP_TYPES:
        return True
    if type_ == ICMP_DEST_UNREACH and code == ICMP_FRAG_NEEDED:
        return True
    if not (1 << type_) & net.sysctl.icmp_ratemask:
        return True
    if rt.dev.flags & IFF_LOOPBACK:
        return True
    now = trio.current_time()
    v4 = net.ipv4
    # icmp_global_allow: icmp_msgs_per_sec tokens per second, burst icmp_msgs_burst.
    s = net.sysctl
    g_tokens, g_last = v4.icmp_global
    g_tokens = min(s.icmp_msgs_burst, g_tokens + (now - g_last) * s.icmp_msgs_per_sec)
    if g_tokens < 1:
        v4.icmp_global = (g_tokens, now)
        net.mib.icmp["OutRateLimitGlobal"] += 1
        return False
    v4.icmp_global = (g_tokens - 1, now)
    # inet_peer_xrlim_allow: per destination.
    timeout = s.icmp_ratelimit / 1000.0
    if timeout <= 0:
        return True
    tokens, last = v4.icmp_peer.get(daddr, (0.0, now - 60.0))
    tokens = min(tokens + (now - last), XRLIM_BURST_FACTOR * timeout)
    if tokens >= timeout:
        v4.icmp_peer[daddr] = (tokens - timeout, now)
        return True
    v4.icmp_peer[daddr] = (tokens, now)
    net.mib.icmp["OutRateLimitHost"] += 1
    return False
