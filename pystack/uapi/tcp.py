"""TCP headers and options, as include/uapi/linux/tcp.h and include/net/tcp.h (TCPOPT_*).

Read first: RFC 9293 §3.1 (header), RFC 7323 (window scale, timestamps), RFC 2018 (SACK),
include/net/tcp.h (option kinds and lengths), net/ipv4/tcp_output.c (tcp_options_write: the
order Linux writes options in).
"""

from __future__ import annotations

from typing import ClassVar, Final

import struct

import attrs

from ..lib.checksum import csum_partial, csum_tcpudp_magic
from . import BadPacket
from .ip import IPPROTO_TCP

TCP_HDR: Final = struct.Struct("!HHIIBBHHH")  # source, dest, seq, ack_seq, doff<<4, flags, window, check, urg_ptr
TCP_HLEN: Final = TCP_HDR.size  # 20

TCPHDR_FIN: Final = 0x01
TCPHDR_SYN: Final = 0x02
TCPHDR_RST: Final = 0x04
TCPHDR_PSH: Final = 0x08
TCPHDR_ACK: Final = 0x10
TCPHDR_URG: Final = 0x20
TCPHDR_ECE: Final = 0x40
TCPHDR_CWR: Final = 0x80

TCPOPT_EOL: Final = 0
TCPOPT_NOP: Final = 1
TCPOPT_MSS: Final = 2
TCPOPT_WINDOW: Final = 3
TCPOPT_SACK_PERM: Final = 4
TCPOPT_SACK: Final = 5
TCPOPT_TIMESTAMP: Final = 8
TCPOPT_MD5SIG: Final = 19
TCPOPT_FASTOPEN: Final = 34
TCPOPT_EXP: Final = 254

TCPOLEN_MSS: Final = 4
TCPOLEN_WINDOW: Final = 3
TCPOLEN_SACK_PERM: Final = 2
TCPOLEN_TIMESTAMP: Final = 10
TCPOLEN_SACK_BASE: Final = 2
TCPOLEN_SACK_PERBLOCK: Final = 8

TCP_MAX_WSCALE: Final = 14

TCPOLEN_TSTAMP_ALIGNED: Final = 12  # NOP, NOP, then the 10-byte timestamp option
_ALIGNED_TS: Final = struct.Struct("!III")
_LINUX_SYN: Final = struct.Struct("!HHIIII")
_LINUX_SYN_HEADS: Final = (0x0204, 0x0402080A, 0x010303)  # MSS; SACK_PERM, TIMESTAMP; NOP, WINDOW
_ALIGNED_TS_HEAD: Final = (TCPOPT_NOP << 24) | (TCPOPT_NOP << 16) | (TCPOPT_TIMESTAMP << 8) | \
    TCPOLEN_TIMESTAMP

FLAG_NAMES = (("F", TCPHDR_FIN), ("S", TCPHDR_SYN), ("R", TCPHDR_RST), ("P", TCPHDR_PSH),
              (".", TCPHDR_ACK), ("U", TCPHDR_URG), ("E", TCPHDR_ECE), ("W", TCPHDR_CWR))


def flags_str(flags: int) -> str:
    """Flags as packetdrill and tcpdump write them: S, S., P., F., R ..."""
    return "".join(ch for ch, bit in FLAG_NAMES if flags & bit) or "-"


class TcpOptions:
    """What the options of one segment said (tcp_parse_options' `struct tcp_options_received`).

    One is made per received segment, so the defaults are class attributes: a segment's
    instance holds only what its options set (the timestamp, for nearly all)."""

    mss = 0
    wscale = -1  # -1: no window scale option
    sack_ok = False
    saw_tstamp = False
    rcv_tsval = 0
    rcv_tsecr = 0
    sacks: "list[tuple[int, int]] | tuple[()]" = ()  # the SACK blocks, in the order sent
    FIELDS: ClassVar[tuple[str, ...]] = ("mss", "wscale", "sack_ok", "saw_tstamp", "rcv_tsval",
                                          "rcv_tsecr", "sacks")


def parse_options(buf: bytes | bytearray | memoryview, start: int, end: int,
                  syn: bool) -> TcpOptions:
    """tcp_parse_options over buf[start:end]. Malformed options end the walk (as Linux does);
    options that only mean something on a SYN are ignored elsewhere."""
    opts = TcpOptions()
    if end - start == TCPOLEN_TSTAMP_ALIGNED:
        # tcp_parse_aligned_timestamp: NOP, NOP, timestamp is what nearly every segment of
        # a connection with timestamps carries; one unpack instead of the walk below, with
        # the same result.
        head, tsval, tsecr = _ALIGNED_TS.unpack_from(buf, start)
        if head == _ALIGNED_TS_HEAD:
            opts.saw_tstamp = True
            opts.rcv_tsval = tsval
            opts.rcv_tsecr = tsecr
            return opts
    elif syn and end - start == 20:
        # Linux's own SYN and SYN-ACK: MSS, SACK-permitted with the timestamp, NOP and window
        # scale (tcp_options_write's order). One unpack, the same result as the walk.
        mss_head, mss, ts_head, tsval, tsecr, ws_word = _LINUX_SYN.unpack_from(buf, start)
        if (mss_head, ts_head, ws_word >> 8) == _LINUX_SYN_HEADS:
            wscale = ws_word & 0xFF
            if mss:
                opts.mss = mss
            opts.sack_ok = True
            opts.saw_tstamp = True
            opts.rcv_tsval = tsval
            opts.rcv_tsecr = tsecr
            opts.wscale = min(wscale, TCP_MAX_WSCALE)
            return opts
    i = start
    while i < end:
        kind = buf[i]
        if kind == TCPOPT_EOL:
            break
        if kind == TCPOPT_NOP:
            i += 1
            continue
        if i + 1 >= end:
            break
        size = buf[i + 1]
        if size < 2 or i + size > end:
            break
        if kind == TCPOPT_MSS and size == TCPOLEN_MSS and syn:
            mss = (buf[i + 2] << 8) | buf[i + 3]
            if mss:
                opts.mss = mss
        elif kind == TCPOPT_WINDOW and size == TCPOLEN_WINDOW and syn:
            opts.wscale = min(buf[i + 2], TCP_MAX_WSCALE)
        elif kind == TCPOPT_SACK_PERM and size == TCPOLEN_SACK_PERM and syn:
            opts.sack_ok = True
        elif kind == TCPOPT_TIMESTAMP and size == TCPOLEN_TIMESTAMP:
            opts.saw_tstamp = True
            opts.rcv_tsval = int.from_bytes(buf[i + 2:i + 6], "big")
            opts.rcv_tsecr = int.from_bytes(buf[i + 6:i + 10], "big")
        elif kind == TCPOPT_SACK and size >= TCPOLEN_SACK_BASE + TCPOLEN_SACK_PERBLOCK \
                and (size - TCPOLEN_SACK_BASE) % TCPOLEN_SACK_PERBLOCK == 0 and not syn:
            if not opts.sacks:
                opts.sacks = []
            for j in range(i + 2, i + size, 8):
                opts.sacks.append((int.from_bytes(buf[j:j + 4], "big"),
                                   int.from_bytes(buf[j + 4:j + 8], "big")))
        i += size
    return opts


def tcp_checksum(saddr: int, daddr: int, segment: bytes | bytearray | memoryview) -> int:
    return csum_tcpudp_magic(saddr, daddr, len(segment), IPPROTO_TCP, csum_partial(segment))


@attrs.frozen
class TcpHdr:
    """A TCP header with its options as (name, value) pairs, for tools and tests."""
    source: int
    dest: int
    seq: int
    ack_seq: int
    flags: int
    window: int
    check: int = 0
    urg_ptr: int = 0
    options: bytes = b""

    @property
    def doff(self) -> int:
        return 5 + (len(self.options) + 3) // 4

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> "TcpHdr":
        if len(data) < TCP_HLEN:
            raise BadPacket(f"a TCP header needs {TCP_HLEN} bytes, got {len(data)}")
        sport, dport, seq, ack, doff, flags, win, check, urg = TCP_HDR.unpack_from(data)
        hlen = (doff >> 4) * 4
        if hlen < TCP_HLEN or hlen > len(data):
            raise BadPacket(f"TCP data offset {hlen} does not fit")
        return cls(sport, dport, seq, ack, flags, win, check, urg, bytes(data[TCP_HLEN:hlen]))

    def parsed_options(self) -> TcpOptions:
        return parse_options(self.options, 0, len(self.options), bool(self.flags & TCPHDR_SYN))

    def emit(self, saddr: int | None = None, daddr: int | None = None,
             payload: bytes = b"") -> bytes:
        """The header (+payload); with addresses, the checksum is computed."""
        opts = self.options.ljust((self.doff - 5) * 4, b"\0")
        raw = bytearray(TCP_HDR.pack(self.source, self.dest, self.seq, self.ack_seq,
                                     self.doff << 4, self.flags, self.window, 0, self.urg_ptr)
                        + opts + payload)
        if saddr is not None and daddr is not None:
            struct.pack_into("!H", raw, 16, tcp_checksum(saddr, daddr, raw))
        else:
            struct.pack_into("!H", raw, 16, self.check)
        return bytes(raw)
