"""The loopback device, as drivers/net/loopback.c.

Read first: drivers/net/loopback.c (loopback_xmit, loopback_setup).

lo carries Ethernet headers with all-zero addresses, like Linux's: a capture on lo shows
Ethernet frames. `loopback_xmit` orphans the skb (the sender's memory is released at once),
classifies it and queues it on this CPU's backlog with `netif_rx`; NET_RX then delivers it at
the end of the sender's bh-disabled section.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ...net.core.dev import IFF_LOOPBACK, IFF_RUNNING, IFF_UP, NETDEV_TX_OK, NetDevice, netif_rx
from ...net.ethernet.eth import eth_type_trans
from ...net.core.skbuff import PACKET_LOOPBACK, PACKET_HOST

if TYPE_CHECKING:
    from ...kernel.sched import Cpu
    from ...net.core.net_namespace import Net
    from ...net.core.skbuff import SkBuff

LOOPBACK_MTU: Final = 65536


class LoopbackDevice(NetDevice):
    def __init__(self, net: "Net", irq_cpu: "Cpu"):
        super().__init__(net, "lo", mtu=LOOPBACK_MTU, flags=IFF_UP | IFF_LOOPBACK | IFF_RUNNING,
                         addr=b"\0" * 6, broadcast=b"\0" * 6, hard_header_len=14,
                         tx_queue_len=1000, irq_cpu=irq_cpu)
        # NETIF_F_HW_CSUM: TCP's CHECKSUM_PARTIAL skbs cross lo as they are and the receiver
        # trusts them (loopback_setup's features): no checksum is ever computed on lo, except
        # for a capture (dev.py completes it for the taps).
        self.hw_csum = True

    def ndo_start_xmit(self, skb: "SkBuff") -> int:
        return loopback_xmit(skb, self)


def loopback_xmit(skb: "SkBuff", dev: NetDevice) -> int:
    if skb.trace is not None:
        skb.trace.hop(dev.nd_net, "loopback_xmit")
    d = skb.destructor  # skb_orphan, inline: the sender's memory is released now
    if d is not None:
        skb.destructor = None
        d(skb)
    skb.sk = None
    length = skb.tail - skb.data
    skb.protocol = eth_type_trans(skb, dev)
    skb.pkt_type = PACKET_HOST if skb.pkt_type != PACKET_LOOPBACK else skb.pkt_type
    stats = dev.stats
    stats.tx_packets += 1
    stats.tx_bytes += length
    stats.rx_packets += 1
    stats.rx_bytes += length
    netif_rx(skb)
    return NETDEV_TX_OK
