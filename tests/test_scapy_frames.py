"""Every kind of frame the stack emits, checked by outside parsers: scapy, and tshark where it
is installed (.ci/run installs it when it runs as root).

One scenario makes the stack send ARP requests (broadcast and unicast probes) and replies,
ICMP echo request/reply, port, protocol and host unreachable (the last to itself, over lo),
time exceeded (reassembly), UDP unicast, broadcast and over loopback, and IP fragments.
Everything is captured with `net.capture` and also recorded as it crosses the wires. The
capture is read back both with pystack.pcap.read_pcapng and scapy; every frame must parse in
scapy with correct IP, ICMP and UDP checksums (recomputed by scapy from scratch), and every
frame on a wire must be at least the 60 bytes of a minimum Ethernet frame.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections import Counter

import pytest

import trio
from scapy.layers.inet import ICMP, IP, TCP, UDP, defragment
from scapy.layers.l2 import ARP, Ether
from scapy.utils import RawPcapNgReader

import pystack
from pystack.pcap import PcapngWriter, read_pcapng

from nethelpers import mac


def record_wires(net: pystack.Network) -> list[bytes]:
    """Every frame delivered off a wire, as the receiving end got it."""
    seen: list[bytes] = []
    for link in net.links:
        for port in (link.a, link.b):
            inner = port.receive

            def receive(frame, trace, inner=inner):
                seen.append(bytes(frame))
                inner(frame, trace)

            port.receive = receive
    return seen


async def scenario(net: pystack.Network, pcap_path: str) -> list[bytes]:
    a, b, c = (net.add_host(n) for n in "abc")
    sw = net.add_switch("sw0")
    for h in (a, b, c):
        net.add_link(h, sw, subnet="10.0.0.0/24").set(delay=0.001)
    wire = record_wires(net)
    net.capture(pcap_path)

    server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await server.bind(("0.0.0.0", 7))
    server.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    local = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await local.bind(("127.0.0.1", 7))
    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)

    await a.ping("10.0.0.2")                                  # ARP request/reply, echo
    await client.sendto(b"hello", ("10.0.0.2", 7))            # UDP unicast
    data, peer = await server.recvfrom(100)
    await server.sendto(data, peer)
    await client.recvfrom(100)
    await client.sendto(b"all", ("10.0.0.255", 7))            # UDP broadcast
    await server.recvfrom(100)
    await client.sendto(b"closed", ("10.0.0.3", 9999))        # port unreachable from c
    big = bytes(range(256)) * 16
    await client.sendto(big, ("10.0.0.2", 7))                 # fragments, both ways
    data, peer = await server.recvfrom(65536)
    await server.sendto(data, peer)
    await client.recvfrom(65536)
    await client.sendto(b"lo", ("127.0.0.1", 7))              # UDP over loopback
    await local.recvfrom(10)
    await client.sendto(b"void", ("10.0.0.99", 7))            # 3 ARP requests, then a
    await trio.sleep(4)                                       # host unreachable over lo
    # b emits a protocol unreachable, and a time exceeded for a lone first fragment
    eth = Ether(dst=mac(b), src=mac(a))
    b.interface("eth0").dma_rx(bytearray(bytes(eth / IP(src="10.0.0.1", dst="10.0.0.2",
                                                         proto=200) / b"?")))
    b.interface("eth0").dma_rx(bytearray(bytes(
        eth / IP(src="10.0.0.1", dst="10.0.0.2", id=999, flags="MF", proto=17)
        / UDP(sport=1, dport=7) / (b"f" * 64))))
    await trio.sleep(31)
    # a's entry for b is STALE by now: using it goes DELAY, then PROBE with a unicast request
    await client.sendto(b"again", ("10.0.0.2", 7))
    await server.recvfrom(100)
    await trio.sleep(6)
    return wire


def kind(p: Ether) -> str:
    if ARP in p:
        if p[ARP].op == 2:
            return "arp reply"
        return "arp request" + (" broadcast" if p.dst == "ff:ff:ff:ff:ff:ff" else " unicast")
    ip = p[IP]
    if ip.flags.MF or ip.frag:
        return "ip fragment"
    if ICMP in p:
        return {(8, 0): "echo request", (0, 0): "echo reply", (3, 3): "port unreachable",
                (3, 2): "protocol unreachable", (3, 1): "host unreachable",
                (11, 1): "reassembly time exceeded"}[(p[ICMP].type, p[ICMP].code)]
    if UDP in p:
        if ip.dst == "127.0.0.1":
            return "udp loopback"
        return "udp broadcast" if ip.dst.endswith(".255") else "udp unicast"
    if ip.proto == 200:
        return "injected"  # the test's own frame, captured as b received it
    return "other"


def check_checksums(p: Ether) -> None:
    """Recompute every checksum scapy knows how to, from scratch, and compare."""
    if ARP in p:
        arp = p[ARP]
        assert (arp.hwtype, arp.ptype, arp.hwlen, arp.plen) == (1, 0x0800, 6, 4)
        return
    assert IP in p, p.summary()
    q = p.copy()
    del q[IP].chksum
    fragmented = p[IP].flags.MF or p[IP].frag
    if ICMP in q:
        del q[ICMP].chksum
    if UDP in q and not fragmented:
        del q[UDP].chksum
    if TCP in q:
        del q[TCP].chksum
    r = Ether(bytes(q))
    assert r[IP].chksum == p[IP].chksum, p.summary()
    if ICMP in p:
        assert r[ICMP].chksum == p[ICMP].chksum, p.summary()
    if UDP in p and not fragmented:
        assert p[UDP].chksum != 0  # the stack always fills it in
        assert r[UDP].chksum == p[UDP].chksum, p.summary()
    if TCP in p:
        assert r[TCP].chksum == p[TCP].chksum, p.summary()
    assert p[IP].len <= len(bytes(p[IP]))  # the datagram fits its frame (the rest: padding)


async def test_every_emitted_frame_parses_in_scapy_with_correct_checksums(tmp_path) -> None:
    path = str(tmp_path / "all.pcapng")
    net = pystack.Network(seed=51)
    async with net:
        wire = await scenario(net, path)
    captured = read_pcapng(path)  # the capture is closed with the network
    raw = [(bytes(data), meta.ifname.decode()) for data, meta in RawPcapNgReader(path)]
    assert [(p.data, p.interface_name) for p in captured] == raw
    assert len(captured) > 50

    kinds: Counter[str] = Counter()
    for p in captured:
        frame = Ether(p.data)
        assert frame.type in (0x0800, 0x0806), frame.summary()
        check_checksums(frame)
        kinds[kind(frame)] += 1
        if p.interface_name.endswith(":lo"):
            assert frame.src == frame.dst == "00:00:00:00:00:00"
    for frame in wire:
        assert len(frame) >= 60
        check_checksums(Ether(frame))

    assert set(kinds) >= {
        "arp request broadcast", "arp request unicast", "arp reply", "echo request",
        "echo reply", "port unreachable", "protocol unreachable", "host unreachable",
        "reassembly time exceeded", "udp unicast", "udp broadcast", "udp loopback",
        "ip fragment"}
    assert "other" not in kinds
    # the host unreachable never left a: it is on a's lo only
    lo_kinds = {kind(Ether(p.data)) for p in captured if p.interface_name == "a:lo"}
    assert "host unreachable" in lo_kinds
    wire_kinds = {kind(Ether(f)) for f in wire}
    assert "host unreachable" not in wire_kinds


async def test_fragments_reassemble_in_scapy_to_a_checksummed_datagram(tmp_path) -> None:
    path = str(tmp_path / "frag.pcapng")
    net = pystack.Network(seed=51)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        net.capture(path)
        server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await server.bind(("0.0.0.0", 7))
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        payload = bytes(range(256)) * 20
        await client.sendto(payload, ("10.0.0.2", 7))
        assert (await server.recvfrom(65536))[0] == payload
    sent = [Ether(p.data) for p in read_pcapng(path) if p.interface_name == "a:eth0"]
    frags = [p[IP] for p in sent if IP in p and (p[IP].flags.MF or p[IP].frag)]
    assert len(frags) == 4
    (whole,) = defragment(frags)
    dgram = IP(bytes(whole))
    assert bytes(dgram[UDP].payload) == payload
    rebuilt = dgram.copy()
    del rebuilt[UDP].chksum
    assert IP(bytes(rebuilt))[UDP].chksum == dgram[UDP].chksum
    # and each fragment's IP header checksum is right
    for f in frags:
        g = f.copy()
        del g.chksum
        assert IP(bytes(g)).chksum == f.chksum


async def tcp_pair(server_host, client_host, address: str, port: int):
    """A listening socket on `server_host`, and a connection to it from `client_host`: the
    client's socket and the accepted one."""
    server = server_host.socket()
    await server.bind((address, port))
    server.listen(4)
    client = client_host.socket()
    await client.connect((address if address != "0.0.0.0" else server_host.address(), port))
    conn, _ = await server.accept()
    return client, conn


async def tcp_scenario(net: pystack.Network) -> None:
    """After `scenario`: TCP over the switch (10 KiB one way, a reply, FINs), over loopback
    (70000 bytes in 65483-byte segments), and a refused connect (SYN, RST)."""
    a, b = net.host("a"), net.host("b")
    client, conn = await tcp_pair(b, a, "0.0.0.0", 5001)
    await client.send(bytes(range(256)) * 40)
    got = b""
    while len(got) < 10240:
        got += await conn.recv(65536)
    await conn.send(got[:100])
    assert await client.recv(1000) == got[:100]
    client.close()
    conn.close()
    local, local_conn = await tcp_pair(a, a, "127.0.0.1", 5002)
    await local.send(b"x" * 70000)
    n = 0
    while n < 70000:
        n += len(await local_conn.recv(100000))
    local.close()
    local_conn.close()
    refused = a.socket()
    with pytest.raises(ConnectionRefusedError):
        await refused.connect(("10.0.0.3", 5003))
    await trio.sleep(70)  # past TIME_WAIT


def _tshark(tshark: str, path: str, *args: str) -> list[str]:
    """tshark's lines for the file, with IP, TCP and UDP checksums checked (off by default),
    each IP fragment shown as it is (not reassembled)."""
    result = subprocess.run(
        [tshark, "-r", path, "-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE",
         "-o", "udp.check_checksum:TRUE", "-o", "ip.defragment:FALSE", *args],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


# Frames tshark calls malformed, or with an expert note of severity "error" (a bad checksum).
BROKEN = ("-Y", "_ws.malformed || _ws.expert.severity >= 0x800000")


def transport(protocols: str) -> str:
    """The first of arp, icmp, tcp, udp in tshark's frame.protocols ("eth:ethertype:ip:tcp")."""
    layers = protocols.split(":")
    return next((p for p in layers if p in ("arp", "icmp", "tcp", "udp")), "ip")


async def capture_everything(path: str) -> list:
    """`scenario` then `tcp_scenario`, captured to `path`; the frames read back."""
    net = pystack.Network(seed=51)
    async with net:
        await scenario(net, path)
        await tcp_scenario(net)
    return read_pcapng(path)


async def test_tcp_segments_parse_in_scapy_with_correct_checksums(tmp_path) -> None:
    segments = [(p.interface_name, Ether(p.data))
                for p in await capture_everything(str(tmp_path / "tcp.pcapng"))]
    segments = [(name, f) for name, f in segments if TCP in f]
    for _, frame in segments:
        check_checksums(frame)
    flags = Counter(str(f[TCP].flags) for name, f in segments if name == "a:eth0")
    assert {"S", "SA", "A", "PA", "FA", "RA"} <= set(flags), flags
    assert flags["S"] == 2  # to b, and to c's closed port (answered RA)
    # Over loopback: 70000 bytes as a 65483-byte segment (lo's MSS) and the rest. A capture
    # of lo shows each packet once, as tcpdump does (one SYN, one of each data segment).
    lo = [f for name, f in segments if name == "a:lo"]
    assert [len(f[TCP].payload) for f in lo if len(f[TCP].payload)] == [65483, 70000 - 65483]
    assert [str(f[TCP].flags) for f in lo[:3]] == ["S", "SA", "A"]
    assert sum(len(f[TCP].payload) for name, f in segments if name == "a:eth0"
               and f[IP].dst == "10.0.0.2") == 10240


async def test_tshark_reads_the_capture_with_no_malformed_frames(tmp_path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed; install wireshark's tshark to run this check")
    path = str(tmp_path / "all.pcapng")
    captured = await capture_everything(path)
    rows = [line.split("\t") for line in _tshark(
        tshark, path, "-T", "fields", "-e", "frame.interface_name", "-e", "frame.protocols")]
    assert [row[0] for row in rows] == [p.interface_name for p in captured]
    assert _tshark(tshark, path, *BROKEN) == []
    # tshark and scapy see the same protocol in every frame.
    def scapy_transport(frame: Ether) -> str:  # a fragment after the first is "ip" in both
        return next((name for layer, name in ((ARP, "arp"), (ICMP, "icmp"), (TCP, "tcp"),
                                              (UDP, "udp")) if layer in frame), "ip")

    seen = [transport(row[1]) for row in rows]
    assert seen == [scapy_transport(Ether(p.data)) for p in captured]
    assert Counter(seen).keys() == {"arp", "icmp", "tcp", "udp", "ip"}  # ip: fragments
    assert Counter(seen)["tcp"] > 40

    # The check would see a broken frame: one flipped bit in a copy of a UDP datagram.
    i = next(i for i, kind in enumerate(seen) if kind == "udp")
    bad = bytearray(captured[i].data)
    bad[-1] ^= 0x01
    broken = str(tmp_path / "broken.pcapng")
    with PcapngWriter(broken) as w:
        w.add_interface(captured[i].interface_name)
        w.write_packet(0, captured[i].timestamp, bytes(bad))
    assert len(_tshark(tshark, broken, *BROKEN)) == 1
