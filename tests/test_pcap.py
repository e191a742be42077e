"""pystack.pcap: the pcapng writer, checked by its own strict reader, by scapy and by tshark."""

from __future__ import annotations

import io
import logging
import math
import shutil
import struct
import subprocess
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import PcapNgReader, RawPcapNgReader, rdpcap

from pystack.pcap import (
    LINKTYPE_ETHERNET,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    PcapngPacket,
    PcapngWriter,
    read_pcapng,
)


def udp_frame(payload: bytes = b"x", sport: int = 1234) -> bytes:
    # Every address given, so scapy neither routes nor ARPs: the bytes are the same anywhere.
    return bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP(sport=sport, dport=5678)
        / payload
    )


def blocks(image: bytes) -> list[tuple[int, int]]:
    """(offset, total length) of each block of a little-endian file, walked by leading length."""
    result = []
    pos = 0
    while pos < len(image):
        (length,) = struct.unpack_from("<I", image, pos + 4)
        result.append((pos, length))
        pos += length
    return result


def one_packet_file() -> bytes:
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.write_packet(w.add_interface("eth0"), 1.5, udp_frame(), comment="hello")
    return f.getvalue()


@pytest.fixture
def scapy_warnings():
    """Warnings scapy logs while reading: it reports malformed input this way, not by raising.

    The "scapy" logger does not propagate to the root logger, so caplog would not see them.
    """
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect(logging.WARNING)
    logger = logging.getLogger("scapy")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_block_layout_matches_the_spec_octet_for_octet():
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, 1.000000001, b"abcde")
    expected = bytes.fromhex(
        # Section Header Block: type, length 44, magic 0x1A2B3C4D little-endian, version 1.0,
        # section length -1, shb_userappl "pystack" padded to 8, opt_endofopt, length again.
        "0a0d0d0a 2c000000 4d3c2b1a 0100 0000 ffffffffffffffff"
        "0400 0700 70797374 61636b00 0000 0000 2c000000"
        # Interface Description Block: LinkType 1, reserved, SnapLen 262144, if_name "eth0",
        # if_tsresol 9 padded to 4, opt_endofopt.
        "01000000 28000000 0100 0000 00000400"
        "0200 0400 65746830 0900 0100 09000000 0000 0000 28000000"
        # Enhanced Packet Block: interface 0, timestamp 1000000001 ns as high and low words,
        # captured and original length 5, data padded to 8, no options.
        "06000000 28000000 00000000 00000000 01ca9a3b 05000000 05000000"
        "61626364 65000000 28000000"
    )
    assert f.getvalue() == expected


def test_round_trip_through_read_pcapng():
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        eth0 = w.add_interface("eth0", description="first NIC")
        lo = w.add_interface("lo")
        w.write_packet(eth0, 0.0, udp_frame(b"a"))
        w.write_packet(lo, 1.000000001, udp_frame(b"bb"), comment="retransmission, see RFC 6298 §5")
        w.write_packet(eth0, 3600.5, b"", original_length=60)
        assert w.packets_written == 3
    f.seek(0)
    assert read_pcapng(f) == [
        PcapngPacket(0, "eth0", LINKTYPE_ETHERNET, 0.0, udp_frame(b"a"), 43, None),
        PcapngPacket(1, "lo", LINKTYPE_ETHERNET, 1.000000001, udp_frame(b"bb"), 44, "retransmission, see RFC 6298 §5"),
        PcapngPacket(0, "eth0", LINKTYPE_ETHERNET, 3600.5, b"", 60, None),
    ]


@pytest.mark.parametrize("length", range(9))
def test_packet_data_of_every_length_is_padded_to_32_bits(length):
    data = bytes(range(1, length + 1))  # no zero octets, so padding cannot pass for data
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, 2.0, data, comment="c" * length)
    image = f.getvalue()
    assert len(image) % 4 == 0
    assert all(length % 4 == 0 for _, length in blocks(image))
    [packet] = read_pcapng(io.BytesIO(image))
    assert (packet.data, packet.original_length, packet.comment) == (data, length, "c" * length)


@pytest.mark.parametrize(
    "timestamp",
    [0.0, 1.000000001, 3600.5, 0.1 + 0.2, 1_000_000.000000001, 2.0**33 + 0.25, 1e-9, 4.9999999995e-10],
)
def test_timestamps_are_stored_as_the_nearest_whole_nanosecond(timestamp):
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, timestamp, udp_frame())
    # Oracle: the exact rational value of the float, rounded once. 2**33 + 0.25 s is 8.6e18 ns,
    # where a float holds only multiples of 1024 ns, so timestamp * 1e9 would be off.
    nanoseconds = round(Fraction(timestamp) * 10**9)
    f.seek(0)
    [(_, meta)] = list(RawPcapNgReader(f))
    assert (meta.tshigh << 32 | meta.tslow) == nanoseconds
    assert meta.tsresol == 10**9
    [packet] = read_pcapng(io.BytesIO(f.getvalue()))
    assert packet.timestamp == nanoseconds / 10**9


@settings(derandomize=True, database=None, max_examples=200)
@given(nanoseconds=st.integers(min_value=0, max_value=2**22 * 10**9 - 1), data=st.binary(max_size=200))
def test_nanosecond_timestamps_survive_the_float_round_trip(nanoseconds, data):
    # Below 2**22 s (48 days) a float's spacing is under 1 ns, so the float nearest to a
    # nanosecond count leads back to that count, and reading gives back the same float.
    timestamp = nanoseconds / 10**9
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, timestamp, data)
    image = f.getvalue()
    epb_offset = blocks(image)[2][0]
    high, low = struct.unpack_from("<II", image, epb_offset + 12)
    assert high << 32 | low == nanoseconds
    [packet] = read_pcapng(io.BytesIO(image))
    assert (packet.timestamp, packet.data) == (timestamp, data)


def test_snaplen_cuts_data_and_keeps_the_original_length(scapy_warnings):
    big = udp_frame(bytes(range(200)))
    headers = udp_frame(b"")
    f = io.BytesIO()
    with PcapngWriter(f, snaplen=64) as w:
        w.add_interface("eth0")
        w.write_packet(0, 1.0, big)
        w.write_packet(0, 2.0, memoryview(big))
        # A caller that only has the headers of a 1514-octet frame at hand.
        w.write_packet(0, 3.0, headers, original_length=1514)
    f.seek(0)
    packets = read_pcapng(f)
    assert [(p.data, p.original_length) for p in packets] == [
        (big[:64], len(big)),
        (big[:64], len(big)),
        (headers, 1514),
    ]
    f.seek(0)
    scapy_packets = rdpcap(f)
    assert [(bytes(p), p.wirelen) for p in scapy_packets] == [(big[:64], 242), (big[:64], 242), (headers, 1514)]
    assert scapy_warnings == []


def test_memoryviews_of_any_shape_are_written_as_their_octets():
    data = bytes(range(16))
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, 1.0, memoryview(bytearray(data)))
        w.write_packet(0, 2.0, memoryview(data).cast("H"))  # 8 items, 16 octets
        w.write_packet(0, 3.0, memoryview(data)[::2])  # not contiguous
    f.seek(0)
    assert [p.data for p in read_pcapng(f)] == [data, data, data[::2]]


def test_scapy_reads_the_same_bytes_times_names_and_comments(tmp_path, scapy_warnings):
    frames = [udp_frame(b"x" * n, sport=1000 + n) for n in range(5)]
    times = [1.000000001, 1.5, 2.25, 3600.5, 3600.500000123]
    path = tmp_path / "capture.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface("eth0")
        for n, (t, frame) in enumerate(zip(times, frames)):
            w.write_packet(0, t, frame, comment=f"packet {n}" if n % 2 else None)

    packets = rdpcap(str(path))  # scapy takes a str path or a file object, not a pathlib.Path
    assert [bytes(p) for p in packets] == frames
    # scapy keeps pcapng times exact, as Decimal nanoseconds over if_tsresol.
    assert [p.time for p in packets] == [Decimal(f"{t:.9f}") for t in times]
    assert {p.sniffed_on for p in packets} == {"eth0"}
    assert [p.comments for p in packets] == [None, [b"packet 1"], None, [b"packet 3"], None]
    assert [p[UDP].sport for p in packets] == [1000, 1001, 1002, 1003, 1004]

    with PcapNgReader(str(path)) as reader:
        assert [bytes(p) for p in reader] == frames
    assert scapy_warnings == []


def test_scapy_sees_two_interfaces_with_their_ids_and_link_types(scapy_warnings):
    frame = udp_frame(b"payload")
    ip_packet = frame[14:]  # what a tun device carries: the IPv4 packet, no link header
    f = io.BytesIO()
    with PcapngWriter(f) as w:
        eth0 = w.add_interface("eth0", description="veth to the peer")
        w.write_packet(eth0, 1.0, frame)
        # An interface may be described after packets of others (§4.2).
        tun0 = w.add_interface("tun0", linktype=LINKTYPE_RAW)
        w.write_packet(tun0, 2.0, ip_packet)
        w.write_packet(eth0, 3.0, frame)
        assert (eth0, tun0) == (0, 1)

    f.seek(0)
    assert [(p.interface_id, p.interface_name, p.linktype) for p in read_pcapng(f)] == [
        (0, "eth0", LINKTYPE_ETHERNET),
        (1, "tun0", LINKTYPE_RAW),
        (0, "eth0", LINKTYPE_ETHERNET),
    ]

    # scapy's packets carry the interface name (sniffed_on) but not its id; the id is the
    # position in the reader's list of IDBs.
    f.seek(0)
    reader = RawPcapNgReader(f)
    seen = [(meta.ifname, meta.linktype, data) for data, meta in reader]
    assert seen == [(b"eth0", 1, frame), (b"tun0", 101, ip_packet), (b"eth0", 1, frame)]
    assert [(linktype, snaplen, options["name"]) for linktype, snaplen, options in reader.interfaces] == [
        (LINKTYPE_ETHERNET, 262144, b"eth0"),
        (LINKTYPE_RAW, 262144, b"tun0"),
    ]

    f.seek(0)
    packets = rdpcap(f)
    assert [p.sniffed_on for p in packets] == ["eth0", "tun0", "eth0"]
    assert [p.haslayer(Ether) for p in packets] == [True, False, True]
    assert all(p[IP].src == "10.0.0.1" for p in packets)
    assert scapy_warnings == []


def test_tshark_reads_the_file(tmp_path):
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed; install wireshark's tshark to run this check")
    path = tmp_path / "capture.pcapng"
    with PcapngWriter(path) as w:
        w.add_interface("eth0", description="first NIC")
        w.add_interface("tun0", linktype=LINKTYPE_RAW)
        w.add_interface("lo0", linktype=LINKTYPE_NULL)
        w.write_packet(0, 1.000000001, udp_frame(), comment="hello")
        w.write_packet(1, 2.0, udp_frame()[14:])
        w.write_packet(2, 3.0, struct.pack("=I", 2) + udp_frame()[14:])  # AF_INET, host order
    result = subprocess.run([tshark, "-r", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3


def test_unknown_blocks_are_skipped_by_length(scapy_warnings):
    f = io.BytesIO()
    w = PcapngWriter(f)
    w.add_interface("eth0")
    w.write_packet(0, 1.0, udp_frame(b"1"))
    # A local-use block (type MSB set, §3.1) written between packets into the same file.
    f.write(struct.pack("<II8sI", 0x80000001, 20, b"private!", 20))
    w.write_packet(0, 2.0, udp_frame(b"2"))
    w.close()
    f.seek(0)
    assert [p.data for p in read_pcapng(f)] == [udp_frame(b"1"), udp_frame(b"2")]
    f.seek(0)
    assert [bytes(p) for p in rdpcap(f)] == [udp_frame(b"1"), udp_frame(b"2")]
    assert scapy_warnings == []


def test_big_endian_sections_and_default_time_resolution_are_read():
    # Another writer's file: big-endian, microsecond timestamps (no if_tsresol) and an
    # if_tsoffset of 1000 s. Built by hand, since PcapngWriter only writes little-endian.
    def block(block_type: int, body: bytes) -> bytes:
        return struct.pack(">II", block_type, len(body) + 12) + body + struct.pack(">I", len(body) + 12)

    shb = block(0x0A0D0D0A, struct.pack(">IHHq", 0x1A2B3C4D, 1, 0, -1))
    idb = block(1, struct.pack(">HHI", 101, 0, 0) + struct.pack(">HH4sHHqHH", 2, 4, b"tun0", 14, 8, 1000, 0, 0))
    epb = block(6, struct.pack(">5I", 0, 0, 2_500_001, 3, 3) + b"abc\0")
    [packet] = read_pcapng(io.BytesIO(shb + idb + epb))
    assert packet == PcapngPacket(0, "tun0", LINKTYPE_RAW, 1002.500001, b"abc", 3, None)


def _corrupt(image: bytes, offset: int, fmt: str, value: int) -> bytes:
    buf = bytearray(image)
    struct.pack_into(fmt, buf, offset, value)
    return bytes(buf)


def _malformed_files() -> dict[str, tuple[bytes, str]]:
    good = one_packet_file()
    (shb, shb_len), (idb, idb_len), (epb, epb_len) = blocks(good)
    classic_pcap = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return {
        "empty": (b"", "empty"),
        "classic pcap": (classic_pcap, "not a pcapng file"),
        "bad byte-order magic": (_corrupt(good, 8, "<I", 0x12345678), "byte-order magic"),
        "truncated last block": (good[:-6], "truncated block"),
        "truncated block header": (good[: epb + 7], "truncated block"),
        "trailing length differs": (_corrupt(good, epb + epb_len - 4, "<I", epb_len + 4), "trailing length"),
        "length not a multiple of 4": (_corrupt(good, idb + 4, "<I", idb_len + 2), "multiple of 4"),
        "block length too small": (_corrupt(good, epb + 4, "<I", 8), "at least 12"),
        "undescribed interface": (_corrupt(good, epb + 8, "<I", 1), "names interface 1"),
        "captured length past the block": (_corrupt(good, epb + 20, "<I", 4000), "captured length 4000"),
        "option past the block": (_corrupt(good, idb + 18, "<H", 200), "only .* octets remain"),
        "major version 2": (_corrupt(good, 12, "<H", 2), "version 2.0"),
        "section length wrong": (_corrupt(good, 16, "<q", 8), "Section Header Block says 8"),
    }


@pytest.mark.parametrize("case", list(_malformed_files()))
def test_malformed_files_raise_value_error(case):
    image, message = _malformed_files()[case]
    with pytest.raises(ValueError, match=message):
        read_pcapng(io.BytesIO(image))


def test_a_file_object_of_the_caller_stays_open():
    class Recording(io.BytesIO):
        close_calls = 0

        def close(self) -> None:
            self.close_calls += 1
            super().close()

    f = Recording()
    with PcapngWriter(f) as w:
        w.add_interface("eth0")
        w.write_packet(0, 1.0, udp_frame())
        w.flush()
    assert w.closed
    assert f.close_calls == 0 and not f.closed
    f.seek(0)
    assert len(read_pcapng(f)) == 1
    w.close()  # closing again does nothing
    with pytest.raises(ValueError, match="closed"):
        w.write_packet(0, 2.0, b"late")


def test_a_path_is_opened_and_closed_by_the_writer(tmp_path):
    path = tmp_path / "owned.pcapng"
    w = PcapngWriter(str(path), application="pystack test")
    w.add_interface("eth0")
    w.write_packet(0, 1.0, udp_frame())
    w.close()
    assert w.closed and w.packets_written == 1
    assert [p.data for p in read_pcapng(path)] == [udp_frame()]
    with pytest.raises(ValueError, match="closed"):
        w.flush()


@pytest.mark.parametrize(
    "misuse, message",
    [
        (lambda w: w.write_packet(1, 1.0, b"x"), "no Interface Description Block"),
        (lambda w: w.write_packet(-1, 1.0, b"x"), "no Interface Description Block"),
        (lambda w: w.write_packet(0, -0.5, b"x"), "outside"),
        (lambda w: w.write_packet(0, math.nan, b"x"), "outside"),
        (lambda w: w.write_packet(0, math.inf, b"x"), "outside"),
        (lambda w: w.write_packet(0, 1.0, b"xyz", original_length=2), "less than"),
        (lambda w: w.write_packet(0, 1.0, b"x", original_length=2**32), "32-bit"),
        (lambda w: w.write_packet(0, 1.0, b"x", comment="a\0b"), "NUL"),
        (lambda w: w.write_packet(0, 1.0, b"x", comment="c" * 65536), "at most 65535"),
        (lambda w: w.add_interface("eth\0"), "NUL"),
        (lambda w: w.add_interface("eth1", linktype=70000), "16-bit"),
    ],
)
def test_misuse_raises_value_error_and_writes_nothing(misuse, message):
    f = io.BytesIO()
    w = PcapngWriter(f)
    w.add_interface("eth0")
    before = f.getvalue()
    with pytest.raises(ValueError, match=message):
        misuse(w)
    assert f.getvalue() == before
    assert w.packets_written == 0


def test_snaplen_must_fit_32_bits():
    with pytest.raises(ValueError, match="SnapLen"):
        PcapngWriter(io.BytesIO(), snaplen=2**32)
