"""The demo: `python -m pystack demo` (and `make demo`).

Two hosts on a switch, in virtual time: ARP on first contact, pings, a UDP echo over Ethernet
(on a link with delay and 20% loss, with the client retrying as a UDP client must) and over
loopback; then the transcript, the counters, and the path one datagram took through both
kernels with its virtual times.
"""

from __future__ import annotations

import functools
import socket
import sys
from typing import TextIO

import trio
import trio.testing

from .world import Network

ECHO_PORT = 7


async def udp_echo_server(sock, *, count: int) -> None:
    for _ in range(count):
        data, addr = await sock.recvfrom(2048)
        await sock.sendto(data, addr)


async def udp_request(sock, payload: bytes, addr, *, timeout: float, tries: int,
                      log) -> tuple[bytes, float, int] | None:
    """Send, wait for the echo, retry on timeout: what a UDP client does on a lossy path."""
    for attempt in range(1, tries + 1):
        start = trio.current_time()
        await sock.sendto(payload, addr)
        with trio.move_on_after(timeout):
            data, _ = await sock.recvfrom(2048)
            return data, trio.current_time() - start, attempt
        log(f"    no echo within {timeout * 1000:.0f} ms (try {attempt}), sending again")
    return None


async def demo(out: TextIO, seed: int = 7) -> None:
    def log(line: str = "") -> None:
        print(line, file=out)

    net = Network(seed=seed)
    async with net:
        a = net.add_host("alice")
        b = net.add_host("bob")
        sw = net.add_switch("sw0")
        link_a = net.add_link(a, sw, subnet="10.0.0.0/24")
        net.add_link(b, sw)
        link_a.set(delay=0.002)
        log(f"pystack demo (seed {seed}): alice {a.address()} and bob {b.address()} "
            "on switch sw0, 2 ms each way on alice's cable")
        log()
        log("== ping (ARP resolves on first contact)")
        for target in (b.address(), "127.0.0.1"):
            rtt = await a.ping(target)
            log(f"  alice → {target}: echo reply in {rtt * 1000:.3f} ms")
        rtt = await b.ping(a.address())
        log(f"  bob → {a.address()}: echo reply in {rtt * 1000:.3f} ms")
        log(f"  alice's neighbours: {a.neighbours()}")
        log()

        log("== UDP echo over Ethernet, with 20% loss on alice's cable")
        link_a.set(loss=0.2)
        messages = [f"message {i}".encode() for i in range(1, 6)]
        async with b.process("echo-server") as srv_task:
            server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await server.bind(("0.0.0.0", ECHO_PORT))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_serve_forever, server)
                async with a.process("client"):
                    client = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    for payload in messages:
                        got = await udp_request(client, payload, ("bob", ECHO_PORT),
                                                timeout=0.2, tries=10, log=log)
                        if got is None:
                            log(f"  {payload!r}: no answer after 10 tries")
                            continue
                        data, rtt, attempt = got
                        log(f"  sent {payload!r} → echoed {data!r} in {rtt * 1000:.3f} ms"
                            f"{'' if attempt == 1 else f' (try {attempt})'}")
                    link_a.set(loss=0.0)
                    log()
                    log("== the path of one datagram, alice → bob (virtual seconds)")
                    path = a.follow_next_packet()
                    await client.sendto(b"follow me", ("bob", ECHO_PORT))
                    await client.recvfrom(2048)
                    for hop in path.hops:
                        log(f"  {hop}")
                    client.close()
                nursery.cancel_scope.cancel()
            server.close()
            del srv_task
        log()

        log("== UDP echo over loopback on bob")
        async with b.process("lo-echo"):
            server = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await server.bind(("127.0.0.1", ECHO_PORT))
            client = b.socket(socket.AF_INET, socket.SOCK_DGRAM)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(functools.partial(udp_echo_server, server, count=3))
                for i in range(3):
                    payload = f"loop {i}".encode()
                    await client.sendto(payload, ("127.0.0.1", ECHO_PORT))
                    data, addr = await client.recvfrom(2048)
                    log(f"  {payload!r} → {data!r} from {addr[0]}:{addr[1]}")
        log()

        log("== TCP echo over Ethernet, 10% loss and 5 ms each way on alice's cable")
        link_a.set(delay=0.005, loss=0.1)
        await tcp_echo(a, b, "bob", log)
        link_a.set(delay=0.002, loss=0.0)
        log()
        log("== TCP echo over loopback on alice")
        await tcp_echo(a, a, "127.0.0.1", log)
        log()

        log("== counters")
        for host in (a, b):
            st = host.stats()
            log(f"  {host.name}: Ip InReceives={st['Ip']['InReceives']} "
                f"OutRequests={st['Ip']['OutRequests']}  "
                f"Icmp InEchos={st['Icmp']['InEchos']} InEchoReps={st['Icmp']['InEchoReps']}  "
                f"Udp InDatagrams={st['Udp']['InDatagrams']} "
                f"OutDatagrams={st['Udp']['OutDatagrams']}")
            eth = host.interface("eth0")
            log(f"    eth0: rx {eth.stats.rx_packets} tx {eth.stats.tx_packets}, "
                f"irqs {eth.irq.count}; softnet {host.softnet_stat()[0]}")
        lost = link_a.a.lost_frames + link_a.b.lost_frames
        log(f"  frames lost on alice's cable: {lost}")
        log(f"  virtual time elapsed: {trio.current_time():.3f} s")


async def tcp_echo(client_host, server_host, target: str, log) -> None:
    """A TCP echo server and one client; TCP retransmits what the link loses."""
    port = 7007
    async with server_host.process("tcp-echo-server"):
        listener = server_host.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        await listener.bind(("0.0.0.0", port))
        listener.listen(16)

        async def serve_one() -> None:
            conn, _ = await listener.accept()
            while data := await conn.recv(65536):
                await conn.send(data)
            conn.close()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_one)
            async with client_host.process("tcp-client"):
                sock = client_host.socket(socket.AF_INET, socket.SOCK_STREAM)
                start = trio.current_time()
                await sock.connect((target, port))
                log(f"  connected to {target}:{port} from port {sock.getsockname()[1]} "
                    f"in {(trio.current_time() - start) * 1000:.3f} ms")
                payload = bytes(range(256)) * 400  # 100 KiB
                start = trio.current_time()
                await sock.send(payload)
                got = bytearray()
                while len(got) < len(payload):
                    got += await sock.recv(65536)
                log(f"  echoed {len(payload)} bytes {'intact' if got == payload else 'CORRUPT'} in "
                    f"{(trio.current_time() - start) * 1000:.1f} ms")
                sock.shutdown(socket.SHUT_WR)
                assert await sock.recv(1) == b""
                sock.close()
        listener.close()
    st = client_host.stats()["Tcp"]
    log(f"  {client_host.name}: Tcp ActiveOpens={st['ActiveOpens']} OutSegs={st['OutSegs']} "
        f"RetransSegs={st['RetransSegs']}")


async def _serve_forever(sock) -> None:
    while True:
        data, addr = await sock.recvfrom(2048)
        await sock.sendto(data, addr)


def main(argv: list[str] | None = None, out: TextIO = sys.stdout) -> int:
    seed = 7
    if argv:
        seed = int(argv[0])
    trio.run(demo, out, seed, clock=trio.testing.MockClock(autojump_threshold=0))
    return 0
