"""A scenario for the determinism tests: four hosts on a lossy, reordering switch with TCP and
UDP traffic. Prints the sha256 of its pcapng, then how many frames netem lost and reordered.
Run as `python determinism_scenario.py SEED PATH`."""

import hashlib
import socket
import sys

import trio
import trio.testing

import pystack


async def scenario(seed: int, path: str) -> pystack.Network:
    net = pystack.Network(seed=seed)
    async with net:
        hosts = [net.add_host(f"h{i}") for i in range(4)]
        sw = net.add_switch("sw0")
        links = [net.add_link(h, sw, subnet="10.0.0.0/24") for h in hosts]
        for link in links:
            link.set(delay=0.001, loss=0.05, reorder=0.1)  # 1 in 10 overtakes the delayed
        net.capture(path)
        srv = hosts[0].socket(socket.AF_INET, socket.SOCK_STREAM)
        await srv.bind(("0.0.0.0", 80))
        srv.listen(8)
        usrv = hosts[1].socket(socket.AF_INET, socket.SOCK_DGRAM)
        await usrv.bind(("0.0.0.0", 53))

        async def tcp_server() -> None:
            async with trio.open_nursery() as n:
                for _ in range(3):
                    conn, _ = await srv.accept()
                    n.start_soon(echo, conn)

        async def echo(conn) -> None:
            while data := await conn.recv(4096):
                await conn.send(data)
            conn.close()

        async def tcp_client(h, i: int) -> None:
            s = h.socket(socket.AF_INET, socket.SOCK_STREAM)
            await s.connect(("10.0.0.1", 80))
            for k in range(5):
                msg = f"{h.name} says {k}".encode() * (i + 1) * 50
                await s.send(msg)
                got = b""
                while len(got) < len(msg):
                    got += await s.recv(65536)
            s.close()

        async def udp_client(h) -> None:
            s = h.socket(socket.AF_INET, socket.SOCK_DGRAM)
            for k in range(20):
                await s.sendto(f"{h.name}:{k}".encode(), ("10.0.0.2", 53))
            s.close()

        with trio.move_on_after(600):
            async with trio.open_nursery() as n:
                n.start_soon(tcp_server)
                for i, h in enumerate(hosts[1:]):
                    n.start_soon(tcp_client, h, i)
                    n.start_soon(udp_client, h)
        await trio.sleep(1)
    return net


def main() -> None:
    seed, path = int(sys.argv[1]), sys.argv[2]
    net = trio.run(scenario, seed, path, clock=trio.testing.MockClock(autojump_threshold=0))
    with open(path, "rb") as f:
        print(hashlib.sha256(f.read()).hexdigest())
    directions = [d for link in net.links for d in (link.a_to_b, link.b_to_a)]
    print(sum(d.lost for d in directions), sum(d.reordered for d in directions))


if __name__ == "__main__":
    main()
