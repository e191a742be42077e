"""Example: test an unmodified asyncio server on pystack over a lossy link, from pytest.

Read first: README.md ("In your tests"), pystack/programs.py (net.server),
pystack/dropin/asyncio.py (asyncio_run, and how a script's asyncio.run reaches the host).

The server is compat/asyncio_echo_server.py, the asyncio docs' streams echo server, exactly as
it would run on a real machine (`asyncio.run(main())`). The test's client is asyncio code too,
run with `pystack.asyncio_run` on a client host: five connections at once with
`asyncio.gather`. 20 % loss each way and 10 ms delay: TCP retransmits, and the test still
takes well under a second of wall time (virtual time, from the `net` fixture).

    .venv/bin/python -m pytest examples -q
"""

import asyncio
import pathlib

import pystack

SERVER = pathlib.Path(__file__).resolve().parents[1] / "compat" / "asyncio_echo_server.py"


async def echo(message: str) -> str:
    """Client code, as it would be written for a real network."""
    reader, writer = await asyncio.open_connection("server", 8888)
    writer.write(message.encode())
    await writer.drain()
    reply = await reader.read(100)
    writer.close()
    await writer.wait_closed()
    return reply.decode()


async def clients() -> list:
    return await asyncio.gather(*(echo(f"hello {i}") for i in range(5)))


async def test_asyncio_echo_server_survives_a_lossy_link(net):
    server, client = net.add_host("server"), net.add_host("client")
    net.add_link(server, client, subnet="10.0.0.0/24").set(delay=0.010, loss=0.2)

    # The block starts once the script listens on 8888, and the script is stopped at its end.
    async with net.server(server, SERVER, 8888, port=8888) as srv:
        replies = await pystack.asyncio_run(clients(), host=client)

    assert replies == [f"hello {i}" for i in range(5)]
    assert srv.stdout.count("Close the connection") == 5  # what the server printed
    assert client.stats()["Tcp"]["RetransSegs"] + server.stats()["Tcp"]["RetransSegs"] > 0
