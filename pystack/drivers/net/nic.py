"""An emulated Ethernet NIC with descriptor rings, an IRQ and NAPI, after the e1000 family.

Read first: drivers/net/ethernet/intel/e1000/e1000_main.c (e1000_intr, e1000_clean,
e1000_clean_rx_irq, e1000_clean_tx_irq, e1000_xmit_frame), Documentation/networking/napi.rst.

RX: the wire "DMAs" a frame into the next free descriptor of the rx ring; a full ring drops
the frame and counts `rx_missed_errors`, as hardware does when it runs out of descriptors. If
the IRQ is enabled the NIC raises it; the handler masks it and schedules NAPI. The poll
function (weight 64) builds an skb over each frame (no copy: the frame buffer becomes the skb
buffer) and hands it to `napi_gro_receive`. A poll that finishes under its weight completes
NAPI and unmasks the IRQ; frames that landed meanwhile raise it again at once.

TX: `ndo_start_xmit` puts the skb on the tx ring; the "hardware" copies it onto the wire (the
one copy per hop: the wire must not see later writes to the buffer), padding short frames to
60 bytes, and marks the descriptor done.

Checksum offload (NETIF_F_HW_CSUM and RXCSUM, as e1000 has): TCP's CHECKSUM_PARTIAL skbs
reach the driver with only the pseudo-header's sum in the field, and the hardware writes the
checksum as it sends. Emulated, that sum would cost a few microseconds a frame, and the
receiving NIC's verification as much again, for a result known in advance: nothing but a
fault can spoil a frame between two emulated NICs. So the wire carries the frame as a
`WireFrame` whose checksum is still pending (`csum_start`/`csum_offset`, out of band, the way
virtio-net's header carries VIRTIO_NET_HDR_F_NEEDS_CSUM between two virtual machines), and the
receiving NIC hands it up CHECKSUM_PARTIAL: trusted, as a checksum its hardware verified.
Whatever would show or spoil the bytes on the way completes the checksum first
(`WireFrame.complete_csum`): netem's corruption (so a flipped bit is caught by the
receiver's software check and counted, exactly as before), a real TAP device, the packet
taps (captures) on either host. The bytes anyone can see are those a real NIC would send. Done descriptors are cleaned from the NAPI poll,
which a coalesced TX-completion interrupt schedules; cleaning frees the skb, which returns the
sending socket's memory. A full tx ring stops the queue; cleaning wakes it.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable

from ...kernel.softirq import irq_enter, irq_exit
from ...net.core.dev import (IFF_BROADCAST, IFF_MULTICAST, IFF_RUNNING, IFF_UP, NETDEV_TX_BUSY,
                             NETDEV_TX_OK, Napi, NetDevice, napi_complete_done,
                             napi_gro_flush, napi_gro_receive, napi_schedule,
                             netif_stop_queue, netif_wake_queue)
from ...net.core.drop_reason import consume_skb
from ...net.core.skbuff import CHECKSUM_PARTIAL, SKB_TRUESIZE, skb_from_frame
from ...net.ethernet.eth import eth_type_trans
from ...net.sched.sch_generic import Pfifo
from ...uapi.ethernet import BROADCAST, ETH_HLEN, ETH_ZLEN

if TYPE_CHECKING:
    from ...kernel.sched import Cpu
    from ...net.core.net_namespace import Net
    from ...net.core.skbuff import SkBuff

RX_RING_SIZE = 256
TX_RING_SIZE = 256
RX_BUFFER_LEN = 2048  # the driver posts 2 KiB buffers: what truesize charges per frame
NAPI_WEIGHT = 64

# Where transmitted frames go: the wire's transmit function, (frame, path trace) -> None.
WireTx = Callable[[bytearray, Any], None]


class WireFrame(bytearray):
    """A frame on an emulated wire, from an emulated NIC. If `csum_start` is not negative its
    transport checksum is still to be written (TX checksum offload, done lazily): the field at
    csum_start + csum_offset holds the pseudo-header's sum, and no one has changed a byte since
    the sending NIC took it (see the module's docstring)."""

    __slots__ = ("csum_start", "csum_offset")

    def complete_csum(self) -> None:
        """Write the pending checksum, as the sending NIC's hardware would have."""
        start = self.csum_start
        if start < 0:
            return
        self.csum_start = -1
        value = int.from_bytes(self[start:], "big")
        if (len(self) - start) & 1:
            value <<= 8
        rem = value % 0xFFFF
        c = 0xFFFF - rem if rem else 0
        at = start + self.csum_offset
        self[at] = c >> 8
        self[at + 1] = c & 0xFF

    def copy(self) -> "WireFrame":
        """A copy of the frame with the same pending checksum (netem's duplicate, a switch
        flooding)."""
        n = WireFrame(self)
        n.csum_start = self.csum_start
        n.csum_offset = self.csum_offset
        return n


def wire_copy(frame: bytearray) -> bytearray:
    """A private copy of a frame on the wire, pending checksum included."""
    return frame.copy() if type(frame) is WireFrame else bytearray(frame)


def wire_bytes(frame: bytearray) -> bytearray:
    """The frame as a real wire carries it: with any pending checksum written."""
    if type(frame) is WireFrame:
        frame.complete_csum()
    return frame


class Irq:
    """One interrupt line: its CPU, whether it is masked, how often it fired."""

    __slots__ = ("number", "cpu", "handler", "enabled", "count", "name")

    def __init__(self, number: int, cpu: "Cpu", handler: Callable[[], None], name: str):
        self.number = number
        self.cpu = cpu
        self.handler = handler
        self.enabled = True
        self.count = 0
        self.name = name

    def fire(self) -> None:
        """The device asserts the line: run the handler in hardirq context on its CPU."""
        cpu = self.cpu
        host = cpu.host
        self.count += 1
        prev = host.this_cpu
        host.this_cpu = cpu
        irq_enter(cpu)
        try:
            self.handler()
        finally:
            irq_exit(cpu)
            host.this_cpu = prev


class EthernetNic(NetDevice):
    def __init__(self, net: "Net", name: str, mac: bytes, irq_cpu: "Cpu", *, mtu: int = 1500,
                 rx_ring_size: int = RX_RING_SIZE, tx_ring_size: int = TX_RING_SIZE):
        super().__init__(net, name, mtu=mtu, flags=IFF_UP | IFF_BROADCAST | IFF_MULTICAST
                         | IFF_RUNNING, addr=mac, broadcast=BROADCAST,
                         hard_header_len=ETH_HLEN, tx_queue_len=1000, irq_cpu=irq_cpu)
        self.rx_ring: deque[tuple[bytearray, Any]] = deque()
        self.rx_ring_size = rx_ring_size
        self.tx_ring: deque[SkBuff] = deque()
        self.tx_ring_size = tx_ring_size
        self.tx_done = 0  # descriptors at the head of tx_ring the hardware has sent
        self.qdisc = Pfifo(self.tx_queue_len)
        self.napi = Napi(self._poll, NAPI_WEIGHT, irq_cpu, self, name)
        self.irq = Irq(net.host.new_irq(), irq_cpu, self._interrupt, name)
        self.wire_tx: WireTx | None = None  # set when a link is attached
        self.carrier = False
        # No TSO in "hardware": TCP's multi-segment skbs are cut by software GSO before the
        # qdisc, so taps and the wire see Ethernet frames. GRO is on (the NAPI poll merges).
        # Checksum offload is on (the module's docstring): GSO leaves segments partial.
        self.tso = False
        self.hw_csum = True

    # -- the hardware side ------------------------------------------------------------------
    def dma_rx(self, frame: bytearray, trace: Any = None) -> None:
        """A frame arrives from the wire."""
        if not (self.flags & IFF_UP):
            return
        if len(frame) < ETH_HLEN:
            # A runt: the hardware drops it and counts it (e1000's RUC → rx_length_errors).
            self.stats.rx_length_errors += 1
            self.stats.rx_errors += 1
            return
        # The MAC filter of a NIC out of promiscuous mode: unicast for others never reaches
        # the ring (a switch floods unknown destinations to every port).
        if not frame[0] & 1 and frame[:6] != self.dev_addr:
            return
        if len(self.rx_ring) >= self.rx_ring_size:
            self.stats.rx_missed_errors += 1
            net = self.nd_net
            if net.tracer.active:
                net.tracer.emit(net, "net:rx_missed", dev=self.name, len=len(frame))
            return
        self.rx_ring.append((frame, trace))
        if self.irq.enabled:
            self.irq.fire()

    def _interrupt(self) -> None:
        """e1000_intr: mask the device's interrupts and schedule NAPI."""
        self.irq.enabled = False
        napi_schedule(self.napi)

    def _tx_complete_irq(self) -> None:
        if self.irq.enabled:
            self.irq.fire()

    # -- the driver side ---------------------------------------------------------------------
    def ndo_start_xmit(self, skb: "SkBuff") -> int:
        if len(self.tx_ring) >= self.tx_ring_size:
            netif_stop_queue(self)
            return NETDEV_TX_BUSY
        self.tx_ring.append(skb)
        data = skb.data
        length = skb.tail - data
        # The hardware's DMA read: the wire gets its own copy of the frame, with the
        # checksum still to write if the stack left it to the hardware.
        frame = WireFrame(skb.buf[data:skb.tail])
        if skb.ip_summed == CHECKSUM_PARTIAL:
            frame.csum_start = skb.csum_start - data
            frame.csum_offset = skb.csum_offset
        else:
            frame.csum_start = -1
            frame.csum_offset = 0
        if length < ETH_ZLEN:
            frame.extend(bytes(ETH_ZLEN - length))
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)
        self.tx_done += 1
        if skb.trace is not None:
            skb.trace.hop(self.nd_net, f"{self.name}: xmit")
        if self.wire_tx is not None and self.carrier:
            self.wire_tx(frame, skb.trace)
        if len(self.tx_ring) >= self.tx_ring_size:
            netif_stop_queue(self)
        self._tx_complete_irq()
        return NETDEV_TX_OK

    def _clean_tx(self) -> None:
        ring = self.tx_ring
        while self.tx_done and ring:
            self.tx_done -= 1
            consume_skb(ring.popleft())
        if self.queue_stopped and len(ring) < self.tx_ring_size:
            netif_wake_queue(self)

    def _poll(self, napi: Napi, budget: int) -> int:
        """e1000_clean: clean the tx ring, then receive up to `budget` frames."""
        self._clean_tx()
        ring = self.rx_ring
        net = self.nd_net
        stats = self.stats
        work = 0
        while work < budget and ring:
            frame, trace = ring.popleft()
            work += 1
            length = len(frame)
            stats.rx_packets += 1
            stats.rx_bytes += length
            if length < ETH_HLEN:
                stats.rx_length_errors += 1
                stats.rx_errors += 1
                continue
            skb = skb_from_frame(frame, SKB_TRUESIZE(max(RX_BUFFER_LEN, length)))
            if type(frame) is WireFrame and frame.csum_start >= 0:
                # RX checksum offload: an untouched frame from an emulated NIC (above)
                skb.ip_summed = CHECKSUM_PARTIAL
                skb.csum_start = frame.csum_start
                skb.csum_offset = frame.csum_offset
            skb.trace = trace
            if trace is not None:
                trace.hop(net, f"{self.name}: napi_poll")
            skb.protocol = eth_type_trans(skb, self)
            napi_gro_receive(napi, skb)
        if work < budget:
            napi_complete_done(napi, work)
            self.irq.enabled = True
            if ring:
                self.irq.fire()
        else:
            napi_gro_flush(napi)
        return work
