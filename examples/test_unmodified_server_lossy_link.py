"""Example: test an unmodified server on pystack over a lossy link, from pytest.

Read first: README.md, pystack/dropin/runner.py (run_script), pystack/dropin/blocking.py.

The server is compat/socketserver_threading_server.py, exactly as it would run on a real
machine; the test talks to it with the plain `socket` module from a thread of a client
process. 20 % loss each way and 10 ms delay: TCP retransmits, and the test still takes well
under a second of wall time (virtual time: pytest-trio's `autojump_clock`).

    .venv/bin/python -m pytest examples -q
"""

import functools
import pathlib
import socket

import trio

import pystack
from pystack.dropin import blocking

SERVER = pathlib.Path(__file__).resolve().parents[1] / "compat" / "socketserver_threading_server.py"


def talk(message: str) -> str:
    """Blocking client code, as it would be written for a real network."""
    with socket.create_connection(("server", 8000), timeout=60) as s:
        s.sendall(message.encode() + b"\n")
        return s.makefile("rb").readline().decode()


async def test_threading_echo_server_survives_a_lossy_link(net, autojump_clock):
    server, client = net.add_host("server"), net.add_host("client")
    link = net.add_link(server, client, subnet="10.0.0.0/24")
    link.set(delay=0.010, loss=0.2)
    with blocking.installed():
        async with trio.open_nursery() as nursery:
            nursery.start_soon(functools.partial(pystack.run_script, str(SERVER), ["8000"],
                                                 host=server, abandon_on_cancel=True))
            while not any(row.state == "LISTEN" for row in server.sockets()):
                await trio.sleep(0.01)
            async with client.process("client"):
                replies = [await trio.to_thread.run_sync(talk, f"hello {i}") for i in range(5)]
            nursery.cancel_scope.cancel()
    assert replies == [f"HELLO {i}" for i in range(5)]
    assert client.stats()["Tcp"]["RetransSegs"] + server.stats()["Tcp"]["RetransSegs"] > 0
