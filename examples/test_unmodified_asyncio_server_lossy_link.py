"""Example: test an unmodified asyncio server on pystack over a lossy link, from pytest.

Read first: README.md ("In your tests"), pystack/dropin/asyncio.py (asyncio_run, and how a
script's asyncio.run reaches the host), pystack/dropin/runner.py (run_script).

The server is compat/asyncio_echo_server.py, the asyncio docs' streams echo server, exactly as
it would run on a real machine (`asyncio.run(main())`). The test's client is asyncio code too,
run with `pystack.asyncio_run` on a client host: five connections at once with
`asyncio.gather`. 20 % loss each way and 10 ms delay: TCP retransmits, and the test still
takes well under a second of wall time (virtual time: pytest-trio's `autojump_clock`).

    .venv/bin/python -m pytest examples -q
"""

import asyncio
import functools
import pathlib

import trio

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


async def test_asyncio_echo_server_survives_a_lossy_link(net, autojump_clock):
    server, client = net.add_host("server"), net.add_host("client")
    link = net.add_link(server, client, subnet="10.0.0.0/24")
    link.set(delay=0.010, loss=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(functools.partial(pystack.run_script, str(SERVER), ["8888"],
                                             host=server, abandon_on_cancel=True))
        while not any(row.state == "LISTEN" for row in server.sockets()):
            await trio.sleep(0.01)
        replies = await pystack.asyncio_run(clients(), host=client)
        nursery.cancel_scope.cancel()
    assert replies == [f"hello {i}" for i in range(5)]
    assert client.stats()["Tcp"]["RetransSegs"] + server.stats()["Tcp"]["RetransSegs"] > 0
