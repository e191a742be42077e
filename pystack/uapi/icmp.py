"""ICMP messages, as include/uapi/linux/icmp.h.

Read first: RFC 792, RFC 1122 §3.2.2, RFC 1812 §4.3.2 (which errors may be sent).
"""

from __future__ import annotations

from typing import Final

import struct

import attrs

from ..lib.checksum import csum_fold, csum_partial
from . import BadPacket

ICMP_ECHOREPLY: Final = 0
ICMP_DEST_UNREACH: Final = 3
ICMP_SOURCE_QUENCH: Final = 4
ICMP_REDIRECT: Final = 5
ICMP_ECHO: Final = 8
ICMP_TIME_EXCEEDED: Final = 11
ICMP_PARAMETERPROB: Final = 12
ICMP_TIMESTAMP: Final = 13
ICMP_TIMESTAMPREPLY: Final = 14
NR_ICMP_TYPES: Final = 18

# codes for ICMP_DEST_UNREACH
ICMP_NET_UNREACH: Final = 0
ICMP_HOST_UNREACH: Final = 1
ICMP_PROT_UNREACH: Final = 2
ICMP_PORT_UNREACH: Final = 3
ICMP_FRAG_NEEDED: Final = 4
ICMP_SR_FAILED: Final = 5
ICMP_NET_UNKNOWN: Final = 6
ICMP_HOST_UNKNOWN: Final = 7
ICMP_HOST_ISOLATED: Final = 8
ICMP_NET_ANO: Final = 9
ICMP_HOST_ANO: Final = 10
ICMP_NET_UNR_TOS: Final = 11
ICMP_HOST_UNR_TOS: Final = 12
ICMP_PKT_FILTERED: Final = 13
ICMP_PREC_VIOLATION: Final = 14
ICMP_PREC_CUTOFF: Final = 15
NR_ICMP_UNREACH: Final = 15

# codes for ICMP_TIME_EXCEEDED
ICMP_EXC_TTL: Final = 0
ICMP_EXC_FRAGTIME: Final = 1

# type, code, checksum, rest-of-header (id/seq, or unused/mtu)
ICMP_HDR: Final = struct.Struct("!BBHI")
ICMP_ECHO_HDR = struct.Struct("!BBHHH")
ICMP_HLEN: Final = ICMP_HDR.size  # 8


def icmp_is_err(type_: int) -> bool:
    return type_ in (ICMP_DEST_UNREACH, ICMP_SOURCE_QUENCH, ICMP_REDIRECT,
                     ICMP_TIME_EXCEEDED, ICMP_PARAMETERPROB)


@attrs.frozen
class IcmpHdr:
    type: int
    code: int
    rest: int = 0  # the 32-bit "rest of header": id<<16|seq for echo, mtu for frag-needed
    payload: bytes = b""

    @property
    def echo_id(self) -> int:
        return self.rest >> 16

    @property
    def echo_seq(self) -> int:
        return self.rest & 0xFFFF

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview, *, verify: bool = True) -> "IcmpHdr":
        if len(data) < ICMP_HLEN:
            raise BadPacket(f"an ICMP header needs {ICMP_HLEN} bytes, got {len(data)}")
        if verify and csum_fold(csum_partial(data)) != 0:
            raise BadPacket("bad ICMP checksum")
        type_, code, _check, rest = ICMP_HDR.unpack_from(data)
        return cls(type_, code, rest, bytes(data[ICMP_HLEN:]))

    def emit(self) -> bytes:
        raw = bytearray(ICMP_HDR.pack(self.type, self.code, 0, self.rest) + self.payload)
        struct.pack_into("!H", raw, 2, csum_fold(csum_partial(raw)))
        return bytes(raw)
