"""The emulated Ethernet NIC (pystack/drivers/net/nic.py): rx ring, IRQ masking, NAPI, and the
softirq budget of net_rx_action (net/core/dev.c).

Bursts are either sent by a real peer over a link with a delay (the wire task hands every frame
due at one instant to the NIC in one go), or injected with `nic.dma_rx` from the test, which
is what the wire does.
"""

from __future__ import annotations

import socket

import trio
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

import pystack
from pystack.drivers.net.nic import NAPI_WEIGHT, RX_RING_SIZE
from pystack.uapi.ethernet import mac_str

PORT = 9000


def mac(nic) -> str:
    return mac_str(nic.dev_addr)


def udp_frame(nic, dst_ip: str, src_ip: str = "10.0.0.1", payload: bytes = b"x" * 18) -> bytes:
    """A valid UDP/IPv4 frame addressed to `nic`, from a made-up sender on its subnet."""
    return bytes(Ether(dst=mac(nic), src="02:00:00:00:00:99") / IP(src=src_ip, dst=dst_ip)
                 / UDP(sport=4000, dport=PORT) / payload)


def inject(nic, frame: bytes, n: int) -> None:
    """`n` copies of `frame` land in the rx ring at this instant, as from the wire."""
    for _ in range(n):
        nic.dma_rx(bytearray(frame))


async def listen(host):
    """A socket on PORT, so the injected datagrams draw no ICMP (and no ARP) back."""
    sock = host.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("0.0.0.0", PORT))
    return sock


def napi_polls(net: pystack.Network) -> list[str]:
    """Subscribe to napi:napi_poll; the returned list fills with the polled NAPI's name."""
    seen: list[str] = []
    net.trace(lambda ev: seen.append(ev.fields["napi"]), match="napi:napi_poll")
    return seen


async def test_burst_beyond_rx_ring_counts_missed_and_delivers_exactly_a_ring() -> None:
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        await listen(b)
        await a.ping("10.0.0.2")  # ARP resolved both ways before the burst
        link.set(delay=0.001)
        nic = b.interface("eth0")
        before = nic.stats.rx_packets
        in_receives = b.stats()["Ip"]["InReceives"]
        client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(600):  # all sent at t, all landing at t + 1 ms
            await client.sendto(b"%d" % i, ("10.0.0.2", PORT))
        await trio.sleep(0.01)
        assert nic.stats.rx_missed_errors == 600 - RX_RING_SIZE
        assert nic.stats.rx_packets - before == RX_RING_SIZE
        assert b.stats()["Ip"]["InReceives"] - in_receives == RX_RING_SIZE
        assert b.stats().devices["eth0"]["rx_missed_errors"] == 600 - RX_RING_SIZE


async def test_rx_ring_size_is_per_link() -> None:
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24", rx_ring=32)
        nic = b.interface("eth0")
        await listen(b)
        assert nic.rx_ring_size == 32
        inject(nic, udp_frame(nic, "10.0.0.2"), 50)
        await trio.sleep(0.01)
        assert nic.stats.rx_missed_errors == 18
        assert nic.stats.rx_packets == 32


async def test_burst_within_ring_is_polled_in_napi_batches_with_one_irq() -> None:
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        nic = b.interface("eth0")
        await listen(b)
        polls = napi_polls(net)
        irqs = nic.irq.count
        frames = 200
        inject(nic, udp_frame(nic, "10.0.0.2"), frames)
        assert not nic.irq.enabled  # masked by the handler while NAPI owns the ring
        await trio.sleep(0.01)
        assert nic.stats.rx_packets == frames
        assert nic.stats.rx_missed_errors == 0
        assert nic.irq.count - irqs == 1 < frames
        # weight 64: 64 + 64 + 64 + 8, the short poll completing NAPI
        assert polls.count("eth0") == -(-frames // NAPI_WEIGHT) == 4


async def test_irq_is_unmasked_after_polling_completes() -> None:
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        nic = b.interface("eth0")
        await listen(b)
        frame = udp_frame(nic, "10.0.0.2")
        inject(nic, frame, 100)
        assert not nic.irq.enabled and nic.napi.scheduled
        await trio.sleep(0.01)
        assert nic.irq.enabled and not nic.napi.scheduled
        assert len(nic.rx_ring) == 0
        count = nic.irq.count
        inject(nic, frame, 1)  # the next frame raises the line again
        assert nic.irq.count == count + 1
        await trio.sleep(0.01)
        assert nic.irq.enabled and nic.stats.rx_packets == 101


async def test_more_than_budget_pending_in_one_softirq_run_counts_time_squeeze() -> None:
    # Linux's net_rx_action (since 3.19) polls each NAPI on the list once per run, repolls
    # going to the next run; the run stops with time_squeeze++ when netdev_budget (300) is
    # spent. Five NICs on one CPU with 64+ frames each hold 320 packets for one run.
    net = pystack.Network(seed=1)
    async with net:
        b = net.add_host("b")
        nics = []
        for i in range(5):
            peer = net.add_host(f"p{i}")
            net.add_link(peer, b, subnet=f"10.0.{i}.0/24")
            nics.append(b.interface(f"eth{i}"))
        await listen(b)
        cpu = b.cpus[0]
        assert all(nic.irq.cpu is cpu for nic in nics)
        for i, nic in enumerate(nics):
            inject(nic, udp_frame(nic, f"10.0.{i}.2", f"10.0.{i}.1"), 100)
        assert cpu.time_squeeze == 0
        await trio.sleep(0.01)
        assert cpu.time_squeeze == 1  # 320 in the first run; the 5 x 36 left fit the next
        assert b.softnet_stat()[0]["time_squeeze"] == cpu.time_squeeze
        # Squeezed, not lost: the rest is polled in later runs.
        assert sum(nic.stats.rx_packets for nic in nics) == 500
        assert cpu.processed == 500


async def test_one_nic_over_budget_is_repolled_without_squeeze() -> None:
    # The other side of the rule above: one NAPI polls at most its weight per run and is put
    # on the repoll list, so 400 frames on one NIC never spend a run's budget of 300.
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24", rx_ring=512)
        nic = b.interface("eth0")
        await listen(b)
        inject(nic, udp_frame(nic, "10.0.0.2"), 400)
        await trio.sleep(0.01)
        assert nic.stats.rx_packets == 400 and nic.stats.rx_missed_errors == 0
        assert b.cpus[0].time_squeeze == 0


async def test_lower_netdev_budget_squeezes_a_single_nic() -> None:
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        b.set_sysctl("net.core.netdev_budget", 50)
        nic = b.interface("eth0")
        await listen(b)
        inject(nic, udp_frame(nic, "10.0.0.2"), 100)
        await trio.sleep(0.01)
        # 64 of 100 in the first run (over 50: squeezed), 36 in the next (under: not).
        assert b.cpus[0].time_squeeze == 1
        assert nic.stats.rx_packets == 100


async def test_runt_frames_are_counted_as_length_errors() -> None:
    # Shorter than an Ethernet header, even empty: the hardware drops them and counts them
    # (e1000's RUC feeds rx_length_errors); nothing reaches the stack, nothing raises.
    net = pystack.Network(seed=1)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        nic = b.interface("eth0")
        frame = udp_frame(nic, "10.0.0.2")
        for n in range(14):
            nic.dma_rx(bytearray(frame[:n]))
        await trio.sleep(0.01)
        assert nic.stats.rx_length_errors == 14
        assert nic.stats.rx_errors == 14
        assert b.stats()["Ip"]["InReceives"] == 0
        assert await a.ping("10.0.0.2") >= 0
