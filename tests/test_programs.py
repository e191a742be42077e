"""Servers and clients for a test (pystack/programs.py): `net.server`, `net.run`,
`net.run_clients`, with the `net` fixture of the pytest plugin.

Read first: the docstring of pystack/programs.py.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap

import pytest
import trio

import pystack
from pystack import ProgramError

pytest_plugins = ["pytester"]


def star(net, clients: int = 3):
    """A server host `srv` and client hosts c1, c2 ... on one switch."""
    sw = net.add_switch("sw0")
    server = net.add_host("srv")
    net.add_link(server, sw, subnet="10.0.0.0/24")
    hosts = [net.add_host(f"c{i}") for i in range(1, clients + 1)]
    for h in hosts:
        net.add_link(h, sw)
    return server, hosts


async def echo_server(port: int) -> None:
    listener = trio.socket.socket()
    await listener.bind(("0.0.0.0", port))
    listener.listen(8)
    print(f"listening on {port} at {trio.current_time()}")

    async def handle(conn) -> None:
        with conn:
            data = await conn.recv(100)
            print(f"echo {data.decode()}")
            await conn.send(data.upper())

    async with trio.open_nursery() as nursery:
        while True:
            conn, _ = await listener.accept()
            nursery.start_soon(handle, conn)


async def echo_client(server: str, port: int) -> bytes:
    started = trio.current_time()
    s = trio.socket.socket()
    with s:
        await s.connect((server, port))
        await s.send(f"hello from {socket.gethostname()}".encode())
        reply = await s.recv(100)
    print(f"started at {started}, got {reply.decode()}")
    return reply


async def test_async_server_and_clients_give_results_status_and_output(net) -> None:
    server, clients = star(net, 3)
    async with net.server(server, echo_server, 7) as srv:
        ready_at = trio.current_time()
        assert srv.status is None and srv.kind == "function" and srv.name == "echo_server"
        results = await net.run_clients(clients, echo_client, "srv", 7)
    assert ready_at == 0.0  # the block starts at the instant the server listens
    assert [p.host.name for p in results] == ["c1", "c2", "c3"]
    assert [p.result for p in results] == [b"HELLO FROM C1", b"HELLO FROM C2", b"HELLO FROM C3"]
    assert [p.status for p in results] == [0, 0, 0] and all(p.ok for p in results)
    # Each program's prints are its own, though the clients ran at once.
    assert [p.stdout for p in results] == [
        f"started at 0.0, got HELLO FROM C{i}\n" for i in (1, 2, 3)]
    assert srv.stdout.splitlines()[0] == "listening on 7 at 0.0"
    assert sorted(srv.stdout.splitlines()[1:]) == [f"echo hello from c{i}" for i in (1, 2, 3)]
    # Stopped at the end of the block, as by SIGTERM; its sockets went with its process.
    assert srv.status == -15 and srv.outcome() == "stopped" and not srv.ok
    assert [row for row in server.sockets() if row.state == "LISTEN"] == []


def talk(port: int) -> str:
    """Blocking client code, as written for a real network (runs in a thread)."""
    with socket.create_connection(("srv", port), timeout=60) as s:
        s.sendall(f"hi from {socket.gethostname()}\n".encode())
        return s.makefile("rb").readline().decode()


SCRIPT_SERVER = """
import socketserver, sys

class Upper(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        print("served", line.decode().strip(), flush=True)
        self.wfile.write(line.upper())

with socketserver.TCPServer(("0.0.0.0", int(sys.argv[1])), Upper) as server:
    server.serve_forever()
"""


async def test_unmodified_script_server_and_blocking_clients_over_a_lossy_link(
        net, tmp_path) -> None:
    script = tmp_path / "upper_server.py"
    script.write_text(SCRIPT_SERVER)
    server, clients = star(net, 2)
    for c in clients:  # resolve ARP first: three lost solicits would fail a connect
        await c.ping("10.0.0.1")
    net.links[0].set(delay=0.01, loss=0.2)  # the server's link, both ways
    async with net.server(server, script, 8000, port=8000) as srv:
        assert srv.kind == "script" and srv.name == "upper_server.py"
        results = await net.run_clients(clients, talk, 8000)
    assert [p.result for p in results] == ["HI FROM C1\n", "HI FROM C2\n"]
    assert [p.kind for p in results] == ["thread", "thread"]
    assert sorted(srv.stdout.splitlines()) == ["served hi from c1", "served hi from c2"]
    assert srv.status == -15
    lossy = net.links[0]
    assert lossy.a.lost_frames + lossy.b.lost_frames > 0  # and yet every reply came back


async def asyncio_upper_server(port: int) -> None:
    async def handle(reader, writer) -> None:
        writer.write((await reader.readline()).upper())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "0.0.0.0", port)
    async with server:
        await server.serve_forever()


async def asyncio_client(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("srv", port)
    writer.write(f"hi from {socket.gethostname()}\n".encode())
    await writer.drain()
    return await reader.readline()


async def test_asyncio_programs(net) -> None:
    server, clients = star(net, 2)

    async def asyncio_server() -> None:  # asyncio's loop in the trio run: no thread
        await pystack.asyncio_run(asyncio_upper_server(25))

    async with net.server(server, asyncio_server) as srv:
        assert srv.kind == "function"
        done = await net.run_clients(clients, lambda: asyncio.run(asyncio_client(25)),
                                     name="asyncio_client")  # in a thread, as a script would
    assert [p.result for p in done] == [b"HI FROM C1\n", b"HI FROM C2\n"]
    assert [(p.name, p.kind) for p in done] == [("asyncio_client", "thread")] * 2


async def test_udp_server_is_ready_once_bound_on_its_port(net) -> None:
    server, (client,) = star(net, 1)

    async def udp_echo() -> None:
        s = trio.socket.socket(type=socket.SOCK_DGRAM)
        await trio.sleep(2.5)  # a slow start: the block waits for the bind
        await s.bind(("0.0.0.0", 53))
        while True:
            data, addr = await s.recvfrom(100)
            await s.sendto(data[::-1], addr)

    async def ask() -> bytes:
        s = trio.socket.socket(type=socket.SOCK_DGRAM)
        await s.sendto(b"abc", ("srv", 53))
        return (await s.recvfrom(100))[0]

    async with net.server(server, udp_echo, port=53):
        assert trio.current_time() == 2.5
        assert (await net.run(client, ask)).result == b"cba"


async def test_a_failing_client_is_reported_with_its_traceback(net) -> None:
    server, clients = star(net, 2)
    async with net.server(server, echo_server, 7):
        with pytest.raises(ProgramError) as info:
            await net.run_clients(clients, echo_client, "srv", 8)  # nobody listens on 8
    message = str(info.value)
    assert message.startswith("2 of 2 clients did not succeed:\n"
                              "echo_client on host c1: exit status 1 (ConnectionRefusedError:")
    assert "echo_client on host c2: exit status 1" in message
    assert "--- its stderr (last " in message and "Traceback (most recent call last):" in message
    assert [p.status for p in info.value.programs] == [1, 1]
    assert all(isinstance(p.error, ConnectionRefusedError) for p in info.value.programs)
    # check=False returns them instead.
    async with net.server(server, echo_server, 9):
        (p,) = await net.run_clients(clients[:1], echo_client, "srv", 10, check=False)
    assert p.status == 1 and "ConnectionRefusedError" in p.stderr


async def test_exit_status_of_scripts_and_functions(net, tmp_path) -> None:
    (host,) = [net.add_host("h")]
    script = tmp_path / "exits.py"
    script.write_text("import sys\nprint('bye', sys.argv[1:])\nsys.exit(int(sys.argv[1]))\n")
    assert (await net.run(host, script, 0)).status == 0
    p = await net.run(host, script, 3, check=False)
    assert (p.status, p.stdout) == (3, "bye ['3']\n")
    with pytest.raises(ProgramError, match=r"the program did not succeed:\nexits.py on host h: "
                                           r"exit status 3\n  --- its stdout"):
        await net.run(host, script, 3)

    def blocking_job(n: int) -> int:
        return n * 2

    p = await net.run(host, blocking_job, 21, name="job")
    assert (p.name, p.kind, p.result, p.status) == ("job", "thread", 42, 0)
    p = await net.run(host, blocking_job, None, check=False)
    assert (p.status, type(p.error)) == (1, TypeError)
    lines = p.stderr.splitlines()  # from the function's own frame, as python prints it
    assert lines[0] == "Traceback (most recent call last):" and lines[1].endswith("in blocking_job")
    assert lines[-1] == "TypeError: unsupported operand type(s) for *: 'NoneType' and 'int'"

    async def quits() -> None:
        raise SystemExit(4)

    assert (await net.run("h", quits, check=False)).status == 4


async def test_a_server_that_never_listens_or_ends_first_raises_at_once(net) -> None:
    server, _ = star(net, 1)

    async def idle() -> None:
        await trio.sleep_forever()

    async def broken() -> None:
        await trio.sleep(1)
        raise ValueError("no config file")

    t0 = trio.current_time()
    with pytest.raises(ProgramError, match=r"server idle on host srv did not listen on port "
                                           r"80 within 5 s \(virtual\)"):
        async with net.server(server, idle, port=80, ready_timeout=5):
            pytest.fail("the block must not run")
    assert trio.current_time() - t0 == 5
    with pytest.raises(ProgramError) as info:
        async with net.server(server, broken):
            pytest.fail("the block must not run")
    assert str(info.value).startswith("server broken on host srv ended before it listened:\n"
                                      "broken on host srv: exit status 1 (ValueError: no "
                                      "config file)")
    assert "raise ValueError(\"no config file\")" in str(info.value)


async def test_a_server_that_fails_while_serving_cancels_the_block(net) -> None:
    server, (client,) = star(net, 1)

    async def one_shot(port: int) -> None:
        listener = trio.socket.socket()
        await listener.bind(("0.0.0.0", port))
        listener.listen(1)
        await listener.accept()
        raise RuntimeError("crashed on the first connection")

    async def connect_then_wait() -> None:
        s = trio.socket.socket()
        await s.connect(("srv", 5000))
        await trio.sleep_forever()

    with pytest.raises(ProgramError) as info:
        async with net.server(server, one_shot, 5000):
            await net.run(client, connect_then_wait)
            pytest.fail("the block is cancelled when the server fails")
    assert str(info.value).startswith("server one_shot on host srv failed while it served:\n"
                                      "one_shot on host srv: exit status 1 (RuntimeError: "
                                      "crashed on the first connection)")

    async def listen_then_fail() -> None:
        listener = trio.socket.socket()
        await listener.bind(("0.0.0.0", 5001))
        listener.listen(1)
        await trio.sleep(1)
        raise RuntimeError("boom")

    # The block's own error wins, with the server's failure as a note.
    with pytest.raises(ValueError, match="the block's own error") as info:
        async with net.server(server, listen_then_fail):
            with trio.CancelScope(shield=True):
                await trio.sleep(2)
            raise ValueError("the block's own error")
    (note,) = info.value.__notes__
    assert note.startswith("meanwhile the server failed:\nlisten_then_fail on host srv: exit "
                           "status 1 (RuntimeError: boom)\n  --- its stderr (last 4 lines) ---\n"
                           "  Traceback (most recent call last):\n")
    # The traceback starts in the program's own code, not in pystack's machinery.
    assert note.splitlines()[4].endswith("in listen_then_fail")
    assert note.endswith('raise RuntimeError("boom")\n  RuntimeError: boom')


async def test_clients_past_their_timeout_are_stopped_and_reported(net) -> None:
    server, clients = star(net, 2)

    async def slow(seconds: float) -> str:
        await trio.sleep(seconds * int(socket.gethostname()[1:]))
        return "done"

    with pytest.raises(ProgramError) as info:
        await net.run_clients(clients, slow, 1.5, timeout=2)
    assert str(info.value) == ("1 of 2 clients did not succeed (1 still running after 2 s "
                               "virtual):\nslow on host c2: still running when its time ran "
                               "out; stopped")
    assert trio.current_time() == 2
    (late,) = info.value.programs
    assert (late.host.name, late.status, late.timed_out) == ("c2", -15, True)


async def test_arguments_are_checked(net) -> None:
    server, clients = star(net, 1)
    with pytest.raises(TypeError, match="a program is an async function, a function or the "
                                        "path of a script, not int"):
        await net.run(server, 42)
    with pytest.raises(TypeError, match="hosts is a list"):
        await net.run_clients(server, echo_client)
    with pytest.raises(TypeError, match="a script's arguments are its command line"):
        await net.run(server, "x.py", object())
    other = pystack.Network().add_host("elsewhere")
    with pytest.raises(ValueError, match="is not a host of this network"):
        await net.run(other, echo_client)
    with pytest.raises(KeyError):
        await net.run("nobody", echo_client)


async def test_without_a_running_network_the_helpers_say_so() -> None:
    net = pystack.Network()
    h = net.add_host("h")
    with pytest.raises(RuntimeError, match="inside `async with net`"):
        await net.run(h, echo_client)
    with pytest.raises(RuntimeError, match="inside `async with net`"):
        async with net.server(h, echo_server, 7):
            pass


FAILING_IN_A_SUB_RUN = textwrap.dedent("""
    import trio

    async def refuse(port):
        s = trio.socket.socket()
        await s.connect(("b", port))

    async def test_client_fails(net):
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b)
        await net.run_clients([a], refuse, 9)
""")


def test_a_failing_client_in_a_test_shows_its_report_and_the_seed(pytester) -> None:
    pytester.makepyfile(FAILING_IN_A_SUB_RUN)
    result = pytester.runpytest("--pystack-seed", "5")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "ProgramError: the client did not succeed:" in out
    assert "refuse on host a: exit status 1 (ConnectionRefusedError: [Errno 111]" in out
    assert "seed: 5" in out
