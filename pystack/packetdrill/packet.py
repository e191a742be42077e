"""The packets a packetdrill script talks about: IPv4 + TCP/UDP/ICMP, parsed and built.

Read first: RFC 791 §3.1 (IPv4 header), RFC 793 §3.1 and RFC 7323 / RFC 2018 (TCP header and
options), RFC 768 (UDP), RFC 792 (ICMP); packetdrill's tcp_packet.c / icmp_packet.c for how a
script line becomes a packet and packet_to_string.c for how packetdrill prints one.

`Packet` is a plain, mutable value: the runner parses what the stack sent into one (`parse`,
untrusted bytes -> Packet or BadPacket), rewrites live values into script space, and compares
it with the packet a script line describes. Inbound packets are built the other way
(`Packet.emit` fills in lengths and checksums). `format_packet` prints either one in the
script's own syntax, for mismatch messages.
"""

from __future__ import annotations

import struct
from typing import Any

import attrs

from ..lib.checksum import csum_partial, csum_tcpudp_magic, ip_fast_csum
from ..uapi.ip import IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, ip_str

__all__ = ["Packet", "BadPacket", "parse", "format_packet", "format_options",
           "TCP_FLAG_BITS", "flags_to_bits", "bits_to_flags", "encode_option",
           "TCPOPT_EOL", "TCPOPT_NOP", "TCPOPT_MSS", "TCPOPT_WINDOW", "TCPOPT_SACK_PERM",
           "TCPOPT_SACK", "TCPOPT_TIMESTAMP", "TCPOPT_MD5SIG", "TCPOPT_FASTOPEN", "TCPOPT_EXP",
           "ICMP_TYPES", "ICMP_UNREACH_CODES", "icmp_type_name", "icmp_code_name"]

_IP = struct.Struct("!BBHHHBBHII")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_ICMP = struct.Struct("!BBHI")

# TCP header flag bits (the 13th and 14th bytes), RFC 793 + RFC 3168 (+ AE, RFC 9768).
TCP_FLAG_BITS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, ".": 0x10, "U": 0x20,
                 "E": 0x40, "W": 0x80, "A": 0x100}
_PRINT_ORDER = "FSRP.UEWA"  # packet_to_string's order

from ..uapi.tcp import (TCPOPT_EOL, TCPOPT_EXP, TCPOPT_FASTOPEN,  # noqa: E402,F401
                        TCPOPT_MD5SIG, TCPOPT_MSS, TCPOPT_NOP, TCPOPT_SACK, TCPOPT_SACK_PERM,
                        TCPOPT_TIMESTAMP, TCPOPT_WINDOW)

TCPOPT_FASTOPEN_MAGIC = 0xF989  # the experimental Fast Open option's magic (RFC 7413 §4.1.1)

ICMP_TYPES = {"echo_reply": 0, "unreachable": 3, "source_quench": 4, "redirect": 5,
              "echo_request": 8, "time_exceeded": 11, "parameter_problem": 12,
              "timestamp_request": 13, "timestamp_reply": 14, "information_request": 15,
              "information_reply": 16, "address_mask_request": 17, "address_mask_reply": 18}
ICMP_UNREACH_CODES = {"net_unreachable": 0, "host_unreachable": 1, "protocol_unreachable": 2,
                      "port_unreachable": 3, "frag_needed": 4, "source_route_failed": 5,
                      "net_unknown": 6, "host_unknown": 7, "source_host_isolated": 8,
                      "net_prohibited": 9, "host_prohibited": 10,
                      "net_unreachable_for_tos": 11, "host_unreachable_for_tos": 12,
                      "packet_filtered": 13, "precedence_violation": 14,
                      "precedence_cutoff": 15}


class BadPacket(ValueError):
    """Bytes that are not a well-formed IPv4 TCP/UDP/ICMP packet."""


def flags_to_bits(flags: str) -> int:
    bits = 0
    for ch in flags:
        bits |= TCP_FLAG_BITS[ch]
    return bits


def bits_to_flags(bits: int) -> str:
    return "".join(ch for ch in _PRINT_ORDER if bits & TCP_FLAG_BITS[ch])


def icmp_type_name(type_: int) -> str:
    for name, value in ICMP_TYPES.items():
        if value == type_:
            return name
    return f"type_{type_}"


def icmp_code_name(type_: int, code: int) -> str:
    if type_ == ICMP_TYPES["unreachable"]:
        for name, value in ICMP_UNREACH_CODES.items():
            if value == code:
                return name
    return f"code_{code}"


@attrs.define
class Packet:
    """One IPv4 packet. `proto` says which of the transport fields mean something.

    TCP options are kept as (kind, data) pairs in wire order, data without kind and length
    bytes; EOL and NOP have empty data. `payload` is the transport payload (for ICMP: what
    follows the 8-byte ICMP header)."""

    proto: int
    src: int = 0
    dst: int = 0
    tos: int = 0
    ttl: int = 64
    ip_id: int = 0
    frag: int = 0          # flags + fragment offset, as on the wire
    ihl: int = 5
    sport: int = 0
    dport: int = 0
    # TCP
    seq: int = 0
    ack: int = 0
    flags: int = 0
    window: int = 0
    urg: int = 0
    options: list[tuple[int, bytes]] = attrs.Factory(list)
    # ICMP
    icmp_type: int = 0
    icmp_code: int = 0
    icmp_rest: int = 0     # the second 32-bit word (echo id/seq, unused + mtu ...)
    payload: bytes = b""
    time: float = 0.0      # when it was seen (seconds since the script's start)

    # -- derived --------------------------------------------------------------------------
    @property
    def options_len(self) -> int:
        return sum(1 if kind in (TCPOPT_EOL, TCPOPT_NOP) else 2 + len(data)
                   for kind, data in self.options)

    @property
    def doff(self) -> int:
        return (20 + self.options_len + 3) // 4

    def flag(self, ch: str) -> bool:
        return bool(self.flags & TCP_FLAG_BITS[ch])

    def option(self, kind: int) -> bytes | None:
        for k, data in self.options:
            if k == kind:
                return data
        return None

    def copy(self) -> "Packet":
        return attrs.evolve(self, options=list(self.options))

    # -- building -------------------------------------------------------------------------
    def emit(self) -> bytes:
        """The packet on the wire, with lengths and checksums filled in."""
        if self.proto == IPPROTO_TCP:
            opts = b"".join(encode_raw_option(k, d) for k, d in self.options)
            if len(opts) % 4:
                opts += b"\0" * (4 - len(opts) % 4)
            hdr = bytearray(_TCP.pack(self.sport, self.dport, self.seq & 0xFFFFFFFF,
                                      self.ack & 0xFFFFFFFF,
                                      ((20 + len(opts)) // 4) << 4 | (self.flags >> 8) & 1,
                                      self.flags & 0xFF, self.window, 0, self.urg))
            l4 = hdr + opts + self.payload
            csum = csum_tcpudp_magic(self.src, self.dst, len(l4), IPPROTO_TCP,
                                     csum_partial(l4))
            l4[16:18] = csum.to_bytes(2, "big")
        elif self.proto == IPPROTO_UDP:
            l4 = bytearray(_UDP.pack(self.sport, self.dport, 8 + len(self.payload), 0))
            l4 += self.payload
            csum = csum_tcpudp_magic(self.src, self.dst, len(l4), IPPROTO_UDP,
                                     csum_partial(l4)) or 0xFFFF
            l4[6:8] = csum.to_bytes(2, "big")
        elif self.proto == IPPROTO_ICMP:
            l4 = bytearray(_ICMP.pack(self.icmp_type, self.icmp_code, 0, self.icmp_rest))
            l4 += self.payload
            l4[2:4] = ip_fast_csum(l4).to_bytes(2, "big")
        else:
            raise ValueError(f"cannot build IP protocol {self.proto}")
        total = 20 + len(l4)
        ip = bytearray(_IP.pack(0x45, self.tos, total, self.ip_id, self.frag, self.ttl,
                                self.proto, 0, self.src, self.dst))
        ip[10:12] = ip_fast_csum(ip).to_bytes(2, "big")
        return bytes(ip + l4)


def encode_raw_option(kind: int, data: bytes) -> bytes:
    if kind in (TCPOPT_EOL, TCPOPT_NOP):
        return bytes([kind])
    return bytes([kind, 2 + len(data)]) + data


def encode_option(kind: str, values: tuple) -> tuple[int, bytes]:
    """A script option (`ast.TcpOption` kind and resolved numeric values) as (kind, data)."""
    if kind == "nop":
        return TCPOPT_NOP, b""
    if kind == "eol":
        return TCPOPT_EOL, b""
    if kind == "mss":
        return TCPOPT_MSS, struct.pack("!H", values[0])
    if kind == "wscale":
        return TCPOPT_WINDOW, struct.pack("!B", values[0])
    if kind == "sackOK":
        return TCPOPT_SACK_PERM, b""
    if kind == "sack":
        return TCPOPT_SACK, b"".join(struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
                                     for left, right in values)
    if kind == "TS":
        return TCPOPT_TIMESTAMP, struct.pack("!II", values[0] & 0xFFFFFFFF,
                                             values[1] & 0xFFFFFFFF)
    if kind == "FO":
        return TCPOPT_FASTOPEN, bytes.fromhex(values[0]) if values else b""
    if kind == "FOEXP":
        cookie = bytes.fromhex(values[0]) if values else b""
        return TCPOPT_EXP, struct.pack("!H", TCPOPT_FASTOPEN_MAGIC) + cookie
    if kind == "md5":
        return TCPOPT_MD5SIG, bytes(16)
    raise ValueError(f"unknown TCP option {kind!r}")


def parse(data: bytes | bytearray | memoryview, time: float = 0.0) -> Packet:
    """Untrusted bytes -> Packet; BadPacket for anything malformed."""
    data = bytes(data)
    if len(data) < 20:
        raise BadPacket(f"{len(data)} bytes is shorter than an IPv4 header")
    vihl, tos, tot_len, ip_id, frag, ttl, proto, _csum, src, dst = _IP.unpack_from(data)
    if vihl >> 4 != 4:
        raise BadPacket(f"IP version {vihl >> 4}, not 4")
    ihl = vihl & 15
    if ihl < 5 or ihl * 4 > len(data) or tot_len > len(data) or tot_len < ihl * 4:
        raise BadPacket(f"bad IPv4 lengths (ihl {ihl}, total {tot_len}, have {len(data)})")
    l4 = data[ihl * 4:tot_len]
    pkt = Packet(proto=proto, src=src, dst=dst, tos=tos, ttl=ttl, ip_id=ip_id, frag=frag,
                 ihl=ihl, time=time)
    if proto == IPPROTO_TCP:
        if len(l4) < 20:
            raise BadPacket("truncated TCP header")
        (pkt.sport, pkt.dport, pkt.seq, pkt.ack, off, flags, pkt.window, _c,
         pkt.urg) = _TCP.unpack_from(l4)
        doff = (off >> 4) * 4
        if doff < 20 or doff > len(l4):
            raise BadPacket(f"bad TCP data offset {doff}")
        pkt.flags = flags | (off & 1) << 8
        pkt.options = _parse_options(l4[20:doff])
        pkt.payload = l4[doff:]
    elif proto == IPPROTO_UDP:
        if len(l4) < 8:
            raise BadPacket("truncated UDP header")
        pkt.sport, pkt.dport, ulen, _c = _UDP.unpack_from(l4)
        if ulen < 8 or ulen > len(l4):
            raise BadPacket(f"bad UDP length {ulen}")
        pkt.payload = l4[8:ulen]
    elif proto == IPPROTO_ICMP:
        if len(l4) < 8:
            raise BadPacket("truncated ICMP header")
        pkt.icmp_type, pkt.icmp_code, _c, pkt.icmp_rest = _ICMP.unpack_from(l4)
        pkt.payload = l4[8:]
    else:
        pkt.payload = l4
    return pkt


def _parse_options(raw: bytes) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    i = 0
    while i < len(raw):
        kind = raw[i]
        if kind in (TCPOPT_EOL, TCPOPT_NOP):
            out.append((kind, b""))
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2 or i + raw[i + 1] > len(raw):
            raise BadPacket(f"bad TCP option length at option byte {i}")
        length = raw[i + 1]
        out.append((kind, raw[i + 2:i + length]))
        i += length
    return out


# --- printing, in the script's syntax ---------------------------------------------------------

def format_options(options: list[tuple[int, bytes]]) -> str:
    parts = []
    for kind, data in options:
        if kind == TCPOPT_NOP:
            parts.append("nop")
        elif kind == TCPOPT_EOL:
            parts.append("eol")
        elif kind == TCPOPT_MSS and len(data) == 2:
            parts.append(f"mss {struct.unpack('!H', data)[0]}")
        elif kind == TCPOPT_WINDOW and len(data) == 1:
            parts.append(f"wscale {data[0]}")
        elif kind == TCPOPT_SACK_PERM and not data:
            parts.append("sackOK")
        elif kind == TCPOPT_SACK and len(data) % 8 == 0:
            blocks = [struct.unpack_from("!II", data, i) for i in range(0, len(data), 8)]
            parts.append("sack " + " ".join(f"{a}:{b}" for a, b in blocks))
        elif kind == TCPOPT_TIMESTAMP and len(data) == 8:
            val, ecr = struct.unpack("!II", data)
            parts.append(f"TS val {val} ecr {ecr}")
        elif kind == TCPOPT_FASTOPEN:
            parts.append(f"FO {data.hex()}" if data else "FO")
        elif kind == TCPOPT_EXP and data[:2] == b"\xf9\x89":
            parts.append(f"FOEXP {data[2:].hex()}" if data[2:] else "FOEXP")
        elif kind == TCPOPT_MD5SIG:
            parts.append("md5")
        else:
            parts.append(f"opt{kind}[{data.hex()}]")
    return ",".join(parts)


def _ip_info(pkt: Packet, ttl: bool) -> str:
    fields = [{0: "", 1: "ect1", 2: "ect0", 3: "ce"}[pkt.tos & 3]]
    if ttl:
        fields.append(f"ttl {pkt.ttl}")
    fields = [f for f in fields if f]
    return f"[{', '.join(fields)}] " if fields else ""


def format_packet(pkt: Packet, direction: str = ">", *, addresses: bool = False,
                  ttl: bool = False) -> str:
    """`pkt` as a script line's packet part: `> S. 0:0(0) ack 1 win 65535 <mss 1460>`.
    With `addresses`, an explicit `ipv4 SRC > DST:` prefix and the ports are shown too; with
    `ttl`, the IP TTL as `[ttl N]`."""
    head = f"{direction} "
    if addresses:
        head += f"ipv4 {ip_str(pkt.src)} > {ip_str(pkt.dst)}: "
    head += _ip_info(pkt, ttl)
    if pkt.proto == IPPROTO_TCP:
        ports = f"{pkt.sport} > {pkt.dport} " if addresses else ""
        n = len(pkt.payload)
        text = f"{head}{ports}{bits_to_flags(pkt.flags) or '-'} {pkt.seq}:{(pkt.seq + n) & 0xFFFFFFFF}({n})"
        if pkt.flag("."):
            text += f" ack {pkt.ack}"
        text += f" win {pkt.window}"
        if pkt.flag("U") or pkt.urg:
            text += f" urg {pkt.urg}"
        if pkt.options:
            text += f" <{format_options(pkt.options)}>"
        return text
    if pkt.proto == IPPROTO_UDP:
        ports = f"{pkt.sport} > {pkt.dport} " if addresses else ""
        return f"{head}udp {ports}({len(pkt.payload)})"
    if pkt.proto == IPPROTO_ICMP:
        text = f"{head}icmp {icmp_type_name(pkt.icmp_type)}"
        if pkt.icmp_code:
            text += f" {icmp_code_name(pkt.icmp_type, pkt.icmp_code)}"
        if pkt.icmp_type == ICMP_TYPES["unreachable"] and pkt.icmp_code == 4:
            text += f" mtu {pkt.icmp_rest & 0xFFFF}"
        if pkt.icmp_type in (0, 8):
            text += f" id {pkt.icmp_rest >> 16}"
        echoed = _echoed(pkt)
        if echoed:
            text += f" [{echoed}]"
        return text
    return f"{head}ip proto {pkt.proto} ({len(pkt.payload)})"


def _echoed(pkt: Packet) -> str:
    """The quoted datagram of an ICMP error, as `[udp (N)]` / `[S:E(L)]`."""
    if pkt.icmp_type not in (3, 4, 5, 11, 12) or len(pkt.payload) < 28:
        return ""
    inner = pkt.payload
    ihl = (inner[0] & 15) * 4
    tot = struct.unpack_from("!H", inner, 2)[0]
    proto = inner[9]
    if proto == IPPROTO_UDP:
        return f"udp ({max(tot - ihl - 8, 0)})"
    if proto == IPPROTO_TCP and len(inner) >= ihl + 8:
        seq = struct.unpack_from("!I", inner, ihl + 4)[0]
        return f"{seq}:{seq}(0)"
    return f"raw ({max(tot - ihl, 0)})"


def describe(pkt: Any) -> str:
    return format_packet(pkt) if isinstance(pkt, Packet) else repr(pkt)
