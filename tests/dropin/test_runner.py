"""Scripts run unmodified on a host: pystack.run_script and `python -m pystack run`.

Read first: pystack/dropin/runner.py.
"""

from __future__ import annotations

import pathlib
import time

import pytest
import trio

import pystack
from pystack.__main__ import main as cli
from pystack.dropin import runner

COMPAT = pathlib.Path(__file__).resolve().parents[2] / "compat"


def _script(tmp_path: pathlib.Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


async def test_run_script_routes_socket_and_reports_exit_status(tmp_path, capsys) -> None:
    path = _script(tmp_path, "s.py", """
import socket, sys
print(__name__, sys.argv[1:], socket.gethostname(), socket.gethostbyname("b"))
sys.exit(3)
""")
    async with pystack.Network(seed=2) as net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b, subnet="10.0.0.0/24")
        assert await pystack.run_script(path, ["x", "y"], host=a) == 3
    assert capsys.readouterr().out == "__main__ ['x', 'y'] a 10.0.0.2\n"


async def test_trio_run_in_a_script_runs_in_the_network_in_virtual_time(tmp_path) -> None:
    path = _script(tmp_path, "t.py", """
import trio
async def main():
    await trio.sleep(3600)
    s = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await s.bind(("localhost", 0))
    return s.getsockname()[0]
assert trio.run(main) == "127.0.0.1"
""")
    async with pystack.Network(seed=2) as net:
        a = net.add_host("a")
        wall, start = time.monotonic(), trio.current_time()
        assert await pystack.run_script(path, host=a) == 0
        assert trio.current_time() - start == pytest.approx(3600)
        assert time.monotonic() - wall < 1.0


async def test_a_crashing_script_exits_1_with_its_traceback(tmp_path, capsys) -> None:
    path = _script(tmp_path, "c.py", "import socket\nsocket.create_connection(('a', 9))\n")
    async with pystack.Network(seed=2) as net:
        a = net.add_host("a")
        assert await pystack.run_script(path, host=a) == 1
    assert "ConnectionRefusedError: [Errno 111] Connection refused" in capsys.readouterr().err


def test_cli_runs_server_and_clients_with_options_after_the_script(tmp_path, capsys) -> None:
    pcap = tmp_path / "run.pcapng"
    assert cli(["run", str(COMPAT / "socket_echo_server.py"), "50007", "--client",
                f"{COMPAT / 'socket_echo_client.py'} server 50007", "--pcap", str(pcap),
                "--delay", "0.01"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == ["Connected by ('10.0.0.2', 50643)", "Received b'Hello, world'"]
    from scapy.layers.inet import TCP
    from scapy.layers.l2 import Ether
    import pystack.pcap
    segments = [Ether(bytes(p.data)) for p in pystack.pcap.read_pcapng(str(pcap))]
    syns = [s for s in segments if TCP in s and s[TCP].flags == "S"]
    assert syns and syns[0][TCP].dport == 50007


def test_cli_exit_status_is_the_clients(tmp_path) -> None:
    client = _script(tmp_path, "fail.py", "import sys; sys.exit(4)\n")
    server = _script(tmp_path, "srv.py", """
import socket
s = socket.create_server(("", 8000))
s.accept()
""")
    assert runner.main([server, "--client", client]) == 4


def test_options_may_come_before_or_after_the_script() -> None:
    assert runner._options_first(["--loss", "0.1", "s.py", "1", "--client", "c.py", "--", "-x"]
                                 ) == ["--loss", "0.1", "--client", "c.py", "--", "s.py", "1",
                                       "-x"]


def test_cli_trace_prints_tracepoints_to_stderr_filtered_by_prefix(tmp_path, capsys) -> None:
    server, client = str(COMPAT / "socket_echo_server.py"), \
        f"{COMPAT / 'socket_echo_client.py'} server 50007"
    assert cli(["run", "--trace", server, "50007", "--client", client]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1] == "Received b'Hello, world'"  # stdout is the scripts'
    names = {line.split()[4] for line in captured.err.splitlines()}
    assert {"EVENT_LISTEN", "EVENT_ACCEPT", "net:netif_receive_skb",
            "sock:inet_sock_set_state", "TCP_TRANSKB"} <= names
    lines = captured.err.splitlines()
    times = [float(line.split()[0]) for line in lines]
    assert times == sorted(times)
    assert cli(["run", server, "50007", "--client", client, "--trace=sock:"]) == 0
    only = capsys.readouterr().err.splitlines()
    assert only and {line.split()[4] for line in only} == {"sock:inet_sock_set_state"}
    # Both ends reach ESTABLISHED; the client, closing first, ends in TIME-WAIT.
    assert sum("newstate=TCP_ESTABLISHED " in line + " " for line in only) >= 2
    assert any(" client1 " in line and "oldstate=TCP_FIN_WAIT2 newstate=TCP_TIME_WAIT" in line
               for line in only)


def test_trace_is_a_flag_that_never_takes_the_script_as_its_value() -> None:
    assert runner._options_first(["--trace", "s.py", "1"]) == ["--trace", "--", "s.py", "1"]
    assert runner._options_first(["s.py", "--trace=tcp:"]) == ["--trace=tcp:", "--", "s.py"]


def test_cli_path_prints_the_first_data_segments_journey_through_both_kernels(capsys) -> None:
    assert cli(["run", "--path", str(COMPAT / "socket_echo_server.py"), "50007", "--client",
                f"{COMPAT / 'socket_echo_client.py'} server 50007"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == "path of the first data client1 sent:"
    hops = [(line.split()[1], line.split()[3], line.split()[-1]) for line in err[1:]]
    functions = [f for _, _, f in hops]
    # Out through client1's stack in process context, in through the server's in softirq.
    assert functions.index("tcp_transmit_skb") < functions.index("dev_queue_xmit") \
        < functions.index("netif_receive_skb") < functions.index("ip_rcv") \
        < functions.index("tcp_v4_rcv") < functions.index("tcp_data_queue")
    assert {(h, c) for h, c, f in hops if f in ("tcp_transmit_skb", "ip_output")} == \
        {("client1", "process")}
    assert {(h, c) for h, c, f in hops if f in ("ip_rcv", "tcp_v4_rcv")} == \
        {("server", "softirq")}


def test_two_scripts_printing_at_once_keep_their_lines_whole() -> None:
    # The threads of `python -m pystack run` share sys.stdout; a print is several writes.
    import io
    import threading

    out = io.StringIO()
    lines = runner.WholeLines(out)
    client_wrote_half = threading.Event()
    server_wrote = threading.Event()

    def client() -> None:
        lines.write("Received")
        lines.write(" ")
        client_wrote_half.set()
        server_wrote.wait()
        lines.write("b'Hello'")
        lines.write("\n")
        lines.write("no newline yet")

    def server() -> None:
        client_wrote_half.wait()
        lines.write("closing")
        lines.write(" conn\n")
        server_wrote.set()

    threads = [threading.Thread(target=client), threading.Thread(target=server)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out.getvalue() == "closing conn\nReceived b'Hello'\n"
    lines.close_lines()  # what a thread left unfinished still comes out, at the end
    assert out.getvalue().endswith("no newline yet")
