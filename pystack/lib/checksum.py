"""The Internet checksum (RFC 1071), as Linux's lib/checksum.c and include/net/checksum.h.

Read first: RFC 1071 §1-2 (one's complement sum, byte-order independence), RFC 1624
(incremental update), RFC 768 / RFC 793 (the pseudo-header).

The one's complement sum of 16-bit words is the value of the whole buffer, read as one
big-endian integer, modulo 0xffff: 2**16 is 1 modulo 0xffff, so every word counts once. That
turns a per-word Python loop into one C-level `int.from_bytes` and one modulo, which is what
makes checksumming a 1500-byte frame cheap here. The only subtlety is that the modulo gives 0
where the one's complement sum gives 0xffff; a sum of nonzero data is never +0 in one's
complement, so a zero remainder of nonzero data means 0xffff.
"""

from __future__ import annotations

from typing import Final

__all__ = ["csum_partial", "csum_fold", "ip_fast_csum", "ip_fast_csum_at", "csum_tcpudp_magic",
           "csum_ipv4_payload", "csum_add"]

# Bound once: compiled code reaches `int.from_bytes` through a lookup on `int` at every call.
_from_bytes: Final = int.from_bytes


def csum_partial(data: bytes | bytearray | memoryview, start: int = 0) -> int:
    """One's complement sum of `data` (padded with a zero byte if odd), folded to 16 bits.

    `start` is a previous partial sum to add in (16-bit). The result is in 0..0xffff, and is
    0xffff rather than 0 for nonzero input, as the one's complement sum is.
    """
    n = len(data)
    value = _from_bytes(data, "big")
    if n & 1:
        value <<= 8
    value += start
    if value == 0:
        return 0
    rem = value % 0xFFFF
    return rem if rem else 0xFFFF


def csum_add(a: int, b: int) -> int:
    """One's complement addition of two 16-bit partial sums."""
    s = a + b
    return (s & 0xFFFF) + (s >> 16)


def csum_fold(partial: int) -> int:
    """The checksum field for a folded partial sum: its complement."""
    return ~partial & 0xFFFF


def ip_fast_csum(header: bytes | bytearray | memoryview) -> int:
    """The IPv4 header checksum; 0 when verifying a correct header."""
    return csum_fold(csum_partial(header))


def ip_fast_csum_at(buf: bytearray, off: int, length: int) -> int:
    """`ip_fast_csum` of the header at buf[off:off + length] (an even length, as IPv4
    headers have), read in place: the same value with one slice and one modulo, for the
    per-packet checks of ip_rcv and ip_send_check."""
    value = _from_bytes(buf[off:off + length], "big")
    rem = value % 0xFFFF
    if rem:
        return 0xFFFF - rem
    return 0 if value else 0xFFFF


def csum_tcpudp_magic(saddr: int, daddr: int, length: int, proto: int, partial: int) -> int:
    """Add the IPv4 pseudo-header (RFC 768, RFC 793 §3.1) to `partial` and fold."""
    pseudo = saddr + daddr + length + proto
    return csum_fold(_fold32(pseudo + partial))


def _fold32(value: int) -> int:
    if value == 0:
        return 0
    rem = value % 0xFFFF
    return rem if rem else 0xFFFF


def csum_ipv4_payload(saddr: int, daddr: int, proto: int, buf: bytearray, off: int,
                      length: int) -> int:
    """`csum_tcpudp_magic(saddr, daddr, length, proto, csum_partial(buf[off:off + length]))`
    in one step: a UDP or TCP checksum over the pseudo-header and the segment in place (0
    when verifying a correct one). One slice and one modulo per packet: the pseudo-header's
    words join the segment's value before the single reduction, as they may since 2**16 is 1
    modulo 0xffff; their sum is never 0 (the protocol is not), so the remainder 0 always
    means 0xffff."""
    value = _from_bytes(buf[off:off + length], "big")
    if length & 1:
        value <<= 8
    rem = (value + saddr + daddr + length + proto) % 0xFFFF
    return 0xFFFF - rem if rem else 0


def csum_pseudo(saddr: int, daddr: int, proto: int, length: int) -> int:
    """The pseudo-header's sum, folded but not complemented: what a CHECKSUM_PARTIAL TCP or
    UDP packet carries in its checksum field (__tcp_v4_send_check, udp4_hwcsum) until
    `csum_complete_at` adds the segment to it. The 32-bit addresses fold by one modulo, as
    2**16 is 1 modulo 0xffff."""
    return (saddr + daddr + length + proto) % 0xFFFF


def csum_complete_at(buf: bytearray, start: int, end: int, at: int) -> None:
    """Complete a partial checksum (CHECKSUM_PARTIAL): the one's complement sum of
    buf[start:end], whose checksum field at `at` already holds the pseudo-header's sum, folded,
    complemented and written at `at`. A result of 0 is written 0xFFFF (CSUM_MANGLED_0, as
    skb_checksum_help does: 0 is UDP's "no checksum")."""
    value = _from_bytes(buf[start:end], "big")
    if (end - start) & 1:
        value <<= 8
    rem = value % 0xFFFF
    c = 0xFFFF - rem if rem else 0xFFFF
    buf[at] = c >> 8
    buf[at + 1] = c & 0xFF
