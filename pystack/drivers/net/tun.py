"""A tun device: IP packets in and out of a host through a user-space program, as
drivers/net/tun.c in IFF_TUN mode.

Read first: drivers/net/tun.c (tun_net_xmit, tun_get_user, tun_net_init for IFF_TUN: no
header_ops, hard_header_len 0, IFF_NOARP | IFF_POINTOPOINT), Documentation/networking/tuntap.rst.

A tun device carries bare IP packets: no link header is ever added (the IFF_NOARP |
IFF_POINTOPOINT branch of `ip_finish_output2` skips ARP and the Ethernet header for it) and
none is expected on input. What the stack transmits is handed to the device's reader (`reader`,
a plain function called with the packet's bytes, in the transmitting context); what the reader
writes (`tun_get_user`) enters the stack as a received packet. Linux's tun_get_user delivers
from the writer's process context with bottom halves disabled (netif_rx_ni in older kernels,
netif_receive_skb under local_bh_disable now); here the packet is queued on the CPU's backlog
with `netif_rx` and NET_RX runs when bottom halves are re-enabled, inline in the writer's task.

The packetdrill runner (pystack/packetdrill) is this device's main user: it reads what the stack
sends and writes the packets a script injects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Final

from ...kernel.softirq import local_bh_disable, local_bh_enable
from ...net.core.dev import (IFF_NOARP, IFF_RUNNING, IFF_UP, NET_XMIT_DROP, NETDEV_TX_OK,
                             NetDevice, netif_rx)
from ...net.core.drop_reason import consume_skb
from ...net.core.skbuff import SKB_TRUESIZE, skb_from_frame
from ...net.sched.sch_generic import Pfifo
from ...uapi.ethernet import ETH_P_IP

if TYPE_CHECKING:
    from ...host import Host
    from ...kernel.sched import Cpu
    from ...net.core.net_namespace import Net
    from ...net.core.skbuff import SkBuff

__all__ = ["TunDevice", "IFF_POINTOPOINT", "IFF_TUN", "TUN_DEFAULT_MTU", "add_tun"]

IFF_POINTOPOINT: Final = 0x10  # include/uapi/linux/if.h
IFF_TUN: Final = 0x0001        # include/uapi/linux/if_tun.h: the device carries IP packets
TUN_DEFAULT_MTU: Final = 1500  # tun_net_init: ETH_DATA_LEN
TUN_READQ_SIZE: Final = 500    # tun's tx_queue_len

# What the reader gets: the IP packet's bytes (a private copy).
TunReader = Callable[[bytes], None]


class TunDevice(NetDevice):
    """A tun (IFF_TUN) device. `reader` receives every transmitted packet; `tun_get_user`
    injects one. Without a reader, transmitted packets are counted and dropped, as Linux's
    tun_net_xmit does when no file is attached."""

    def __init__(self, net: "Net", name: str, irq_cpu: "Cpu", *, mtu: int = TUN_DEFAULT_MTU,
                 reader: TunReader | None = None):
        super().__init__(net, name, mtu=mtu,
                         flags=IFF_UP | IFF_RUNNING | IFF_NOARP | IFF_POINTOPOINT,
                         addr=b"", broadcast=b"", hard_header_len=0,
                         tx_queue_len=TUN_READQ_SIZE, irq_cpu=irq_cpu)
        self.header_ops = None  # IFF_TUN: no link-layer header at all
        self.tso = False  # a reader gets whole segments (no virtio header): GSO in software
        self.qdisc = Pfifo(self.tx_queue_len)  # packetdrill's defaults.sh installs pfifo
        self.reader = reader

    def ndo_start_xmit(self, skb: "SkBuff") -> int:
        """tun_net_xmit: hand the packet to the reader (the skb is freed; the reader keeps a
        copy, as a read() from /dev/net/tun copies into user memory)."""
        data = bytes(skb.buf[skb.data:skb.tail])
        if skb.trace is not None:
            skb.trace.hop(self.nd_net, f"{self.name}: tun_net_xmit")
        if self.reader is None:
            self.stats.tx_dropped += 1
            consume_skb(skb)
            return NETDEV_TX_OK
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(data)
        consume_skb(skb)
        self.reader(data)
        return NETDEV_TX_OK

    def tun_get_user(self, packet: bytes | bytearray) -> int:
        """A write to the tun file: the IP packet enters the stack as received on this
        device. Returns NET_XMIT_SUCCESS, or NET_XMIT_DROP if the device is down or the
        backlog is full (counted there)."""
        host = self.nd_net.host
        if not self.flags & IFF_UP:
            self.stats.rx_dropped += 1
            return NET_XMIT_DROP
        frame = bytearray(packet)
        skb = skb_from_frame(frame, SKB_TRUESIZE(len(frame)))
        skb.dev = self
        skb.protocol = ETH_P_IP
        skb.reset_mac_header()
        skb.reset_network_header()
        self.stats.rx_packets += 1
        self.stats.rx_bytes += len(frame)
        cpu = host.cpus[0]
        prev = host.this_cpu
        host.this_cpu = cpu
        local_bh_disable(cpu)
        try:
            return netif_rx(skb)
        finally:
            local_bh_enable(cpu)  # NET_RX runs here: the packet is delivered now
            host.this_cpu = prev


def add_tun(host: "Host", name: str = "tun0", *, address: str | None = None,
            mtu: int = TUN_DEFAULT_MTU, reader: TunReader | None = None) -> TunDevice:
    """Create, register and bring up a tun device on `host`, optionally with an address
    ("192.168.0.1/16"). Routes are the caller's: `host.add_route(prefix, dev=name, ...)`."""
    dev = TunDevice(host.net, name, host.cpus[0], mtu=mtu, reader=reader)
    host._register(dev)
    if address is not None:
        host.add_address(name, address)
    return dev
