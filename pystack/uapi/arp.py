"""ARP packets for IPv4 over Ethernet, as include/uapi/linux/if_arp.h.

Read first: RFC 826, RFC 5227 §1.1 (probes and announcements).
"""

from __future__ import annotations

from typing import Final

import struct

import attrs

from . import BadPacket
from .ethernet import ETH_P_IP

ARPHRD_ETHER: Final = 1
ARPHRD_LOOPBACK: Final = 772
ARPOP_REQUEST: Final = 1
ARPOP_REPLY: Final = 2

# hardware type, protocol type, hlen, plen, op, sha, sip, tha, tip
ARP_HDR: Final = struct.Struct("!HHBBH6s4s6s4s")
ARP_LEN: Final = ARP_HDR.size  # 28


@attrs.frozen
class ArpHdr:
    op: int
    sha: bytes
    sip: int
    tha: bytes
    tip: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "ArpHdr":
        if len(data) < ARP_LEN:
            raise BadPacket(f"an ARP packet needs {ARP_LEN} bytes, got {len(data)}")
        hrd, pro, hln, pln, op, sha, sip, tha, tip = ARP_HDR.unpack_from(data)
        if hrd != ARPHRD_ETHER or pro != ETH_P_IP or hln != 6 or pln != 4:
            raise BadPacket("not an ARP packet for IPv4 over Ethernet")
        return cls(op, bytes(sha), int.from_bytes(sip, "big"), bytes(tha),
                   int.from_bytes(tip, "big"))

    def emit(self) -> bytes:
        return ARP_HDR.pack(ARPHRD_ETHER, ETH_P_IP, 6, 4, self.op, self.sha,
                            self.sip.to_bytes(4, "big"), self.tha, self.tip.to_bytes(4, "big"))
