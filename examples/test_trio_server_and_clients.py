"""Example: a trio server and three trio clients on emulated hosts, from pytest.

Read first: README.md ("In your tests"), pystack/programs.py.

The programs are ordinary trio code: `trio.socket` reaches the host each runs on. The server
is started with `net.server` (the block begins once it listens), the clients with
`net.run_clients` (all at once, each on its own host); their return values and prints come
back as `pystack.Program`s. 50 ms of delay each way: every exchange takes virtual time,
none of it wall time.

    .venv/bin/python -m pytest examples -q
"""

import socket

import trio


async def echo_server(port):
    listener = trio.socket.socket()
    await listener.bind(("0.0.0.0", port))
    listener.listen(16)

    async def echo(conn):
        with conn:
            while data := await conn.recv(1024):
                await conn.send(data)

    async with trio.open_nursery() as nursery:
        while True:
            conn, (addr, _port) = await listener.accept()
            print("connection from", addr)
            nursery.start_soon(echo, conn)


async def echo_client(server, port):
    s = trio.socket.socket()
    with s:
        await s.connect((server, port))
        await s.send(f"ping from {socket.gethostname()}".encode())
        return await s.recv(1024), trio.current_time()


async def test_three_clients(net):
    sw = net.add_switch("sw0")
    server = net.add_host("server")
    net.add_link(server, sw, subnet="10.0.0.0/24")
    clients = [net.add_host(f"c{i}") for i in (1, 2, 3)]
    for c in clients:
        net.add_link(c, sw).set(delay=0.050)

    async with net.server(server, echo_server, 7) as srv:
        done = await net.run_clients(clients, echo_client, "server", 7)

    assert [p.result[0] for p in done] == [b"ping from c1", b"ping from c2", b"ping from c3"]
    # ARP, then the handshake, then the echo: three round trips of 100 ms each.
    assert [p.result[1] for p in done] == [0.3, 0.3, 0.3]
    assert sorted(srv.stdout.splitlines()) == [
        "connection from 10.0.0.2", "connection from 10.0.0.3", "connection from 10.0.0.4"]
