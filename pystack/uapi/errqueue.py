"""The socket error queue's record, as include/uapi/linux/errqueue.h.

Read first: include/uapi/linux/errqueue.h (struct sock_extended_err, SO_EE_ORIGIN_*,
SO_EE_OFFENDER), man 7 ip (IP_RECVERR), net/ipv4/ip_sockglue.c (ip_recv_error).

`recvmsg(MSG_ERRQUEUE)` on a socket with IP_RECVERR returns one control message
(SOL_IP, IP_RECVERR) whose data is a `struct sock_extended_err` followed by the offender's
`struct sockaddr_in` (SO_EE_OFFENDER: the data after the struct). Both are in the host's byte
order except the address and port, which are in network order, as Linux lays them out; a
program decodes them with `struct.unpack("=IBBBBII", data[:16])`.
"""

from __future__ import annotations

from typing import Final

import socket
import struct

import attrs

from . import BadPacket

SO_EE_ORIGIN_NONE: Final = 0
SO_EE_ORIGIN_LOCAL: Final = 1
SO_EE_ORIGIN_ICMP: Final = 2
SO_EE_ORIGIN_ICMP6: Final = 3

SOL_IP: Final = 0
IP_RECVERR: Final = 11

# __u32 ee_errno; __u8 ee_origin, ee_type, ee_code, ee_pad; __u32 ee_info, ee_data
SOCK_EE: Final = struct.Struct("=IBBBBII")
# struct sockaddr_in: sa_family_t (host order), port and address (network order), zero[8]
SOCKADDR_IN: Final = struct.Struct("=H2s4s8x")


@attrs.frozen
class SockExtendedErr:
    """`struct sock_extended_err` plus the offender address that follows it."""

    ee_errno: int
    ee_origin: int
    ee_type: int = 0
    ee_code: int = 0
    ee_info: int = 0
    ee_data: int = 0
    offender: int | None = None  # the sender of the ICMP error (SO_EE_OFFENDER), or none

    def emit(self) -> bytes:
        ee = SOCK_EE.pack(self.ee_errno, self.ee_origin, self.ee_type, self.ee_code, 0,
                          self.ee_info, self.ee_data)
        if self.offender is None:
            return ee + bytes(SOCKADDR_IN.size)  # family AF_UNSPEC: no offender
        return ee + SOCKADDR_IN.pack(socket.AF_INET, b"\0\0", self.offender.to_bytes(4, "big"))

    @classmethod
    def parse(cls, data: bytes) -> "SockExtendedErr":
        if len(data) < SOCK_EE.size + SOCKADDR_IN.size:
            raise BadPacket(f"a sock_extended_err with its offender takes "
                            f"{SOCK_EE.size + SOCKADDR_IN.size} bytes, got {len(data)}")
        errno_, origin, type_, code, _pad, info, data_ = SOCK_EE.unpack_from(data)
        family, _port, addr = SOCKADDR_IN.unpack_from(data, SOCK_EE.size)
        offender = int.from_bytes(addr, "big") if family == socket.AF_INET else None
        return cls(errno_, origin, type_, code, info, data_, offender)


__all__ = ["SockExtendedErr", "SO_EE_ORIGIN_NONE", "SO_EE_ORIGIN_LOCAL", "SO_EE_ORIGIN_ICMP",
           "SO_EE_ORIGIN_ICMP6", "SOL_IP", "IP_RECVERR", "SOCK_EE", "SOCKADDR_IN"]
