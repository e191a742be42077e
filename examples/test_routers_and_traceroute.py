"""Example: two routers between three subnets, traceroute, and a path MTU the sender learns.

Read first: README.md, tests/net/ipv4/test_routers.py (the full scenarios).

    a ── r1 ── r2 ── b        the middle link carries at most 1280 bytes

`a.traceroute()` finds both routers and b; a TCP transfer from a to b first sends 1500-byte
segments, r1 answers "fragmentation needed, next-hop MTU 1280", and from then on a's route
cache holds the smaller MTU for b (`ip route get` shows it for ten minutes).

    .venv/bin/python -m pytest examples -q -s
"""

import socket

import trio


async def test_traceroute_and_path_mtu(net, autojump_clock):
    a, b = net.add_host("a"), net.add_host("b")
    r1, r2 = net.add_router("r1"), net.add_router("r2")
    net.add_link(a, r1, subnet="10.0.1.0/24")                # a 10.0.1.1, r1 10.0.1.2
    net.add_link(r1, r2, subnet="10.0.2.0/24", mtu=1280)     # r1 10.0.2.1, r2 10.0.2.2
    net.add_link(r2, b, subnet="10.0.3.0/24")                # r2 10.0.3.1, b 10.0.3.2
    a.add_route("default", via="10.0.1.2")
    r1.add_route("10.0.3.0/24", via="10.0.2.2")
    r2.add_route("10.0.1.0/24", via="10.0.2.1")
    b.add_route("default", via="10.0.3.1")
    for link in net.links:
        link.set(delay=0.001)                                # 1 ms each way on each wire

    hops = await a.traceroute("b")
    print(hops)
    assert [hop.address for hop in hops] == ["10.0.1.2", "10.0.2.2", "10.0.3.2"]

    server = b.socket(socket.AF_INET, socket.SOCK_STREAM)
    await server.bind(("0.0.0.0", 5001))
    server.listen()
    client = a.socket(socket.AF_INET, socket.SOCK_STREAM)
    await client.connect(("b", 5001))
    conn, _ = await server.accept()
    data = bytes(100_000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send, data)
        got = b""
        while len(got) < len(data):
            got += await conn.recv(65536)
    assert got == data

    print(a.route_get("b"))   # 10.0.3.2 via 10.0.1.2 dev eth0 src 10.0.1.1 uid 0
    assert a.route_get("b").mtu == 1280   #     cache expires 599sec mtu 1280
