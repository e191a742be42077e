"""TCP segmentation and receive offloads in software, as net/ipv4/tcp_offload.c with the IPv4
parts of net/ipv4/af_inet.c (inet_gso_segment, inet_gro_receive) and net/core/gro.c.

Read first: net/ipv4/tcp_offload.c (tcp_gso_segment, tcp_gro_receive), Documentation/
networking/segmentation-offloads.rst, then net/core/dev.py (where GSO and GRO are called).

GSO: TCP sends one skb of many segments (`gso_size` bytes each) through IP, netfilter and
the qdisc as one packet; a device that cannot segment (`dev.tso` off: the emulated NIC,
tun, tap) gets it cut here, just before its queue, so taps and the wire see real segments.
Each segment gets its own IP id, total length and checksums; FIN and PSH stay on the last
one, CWR on the first (tcp_gso_segment).

GRO: in a NAPI poll, consecutive segments of one TCP flow that a sender cut from one stream
(same ACK, window, options, flags but PSH; each full-sized but the last) become one skb
again before IP sees them: one trip up the stack instead of one per segment. A segment with
PSH (or one shorter than the first) ends its batch; so does the end of the poll
(napi_gro_flush). Checksums are verified on each segment first; a bad one is passed up
alone, where TCP counts and drops it.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Final

from ...lib.checksum import csum_ipv4_payload, csum_pseudo, ip_fast_csum_at
from ...uapi.ip import IPPROTO_TCP
from ...uapi.tcp import TCPHDR_CWR, TCPHDR_FIN, TCPHDR_PSH
from ..core.skbuff import (CHECKSUM_NONE, CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, SKB_TRUESIZE,
                           SkBuff)

if TYPE_CHECKING:
    from ..core.dev import Napi

__all__ = ["skb_gso_segment", "tcp_gro_receive", "tcp_gro_key", "tcp_gro_receive_run",
           "napi_gro_flush", "GRO_MAX_SIZE"]

GRO_MAX_SIZE: Final = 65536
_IP_MF_OFFSET: Final = 0x3FFF
_unpack_addrs: Final = struct.Struct("!II").unpack_from


def skb_gso_segment(skb: SkBuff) -> list[SkBuff]:
    """Cut a TCP GSO skb into `gso_segs` skbs. Whatever precedes the IP header (a link
    header already pushed) is copied into each; headers are fixed up per segment."""
    buf = skb.buf
    nh = skb.network_header
    ihl = (buf[nh] & 15) * 4
    th = nh + ihl
    thlen = (buf[th + 12] >> 4) * 4
    header = bytes(buf[skb.data:th + thlen])
    l3 = nh - skb.data  # where the IP header starts within `header`
    mss = skb.gso_size
    payload = memoryview(buf)[th + thlen:skb.tail]
    total = len(payload)
    ip_id = (buf[nh + 4] << 8) | buf[nh + 5]
    seq = int.from_bytes(buf[th + 4:th + 8], "big")
    flags = buf[th + 13]
    saddr, daddr = _unpack_addrs(buf, nh + 12)
    segs = []
    per_truesize = SKB_TRUESIZE(0)
    # A device with checksum offload gets CHECKSUM_PARTIAL segments (the pseudo-header's
    # sum in place, as tcp_gso_segment leaves them); otherwise each is finished here.
    dev = skb.dev
    offload = dev is not None and dev.hw_csum
    for off in range(0, total, mss):
        n = min(mss, total - off)
        last = off + n >= total
        out = bytearray(header)
        out += payload[off:off + n]
        ipo = l3
        tot = ihl + thlen + n
        out[ipo + 2] = tot >> 8
        out[ipo + 3] = tot & 0xFF
        out[ipo + 4] = ip_id >> 8
        out[ipo + 5] = ip_id & 0xFF
        ip_id = (ip_id + 1) & 0xFFFF
        out[ipo + 10] = out[ipo + 11] = 0
        c = ip_fast_csum_at(out, ipo, ihl)
        out[ipo + 10] = c >> 8
        out[ipo + 11] = c & 0xFF
        tho = ipo + ihl
        s = (seq + off) & 0xFFFFFFFF
        out[tho + 4:tho + 8] = s.to_bytes(4, "big")
        f = flags
        if not last:
            f &= ~(TCPHDR_FIN | TCPHDR_PSH)
        if off:
            f &= ~TCPHDR_CWR
        out[tho + 13] = f
        if offload:
            c = csum_pseudo(saddr, daddr, IPPROTO_TCP, thlen + n)
        else:
            out[tho + 16] = out[tho + 17] = 0
            c = csum_ipv4_payload(saddr, daddr, IPPROTO_TCP, out, tho, thlen + n)
        out[tho + 16] = c >> 8
        out[tho + 17] = c & 0xFF
        seg = SkBuff(out, 0, len(out), per_truesize + n)
        if offload:
            seg.ip_summed = CHECKSUM_PARTIAL
            seg.csum_start = tho
            seg.csum_offset = 16
        seg.network_header = l3
        seg.transport_header = tho
        seg.mac_header = 0 if l3 else -1
        seg.dev = skb.dev
        seg.dst = skb.dst
        seg.sk = skb.sk
        seg.protocol = skb.protocol
        seg.priority = skb.priority
        seg.mark = skb.mark
        if not off:
            seg.trace = skb.trace
        segs.append(seg)
    return segs


def tcp_gro_key(buf: bytearray, nh: int) -> tuple:
    """The flow a segment (IPv4 header at `nh`, no options) is held under in a GRO batch."""
    saddr, daddr = _unpack_addrs(buf, nh + 12)
    return (saddr, daddr, bytes(buf[nh + 20:nh + 24]))


def tcp_gro_receive_run(napi: "Napi", skb: SkBuff, count: int, last: bool, deliver) -> None:
    """What tcp_gro_receive makes of `count` consecutive segments of one GSO packet arriving
    in one poll with nothing of their flow held (an unwatched NIC's burst, see
    drivers/net/nic.py): `skb` is the run as one buffer (`gso_run_frame`), received on its
    device. The run is held as one flow of `count` segments, as GRO would hold it, unless it
    ends the packet (`last`): the last segment's PSH then flushes it at once."""
    buf = skb.buf
    nh = skb.data
    th = nh + 20
    thlen = (buf[th + 12] >> 4) * 4
    mss = ((buf[nh + 2] << 8) | buf[nh + 3]) - 20 - thlen  # the first segment's payload
    flags = buf[th + 13]
    match = buf[th + 8:th + thlen]
    match[5] = flags & ~TCPHDR_PSH
    match[8] = match[9] = match[10] = match[11] = 0
    seq = int.from_bytes(buf[th + 4:th + 8], "big")
    skb.tail = skb.end = len(buf)
    flow = _GroFlow(skb, (seq + skb.tail - th - thlen) & 0xFFFFFFFF, mss,
                    tcp_gro_key(buf, nh), match)
    flow.count = count
    if last:
        buf[th + 13] = flags | TCPHDR_PSH  # as merging the packet's last segment sets it
        _flush(flow, deliver)
    else:
        napi.gro_list[flow.key] = flow


def gso_run_frame(skb: SkBuff, first: int, count: int, last: bool) -> bytearray:
    """Segment `first` of the GSO packet `skb`, as skb_gso_segment cuts it for a device
    with checksum offload (link header and all), with the payloads of the next count - 1
    segments appended; `last` when the run ends the packet (its PSH and FIN are the run's)."""
    buf = skb.buf
    nh = skb.network_header
    ihl = (buf[nh] & 15) * 4
    th = nh + ihl
    thlen = (buf[th + 12] >> 4) * 4
    hdr = th + thlen
    mss = skb.gso_size
    start = hdr + first * mss
    end = min(start + count * mss, skb.tail)
    out = bytearray(buf[skb.data:hdr])
    out += memoryview(buf)[start:end]
    ipo = nh - skb.data
    tho = ipo + ihl
    n = min(mss, end - start)
    tot = ihl + thlen + n
    ip_id = (((buf[nh + 4] << 8) | buf[nh + 5]) + first) & 0xFFFF
    out[ipo + 2] = tot >> 8
    out[ipo + 3] = tot & 0xFF
    out[ipo + 4] = ip_id >> 8
    out[ipo + 5] = ip_id & 0xFF
    out[ipo + 10] = out[ipo + 11] = 0
    c = ip_fast_csum_at(out, ipo, ihl)
    out[ipo + 10] = c >> 8
    out[ipo + 11] = c & 0xFF
    s = (int.from_bytes(buf[th + 4:th + 8], "big") + first * mss) & 0xFFFFFFFF
    out[tho + 4:tho + 8] = s.to_bytes(4, "big")
    f = buf[th + 13]
    if not (last and count == 1):
        f &= ~(TCPHDR_FIN | TCPHDR_PSH)
    if first:
        f &= ~TCPHDR_CWR
    out[tho + 13] = f
    saddr, daddr = _unpack_addrs(buf, nh + 12)
    c = csum_pseudo(saddr, daddr, IPPROTO_TCP, thlen + n)
    out[tho + 16] = c >> 8
    out[tho + 17] = c & 0xFF
    return out


class _GroFlow:
    """An skb being built from consecutive segments of one flow."""

    __slots__ = ("skb", "next_seq", "mss", "count", "key", "match")

    def __init__(self, skb: SkBuff, next_seq: int, mss: int, key: tuple, match: bytearray):
        self.skb = skb
        self.next_seq = next_seq
        self.mss = mss
        self.count = 1
        self.key = key
        self.match = match  # the header bytes every merged segment must share


def tcp_gro_receive(napi: "Napi", skb: SkBuff, deliver) -> bool:
    """Try to hold or merge an IPv4/TCP segment (skb.data at the IP header). False: not a
    GRO candidate, deliver it now (after flushing its flow, to keep order)."""
    buf = skb.buf
    nh = skb.data
    length = skb.tail - nh
    if length < 40 or buf[nh] != 0x45 or buf[nh + 9] != IPPROTO_TCP:
        return False
    tot = (buf[nh + 2] << 8) | buf[nh + 3]
    if tot < 40 or tot > length or ((buf[nh + 6] << 8) | buf[nh + 7]) & _IP_MF_OFFSET:
        return False
    if ip_fast_csum_at(buf, nh, 20) != 0:
        return False
    th = nh + 20
    thlen = (buf[th + 12] >> 4) * 4
    if thlen < 20 or thlen > tot - 20:
        return False
    saddr, daddr = _unpack_addrs(buf, nh + 12)
    key = (saddr, daddr, bytes(buf[th:th + 4]))
    flows = napi.gro_list
    held = flows.get(key)
    flags = buf[th + 13]
    datalen = tot - 20 - thlen
    # Only plain data segments (ACK, maybe PSH) merge; anything else goes up on its own. A
    # CHECKSUM_PARTIAL segment came from an offloading NIC untouched (or from this host):
    # its checksum is not verified again; any other is, here.
    if flags & ~(TCPHDR_PSH | 0x10) or not datalen or (
            skb.ip_summed == CHECKSUM_NONE and
            csum_ipv4_payload(saddr, daddr, IPPROTO_TCP, buf, th, tot - 20) != 0):
        if held is not None:
            del flows[key]
            _flush(held, deliver)
        return False
    if skb.ip_summed == CHECKSUM_NONE:
        skb.ip_summed = CHECKSUM_UNNECESSARY  # verified just now
    seq = int.from_bytes(buf[th + 4:th + 8], "big")
    # ACK, data offset, flags but PSH, window, and every option (timestamps) must match;
    # the checksum and urgent pointer (bytes 16-19) are masked out.
    match = buf[th + 8:th + thlen]
    match[5] = flags & ~TCPHDR_PSH
    match[8] = match[9] = match[10] = match[11] = 0
    if held is not None:
        hs = held.skb
        if (seq != held.next_seq or match != held.match or datalen > held.mss
                or hs.tail - hs.data + datalen > GRO_MAX_SIZE - 1):
            del flows[key]
            _flush(held, deliver)
            held = None
    if held is None:
        skb.tail = skb.end = nh + tot  # drop any Ethernet padding
        del buf[skb.tail:]
        held = _GroFlow(skb, (seq + datalen) & 0xFFFFFFFF, datalen, key, match)
        flows[key] = held
    else:
        hs = held.skb
        hs.buf += memoryview(buf)[th + thlen:nh + tot]
        hs.tail = hs.end = len(hs.buf)
        hs.truesize += skb.truesize
        held.next_seq = (seq + datalen) & 0xFFFFFFFF
        held.count += 1
        if flags & TCPHDR_PSH:
            hb = hs.buf
            hb[hs.data + 20 + 13] |= TCPHDR_PSH
    if flags & TCPHDR_PSH or datalen < held.mss:
        del flows[key]
        _flush(held, deliver)
    return True


def _flush(flow: _GroFlow, deliver) -> None:
    skb = flow.skb
    if flow.count > 1:
        buf = skb.buf
        nh = skb.data
        tot = skb.tail - nh
        buf[nh + 2] = tot >> 8
        buf[nh + 3] = tot & 0xFF
        buf[nh + 10] = buf[nh + 11] = 0
        c = ip_fast_csum_at(buf, nh, 20)
        buf[nh + 10] = c >> 8
        buf[nh + 11] = c & 0xFF
        skb.gso_size = flow.mss
        skb.gso_segs = flow.count
        # tcp4_gro_complete: the merged packet is CHECKSUM_PARTIAL, its field the
        # pseudo-header's sum over the merged length, so that anything that later needs the
        # bytes (a device without offload, forwarding's GSO) finds a checksum it can finish.
        saddr, daddr = _unpack_addrs(buf, nh + 12)
        th = nh + 20
        pseudo = csum_pseudo(saddr, daddr, IPPROTO_TCP, tot - 20)
        buf[th + 16] = pseudo >> 8
        buf[th + 17] = pseudo & 0xFF
        skb.ip_summed = CHECKSUM_PARTIAL
        skb.csum_start = th
        skb.csum_offset = 16
    deliver(skb)


def napi_gro_flush(napi: "Napi", deliver) -> None:
    """End of a poll: everything held goes up, oldest first."""
    flows = napi.gro_list
    if flows:
        held = list(flows.values())
        flows.clear()
        for flow in held:
            _flush(flow, deliver)
