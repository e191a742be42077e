"""IPv4 reassembly, as net/ipv4/ip_fragment.c and net/ipv4/inet_fragment.c.

Read first: RFC 791 §3.2 (reassembly), RFC 815, net/ipv4/ip_fragment.c (ip_defrag,
ip_frag_queue, ip_frag_reasm, ip_expire), net/ipv4/inet_fragment.c (inet_frag_queue_insert:
duplicates vs overlaps), Documentation/networking/ip-sysctl.rst (ipfrag_*).

A queue per (saddr, daddr, id, protocol) holds fragments sorted by offset. A fragment that
repeats one already held is dropped alone (DUP_FRAG); one that partly overlaps kills the whole
queue, as Linux has done since 2018 (overlaps are an attack, not a network artefact). Queues
expire after `ipfrag_time` (ICMP time exceeded, reassembly, if the first fragment came), and
memory held by all queues stays under `ipfrag_high_thresh`: past it, new fragments are dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ...kernel.timer import Timer
from ...uapi.icmp import ICMP_EXC_FRAGTIME, ICMP_TIME_EXCEEDED
from ...uapi.ip import IP_MF, IP_OFFSET
from ..core import drop_reason as dr
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.skbuff import SkBuff

if TYPE_CHECKING:
    from ..core.net_namespace import Net


class FragQueue:
    __slots__ = ("key", "frags", "len", "meat", "last_in", "timer", "mem", "net", "first")

    def __init__(self, net: "Net", key: tuple[int, int, int, int]):
        self.net = net
        self.key = key
        self.frags: list[tuple[int, int, SkBuff]] = []  # (offset, end, skb), sorted
        self.len = 0  # total length once the last fragment is known
        self.meat = 0  # bytes received
        self.last_in = False
        self.first: SkBuff | None = None
        self.mem = 0
        self.timer = Timer(ip_expire, self)


class FragState:
    def __init__(self) -> None:
        self.queues: dict[tuple[int, int, int, int], FragQueue] = {}
        self.mem = 0


def _kill(net: "Net", q: FragQueue, reason: str = dr.NOT_SPECIFIED) -> None:
    state = net.ipv4.frags
    state.queues.pop(q.key, None)
    net.host.cpus[0].timers.del_timer(q.timer)
    for _o, _e, skb in q.frags:
        kfree_skb(skb, reason)
    state.mem -= q.mem
    q.frags = []
    q.mem = 0


def ip_expire(timer: Timer) -> None:
    q: FragQueue = timer.data
    net = q.net
    if q.key not in net.ipv4.frags.queues:
        return
    net.mib.ip["ReasmFails"] += 1
    net.mib.ip["ReasmTimeout"] += 1
    first = q.first
    frags = q.frags
    net.ipv4.frags.queues.pop(q.key, None)
    net.ipv4.frags.mem -= q.mem
    q.mem = 0
    q.frags = []
    if first is not None and first.dev is not None:
        from .icmp import icmp_send
        icmp_send(first, ICMP_TIME_EXCEEDED, ICMP_EXC_FRAGTIME, 0)
    for _o, _e, skb in frags:
        kfree_skb(skb, dr.FRAG_REASM_TIMEOUT)


def ip_defrag(net: "Net", skb: SkBuff) -> SkBuff | None:
    """Queue a fragment; return the reassembled datagram when complete, else None."""
    mib = net.mib.ip
    mib["ReasmReqds"] += 1
    state = net.ipv4.frags
    sysctl = net.sysctl
    buf = skb.buf
    off = skb.network_header
    ihl = (buf[off] & 15) * 4
    if state.mem + skb.truesize > sysctl.ipfrag_high_thresh:
        mib["ReasmFails"] += 1
        kfree_skb(skb, dr.PROTO_MEM)
        return None
    frag = (buf[off + 6] << 8) | buf[off + 7]
    offset = (frag & IP_OFFSET) * 8
    end = offset + (skb.tail - off - ihl)
    key = (int.from_bytes(buf[off + 12:off + 16], "big"),
           int.from_bytes(buf[off + 16:off + 20], "big"),
           (buf[off + 4] << 8) | buf[off + 5], buf[off + 9])
    q = state.queues.get(key)
    if q is None:
        q = FragQueue(net, key)
        state.queues[key] = q
        net.host.cpus[0].timers.mod_timer(q.timer, trio.current_time() + sysctl.ipfrag_time)
    if end > 65535 or (frag & IP_MF and (end - offset) % 8):
        mib["ReasmFails"] += 1
        kfree_skb(skb, dr.PKT_TOO_SMALL)
        _kill(net, q)
        return None
    if not frag & IP_MF:
        if end < q.len or (q.last_in and end != q.len):
            mib["ReasmFails"] += 1
            kfree_skb(skb, dr.IP_INHDR)
            _kill(net, q)
            return None
        q.last_in = True
        q.len = end
    elif end > q.len:
        if q.last_in:
            mib["ReasmFails"] += 1
            kfree_skb(skb, dr.IP_INHDR)
            _kill(net, q)
            return None
        q.len = end
    # Insert, classifying against neighbours: inside one already held = duplicate;
    # any other intersection = overlap, which discards the whole queue.
    frags = q.frags
    i = 0
    while i < len(frags) and frags[i][0] < offset:
        i += 1
    for j in (i - 1, i):
        if 0 <= j < len(frags):
            o, e, _s = frags[j]
            if o <= offset and end <= e:
                kfree_skb(skb, dr.DUP_FRAG)
                return None
            if offset < e and o < end:
                mib["ReasmFails"] += 1
                net.mib.ipext["ReasmOverlaps"] = net.mib.ipext.get("ReasmOverlaps", 0) + 1
                kfree_skb(skb, "IP_FRAG_OVERLAP")
                _kill(net, q)
                return None
    frags.insert(i, (offset, end, skb))
    q.meat += end - offset
    q.mem += skb.truesize
    state.mem += skb.truesize
    if offset == 0:
        q.first = skb
    if q.last_in and q.meat == q.len:
        return ip_frag_reasm(net, q)
    return None


def ip_frag_reasm(net: "Net", q: FragQueue) -> SkBuff:
    state = net.ipv4.frags
    state.queues.pop(q.key, None)
    net.host.cpus[0].timers.del_timer(q.timer)
    state.mem -= q.mem
    first = q.frags[0][2]
    fb = first.buf
    foff = first.network_header
    ihl = (fb[foff] & 15) * 4
    out = bytearray(fb[foff:foff + ihl])
    out.extend(bytes(q.len))
    for o, e, skb in q.frags:
        soff = skb.network_header + ((skb.buf[skb.network_header] & 15) * 4)
        out[ihl + o:ihl + e] = skb.buf[soff:soff + (e - o)]
    tot = ihl + q.len
    out[2] = tot >> 8
    out[3] = tot & 0xFF
    out[6] = 0
    out[7] = 0
    skb = SkBuff(out, 0, len(out), sum(s.truesize for _o, _e, s in q.frags))
    skb.dev = first.dev
    skb.dst = first.dst
    skb.pkt_type = first.pkt_type
    skb.protocol = first.protocol
    skb.trace = first.trace
    skb.network_header = 0
    skb.transport_header = ihl
    for _o, _e, s in q.frags:
        consume_skb(s)
    q.frags = []
    from .ip_output import ip_send_check
    ip_send_check(skb)
    net.mib.ip["ReasmOKs"] += 1
    return skb
