"""Socket buffers, as net/core/skbuff.c and include/linux/skbuff.h.

Read first: include/linux/skbuff.h (the head/data/tail/end picture, skb_put/push/pull/reserve,
skb_clone vs skb_copy, truesize), "How SKBs work" (http://vger.kernel.org/~davem/skb.html).

One `bytearray` is the buffer; `head <= data <= tail <= end` index into it. The TX path
reserves headroom once for every header it will push, so no layer reallocates; the RX path
wraps the bytes the NIC "DMA'd" without copying them. A clone shares the buffer (and marks
both as cloned); a writer must `unshare()` first, as Linux's skb_cow does.

The attributes are plain slots with no validation: this object is created once per packet and
touched at every layer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final

from ...lib.checksum import csum_complete_at

if TYPE_CHECKING:
    from ..ipv4.route import Rtable

__all__ = ["SkBuff", "alloc_skb", "skb_from_frame", "skb_checksum_help", "SKB_TRUESIZE",
           "PACKET_HOST", "PACKET_BROADCAST", "PACKET_MULTICAST", "PACKET_OTHERHOST",
           "PACKET_OUTGOING", "PACKET_LOOPBACK", "CHECKSUM_NONE", "CHECKSUM_UNNECESSARY",
           "CHECKSUM_COMPLETE", "CHECKSUM_PARTIAL", "MAX_HEADER"]

# skb->pkt_type
PACKET_HOST: Final = 0
PACKET_BROADCAST: Final = 1
PACKET_MULTICAST: Final = 2
PACKET_OTHERHOST: Final = 3
PACKET_OUTGOING: Final = 4
PACKET_LOOPBACK: Final = 5

# skb->ip_summed. On output, CHECKSUM_PARTIAL: the protocol wrote only the pseudo-header's
# sum into its checksum field (at csum_start + csum_offset); whoever puts the bytes where they
# can be seen (a device without checksum offload, a capture tap, fragmentation) completes it
# with skb_checksum_help, and a device with offload (lo, the emulated NIC) does it "in
# hardware". CHECKSUM_NONE and CHECKSUM_UNNECESSARY mean the same on output: the checksum is
# complete. On input, CHECKSUM_UNNECESSARY (or PARTIAL: the data never left this machine, or
# an offloading NIC carried it) means no one needs to verify it (include/linux/skbuff.h).
CHECKSUM_NONE: Final = 0
CHECKSUM_UNNECESSARY: Final = 1
CHECKSUM_COMPLETE: Final = 2
CHECKSUM_PARTIAL: Final = 3

# Headroom for link-layer + IP headers on the TX path (LL_MAX_HEADER + 48 in Linux).
MAX_HEADER: Final = 128 + 48

# sizeof(struct sk_buff) + sizeof(struct skb_shared_info), each cache-aligned, on x86_64:
# what Linux charges a socket per buffer on top of the data (SKB_TRUESIZE).
_SKB_OVERHEAD: Final = 256 + 320


def SKB_TRUESIZE(size: int) -> int:
    return size + _SKB_OVERHEAD


class SkBuff:
    __slots__ = (
        "buf", "head", "data", "tail", "end",
        "dev", "sk", "protocol", "pkt_type", "ip_summed", "csum", "priority", "mark",
        "mac_header", "network_header", "transport_header",
        "cb", "truesize", "destructor", "dst", "tstamp", "cloned", "trace", "hash",
        "gso_size", "gso_segs", "csum_start", "csum_offset",
    )

    def __init__(self, buf: bytearray, data: int, tail: int, truesize: int):
        self.buf = buf
        self.head = 0
        self.data = data
        self.tail = tail
        self.end = len(buf)
        self.dev: Any = None
        self.sk: Any = None
        self.protocol = 0
        self.pkt_type = PACKET_HOST
        self.ip_summed = CHECKSUM_NONE
        self.csum = 0
        self.csum_start = 0  # CHECKSUM_PARTIAL: where the sum starts (a buffer offset)
        self.csum_offset = 0  # ... and where, from there, the checksum field is
        self.priority = 0
        self.mark = 0
        self.mac_header = -1
        self.network_header = -1
        self.transport_header = -1
        self.cb: Any = None  # the control block of the layer holding the skb
        self.truesize = truesize
        self.destructor: Callable[["SkBuff"], None] | None = None
        self.dst: Rtable | None = None
        self.tstamp = 0.0
        self.cloned = False
        self.gso_size = 0  # skb_shinfo(skb)->gso_size: a TSO/GRO skb of gso_segs segments
        self.gso_segs = 1
        self.trace: Any = None  # a PathTrace while this packet is being followed
        self.hash = 0

    # -- geometry ---------------------------------------------------------------------------
    @property
    def len(self) -> int:
        return self.tail - self.data

    def __len__(self) -> int:
        return self.tail - self.data

    def headroom(self) -> int:
        return self.data - self.head

    def tailroom(self) -> int:
        return self.end - self.tail

    def reserve(self, n: int) -> None:
        """skb_reserve: make headroom on an empty buffer."""
        self.data += n
        self.tail += n

    def put(self, n: int) -> int:
        """skb_put: extend the data at the tail; returns the offset of the new area."""
        old = self.tail
        tail = old + n
        if tail > self.end:
            raise OverflowError(f"skb_put over the end: {n} bytes, {self.end - old} of tailroom")
        self.tail = tail
        return old

    def put_data(self, data: bytes | bytearray | memoryview) -> int:
        """skb_put_data: append a copy of `data`; returns its offset."""
        off = self.put(len(data))
        self.buf[off:self.tail] = data
        return off

    def push(self, n: int) -> int:
        """skb_push: extend the data at the head; returns the new data offset."""
        data = self.data - n
        if data < self.head:
            raise OverflowError(f"skb_push under the head: {n} bytes, {self.data} of headroom")
        self.data = data
        return data

    def pull(self, n: int) -> bool:
        """skb_pull: drop `n` bytes from the head. False (nothing done) if there are fewer."""
        if n > self.tail - self.data:
            return False
        self.data += n
        return True

    def trim(self, length: int) -> None:
        """skb_trim / pskb_trim: cut the data to `length` bytes."""
        if length < self.tail - self.data:
            self.tail = self.data + length

    # -- contents -----------------------------------------------------------------------------
    def view(self) -> memoryview:
        """The data as a memoryview into the buffer (no copy)."""
        return memoryview(self.buf)[self.data:self.tail]

    def tobytes(self) -> bytes:
        return bytes(self.buf[self.data:self.tail])

    def reset_network_header(self) -> None:
        self.network_header = self.data

    def reset_transport_header(self) -> None:
        self.transport_header = self.data

    def reset_mac_header(self) -> None:
        self.mac_header = self.data

    # -- sharing ------------------------------------------------------------------------------
    def _header_copy(self) -> "SkBuff":
        """__copy_skb_header: every field, no owner. (Field by field rather than a loop over
        the slots: quicker, and a compiled build needs it; a test checks none is missed.)"""
        n = SkBuff(self.buf, self.data, self.tail, self.truesize)
        n.head = self.head
        n.end = self.end
        n.dev = self.dev
        n.protocol = self.protocol
        n.pkt_type = self.pkt_type
        n.ip_summed = self.ip_summed
        n.csum = self.csum
        n.priority = self.priority
        n.mark = self.mark
        n.mac_header = self.mac_header
        n.network_header = self.network_header
        n.transport_header = self.transport_header
        n.cb = self.cb
        n.dst = self.dst
        n.tstamp = self.tstamp
        n.cloned = self.cloned
        n.trace = self.trace
        n.hash = self.hash
        n.gso_size = self.gso_size
        n.gso_segs = self.gso_segs
        n.csum_start = self.csum_start
        n.csum_offset = self.csum_offset
        return n

    def clone(self) -> "SkBuff":
        """skb_clone: a new skb over the same buffer. Both become read-only until unshared."""
        n = self._header_copy()
        n.cloned = True
        self.cloned = True
        return n

    def copy(self) -> "SkBuff":
        """skb_copy: a private copy of the whole buffer, headroom included. The original is
        left as it was (not marked cloned)."""
        n = self._header_copy()
        n.buf = bytearray(self.buf)
        n.cloned = False
        return n

    def unshare(self) -> None:
        """skb_cow: make the buffer private before writing into a cloned skb."""
        if self.cloned:
            self.buf = bytearray(self.buf)
            self.cloned = False

    def orphan(self) -> None:
        """skb_orphan: release the owning socket's accounting now."""
        d = self.destructor
        if d is not None:
            self.destructor = None
            d(self)
        self.sk = None

    def __repr__(self) -> str:
        return f"<SkBuff len={self.tail - self.data} proto={self.protocol:#06x}>"


def alloc_skb(size: int, headroom: int = MAX_HEADER) -> SkBuff:
    """alloc_skb + skb_reserve: room for `size` bytes of data after `headroom`."""
    total = headroom + size
    return SkBuff(bytearray(total), headroom, headroom, total + _SKB_OVERHEAD)  # SKB_TRUESIZE


def skb_checksum_help(skb: SkBuff) -> None:
    """Complete a CHECKSUM_PARTIAL skb's checksum in software (net/core/dev.c): the one's
    complement sum from csum_start to the end, whose checksum field already holds the
    pseudo-header's sum, folded and complemented into that field. Afterwards the skb is
    CHECKSUM_NONE, as in Linux. (It lives here rather than in dev.py because the GSO code and
    the NIC's "hardware" use the same sum.)"""
    start = skb.csum_start
    csum_complete_at(skb.buf, start, skb.tail, start + skb.csum_offset)
    skb.ip_summed = CHECKSUM_NONE


def skb_from_frame(frame: bytearray, truesize: int) -> SkBuff:
    """build_skb over a received frame: the buffer is the frame, no copy."""
    return SkBuff(frame, 0, len(frame), truesize)
