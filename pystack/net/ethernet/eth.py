"""Ethernet header handling, as net/ethernet/eth.c.

Read first: net/ethernet/eth.c (eth_header, eth_type_trans), include/linux/etherdevice.h.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...uapi.ethernet import ETH_HDR, ETH_HLEN
from ..core.skbuff import PACKET_BROADCAST, PACKET_HOST, PACKET_MULTICAST, PACKET_OTHERHOST

if TYPE_CHECKING:
    from ..core.dev import NetDevice
    from ..core.skbuff import SkBuff

_pack_into: Final = ETH_HDR.pack_into


def eth_header(skb: "SkBuff", dev: "NetDevice", protocol: int, daddr: bytes,
               saddr: bytes | None = None) -> int:
    """Push an Ethernet header. Returns its length."""
    off = skb.data - ETH_HLEN  # skb_push, inline
    if off < skb.head:
        raise OverflowError(f"skb_push under the head: {ETH_HLEN} bytes, {skb.data} of headroom")
    skb.data = off
    _pack_into(skb.buf, off, daddr, saddr if saddr is not None else dev.dev_addr, protocol)
    skb.mac_header = off
    return ETH_HLEN


def eth_type_trans(skb: "SkBuff", dev: "NetDevice") -> int:
    """Classify a received frame (pkt_type), pull the header, return the protocol.

    The caller has checked the frame holds at least a header.
    """
    skb.dev = dev
    buf = skb.buf
    off = skb.mac_header = skb.data
    skb.data = off + ETH_HLEN
    dst = buf[off:off + 6]  # (the source address is not needed: not read)
    if dst[0] & 1:
        skb.pkt_type = PACKET_BROADCAST if dst == dev.broadcast else PACKET_MULTICAST
    elif dst != dev.dev_addr:
        skb.pkt_type = PACKET_OTHERHOST
    else:
        skb.pkt_type = PACKET_HOST
    return (buf[off + 12] << 8) | buf[off + 13]
