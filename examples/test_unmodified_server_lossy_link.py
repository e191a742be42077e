"""Example: test an unmodified server on pystack over a lossy link, from pytest.

Read first: README.md ("In your tests"), pystack/programs.py (net.server, net.run_clients).

The server is compat/socketserver_threading_server.py, exactly as it would run on a real
machine; three client hosts talk to it at once with the plain `socket` module, in threads of
their own processes. 20 % loss each way and 10 ms delay on the server's link: TCP resends
what is lost, and the test still takes well under a second of wall time (virtual time, from
the `net` fixture).

    .venv/bin/python -m pytest examples -q
"""

import pathlib
import socket

SERVER = pathlib.Path(__file__).resolve().parents[1] / "compat" / "socketserver_threading_server.py"


def talk(message: str) -> str:
    """Blocking client code, as it would be written for a real network."""
    with socket.create_connection(("server", 8000), timeout=60) as s:
        s.sendall(f"{message} from {socket.gethostname()}\n".encode())
        return s.makefile("rb").readline().decode()


async def test_threading_echo_server_survives_a_lossy_link(net):
    sw = net.add_switch("sw0")
    server = net.add_host("server")
    server_link = net.add_link(server, sw, subnet="10.0.0.0/24")
    clients = [net.add_host(f"client{i}") for i in (1, 2, 3)]
    for client in clients:
        net.add_link(client, sw)
        await client.ping("server")  # ARP resolved before the loss starts
    server_link.set(delay=0.010, loss=0.2)

    # The block starts once the script listens on 8000, and the script is stopped at its end.
    async with net.server(server, SERVER, 8000, port=8000) as srv:
        # Each client runs talk("hello") on its own host; a client that raises fails the test
        # with its traceback.
        replies = await net.run_clients(clients, talk, "hello")

    assert [r.result for r in replies] == [f"HELLO FROM CLIENT{i}" for i in (1, 2, 3)]
    assert srv.stdout.count(" wrote:") == 3  # what the server printed, kept for the test
    # The link lost frames (TCP resent what mattered); which ones depends on the seed.
    assert server_link.a.lost_frames + server_link.b.lost_frames > 0
