"""A pcapng capture writer, and a strict pcapng reader for the tests.

Implements draft-ietf-opsawg-pcapng ("PCAP Now Generic (pcapng) Capture File Format"):
§3.1 (general block structure), §3.4 (physical file layout: sections), §3.5 (options),
§3.6 (endianness, alignment, strings), §4.1 (Section Header Block), §4.2 (Interface
Description Block: if_name, if_description, if_tsresol, if_tsoffset) and §4.3 (Enhanced
Packet Block, opt_comment). Link types are from draft-ietf-opsawg-pcaplinktype.

Read first: §3.1 and §4.3. Every block is `type, total length, body padded to 32 bits,
total length again`; the repeated length is what lets a reader walk a file backwards, and
what `read_pcapng` checks to catch a torn or corrupted file.

The writer is on the hot path of every captured frame, so an Enhanced Packet Block is one
`struct.pack` for its 28-octet head, the frame data as given (no copy unless it has to be
cut to the snaplen), zero padding, optional options and the 4-octet trailer, handed to the
file in a single `write` call. Nothing is kept per packet: buffering is the file object's.

All output is little-endian, written with byte-order magic 0x1A2B3C4D (§4.1), version 1.0,
section length -1 (not known in advance, since we stream). Every interface gets
if_tsresol = 9, so Enhanced Packet Block timestamps are integer nanoseconds: the virtual
clock is a float of seconds, and nanoseconds keep every tick a simulation can tell apart.
"""

from __future__ import annotations

import os
import struct
from typing import IO, Iterable

import attrs

__all__ = [
    "LINKTYPE_NULL",
    "LINKTYPE_ETHERNET",
    "LINKTYPE_RAW",
    "PcapngWriter",
    "PcapngPacket",
    "read_pcapng",
]

# draft-ietf-opsawg-pcaplinktype, "LinkType" registry.
LINKTYPE_NULL = 0  # BSD loopback: a 4-octet host-endian address family, then the packet
LINKTYPE_ETHERNET = 1  # IEEE 802.3 Ethernet; Linux also uses it on lo
LINKTYPE_RAW = 101  # raw IP, no link header (the version nibble tells IPv4 from IPv6)

# Block types (§10.1).
_SHB_TYPE = 0x0A0D0D0A  # "\n\r\r\n": palindromic, so readable before the byte order is known
_IDB_TYPE = 0x00000001
_EPB_TYPE = 0x00000006

_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_SHB_TYPE_BYTES = b"\x0a\x0d\x0d\x0a"
_MAGIC_LE = b"\x4d\x3c\x2b\x1a"
_MAGIC_BE = b"\x1a\x2b\x3c\x4d"

# Option codes (§3.5, §4.1, §4.2, §4.3).
_OPT_ENDOFOPT = 0
_OPT_COMMENT = 1
_SHB_HARDWARE = 2
_SHB_OS = 3
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_DESCRIPTION = 3
_IF_TSRESOL = 9
_IF_TSOFFSET = 14
_EPB_FLAGS = 2

# Options that §4.1-§4.3 say may appear at most once in a block; the reader rejects repeats.
_SHB_SINGLE_OPTIONS = frozenset({_SHB_HARDWARE, _SHB_OS, _SHB_USERAPPL})
_IDB_SINGLE_OPTIONS = frozenset({_IF_NAME, _IF_DESCRIPTION, _IF_TSRESOL, _IF_TSOFFSET})
_EPB_SINGLE_OPTIONS = frozenset({_EPB_FLAGS})

_TSRESOL_NS = 9  # MSB clear: a negative power of ten, so 10**-9 s per tick
_TICKS_PER_SECOND = 1_000_000_000
_DEFAULT_TICKS_PER_SECOND = 1_000_000  # §4.2: no if_tsresol means microseconds

_U32_MAX = 0xFFFFFFFF
_OPTION_VALUE_MAX = 0xFFFF  # the Option Length field is 16 bits

# The largest timestamp (in seconds) whose nanosecond count, fraction included, still fits the
# 64-bit EPB timestamp: about the year 2554, far beyond any virtual clock.
_MAX_TIMESTAMP_S = (1 << 64) // _TICKS_PER_SECOND - 1

# Little-endian layouts for the writer. Each includes the block type and leading length, so a
# block head is one pack call.
_LE_SHB_HEAD = struct.Struct("<IIIHHq")  # type, length, magic, major, minor, section length
_LE_IDB_HEAD = struct.Struct("<IIHHI")  # type, length, linktype, reserved, snaplen
_LE_EPB_HEAD = struct.Struct("<IIIIIII")  # type, length, if id, ts high, ts low, caplen, origlen
_LE_U32 = struct.Struct("<I")
_LE_OPT_HEAD = struct.Struct("<HH")  # option code, value length without padding

_EPB_FIXED_LEN = _LE_EPB_HEAD.size + _LE_U32.size  # head plus trailing length: 32 octets
_END_OF_OPTIONS = _LE_OPT_HEAD.pack(_OPT_ENDOFOPT, 0)
# Zero padding up to a 32-bit boundary (§3.6.2 says it MUST be zeroes), indexed by its length.
_PAD = (b"", b"\0", b"\0\0", b"\0\0\0")


def _utf8(what: str, text: str) -> bytes:
    """`text` as the UTF-8 string option value §3.6.3 asks writers for."""
    value = text.encode("utf-8")  # a lone surrogate raises UnicodeEncodeError, a ValueError
    # §3.5: readers MUST treat a zero octet as the end of a string, so a NUL would silently
    # cut the string short in Wireshark; refuse it here instead.
    if b"\0" in value:
        raise ValueError(f"the {what} {text!r} contains a NUL character, which pcapng readers take as its end")
    if len(value) > _OPTION_VALUE_MAX:
        raise ValueError(f"the {what} is {len(value)} octets of UTF-8; a pcapng option holds at most {_OPTION_VALUE_MAX}")
    return value


def _options(options: Iterable[tuple[int, bytes]]) -> bytes:
    """An option list (§3.5): TLVs padded to 32 bits, closed by opt_endofopt.

    Call only with at least one option: a block without options has no list at all, not an
    opt_endofopt alone.
    """
    parts = []
    for code, value in options:
        parts.append(_LE_OPT_HEAD.pack(code, len(value)))
        parts.append(value)
        parts.append(_PAD[-len(value) & 3])
    parts.append(_END_OF_OPTIONS)
    return b"".join(parts)


def _block(head: struct.Struct, block_type: int, fields: tuple[int, ...], tail: bytes) -> bytes:
    """A whole block whose fixed fields are `head` and whose remaining body is `tail`."""
    total = head.size + len(tail) + _LE_U32.size
    return b"".join((head.pack(block_type, total, *fields), tail, _LE_U32.pack(total)))


class PcapngWriter:
    """Streams a little-endian pcapng file: one section, IDBs as interfaces are added, EPBs.

    `file` is a path (opened "wb" here and closed by `close`) or a binary file object that
    stays the caller's: `close` flushes it but leaves it open. A file object's `write` must
    take the whole buffer, as buffered files and io.BytesIO do; a raw unbuffered file may
    write only part of it.

    `snaplen` is the SnapLen of every interface (§4.2): longer frames are cut to it, with
    their full length kept as the Original Packet Length. 0 means no limit. The default is
    tcpdump's, enough for the largest GSO/GRO frame Linux builds.
    """

    __slots__ = ("_file", "_write", "_owns_file", "_snaplen", "_n_interfaces", "_packets_written")

    def __init__(self, file: str | os.PathLike[str] | IO[bytes], *, snaplen: int = 262144, application: str = "pystack"):
        if not 0 <= snaplen <= _U32_MAX:
            raise ValueError(f"snaplen {snaplen} does not fit the 32-bit SnapLen field of an Interface Description Block")
        shb = _block(
            _LE_SHB_HEAD,
            _SHB_TYPE,
            (_BYTE_ORDER_MAGIC, 1, 0, -1),
            _options([(_SHB_USERAPPL, _utf8("application name", application))]),
        )
        if isinstance(file, (str, os.PathLike)):
            stream: IO[bytes] = open(file, "wb")
            owns = True
        else:
            stream = file
            owns = False
        self._file: IO[bytes] | None = stream
        self._write = stream.write  # bound once: write_packet runs for every captured frame
        self._owns_file = owns
        self._snaplen = snaplen
        self._n_interfaces = 0
        self._packets_written = 0
        try:
            self._write(shb)
        except BaseException:
            if owns:
                stream.close()
            self._file = None
            raise

    @property
    def packets_written(self) -> int:
        return self._packets_written

    @property
    def closed(self) -> bool:
        return self._file is None

    def add_interface(self, name: str, *, linktype: int = LINKTYPE_ETHERNET, description: str | None = None) -> int:
        """Write an Interface Description Block; return its Interface ID (0, 1, 2 ...).

        §4.2 numbers interfaces by the order of their IDBs in the section, so the id is simply
        the count so far. An IDB may come after packets of other interfaces.
        """
        self._check_open()
        if not 0 <= linktype <= 0xFFFF:
            raise ValueError(f"linktype {linktype} does not fit the 16-bit LinkType field")
        options = [(_IF_NAME, _utf8("interface name", name))]
        if description is not None:
            options.append((_IF_DESCRIPTION, _utf8("interface description", description)))
        options.append((_IF_TSRESOL, bytes((_TSRESOL_NS,))))
        self._write(_block(_LE_IDB_HEAD, _IDB_TYPE, (linktype, 0, self._snaplen), _options(options)))
        interface_id = self._n_interfaces
        self._n_interfaces += 1
        return interface_id

    def write_packet(
        self,
        interface_id: int,
        timestamp: float,
        data: bytes | bytearray | memoryview,
        *,
        original_length: int | None = None,
        comment: str | None = None,
    ) -> None:
        """Write one Enhanced Packet Block (§4.3).

        `timestamp` is in seconds; it is stored as integer nanoseconds, the nearest to the
        float's exact value. `original_length` is the frame's length on the wire when `data`
        is only its beginning; it defaults to len(data).
        """
        if self._file is None:
            raise ValueError("the PcapngWriter is closed")
        if not 0 <= interface_id < self._n_interfaces:
            raise ValueError(
                f"interface id {interface_id} has no Interface Description Block; "
                f"add_interface has been called {self._n_interfaces} times"
            )
        # `not a <= x` rather than `x < a` so that NaN, which fails every comparison, is refused.
        if not 0 <= timestamp <= _MAX_TIMESTAMP_S:
            raise ValueError(f"timestamp {timestamp!r} s is outside the unsigned 64-bit nanosecond range of pcapng")
        # Whole seconds and the fraction separately: for a non-negative float, subtracting its
        # integer part is exact, and the fraction times 10**9 is below 2**30, where a float
        # still resolves 2**-23 ns; so this is the nanosecond nearest the float's exact value.
        # round(timestamp * 1e9) would instead land only on multiples of 2, 4 ... 2048 ns past
        # 2**53 ns (about 104 days), where the product itself can no longer hold every count.
        seconds = int(timestamp)
        ticks = seconds * _TICKS_PER_SECOND + round((timestamp - seconds) * _TICKS_PER_SECOND)

        if type(data) is memoryview and (data.ndim != 1 or data.itemsize != 1 or not data.c_contiguous):
            data = data.tobytes()  # len() must count octets, and join needs a contiguous buffer
        length = len(data)
        if original_length is None:
            original_length = length
        elif original_length < length:
            # §4.3: a writer MUST NOT record a packet shorter than what it captured of it.
            raise ValueError(
                f"original_length {original_length} is less than the {length} octets of data; "
                f"data is the start of the original packet, so it cannot be longer"
            )
        if original_length > _U32_MAX:
            raise ValueError(f"packet length {original_length} does not fit the 32-bit Original Packet Length field")
        snaplen = self._snaplen
        if snaplen and length > snaplen:
            data = data[:snaplen]
            length = snaplen

        pad = _PAD[-length & 3]
        if comment is None:
            total = _EPB_FIXED_LEN + length + len(pad)
            parts: tuple[bytes | bytearray | memoryview, ...] = (
                _LE_EPB_HEAD.pack(_EPB_TYPE, total, interface_id, ticks >> 32, ticks & _U32_MAX, length, original_length),
                data,
                pad,
                _LE_U32.pack(total),
            )
        else:
            options = _options([(_OPT_COMMENT, _utf8("packet comment", comment))])
            total = _EPB_FIXED_LEN + length + len(pad) + len(options)
            parts = (
                _LE_EPB_HEAD.pack(_EPB_TYPE, total, interface_id, ticks >> 32, ticks & _U32_MAX, length, original_length),
                data,
                pad,
                options,
                _LE_U32.pack(total),
            )
        self._write(b"".join(parts))
        self._packets_written += 1

    def flush(self) -> None:
        self._check_open()
        self._file.flush()  # type: ignore[union-attr]  # _check_open saw it is not None

    def close(self) -> None:
        """Flush, and close the file if this writer opened it. Closing twice is harmless."""
        stream = self._file
        if stream is None:
            return
        self._file = None
        try:
            stream.flush()
        finally:
            if self._owns_file:
                stream.close()

    def __enter__(self) -> PcapngWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._file is None:
            raise ValueError("the PcapngWriter is closed")


@attrs.frozen
class PcapngPacket:
    """One Enhanced Packet Block as `read_pcapng` saw it."""

    interface_id: int  # within its section (§4.2)
    interface_name: str | None  # the IDB's if_name; None if it has none
    linktype: int
    timestamp: float  # seconds, scaled by the interface's if_tsresol and if_tsoffset
    data: bytes  # the captured octets, without padding
    original_length: int
    comment: str | None  # the opt_comment options, joined with "\n" if there are several


@attrs.define(eq=False)
class _Interface:
    linktype: int
    snaplen: int
    name: str | None
    ticks_per_second: int
    offset_s: int  # if_tsoffset


def read_pcapng(file: str | os.PathLike[str] | IO[bytes]) -> list[PcapngPacket]:
    """Parse a whole pcapng file (a path or a binary file object) into its packets.

    Strict, as a test oracle should be: it raises ValueError on anything the draft says a
    writer must not produce (bad byte-order magic, a block length that is short, unaligned,
    past the end of the file or not repeated at the end, an option overrunning its block,
    nonzero padding, an EPB naming an interface not yet described, invalid UTF-8 ...).
    It reads SHB, IDB and EPB; any other block (SPB, NRB, ISB, custom ...) is checked for
    its lengths and skipped. Files of either byte order and with several sections are read.
    """
    if isinstance(file, (str, os.PathLike)):
        with open(file, "rb") as f:
            buf = f.read()
    else:
        buf = file.read()
        if not isinstance(buf, (bytes, bytearray)):
            raise TypeError(f"read_pcapng needs a binary file; read() returned {type(buf).__name__}")
    return _Reader(bytes(buf)).packets()


class _Reader:
    """The state of one pass over a pcapng file; `packets` does the work."""

    def __init__(self, buf: bytes):
        self.buf = buf
        self.endian = ""  # "<" or ">", from the current section's byte-order magic
        self.interfaces: list[_Interface] = []
        self.section_body_start = 0
        self.section_length = -1

    def packets(self) -> list[PcapngPacket]:
        buf = self.buf
        end = len(buf)
        if end == 0:
            raise ValueError("the file is empty; a pcapng file starts with a Section Header Block")
        if buf[:4] != _SHB_TYPE_BYTES:
            raise ValueError(
                f"the file starts with {buf[:4].hex()} rather than the Section Header Block type "
                f"0a0d0d0a; it is not a pcapng file (or was mangled by a text-mode transfer)"
            )
        result: list[PcapngPacket] = []
        pos = 0
        while pos < end:
            if end - pos < 12:
                raise ValueError(
                    f"truncated block at offset {pos}: {end - pos} octets remain, but the smallest "
                    f"block (type, length, length) is 12"
                )
            if buf[pos : pos + 4] == _SHB_TYPE_BYTES:
                # The SHB's own byte order is only known from its magic, so read that first.
                self._end_section(pos)
                magic = buf[pos + 8 : pos + 12]
                if magic == _MAGIC_LE:
                    self.endian = "<"
                elif magic == _MAGIC_BE:
                    self.endian = ">"
                else:
                    raise ValueError(
                        f"Section Header Block at offset {pos} has byte-order magic {magic.hex()}, "
                        f"which is 0x1A2B3C4D in neither byte order"
                    )
            block_type, length = struct.unpack_from(self.endian + "II", buf, pos)
            if length < 12 or length % 4:
                raise ValueError(
                    f"block of type {block_type:#x} at offset {pos} has total length {length}; "
                    f"a block length is a multiple of 4 and at least 12"
                )
            if length > end - pos:
                raise ValueError(
                    f"truncated block of type {block_type:#x} at offset {pos}: its length is "
                    f"{length} but only {end - pos} octets remain in the file"
                )
            (trailing,) = struct.unpack_from(self.endian + "I", buf, pos + length - 4)
            if trailing != length:
                raise ValueError(
                    f"block of type {block_type:#x} at offset {pos} has leading length {length} "
                    f"but trailing length {trailing}"
                )
            body = memoryview(buf)[pos + 8 : pos + length - 4]
            where = f"{_BLOCK_NAMES.get(block_type, f'block of type {block_type:#x}')} at offset {pos}"
            if block_type == _SHB_TYPE:
                self._section_header(body, where)
                self.section_body_start = pos + length
            elif block_type == _IDB_TYPE:
                self._interface_description(body, where)
            elif block_type == _EPB_TYPE:
                result.append(self._enhanced_packet(body, where))
            pos += length
        self._end_section(end)
        return result

    def _end_section(self, pos: int) -> None:
        """Check the closing section's Section Length, when its SHB gave one."""
        if self.section_length >= 0 and pos - self.section_body_start != self.section_length:
            raise ValueError(
                f"the section ending at offset {pos} is {pos - self.section_body_start} octets long, "
                f"but its Section Header Block says {self.section_length}"
            )

    def _section_header(self, body: memoryview, where: str) -> None:
        if len(body) < 16:
            raise ValueError(f"{where} has a {len(body)}-octet body; a Section Header Block needs 16")
        _, major, minor, section_length = struct.unpack_from(self.endian + "IHHq", body)
        # §4.1: readers treat 1.2 as 1.0; other versions are formats this reader does not know.
        if major != 1 or minor not in (0, 2):
            raise ValueError(f"{where} is version {major}.{minor}; this reader knows version 1.0")
        if section_length != -1 and (section_length < 0 or section_length % 4):
            raise ValueError(f"{where} has Section Length {section_length}; it must be -1 or a multiple of 4")
        self._options(body, 16, where, _SHB_SINGLE_OPTIONS)
        self.section_length = section_length
        self.interfaces = []  # Interface IDs are per section (§4.2)

    def _interface_description(self, body: memoryview, where: str) -> None:
        if len(body) < 8:
            raise ValueError(f"{where} has a {len(body)}-octet body; an Interface Description Block needs 8")
        linktype, _reserved, snaplen = struct.unpack_from(self.endian + "HHI", body)
        name = None
        ticks_per_second = _DEFAULT_TICKS_PER_SECOND
        offset_s = 0
        for code, value in self._options(body, 8, where, _IDB_SINGLE_OPTIONS):
            if code == _IF_NAME:
                name = _decode(value, f"if_name of {where}")
            elif code == _IF_TSRESOL:
                if len(value) != 1:
                    raise ValueError(f"if_tsresol of {where} is {len(value)} octets long; it is 1")
                exponent = value[0] & 0x7F
                ticks_per_second = 2**exponent if value[0] & 0x80 else 10**exponent
            elif code == _IF_TSOFFSET:
                if len(value) != 8:
                    raise ValueError(f"if_tsoffset of {where} is {len(value)} octets long; it is 8")
                (offset_s,) = struct.unpack(self.endian + "q", value)
        self.interfaces.append(_Interface(linktype, snaplen, name, ticks_per_second, offset_s))

    def _enhanced_packet(self, body: memoryview, where: str) -> PcapngPacket:
        if len(body) < 20:
            raise ValueError(f"{where} has a {len(body)}-octet body; an Enhanced Packet Block needs 20")
        interface_id, ts_high, ts_low, caplen, original_length = struct.unpack_from(self.endian + "5I", body)
        if interface_id >= len(self.interfaces):
            raise ValueError(
                f"{where} names interface {interface_id}, but the section has described only "
                f"{len(self.interfaces)} interfaces before it"
            )
        interface = self.interfaces[interface_id]
        data_end = 20 + caplen
        options_start = data_end + (-caplen & 3)
        if options_start > len(body):
            raise ValueError(
                f"{where} has captured length {caplen}, but its body leaves room for only "
                f"{len(body) - 20} octets of packet data"
            )
        _check_padding(body[data_end:options_start], f"packet data padding of {where}")
        if caplen > original_length:
            raise ValueError(f"{where} captured {caplen} octets of a packet only {original_length} octets long")
        if interface.snaplen and caplen > interface.snaplen:
            raise ValueError(f"{where} captured {caplen} octets, more than its interface's snaplen {interface.snaplen}")
        comments = [
            _decode(value, f"opt_comment of {where}")
            for code, value in self._options(body, options_start, where, _EPB_SINGLE_OPTIONS)
            if code == _OPT_COMMENT
        ]
        ticks = (ts_high << 32) | ts_low
        per_second = interface.ticks_per_second
        return PcapngPacket(
            interface_id=interface_id,
            interface_name=interface.name,
            linktype=interface.linktype,
            # One correctly rounded integer division, so 1000000001 ns reads back as exactly
            # the float 1.000000001.
            timestamp=(interface.offset_s * per_second + ticks) / per_second,
            data=bytes(body[20:data_end]),
            original_length=original_length,
            comment="\n".join(comments) if comments else None,
        )

    def _options(self, body: memoryview, start: int, where: str, single: frozenset[int]) -> list[tuple[int, bytes]]:
        """The option list of `body` from `start` to its end (§3.5), without opt_endofopt."""
        result: list[tuple[int, bytes]] = []
        seen: set[int] = set()
        pos = start
        end = len(body)
        while pos < end:
            if end - pos < 4:
                raise ValueError(f"{where} has {end - pos} stray octets where an option header of 4 should be")
            code, length = struct.unpack_from(self.endian + "HH", body, pos)
            pos += 4
            if code == _OPT_ENDOFOPT:
                if length != 0:
                    raise ValueError(f"{where} has an opt_endofopt of length {length}; it is 0")
                if pos != end:
                    raise ValueError(f"{where} has {end - pos} octets after its opt_endofopt")
                break
            value_end = pos + length
            padded_end = value_end + (-length & 3)
            if padded_end > end:
                raise ValueError(
                    f"{where} has option {code} of length {length} (padded to {padded_end - pos}) "
                    f"but only {end - pos} octets remain in the block"
                )
            if code in single:
                if code in seen:
                    raise ValueError(f"{where} repeats option {code}, which may appear only once")
                seen.add(code)
            _check_padding(body[value_end:padded_end], f"padding of option {code} in {where}")
            result.append((code, bytes(body[pos:value_end])))
            pos = padded_end
        return result


_BLOCK_NAMES = {
    _SHB_TYPE: "Section Header Block",
    _IDB_TYPE: "Interface Description Block",
    _EPB_TYPE: "Enhanced Packet Block",
}


def _check_padding(padding: memoryview, what: str) -> None:
    # §3.6.2: alignment octets MUST be zero; anything else means the lengths are off.
    if any(padding):
        raise ValueError(f"the {what} is {bytes(padding).hex()}, not zeroes")


def _decode(value: bytes, what: str) -> str:
    # §3.5: a zero octet ends a string even when the option length says more.
    value = value.split(b"\0", 1)[0]
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"the {what} is not valid UTF-8: {e}") from None
