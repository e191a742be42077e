"""IPv4 output, as net/ipv4/ip_output.c.

Read first: RFC 791 §3.2 (fragmentation), RFC 1122 §3.3.3, net/ipv4/ip_output.c
(ip_queue_xmit, __ip_local_out, ip_local_out, ip_output, ip_finish_output,
ip_finish_output2, ip_do_fragment, ip_fragment), net/ipv4/ip_sockglue.c (IP_PMTUDISC_*).

The skb arrives with headroom for the IP and link headers already reserved. `ip_build_header`
pushes the IP header; `ip_local_out` fills in the length and checksum and runs LOCAL_OUT;
`ip_output` runs POST_ROUTING; `ip_finish_output` fragments datagrams larger than the route
MTU; `ip_finish_output2` resolves the next hop through the neighbour table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...lib.checksum import ip_fast_csum_at
from ...uapi.ethernet import ETH_P_IP
from ...uapi.icmp import ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED
from ...uapi.ip import IP_ADDRS, IP_DF, IP_HDR, IP_MF, IP_OFFSET
from ..core import drop_reason as dr
from ..core.dev import IFF_LOOPBACK, NET_XMIT_DROP, dev_queue_xmit, offload_base
from ..core.drop_reason import consume_skb, kfree_skb
from ..core.neighbour import neigh_output
from ..core.netfilter import NF_INET_LOCAL_OUT, NF_INET_POST_ROUTING, nf_hook
from ..core.skbuff import CHECKSUM_PARTIAL, alloc_skb, skb_checksum_help
from ..ethernet.eth import eth_header
from .fib import RTN_BROADCAST, RTN_MULTICAST

if TYPE_CHECKING:
    from ..core.net_namespace import Net
    from ..core.skbuff import SkBuff
    from .route import Rtable

_pack_ip: Final = IP_HDR.pack_into
_unpack_addrs: Final = IP_ADDRS.unpack_from
_BCAST: Final = b"\xff" * 6
_IFF_NOARP_P2P: Final = 0x80 | 0x10  # IFF_NOARP | IFF_POINTOPOINT (include/uapi/linux/if.h)
_ZERO_MAC: Final = b"\0" * 6

# IP_MTU_DISCOVER values (include/uapi/linux/in.h)
IP_PMTUDISC_DONT: Final = 0
IP_PMTUDISC_WANT: Final = 1
IP_PMTUDISC_DO: Final = 2
IP_PMTUDISC_PROBE: Final = 3


def ip_build_header(skb: "SkBuff", saddr: int, daddr: int, protocol: int, ttl: int,
                    tos: int = 0, df: bool = False, ip_id: int = 0) -> None:
    """Push a 20-byte IPv4 header; length and checksum are filled in by ip_local_out."""
    off = skb.data - 20  # skb_push; the TX path reserved the headroom (MAX_HEADER)
    if off < skb.head:
        raise OverflowError(f"skb_push under the head: 20 bytes, {skb.data} of headroom")
    skb.data = skb.network_header = off
    _pack_ip(skb.buf, off, 0x45, tos, 0, ip_id, IP_DF if df else 0, ttl, protocol, 0,
             saddr, daddr)


def ip_send_check(skb: "SkBuff") -> None:
    buf = skb.buf
    off = skb.network_header
    ihl = (buf[off] & 15) * 4
    buf[off + 10] = 0
    buf[off + 11] = 0
    c = ip_fast_csum_at(buf, off, ihl)
    buf[off + 10] = c >> 8
    buf[off + 11] = c & 0xFF


def ip_local_out(net: "Net", skb: "SkBuff") -> int:
    """__ip_local_out: total length, checksum, LOCAL_OUT; then dst_output."""
    buf = skb.buf
    off = skb.network_header
    tot_len = skb.tail - off
    buf[off + 2] = tot_len >> 8
    buf[off + 3] = tot_len & 0xFF
    # ip_send_check, inline (one call less per packet):
    buf[off + 10] = 0
    buf[off + 11] = 0
    c = ip_fast_csum_at(buf, off, (buf[off] & 15) * 4)
    buf[off + 10] = c >> 8
    buf[off + 11] = c & 0xFF
    skb.protocol = ETH_P_IP
    if skb.trace is not None:
        skb.trace.hop(net, "ip_local_out")
    net.mib.ip["OutRequests"] += 1
    if net.nf_hooks:
        return nf_hook(NF_INET_LOCAL_OUT, net, skb, None, skb.dst.dev, dst_output)
    return skb.dst.output(skb)


def dst_output(skb: "SkBuff") -> int:
    return skb.dst.output(skb)


def ip_output(skb: "SkBuff") -> int:
    rt = skb.dst
    dev = rt.dev
    net = dev.nd_net
    skb.dev = dev
    skb.protocol = ETH_P_IP
    if skb.trace is not None:
        skb.trace.hop(net, "ip_output")
    if net.nf_hooks:
        return nf_hook(NF_INET_POST_ROUTING, net, skb, None, dev, ip_finish_output)
    return ip_finish_output(skb)


def ip_finish_output(skb: "SkBuff") -> int:
    rt = skb.dst
    mtu = rt.dst_mtu() if rt.pmtu else (rt.mtu or rt.dev.mtu)
    if skb.gso_size:
        return ip_finish_output_gso(skb, mtu)
    if skb.tail - skb.network_header > mtu:
        return ip_fragment(skb, mtu)
    return ip_finish_output2(skb)


def ip_finish_output_gso(skb: "SkBuff", mtu: int) -> int:
    """A GSO skb whose segments fit the MTU goes on whole; otherwise (the path MTU shrank
    under it) it is cut here and each segment is fragmented or refused on its own."""
    buf = skb.buf
    nh = skb.network_header
    th = nh + (buf[nh] & 15) * 4
    if th - nh + (buf[th + 12] >> 4) * 4 + skb.gso_size <= mtu:
        return ip_finish_output2(skb)
    rc = 0
    for seg in offload_base[ETH_P_IP][0](skb):
        if seg.tail - seg.network_header > mtu:
            rc = ip_fragment(seg, mtu) or rc
        else:
            rc = ip_finish_output2(seg) or rc
    consume_skb(skb)
    return rc


def ip_finish_output2(skb: "SkBuff") -> int:
    rt: Rtable = skb.dst
    dev = rt.dev
    net = dev.nd_net
    net.mib.ip["OutTransmits"] += 1
    net.mib.ipext["OutOctets"] += skb.tail - skb.network_header
    if skb.trace is not None:
        skb.trace.hop(net, "ip_finish_output2")
    if dev.flags & IFF_LOOPBACK:
        eth_header(skb, dev, ETH_P_IP, _ZERO_MAC)
        return dev_queue_xmit(skb)
    # A point-to-point device without ARP and without a link header (tun in IFF_TUN mode,
    # drivers/net/tun.py): Linux gives its neighbours NUD_NOARP and arp_direct_ops, whose
    # output is neigh_direct_output -> dev_queue_xmit, and dev_hard_header pushes nothing
    # because the device has no header_ops. So: no ARP, no Ethernet header.
    # (Added for the packetdrill runner; a full NUD_NOARP neighbour model can replace it.)
    if dev.flags & _IFF_NOARP_P2P == _IFF_NOARP_P2P and dev.header_ops is None:
        return dev_queue_xmit(skb)
    if rt.type in (RTN_BROADCAST, RTN_MULTICAST):
        net.mib.ipext["OutBcastPkts"] += 1
        eth_header(skb, dev, ETH_P_IP, _BCAST)
        return dev_queue_xmit(skb)
    off = skb.network_header
    daddr = _unpack_addrs(skb.buf, off + 12)[1]
    nexthop = rt.gateway or daddr
    if nexthop == _subnet_broadcast(dev, nexthop):
        eth_header(skb, dev, ETH_P_IP, _BCAST)
        return dev_queue_xmit(skb)
    tbl = net.ipv4.arp_tbl
    n = tbl.entries.get((dev.ifindex, nexthop))
    if n is None:
        n = tbl.create(nexthop, dev)
    return neigh_output(n, skb)


def _subnet_broadcast(dev, addr: int) -> int:
    in_dev = dev.ip_ptr
    if in_dev is not None:
        for ifa in in_dev.ifa_list:
            if ifa.broadcast and ifa.broadcast == addr:
                return addr
    return -1


def ip_fragment(skb: "SkBuff", mtu: int) -> int:
    """ip_fragment: split into fragments of at most `mtu`, or refuse if DF is set."""
    net = skb.dst.dev.nd_net
    buf = skb.buf
    off = skb.network_header
    frag_off = (buf[off + 6] << 8) | buf[off + 7]
    if frag_off & IP_DF:
        net.mib.ip["FragFails"] += 1
        from .icmp import icmp_send  # icmp sends through this module: a cycle
        icmp_send(skb, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, mtu)
        kfree_skb(skb, dr.PKT_TOO_BIG)
        return NET_XMIT_DROP
    return ip_do_fragment(net, skb, mtu)


def ip_do_fragment(net: "Net", skb: "SkBuff", mtu: int) -> int:
    """The slow path: copy the header and a slice of the payload into each fragment."""
    if skb.ip_summed == CHECKSUM_PARTIAL:
        skb_checksum_help(skb)  # each fragment carries a piece of the finished segment
    buf = skb.buf
    off = skb.network_header
    ihl = (buf[off] & 15) * 4
    header = bytearray(buf[off:off + ihl])
    orig_frag = (header[6] << 8) | header[7]
    base_offset = (orig_frag & IP_OFFSET) * 8
    more = orig_frag & IP_MF
    payload = memoryview(buf)[off + ihl:skb.tail]
    total = len(payload)
    chunk = (mtu - ihl) & ~7
    if chunk <= 0:
        net.mib.ip["FragFails"] += 1
        kfree_skb(skb, dr.PKT_TOO_BIG)
        return NET_XMIT_DROP
    pos = 0
    rc = 0
    while pos < total:
        size = min(chunk, total - pos)
        last = pos + size >= total
        frag = alloc_skb(ihl + size, headroom=32)
        frag.dst = skb.dst
        frag.dev = skb.dev
        frag.sk = None
        frag.trace = skb.trace
        fo = frag.put(ihl + size)
        frag.network_header = fo
        frag.buf[fo:fo + ihl] = header
        frag.buf[fo + ihl:fo + ihl + size] = payload[pos:pos + size]
        flags = (orig_frag & ~IP_OFFSET & ~IP_MF) | ((base_offset + pos) >> 3)
        if not last or more:
            flags |= IP_MF
        tot = ihl + size
        frag.buf[fo + 2] = tot >> 8
        frag.buf[fo + 3] = tot & 0xFF
        frag.buf[fo + 6] = flags >> 8
        frag.buf[fo + 7] = flags & 0xFF
        ip_send_check(frag)
        frag.protocol = ETH_P_IP
        net.mib.ip["FragCreates"] += 1
        rc = ip_finish_output2(frag) or rc
        pos += size
    net.mib.ip["FragOKs"] += 1
    consume_skb(skb)
    return rc
