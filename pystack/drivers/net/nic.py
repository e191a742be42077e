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
60 bytes, and marks the descriptor done. Done descriptors are cleaned from the NAPI poll,
which a coalesced TX-completion interrupt schedules; cleaning frees the skb, which returns the
sending socket's memory. A full tx ring stops the queue; cleaning wakes it.

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
taps (captures) on either host. The bytes anyone can see are those a real NIC would send.

Segment bursts. A TSO packet cut by GSO would reach this driver as `gso_segs` segments in a
row, each bypassing the empty qdisc, each one frame on the wire, each merged back by the
receiver's GRO into the packet it was cut from. When nothing can tell the difference — no
tap or tracer or path trace, an empty qdisc with ring room for every segment, a wire without
netem, hold or partition, a switch that knows the destination, a receiver with room in its
ring, GRO on and no segment of the flow held — the driver takes the packet whole
(`xmit_gso_segments`) and the wire carries it as one `GsoBurst` that stands for its frames:
every counter, ring slot, interrupt and the skb GRO would build are the same, without
cutting and merging 45 frames in Python. A poll whose budget ends inside a burst takes its
first frames as GRO would (held until the poll's end) and leaves the rest as a burst. Wherever a condition fails the burst
becomes its frames (`GsoBurst.frames`: what software GSO and `ndo_start_xmit` would have
made) and goes on frame by frame from that point. tests/drivers/net/test_gso_burst.py runs
scenarios both ways and compares everything observable.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, Callable, Final

from ...kernel.softirq import irq_enter, irq_exit
from ...lib.checksum import csum_complete_at
from ...lib.compiled import mypyc_attr
from ...net.core.dev import (IFF_BROADCAST, IFF_MULTICAST, IFF_RUNNING, IFF_UP, NETDEV_TX_BUSY,
                             NETDEV_TX_OK, Napi, NetDevice, napi_complete_done,
                             napi_gro_flush, napi_gro_receive, napi_schedule,
                             netif_stop_queue, netif_wake_queue)
from ...net.core.dev import _netif_receive_skb  # where GRO delivers what it merged
from ...net.core.drop_reason import consume_skb
from ...net.core.skbuff import CHECKSUM_PARTIAL, SKB_TRUESIZE, skb_from_frame
from ...net.ethernet.eth import eth_type_trans
from ...net.ipv4.tcp_offload import (gso_run_frame, skb_gso_segment, tcp_gro_key,
                                     tcp_gro_receive_run)
from ...net.sched.sch_generic import Pfifo
from ...uapi.ethernet import BROADCAST, ETH_HLEN, ETH_ZLEN
from ...uapi.ip import IPPROTO_TCP
from ...uapi.tcp import TCPHDR_ACK, TCPHDR_PSH

if TYPE_CHECKING:
    from ...kernel.sched import Cpu
    from ...net.core.net_namespace import Net
    from ...net.core.skbuff import SkBuff

RX_RING_SIZE: Final = 256
TX_RING_SIZE: Final = 256
RX_BUFFER_LEN: Final = 2048  # the driver posts 2 KiB buffers: what truesize charges per frame
NAPI_WEIGHT: Final = 64

# Where transmitted frames go: the wire's transmit function, (frame, path trace) -> None.
WireTx = Callable[[bytearray, Any], None]


@mypyc_attr(native_class=False)
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
        csum_complete_at(self, start, len(self), start + self.csum_offset)

    def copy(self) -> "WireFrame":
        """A copy of the frame with the same pending checksum (netem's duplicate, a switch
        flooding)."""
        n = WireFrame(self)
        n.csum_start = self.csum_start
        n.csum_offset = self.csum_offset
        return n


class GsoBurst:
    """The frames software GSO would cut from the TCP packet `skb` (whose buffer no one
    writes any more), from segment `first` to its end (`segs` of them), on their way over a
    wire, or waiting in an rx ring, as one (see the module's docstring)."""

    __slots__ = ("skb", "first", "segs", "full", "last", "nbytes", "dst", "src")

    def __init__(self, skb: "SkBuff", first: int, segs: int, full: int, last: int):
        self.skb = skb
        self.first = first
        self.segs = segs
        self.full = full  # the length of every frame but the last
        self.last = last  # the last one's (padded to the minimum frame)
        self.nbytes = (segs - 1) * full + last  # as tx_bytes and rx_bytes count them
        buf = skb.buf
        data = skb.data
        self.dst = bytes(buf[data:data + 6])
        self.src = bytes(buf[data + 6:data + 12])

    def frames(self) -> list["WireFrame"]:
        """The frames themselves: the GSO segments as the sending NIC would have sent them."""
        return [_dma_frame(seg) for seg in skb_gso_segment(self.skb)[self.first:]]

    def rest(self, n: int) -> "GsoBurst":
        """The burst without its first `n` frames."""
        return GsoBurst(self.skb, self.first + n, self.segs - n, self.full, self.last)


def _dma_frame(skb: "SkBuff") -> "WireFrame":
    """What the NIC's DMA puts on the wire for `skb`: a copy of its bytes, padded to the
    minimum frame, with the checksum pending if the stack left it to the hardware."""
    data = skb.data
    frame = WireFrame(skb.buf[data:skb.tail])
    if skb.ip_summed == CHECKSUM_PARTIAL:
        frame.csum_start = skb.csum_start - data
        frame.csum_offset = skb.csum_offset
    else:
        frame.csum_start = -1
        frame.csum_offset = 0
    length = skb.tail - data
    if length < ETH_ZLEN:
        frame.extend(bytes(ETH_ZLEN - length))
    return frame


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
        self.rx_ring: deque[tuple[bytearray | GsoBurst, Any]] = deque()
        self.rx_ring_size = rx_ring_size
        self.rx_used = 0  # descriptors the ring's entries fill (a GsoBurst fills `segs`)
        self.tx_ring: deque[SkBuff | GsoBurst] = deque()
        self.tx_ring_size = tx_ring_size
        self.tx_used = 0  # descriptors the tx ring's entries fill (a GsoBurst fills `segs`)
        self.tx_done = 0  # descriptors at the head of tx_ring the hardware has sent
        # GSO packets sent as one burst: pystack's own counter (Linux has none), that shows
        # the shortcut is taken without patching the driver.
        self.tx_bursts = 0
        self.qdisc = Pfifo(self.tx_queue_len)
        self.napi = Napi(self._poll, NAPI_WEIGHT, irq_cpu, self, name)
        self.irq = Irq(net.host.new_irq(), irq_cpu, self._interrupt, name)
        self.wire_tx: WireTx | None = None  # set when a link is attached
        self.wire_tx_burst: Callable[[GsoBurst], None] | None = None  # ... for GsoBursts
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
        if self.rx_used >= self.rx_ring_size:
            self.stats.rx_missed_errors += 1
            net = self.nd_net
            if net.tracer.active:
                net.tracer.emit(net, "net:rx_missed", dev=self.name, len=len(frame))
            return
        self.rx_ring.append((frame, trace))
        self.rx_used += 1
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
        if self.tx_used >= self.tx_ring_size:
            netif_stop_queue(self)
            return NETDEV_TX_BUSY
        self.tx_ring.append(skb)
        self.tx_used += 1
        # The hardware's DMA read: the wire gets its own copy of the frame, with the
        # checksum still to write if the stack left it to the hardware.
        frame = _dma_frame(skb)
        self.stats.tx_packets += 1
        self.stats.tx_bytes += len(frame)
        self.tx_done += 1
        if skb.trace is not None:
            skb.trace.hop(self.nd_net, f"{self.name}: xmit")
        if self.wire_tx is not None and self.carrier:
            self.wire_tx(frame, skb.trace)
        if self.tx_used >= self.tx_ring_size:
            netif_stop_queue(self)
        self._tx_complete_irq()
        return NETDEV_TX_OK

    def xmit_gso_segments(self, skb: "SkBuff") -> int | None:
        """Take a TCP GSO packet whole, as one burst of its segments (the module's docstring),
        if nothing could tell that from its segments passing the empty qdisc one by one;
        None if something could (dev_queue_xmit then cuts it in software)."""
        net = self.nd_net
        segs = skb.gso_segs
        burst_tx = self.wire_tx_burst
        if (burst_tx is None or not self.carrier or self.qdisc or self.queue_stopped
                or self.tx_used + segs > self.tx_ring_size or self.ptype_all
                or net.tracer.active or skb.trace is not None
                or skb.ip_summed != CHECKSUM_PARTIAL):
            return None
        buf = skb.buf
        nh = skb.network_header
        # What the receiver's GRO merges back whole: IPv4 without options, plain data
        # segments (ACK, PSH on the last, as Linux puts on every GSO packet).
        if buf[nh] != 0x45 or buf[nh + 9] != IPPROTO_TCP or \
                buf[nh + 20 + 13] & ~(TCPHDR_PSH | TCPHDR_ACK) or \
                not buf[nh + 20 + 13] & TCPHDR_PSH:
            return None
        payload = skb.tail - nh - 20 - (buf[nh + 32] >> 4) * 4
        if payload <= (segs - 1) * skb.gso_size:
            return None  # not the shape tcp_transmit_skb gives (segs recount)
        head = skb.tail - skb.data - payload  # link, IP and TCP headers: in every frame
        last = max(head + payload - (segs - 1) * skb.gso_size, ETH_ZLEN)
        burst = GsoBurst(skb, 0, segs, head + skb.gso_size, last)
        self.tx_bursts += 1
        self.tx_ring.append(burst)  # `segs` descriptors
        self.tx_used += segs
        stats = self.stats
        stats.tx_packets += segs
        stats.tx_bytes += burst.nbytes
        self.tx_done += segs
        burst_tx(burst)
        if self.tx_used >= self.tx_ring_size:
            netif_stop_queue(self)
        self._tx_complete_irq()
        return NETDEV_TX_OK

    def dma_rx_burst(self, burst: GsoBurst) -> None:
        """A burst of frames arrives from the wire: as `dma_rx` would take each of them."""
        if not (self.flags & IFF_UP):
            return
        if burst.dst != self.dev_addr and not burst.dst[0] & 1:
            return
        if self.rx_used + burst.segs > self.rx_ring_size:
            for frame in burst.frames():
                self.dma_rx(frame)
            return
        self.rx_ring.append((burst, None))
        self.rx_used += burst.segs
        if self.irq.enabled:
            self.irq.fire()

    def _clean_tx(self) -> None:
        ring = self.tx_ring
        while self.tx_done and ring:
            entry = ring.popleft()
            if type(entry) is GsoBurst:  # its skb was freed once the wire had the burst
                n = entry.segs
                self.tx_done -= n
                self.tx_used -= n
            else:
                self.tx_done -= 1
                self.tx_used -= 1
                consume_skb(entry)
        if self.queue_stopped and self.tx_used < self.tx_ring_size:
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
            if type(frame) is GsoBurst:
                if not self._gro_would_merge(napi, frame):
                    # Frame by frame from here (GRO off, a tap or tracer, or a segment of
                    # the flow held: GRO would not merge the burst back as it was cut).
                    ring.extendleft([(f, None) for f in reversed(frame.frames())])
                    continue
                segs = frame.segs
                room = budget - work
                if segs <= room:
                    self.rx_used -= segs
                    work += segs
                    stats.rx_packets += segs
                    stats.rx_bytes += frame.nbytes
                    self._receive_run(napi, frame, segs, True)
                    continue
                # The budget ends inside the burst: GRO holds the first `room` segments
                # until the poll's end; the rest wait for the next poll.
                self.rx_used -= room
                work += room
                stats.rx_packets += room
                stats.rx_bytes += room * frame.full
                self._receive_run(napi, frame, room, False)
                ring.appendleft((frame.rest(room), None))
                continue
            self.rx_used -= 1
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

    def _gro_would_merge(self, napi: Napi, burst: GsoBurst) -> bool:
        """Whether GRO, given the burst's frames one by one now, would merge them as they were
        cut: GRO on, no tap or tracer, nothing of the flow held."""
        net = self.nd_net
        if not self.gro or self.ptype_all or net.tracer.active:
            return False
        if napi.gro_list:
            buf = burst.skb.buf
            nh = burst.skb.network_header
            if tcp_gro_key(buf, nh) in napi.gro_list:
                return False
        return True

    def _receive_run(self, napi: Napi, burst: GsoBurst, count: int, last: bool) -> None:
        """The first `count` frames of the burst (all of them if `last`) through GRO, without
        cutting them: the buffer GRO would build (one copy, as the frames' DMA would be),
        with the truesize of every frame's buffer, received CHECKSUM_PARTIAL as each frame
        would have been (tcp_offload.tcp_gro_receive_run does the rest)."""
        skb = burst.skb
        frame = gso_run_frame(skb, burst.first, count, last)
        full = SKB_TRUESIZE(max(RX_BUFFER_LEN, burst.full))
        if last:
            truesize = (count - 1) * full + SKB_TRUESIZE(max(RX_BUFFER_LEN, burst.last))
        else:
            truesize = count * full
        rx = skb_from_frame(frame, truesize)
        rx.ip_summed = CHECKSUM_PARTIAL
        rx.csum_start = skb.network_header - skb.data + 20
        rx.csum_offset = 16
        rx.protocol = eth_type_trans(rx, self)
        tcp_gro_receive_run(napi, rx, count, last, _netif_receive_skb)
