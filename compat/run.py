"""Run every compat/ pair on the real kernel's 127.0.0.1 and on pystack; compare transcripts.

Read first: DESIGN.md §5, pystack/dropin/runner.py (`python -m pystack run`), then the pairs
below: each program is written in the canonical pattern its documentation shows, and runs
unmodified in both worlds. The only inputs are argv: a server takes PORT, a client HOST PORT.

A transcript is the multiset of lines both programs print, with what legitimately differs
between the worlds masked: addresses (127.0.0.1 vs 10.0.0.x, and the host name `server`),
ephemeral ports, descriptor numbers.

    python compat/run.py            # the table; exit status 1 if any pair differs
    python compat/run.py NAME ...   # some pairs only
"""

from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys
import time
from typing import NamedTuple

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


class Pair(NamedTuple):
    name: str
    server: str
    client: str
    client_args: tuple[str, ...] = ()
    udp: bool = False


PAIRS = [
    Pair("socket-docs echo", "socket_echo_server.py", "socket_echo_client.py"),
    Pair("socketserver TCPServer", "socketserver_tcp_server.py", "socketserver_client.py",
         ("hello", "world")),
    Pair("socketserver ThreadingTCPServer", "socketserver_threading_server.py",
         "socketserver_client.py", ("hello", "threads")),
    Pair("selectors echo", "selectors_echo_server.py", "socket_echo_client.py"),
    Pair("trio serve_tcp echo", "trio_echo_server.py", "trio_echo_client.py"),
    Pair("trio UDP echo", "trio_udp_server.py", "trio_udp_client.py", udp=True),
    Pair("http.server + urllib.request", "http_server.py", "http_client.py"),
    Pair("asyncio streams echo", "asyncio_echo_server.py", "asyncio_echo_client.py"),
    Pair("asyncio Protocol echo", "asyncio_protocol_server.py", "asyncio_protocol_client.py"),
    Pair("asyncio datagram echo", "asyncio_udp_server.py", "asyncio_udp_client.py", udp=True),
]

TIMEOUT = 60.0


def normalize(text: str, port: int) -> list[str]:
    out = []
    for line in text.splitlines():
        line = re.sub(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "ADDR", line)
        line = re.sub(r"\bserver\b", "ADDR", line)
        line = line.replace(str(port), "PORT")
        line = re.sub(r"\('ADDR', \d+\)", "('ADDR', N)", line)
        line = re.sub(r"fd=\d+", "fd=N", line)
        out.append(line)
    return sorted(out)


def _free_port(udp: bool) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _bound(port: int, udp: bool) -> bool:
    """Whether a socket listens (TCP) or is bound (UDP) on `port`, from /proc/net."""
    table = pathlib.Path("/proc/net/udp" if udp else "/proc/net/tcp").read_text().splitlines()
    for row in table[1:]:
        fields = row.split()
        if int(fields[1].split(":")[1], 16) == port and (udp or fields[3] == "0A"):
            return True
    return False


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_real(pair: Pair) -> tuple[list[str], str]:
    """On the machine's own kernel, over 127.0.0.1."""
    port = _free_port(pair.udp)
    server = subprocess.Popen([sys.executable, str(HERE / pair.server), str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=_env(), cwd=ROOT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not _bound(port, pair.udp):
            time.sleep(0.02)  # (a probe connection would use up the docs server's only one)
        client = subprocess.run([sys.executable, str(HERE / pair.client), "127.0.0.1",
                                 str(port), *pair.client_args], capture_output=True, text=True,
                                timeout=TIMEOUT, env=_env(), cwd=ROOT)
        time.sleep(0.3)  # let the server see the client's close (and log it), as pystack does
    finally:
        server.terminate()
        out, err = server.communicate(timeout=TIMEOUT)
    return normalize(out + client.stdout, port), err + client.stderr


def run_pystack(pair: Pair) -> tuple[list[str], str]:
    port = 50007
    client = " ".join([str(HERE / pair.client), "server", str(port), *pair.client_args])
    proc = subprocess.run([sys.executable, "-m", "pystack", "run", str(HERE / pair.server),
                           str(port), "--client", client], capture_output=True, text=True,
                          timeout=TIMEOUT, env=_env(), cwd=ROOT)
    return normalize(proc.stdout, port), proc.stderr


def compare(pair: Pair) -> tuple[bool, list[str], list[str], str]:
    real, real_err = run_real(pair)
    emulated, emu_err = run_pystack(pair)
    return real == emulated and bool(real), real, emulated, real_err + emu_err


def main(argv: list[str]) -> int:
    pairs = [p for p in PAIRS if not argv or p.name in argv or p.server in argv]
    failed = 0
    print(f"{'pair':36} {'real':>5} {'pystack':>8}  result")
    for pair in pairs:
        ok, real, emulated, err = compare(pair)
        print(f"{pair.name:36} {len(real):5} {len(emulated):8}  {'same' if ok else 'DIFFERENT'}")
        if not ok:
            failed += 1
            print("  real:   ", *real, sep="\n    ")
            print("  pystack:", *emulated, sep="\n    ")
            if err:
                print("  stderr:", err, sep="\n")
    print(f"{len(pairs) - failed}/{len(pairs)} pairs give the same transcript")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
