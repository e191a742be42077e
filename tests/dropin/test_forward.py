"""A real port leading into the emulated network: PortForwarder and `run --forward`.

Read first: pystack/dropin/forward.py, pystack/dropin/runner.py.

The in-process tests put a real trio socket (made outside every process context, so a real
one) and the forwarder in the test's own trio run; the forwarder listens on port 0, so no
port is guessed. Each has a deadline: a wait that never ends (the forwarder lost a FIN) makes
the autojump clock run to it at once, and the test fails instead of hanging. The last tests
start `python -m pystack run --forward` as another process, in real time: the only tests here
that wait on the wall clock, and only to see the port open.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import signal
import socket
import struct
import subprocess
import sys
import time

import pytest
import trio

import pystack

from pystack.dropin import runner
from pystack.dropin.forward import PortForwarder, parse_forward

from nethelpers import connected_pair, send_all

ROOT = pathlib.Path(__file__).resolve().parents[2]
COMPAT = ROOT / "compat"
LINGER_RESET = struct.pack("ii", 1, 0)


def test_forward_spec_is_port_or_port_pair() -> None:
    assert parse_forward("8888") == (8888, 8888)
    assert parse_forward("18080:80") == (18080, 80)
    assert parse_forward("0:80") == (0, 80)
    for bad, match in (("0", "name the server's port"), ("1:2:3", "PORT or PORT:PORT"),
                       ("http", "PORT or PORT:PORT"), ("70000", "1-65535"),
                       ("80:0", "1-65535")):
        with pytest.raises(ValueError, match=match):
            parse_forward(bad)


def test_cli_refuses_a_bad_forward_spec(capsys) -> None:
    with pytest.raises(SystemExit) as e:
        runner.main(["--forward", "1:2:3", "x.py"])
    assert e.value.code == 2
    assert "--forward takes PORT or PORT:PORT, not '1:2:3'" in capsys.readouterr().err


def test_cli_reports_a_port_in_use_and_exits_1(tmp_path, capsys) -> None:
    script = tmp_path / "never.py"
    script.write_text("raise SystemExit('the script must not run')\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert runner.main(["--forward", f"{port}:80", str(script)]) == 1
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}: [Errno {errno.EADDRINUSE}] Address already " \
        "in use" in err
    assert "must not run" not in err


def test_forward_host_comes_after_the_clients_and_time_can_stay_virtual(capsys) -> None:
    assert runner.main([str(COMPAT / "socket_echo_server.py"), "50007", "--client",
                        f"{COMPAT / 'socket_echo_client.py'} server 50007",
                        "--forward", "0:50007", "--time", "virtual", "--trace=sock:"]) == 0
    captured = capsys.readouterr()
    # The same transcript as without --forward (test_runner.py): client1 keeps 10.0.0.2, and
    # its port, which the seed chose.
    assert captured.out.splitlines() == ["Connected by ('10.0.0.2', 50643)",
                                         "Received b'Hello, world'"]
    forwarding = [line for line in captured.err.splitlines() if "forwarding" in line]
    assert forwarding and forwarding[0].endswith("to server:50007 (from host forward, 10.0.0.3)")
    # Virtual time starts at 0 (real time, trio's clock, at 10000 s or more).
    times = [float(line.split()[0]) for line in captured.err.splitlines()
             if "sock:inet_sock_set_state" in line]
    assert times and max(times) < 60


# -- real time: the stack on a clock that does not start at 0 -------------------------------------
async def _lossy_transfer(out: dict) -> None:
    net = pystack.Network(seed=3)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b).set(delay=0.01, loss=0.05)
        names: list[str] = []
        net.trace(lambda event: names.append(event.name), match="tcp:")
        client, conn = await connected_pair(a, b, "b")
        data = bytes(range(256)) * 256
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            async def send() -> None:
                await send_all(client, data)
                client.shutdown(socket.SHUT_WR)
            nursery.start_soon(send)
            assert await _recv_all(conn) == data
        out.update(elapsed=trio.current_time() - start, names=names,
                   a=a.stats()["Tcp"], b=b.stats()["Tcp"])


def test_the_stack_does_not_assume_its_clock_starts_at_zero() -> None:
    """Real time is trio's system clock, which starts at a random 10000-200000 s (to catch
    code that assumes 0): a lossy transfer goes the same way there as from 0."""
    from trio.testing import MockClock
    runs = []
    for start in (0.0, 123456.789):
        clock = MockClock(autojump_threshold=0)
        clock.jump(start)
        out: dict = {}
        trio.run(_lossy_transfer, out, clock=clock)
        runs.append(out)
    assert runs[0]["a"]["RetransSegs"] > 0  # the loss did bite
    assert runs[1]["names"] == runs[0]["names"]
    assert (runs[1]["a"], runs[1]["b"]) == (runs[0]["a"], runs[0]["b"])
    assert runs[1]["elapsed"] == pytest.approx(runs[0]["elapsed"], abs=1e-6)


# -- in process: the forwarder in the test's trio run -----------------------------------------
async def _world(net, port: int = 7):
    """Hosts `server` and `forward` on one wire; a listener on server:7; a forwarder to
    server:`port`, listening on a free real port."""
    server, via = net.add_host("server"), net.add_host("forward")
    net.add_link(server, via)
    listener = server.socket()
    await listener.bind(("", 7))
    listener.listen(4)
    fwd = PortForwarder(via, "server", port, 0)
    return listener, fwd, fwd.open()


@contextlib.asynccontextmanager
async def _serving(fwd: PortForwarder, *tasks):
    """The forwarder and `tasks` running, under a deadline, all stopped at the end."""
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(fwd.serve)
            for task in tasks:
                nursery.start_soon(task)
            yield
            nursery.cancel_scope.cancel()


async def _real_client(port: int):
    client = trio.socket.socket()  # outside every process context: a real socket
    await client.connect(("127.0.0.1", port))
    return client


async def _recv_all(sock) -> bytes:
    out = b""
    while data := await sock.recv(65536):
        out += data
    return out


async def test_bytes_and_half_closes_cross_both_ways(net) -> None:
    listener, fwd, port = await _world(net)
    seen = []

    async def echo() -> None:
        conn, addr = await listener.accept()
        seen.append(addr[0])
        while data := await conn.recv(65536):
            await conn.send(data)
        seen.append("EOF")
        await conn.send(b"bye")   # after the peer's FIN: the half-open direction still works
        conn.close()

    message = bytes(range(256)) * 400  # 100 KiB: many segments, several windows
    async with _serving(fwd, echo):
        client = await _real_client(port)
        await send_all(client, message)
        client.shutdown(socket.SHUT_WR)
        assert await _recv_all(client) == message + b"bye"
        client.close()
        await fwd.wait_idle()
    assert seen == ["10.0.0.2", "EOF"]  # from the forwarding host, FIN after every byte
    assert (fwd.accepted, fwd.refused, fwd.resets, fwd.active) == (1, 0, 0, 0)


async def test_a_refused_emulated_connect_resets_the_real_connection(net) -> None:
    _listener, fwd, port = await _world(net, port=9)  # nothing listens on 9
    async with _serving(fwd):
        client = await _real_client(port)
        with pytest.raises(ConnectionResetError):
            await client.recv(10)
    assert fwd.refused == 1
    assert net.host("forward").stats()["Tcp"]["AttemptFails"] == 1


async def test_a_real_reset_reaches_the_emulated_server_as_a_reset(net) -> None:
    listener, fwd, port = await _world(net)
    got = []
    done = trio.Event()

    async def server() -> None:
        conn, _ = await listener.accept()
        got.append(await conn.recv(10))
        with pytest.raises(ConnectionResetError):
            await conn.recv(10)
        done.set()

    async with _serving(fwd, server):
        client = await _real_client(port)
        await client.send(b"ping")
        while not got:
            await trio.sleep(0.001)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        client.close()
        await done.wait()
    assert fwd.resets == 1
    assert net.host("forward").stats()["Tcp"]["OutRsts"] == 1


async def test_an_emulated_reset_reaches_the_real_client_as_a_reset(net) -> None:
    listener, fwd, port = await _world(net)

    async def server() -> None:
        conn, _ = await listener.accept()
        await conn.recv(10)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
        conn.close()

    async with _serving(fwd, server):
        client = await _real_client(port)
        await client.send(b"ping")
        with pytest.raises(ConnectionResetError):
            await client.recv(10)
    assert fwd.resets == 1
    assert net.host("server").stats()["Tcp"]["OutRsts"] == 1


# -- another process: `python -m pystack run --forward` in real time ----------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _connect(port: int, proc: subprocess.Popen, within: float = 8.0) -> socket.socket:
    """Connect once the run listens: a bounded wait on the wall clock (the run starts a
    Python interpreter)."""
    deadline = time.monotonic() + within
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except ConnectionRefusedError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _segments(pcap: pathlib.Path, port: int) -> list:
    """(time, direction, payload) of every TCP segment with data the capture holds, as scapy
    reads the pcapng."""
    from scapy.layers.inet import IP, TCP
    from scapy.utils import rdpcap
    out = []
    for frame in rdpcap(str(pcap)):
        if TCP in frame and bytes(frame[TCP].payload):
            way = "to server" if frame[TCP].dport == port else "from server"
            out.append((float(frame.time), frame[IP].src, way, bytes(frame[TCP].payload)))
    return out


# server → (a line it prints on the connection, whether it serves forever)
ECHO_SERVERS = {
    "trio_echo_server.py": ("echo_server 0: received data b'hello through pystack'", True),
    "socket_echo_server.py": ("Connected by ('10.0.0.2', 52468)", False),
    "asyncio_echo_server.py": ("Received 'hello through pystack' from ('10.0.0.2', 52468)",
                               True),
}


@pytest.mark.parametrize("server", list(ECHO_SERVERS))
def test_run_forward_carries_a_real_connection_through_the_emulated_stack(tmp_path,
                                                                          server) -> None:
    listen, target, pcap = _free_port(), 18888, tmp_path / "run.pcapng"
    line, forever = ECHO_SERVERS[server]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pystack", "run", str(COMPAT / server), str(target),
         "--forward", f"{listen}:{target}", "--pcap", str(pcap)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        with _connect(listen, proc) as s:
            s.sendall(b"hello through pystack")
            s.shutdown(socket.SHUT_WR)
            echoed = b""
            while data := s.recv(1024):
                echoed += data
        assert echoed == b"hello through pystack"
        if forever:   # stop it as a user would; the others end after one connection
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=8)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0, err.decode()
    assert f"forwarding 127.0.0.1:{listen} to server:{target} (from host forward, " \
           f"10.0.0.2)" in err.decode()
    segments = _segments(pcap, target)
    # Each segment appears twice: leaving forward:eth0 and reaching server:eth0.
    assert [(src, way, data) for _, src, way, data in segments] == \
        [("10.0.0.2", "to server", b"hello through pystack")] * 2 + \
        [("10.0.0.1", "from server", b"hello through pystack")] * 2
    # Real time: trio's system clock starts far from 0 (a virtual run's frames start at 0).
    assert segments[0][0] > 1000
    assert line in out.decode().splitlines()
