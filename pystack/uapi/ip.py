"""IPv4 headers and addresses, as include/uapi/linux/ip.h and in.h.

Read first: RFC 791 §3.1 (header), RFC 1122 §3.2.1 (what a host must check), RFC 1812 §5.2.2.
"""

from __future__ import annotations

from typing import Final

import functools
import ipaddress
import struct

import attrs

from ..lib.checksum import ip_fast_csum
from . import BadPacket

IPPROTO_IP: Final = 0
IPPROTO_ICMP: Final = 1
IPPROTO_TCP: Final = 6
IPPROTO_UDP: Final = 17
IPPROTO_RAW: Final = 255

IPVERSION: Final = 4
IP_DF: Final = 0x4000
IP_MF: Final = 0x2000
IP_OFFSET: Final = 0x1FFF

INADDR_ANY: Final = 0
INADDR_BROADCAST: Final = 0xFFFFFFFF
INADDR_LOOPBACK: Final = 0x7F000001

# version/ihl, tos, tot_len, id, frag_off, ttl, protocol, check, saddr, daddr
IP_HDR: Final = struct.Struct("!BBHHHBBHII")
IP_ADDRS: Final = struct.Struct("!II")  # saddr, daddr: the last 8 bytes of the fixed header (offset 12)
IP_HLEN: Final = IP_HDR.size  # 20
IP_MAXPACKET: Final = 65535


@functools.lru_cache(maxsize=4096)
def ip_str(addr: int) -> str:
    return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"


@functools.lru_cache(maxsize=4096)
def ip_int(text: str) -> int:
    """Dotted quad → host-order int; ValueError with a sentence on anything else.

    Cached: applications name the same few addresses on every send, and parsing is most of
    what a small datagram's sendto would otherwise cost here."""
    try:
        return int(ipaddress.IPv4Address(text))
    except (ipaddress.AddressValueError, ValueError):
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def ipv4_is_multicast(addr: int) -> bool:
    return (addr & 0xF0000000) == 0xE0000000


def ipv4_is_loopback(addr: int) -> bool:
    return (addr & 0xFF000000) == 0x7F000000


def ipv4_is_zeronet(addr: int) -> bool:
    return (addr & 0xFF000000) == 0


def ipv4_is_lbcast(addr: int) -> bool:
    return addr == INADDR_BROADCAST


@attrs.frozen
class IpHdr:
    saddr: int
    daddr: int
    protocol: int
    tot_len: int = IP_HLEN
    ttl: int = 64
    tos: int = 0
    id: int = 0
    frag_off: int = 0  # flags and offset (in 8-byte units), as on the wire
    ihl: int = 5
    check: int = 0
    options: bytes = b""

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, verify: bool = True) -> "IpHdr":
        if len(data) < IP_HLEN:
            raise BadPacket(f"an IPv4 header needs {IP_HLEN} bytes, got {len(data)}")
        vihl, tos, tot_len, id_, frag, ttl, proto, check, saddr, daddr = IP_HDR.unpack_from(data)
        ihl = vihl & 15
        if vihl >> 4 != IPVERSION:
            raise BadPacket(f"IP version {vihl >> 4}, not 4")
        if ihl < 5 or len(data) < ihl * 4:
            raise BadPacket(f"IHL {ihl} does not fit")
        if verify and ip_fast_csum(data[: ihl * 4]) != 0:
            raise BadPacket("bad IPv4 header checksum")
        if tot_len < ihl * 4:
            raise BadPacket(f"total length {tot_len} is shorter than the header")
        return cls(saddr, daddr, proto, tot_len, ttl, tos, id_, frag, ihl, check,
                   bytes(data[IP_HLEN: ihl * 4]))

    def emit(self) -> bytes:
        """The header with its checksum computed (the `check` field is ignored)."""
        ihl = 5 + (len(self.options) + 3) // 4
        opts = self.options.ljust((ihl - 5) * 4, b"\0")
        raw = bytearray(IP_HDR.pack((IPVERSION << 4) | ihl, self.tos, self.tot_len, self.id,
                                    self.frag_off, self.ttl, self.protocol, 0,
                                    self.saddr, self.daddr) + opts)
        struct.pack_into("!H", raw, 10, ip_fast_csum(raw))
        return bytes(raw)
