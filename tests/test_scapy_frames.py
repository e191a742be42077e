"""Every kind of frame the stack emits, checked by an outside parser: scapy.

One scenario makes the stack send ARP requests (broadcast and unicast probes) and replies,
ICMP echo request/reply, port, protocol and host unreachable (the last to itself, over lo),
time exceeded (reassembly), UDP unicast, broadcast and over loopback, and IP fragments.
Everything is captured with `net.capture` and also recorded as it crosses the wires. The
capture is read back both with pystack.pcap.read_pcapng and scapy; every frame must parse in
scapy with correct IP, ICMP and UDP checksums (recomputed by scapy from scratch), and every
frame on a wire must be at least the 60 bytes of a minimum Ethernet frame.
"""

from __future__ import annotations

import socket
from collections import Counter

import trio
from scapy.layers.inet import ICMP, IP, UDP, defragment
from scapy.layers.l2 import ARP, Ether
from scapy.utils import RawPcapNgReader

import pystack
from pystack.pcap import read_pcapng
from pystack.uapi.ethernet import mac_str


def mac(host) -> str:
    return mac_str(host.interface("eth0").dev_addr)


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
    r = Ether(bytes(q))
    assert r[IP].chksum == p[IP].chksum, p.summary()
    if ICMP in p:
        assert r[ICMP].chksum == p[ICMP].chksum, p.summary()
    if UDP in p and not fragmented:
        assert p[UDP].chksum != 0  # the stack always fills it in
        assert r[UDP].chksum == p[UDP].chksum, p.summary()
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
