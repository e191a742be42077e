"""netem on a link direction (pystack/net/sched/sch_netem.py, driven by pystack/world.py):
each knob's effect measured in virtual time, on UDP datagrams from host a to host b.

Read first: the docstring of pystack/net/sched/sch_netem.py and tc-netem(8).
"""

from __future__ import annotations

import math
import socket
import struct

import pytest
import trio
import trio.testing

import pystack
from pystack.net.sched.sch_netem import Netem
from pystack.net.core.net_namespace import derive_rng

SEQ = struct.Struct("!I")


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    return abs(count - n * p) < sigmas * math.sqrt(n * p * (1 - p))


async def udp_flow(seed: int, n: int, *, size: int = 100, spacing: float = 0.001,
                   **netem) -> tuple[dict[int, float], list[tuple[int, float, bytes]], object]:
    """Send `n` datagrams a → b, `spacing` apart (0: one burst), over a link whose a → b
    direction has `netem`. Returns send times, arrivals (seq, time, payload) in arrival order,
    and the link."""
    net = pystack.Network(seed=seed)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        for h in (a, b):
            h.set_sysctl("net.ipv4.neigh.default.base_reachable_time", 3600)
        await a.ping("10.0.0.2")  # ARP resolved both ways before the impairment
        await trio.sleep(6)  # b's entry for a: DELAY, PROBE (a answers), REACHABLE
        link.a_to_b.set(**netem)
        rx = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await rx.bind(("0.0.0.0", 9))
        tx = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sent: dict[int, float] = {}
        arrivals: list[tuple[int, float, bytes]] = []

        async def receive() -> None:
            while True:
                data, _ = await rx.recvfrom(65536)
                arrivals.append((SEQ.unpack_from(data)[0], trio.current_time(), data))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(receive)
            for i in range(n):
                sent[i] = trio.current_time()
                await tx.sendto(SEQ.pack(i) + bytes([i % 251]) * (size - 4), ("10.0.0.2", 9))
                if spacing:
                    await trio.sleep(spacing)
            await trio.sleep(5)
            nursery.cancel_scope.cancel()
        link.stats = (b.drops(), b.stats())  # type: ignore[attr-defined]
    return sent, arrivals, link


def payload(i: int, size: int = 100) -> bytes:
    return SEQ.pack(i) + bytes([i % 251]) * (size - 4)


# -- delay and jitter --------------------------------------------------------------------------

async def test_delay_adds_to_the_rtt_one_way() -> None:
    net = pystack.Network(seed=3)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        link = net.add_link(a, b, subnet="10.0.0.0/24")
        await a.ping("10.0.0.2")
        assert await a.ping("10.0.0.2") == 0.0
        link.a_to_b.set(delay=0.025)
        assert await a.ping("10.0.0.2") == pytest.approx(0.025)  # request delayed, reply not
        link.set(delay=0.010)
        assert await a.ping("10.0.0.2") == pytest.approx(0.020)


async def test_jitter_spreads_delay_uniformly_around_the_mean() -> None:
    sent, arrivals, _ = await udp_flow(5, 400, delay=0.010, jitter=0.002)
    one_way = [t - sent[seq] for seq, t, _ in arrivals]
    assert len(one_way) == 400
    assert 0.008 - 1e-9 <= min(one_way) and max(one_way) <= 0.012 + 1e-9
    mean = sum(one_way) / len(one_way)
    assert mean == pytest.approx(0.010, abs=0.0003)  # uniform ±2 ms: sd of the mean 58 µs
    assert max(one_way) - min(one_way) > 0.0035  # it does spread


async def test_jitter_larger_than_the_spacing_reorders_frames() -> None:
    # netem's tfifo is ordered by time_to_send: jitter of ±5 ms on frames 1 ms apart reorders.
    _sent, arrivals, _ = await udp_flow(5, 200, delay=0.010, jitter=0.005)
    seqs = [seq for seq, _, _ in arrivals]
    assert sorted(seqs) == list(range(200)) and seqs != sorted(seqs)


def test_delay_correlation_makes_successive_delays_alike() -> None:
    def lag1(rho: float) -> float:
        q = Netem(derive_rng(1, "t")).set(delay=0.1, jitter=0.05, delay_correlation=rho)
        xs = []
        for _ in range(5000):
            xs.append(q.enqueue(bytearray(60), 0.0)[0][0][0])
            q.dequeue_done()
        m = sum(xs) / len(xs)
        num = sum((x - m) * (y - m) for x, y in zip(xs, xs[1:]))
        return num / sum((x - m) ** 2 for x in xs)

    assert abs(lag1(0.0)) < 0.05
    assert lag1(0.75) > 0.6


async def test_normal_distribution_has_the_jitter_as_its_sd() -> None:
    sent, arrivals, _ = await udp_flow(5, 400, delay=0.050, jitter=0.005,
                                       distribution="normal")
    d = [t - sent[seq] for seq, t, _ in arrivals]
    mean = sum(d) / len(d)
    sd = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1))
    assert mean == pytest.approx(0.050, abs=0.0008)
    assert sd == pytest.approx(0.005, rel=0.15)


# -- loss ----------------------------------------------------------------------------------------

async def test_random_loss_rate_is_within_the_binomial_bound() -> None:
    sent, arrivals, link = await udp_flow(7, 1000, loss=0.1)
    lost = len(sent) - len(arrivals)
    assert within_binomial(lost, 1000, 0.1)  # 100 ± 47
    assert lost == link.a.lost_frames == link.a_to_b.lost
    assert {seq for seq, _, _ in arrivals} | set(range(1000)) == set(range(1000))


def bursts(losses: list[bool]) -> list[int]:
    runs, run = [], 0
    for lost in losses:
        if lost:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs + ([run] if run else [])


def test_gilbert_elliott_loss_comes_in_bursts() -> None:
    n = 20000
    ge = Netem(derive_rng(1, "ge")).set(loss_model=("gemodel", 0.01, 0.25))  # 1-h 1, 1-k 0
    losses = [ge.enqueue(bytearray(60), 0.0)[1] == "lost" for _ in range(n)]
    rate = sum(losses) / n
    assert rate == pytest.approx(0.01 / (0.01 + 0.25), rel=0.2)  # stationary share of bad
    runs = bursts(losses)
    assert sum(runs) / len(runs) == pytest.approx(1 / 0.25, rel=0.2)  # mean burst 1/r
    # random loss at the same rate has bursts of about 1/(1 - rate)
    rnd = Netem(derive_rng(1, "rnd")).set(loss=rate)
    runs = bursts([rnd.enqueue(bytearray(60), 0.0)[1] == "lost" for _ in range(n)])
    assert sum(runs) / len(runs) < 1.1


def test_loss_correlation_lengthens_bursts() -> None:
    def mean_burst(rho: float) -> float:
        # get_crandom also narrows the draws around 0.5 (tc-netem(8) says so), so the loss
        # rate stays 0.5 only at 0.5: measure there.
        q = Netem(derive_rng(1, "cor")).set(loss=0.5, loss_correlation=rho)
        losses = [q.enqueue(bytearray(60), 0.0)[1] == "lost" for _ in range(20000)]
        assert sum(losses) / len(losses) == pytest.approx(0.5, abs=0.03)
        runs = bursts(losses)
        return sum(runs) / len(runs)

    assert mean_burst(0.0) == pytest.approx(2.0, rel=0.05)
    assert mean_burst(0.8) > 2 * mean_burst(0.0)


def test_gemodel_parameters_and_defaults() -> None:
    q = Netem().set(loss_model=("gemodel", 0.02))
    assert q.loss_model == ("gemodel", 0.02, 0.98, 1.0, 0.0)
    with pytest.raises(ValueError):
        q.set(loss_model=("gemodel", 1.5))
    with pytest.raises(ValueError):
        q.set(loss_model=("4state", 0.1))


# -- duplication, reordering, corruption ------------------------------------------------------

async def test_duplication_delivers_some_datagrams_twice() -> None:
    sent, arrivals, link = await udp_flow(9, 1000, duplicate=0.1, delay=0.002)
    seqs = [seq for seq, _, _ in arrivals]
    dups = len(seqs) - len(set(seqs))
    assert set(seqs) == set(range(1000))
    assert dups == link.a_to_b.duplicated and within_binomial(dups, 1000, 0.1)
    assert all(data == payload(seq) for seq, _, data in arrivals)


async def test_reorder_with_gap_sends_some_frames_at_once() -> None:
    # "delay 10ms reorder 25% gap 5": after 4 delayed frames each is, with p 0.25, sent at once.
    sent, arrivals, link = await udp_flow(11, 400, delay=0.010, reorder=0.25, gap=5)
    at_once = sorted(seq for seq, t, _ in arrivals if t == sent[seq])
    delayed = [seq for seq, t, _ in arrivals if t == pytest.approx(sent[seq] + 0.010)]
    assert len(at_once) + len(delayed) == 400 == len(arrivals)
    assert len(at_once) == link.a_to_b.reordered
    assert at_once[0] >= 4  # the first gap - 1 frames are always delayed
    assert all(y - x >= 5 for x, y in zip(at_once, at_once[1:]))  # 4 delayed between
    assert within_binomial(len(at_once), 400, 1 / 8)  # one in 4 + 1/0.25 on average
    seqs = [seq for seq, _, _ in arrivals]
    out_of_order = sum(1 for x, y in zip(seqs, seqs[1:]) if y < x)
    assert out_of_order == len(at_once)  # each overtakes the 9 frames still in flight


async def test_corruption_is_caught_by_checksums_and_counted() -> None:
    n, size = 600, 500
    sent, arrivals, link = await udp_flow(13, n, size=size, corrupt=0.2)
    corrupted = link.a_to_b.corrupted
    assert within_binomial(corrupted, n, 0.2)
    assert all(data == payload(seq, size) for seq, _, data in arrivals)  # none got through
    drops, stats = link.stats
    lost = n - len(arrivals)
    caught = drops.get("UDP_CSUM", 0) + drops.get("IP_CSUM", 0)
    assert stats["Udp"]["InCsumErrors"] == drops.get("UDP_CSUM", 0)
    # Frames are 542 bytes: 528 of them under the IP header or UDP checksums. A flip in the
    # MAC addresses, the type or the length fields is dropped (or delivered intact) otherwise.
    assert lost <= corrupted and caught > 0.85 * corrupted
    assert caught <= lost


# -- rate and limit ------------------------------------------------------------------------------

async def test_rate_serialises_frames_and_caps_throughput() -> None:
    rate, n, size = 1_000_000, 100, 1000
    sent, arrivals, _ = await udp_flow(17, n, size=size, spacing=0, rate=rate)
    frame = 14 + 20 + 8 + size  # 1042 bytes on the wire
    times = [t for _, t, _ in arrivals]
    assert [seq for seq, _, _ in arrivals] == list(range(n))
    gaps = {round(y - x, 9) for x, y in zip(times, times[1:])}
    assert gaps == {round(frame * 8 / rate, 9)}  # 8.336 ms each
    elapsed = times[-1] - sent[0]
    assert elapsed == pytest.approx(n * frame * 8 / rate)  # 0.8336 s
    assert n * size * 8 / elapsed < rate


async def test_rate_adds_to_the_delay_behind_earlier_frames() -> None:
    sent, arrivals, _ = await udp_flow(17, 3, size=1000, spacing=0, rate=8_336_000,
                                       delay=0.1)
    assert [t - sent[0] for _, t, _ in arrivals] == pytest.approx([0.101, 0.102, 0.103])


async def test_limit_drops_frames_beyond_the_backlog_and_counts_them() -> None:
    sent, arrivals, link = await udp_flow(19, 50, size=1000, spacing=0, rate=1_000_000,
                                          limit=10)
    assert len(arrivals) == 10
    assert [seq for seq, _, _ in arrivals] == list(range(10))
    assert link.a_to_b.drops == 40 == link.a.lost_frames
    assert link.a_to_b.qlen == 0


# -- the API -------------------------------------------------------------------------------------

async def test_one_direction_and_both() -> None:
    net = pystack.Network(seed=1)
    a, b = net.add_host("a"), net.add_host("b")
    link = net.add_link(a, b)
    link.b_to_a.set(loss=0.5, rate=1e6)
    assert (link.a_to_b.loss, link.b_to_a.loss, link.b_to_a.rate) == (0.0, 0.5, 1e6)
    link.set(jitter=0.001, delay=0.01)
    assert link.a_to_b.jitter == link.b_to_a.jitter == 0.001
    assert link.b_to_a.loss == 0.5  # kept
    link.set(reorder=0.3)
    assert link.a_to_b.gap == 1  # tc: reorder without gap means gap 1
    with pytest.raises(TypeError):
        link.a_to_b.set(bandwidth=1)
    with pytest.raises(ValueError):
        link.set(limit=-1)


async def test_same_seed_same_arrivals_other_seed_other() -> None:
    knobs = dict(delay=0.005, jitter=0.003, loss=0.1, duplicate=0.05, corrupt=0.05)

    async def run(seed: int) -> list[tuple[int, float]]:
        sent, arrivals, _ = await udp_flow(seed, 200, **knobs)
        return [(seq, round(t - sent[0], 9)) for seq, t, _ in arrivals]

    first = await run(23)
    assert await run(23) == first
    assert await run(24) != first


# -- TCP over every knob, and replay -------------------------------------------------------------

async def _tcp_over_netem(seed: int, path: str) -> bytes:
    net = pystack.Network(seed=seed)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        sw = net.add_switch("sw0")
        for h in (a, b):
            net.add_link(h, sw, subnet="10.0.0.0/24").set(
                delay=0.002, jitter=0.001, loss=0.03, duplicate=0.02, reorder=0.1, gap=3,
                corrupt=0.02, rate=20_000_000)
        net.capture(path)
        srv = b.socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(1)
        cli = a.socket(socket.AF_INET, socket.SOCK_STREAM)
        with trio.fail_after(300):
            await cli.connect(("10.0.0.2", 80))
            conn, _ = await srv.accept()
            data = bytes(range(256)) * 400
            got = bytearray()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(cli.send, data)
                while len(got) < len(data):
                    got.extend(await conn.recv(65536))
        assert bytes(got) == data
        ports = [p for link in net.links for p in (link.a, link.b)]
        netem = {k: sum(p.profile.stats()[k] for p in ports)
                 for k in ("sent", "lost", "duplicated", "corrupted", "reordered")}
        caught = sum(h.stats()["Tcp"]["InCsumErrors"] + h.drops().get("IP_CSUM", 0)
                     for h in (a, b))
        assert all(netem.values()) and caught > 0, (netem, caught)
        assert a.stats()["Tcp"]["RetransSegs"] > 0
        print(netem, "caught by checksums:", caught, "retransmitted:",
              a.stats()["Tcp"]["RetransSegs"], "took", trio.current_time())
    with open(path, "rb") as f:
        return f.read()


def test_tcp_is_byte_exact_over_every_knob_and_the_pcap_replays(tmp_path) -> None:
    def run(seed: int, name: str) -> bytes:
        return trio.run(_tcp_over_netem, seed, str(tmp_path / name),
                        clock=trio.testing.MockClock(autojump_threshold=0))

    first = run(31, "1.pcapng")
    assert run(31, "2.pcapng") == first
    assert run(32, "3.pcapng") != first
