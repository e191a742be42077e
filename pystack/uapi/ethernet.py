"""Ethernet II headers, as include/uapi/linux/if_ether.h.

Read first: IEEE 802.3 clause 3 (frame format), RFC 894 (IP over Ethernet).
"""

from __future__ import annotations

from typing import Final

import struct

import attrs

from . import BadPacket

ETH_ALEN: Final = 6
ETH_HLEN: Final = 14
ETH_ZLEN: Final = 60  # minimum frame without FCS; shorter frames are padded by the driver
ETH_DATA_LEN: Final = 1500
ETH_FRAME_LEN: Final = 1514

ETH_P_IP: Final = 0x0800
ETH_P_ARP: Final = 0x0806
ETH_P_IPV6: Final = 0x86DD

BROADCAST: Final = b"\xff" * 6

ETH_HDR: Final = struct.Struct("!6s6sH")


def mac_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_bytes(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6:
        raise ValueError(f"{text!r} is not a MAC address like 02:00:00:00:00:01")
    return bytes(int(p, 16) for p in parts)


def is_multicast_ether_addr(mac: bytes) -> bool:
    return bool(mac[0] & 1)


@attrs.frozen
class EthHdr:
    dst: bytes
    src: bytes
    proto: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "EthHdr":
        if len(data) < ETH_HLEN:
            raise BadPacket(f"an Ethernet header needs {ETH_HLEN} bytes, got {len(data)}")
        dst, src, proto = ETH_HDR.unpack_from(data)
        return cls(bytes(dst), bytes(src), proto)

    def emit(self) -> bytes:
        return ETH_HDR.pack(self.dst, self.src, self.proto)
