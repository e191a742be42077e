"""UDP headers, as include/uapi/linux/udp.h.

Read first: RFC 768, RFC 1122 §4.1.3.4 (checksum rules).
"""

from __future__ import annotations

import struct
from typing import Final

import attrs

from ..lib.checksum import csum_partial, csum_tcpudp_magic
from . import BadPacket
from .ip import IPPROTO_UDP

UDP_HDR: Final = struct.Struct("!HHHH")  # source, dest, len, check
UDP_HLEN: Final = UDP_HDR.size  # 8


def udp_checksum(saddr: int, daddr: int, segment: bytes | bytearray | memoryview) -> int:
    """The checksum to put in a UDP header (with the field zero in `segment`); 0 becomes 0xffff."""
    check = csum_tcpudp_magic(saddr, daddr, len(segment), IPPROTO_UDP, csum_partial(segment))
    return check or 0xFFFF


@attrs.frozen
class UdpHdr:
    source: int
    dest: int
    len: int
    check: int = 0

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "UdpHdr":
        if len(data) < UDP_HLEN:
            raise BadPacket(f"a UDP header needs {UDP_HLEN} bytes, got {len(data)}")
        source, dest, length, check = UDP_HDR.unpack_from(data)
        if length < UDP_HLEN or length > len(data):
            raise BadPacket(f"UDP length {length} does not fit the {len(data)} bytes there are")
        return cls(source, dest, length, check)

    def emit(self) -> bytes:
        return UDP_HDR.pack(self.source, self.dest, self.len, self.check)
