"""Running an unmodified script on an emulated host: `run_script` and `python -m pystack run`.

Read first: pystack/dropin/blocking.py (the blocking face and its threads), then
pystack/dropin/trio.py (the trio hooks), Lib/runpy.py (run_path, `__main__`).

A script runs as `__main__` in a thread of a process of its host (the blocking face's thread),
so `socket`, `select` and `selectors` reach the host. `trio.run(main)` called by the script is
routed into the one trio run that drives the network: `main` runs there, in the script's
process context, on trio's socket hooks. `asyncio.run(main())` (and anything else that makes
its loop with `asyncio.new_event_loop`) gets the asyncio face's loop, which runs in that same
trio run while the script's thread waits (pystack/dropin/asyncio.py).

`python -m pystack run` builds one switch with the hosts `server`, `client1` ... and, with
`--forward PORT[:PORT]`, `forward`: a real port on 127.0.0.1 whose connections a process of
that host carries to the server (pystack/dropin/forward.py). A forwarded run is in real time
(trio's own clock; `--time` chooses) and ends when the server script ends or on SIGINT or
SIGTERM, which stop it cleanly (the pcap is closed) with status 0.

`sys.argv` is process-wide in Python: each script sets it as it starts, so scripts that start
together should read it at once (as scripts do).
"""

from __future__ import annotations

import argparse
import contextlib
import runpy
import shlex
import signal
import sys
import threading
import traceback
from typing import Any, Sequence

import trio

from . import asyncio as asyncio_face
from . import blocking
from . import trio as trio_face
from .forward import PortForwarder, parse_forward

__all__ = ["run_script", "main"]

_real_trio_run = trio.run


def _routed_trio_run(afn: Any, *args: Any, **kwargs: Any) -> Any:
    """trio.run from an emulated thread: run `afn` in the network's trio run, in the calling
    thread's process context. Anywhere else: the real trio.run."""
    if not blocking.in_emulated_thread():
        return _real_trio_run(afn, *args, **kwargs)
    return blocking.call_in_trio(afn, *args)


_TRIO_RUN = blocking.Patches(lambda: [(trio, "run", _routed_trio_run)])


@contextlib.contextmanager
def routed() -> Any:
    """The blocking face installed, trio.run and asyncio.new_event_loop routed (nested uses
    count)."""
    with asyncio_face.installed(), _TRIO_RUN.installed():
        yield


def _exec(path: str, argv: list[str]) -> int:
    task = trio_face.current_task()
    sys.argv = [path, *argv]
    try:
        with asyncio_face.script_main_thread():
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code
        if code is None:
            return 0
        if isinstance(code, int):
            return code
        print(code, file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - a script's crash is its exit status, as python's
        if task is not None and task.exited:
            return -15  # stopped with its process (the run ended): as if SIGTERMed, quietly
        traceback.print_exc()
        return 1
    return 0


async def run_script(path: str, argv: Sequence[str] = (), *, host: Any,
                     name: str | None = None, abandon_on_cancel: bool = False) -> int:
    """Run the file at `path` as `__main__` on `host`, in a new process; return its exit
    status (SystemExit's code; 1 after an uncaught exception, whose traceback goes to
    stderr). Call inside a running `pystack.Network`: `await pystack.run_script(...)`.
    `socket`, `select`, `selectors`, `trio.run` and `asyncio.run` reach the host while it
    runs."""
    trio_face.install()
    with routed():
        async with host.process(name or path.rsplit("/", 1)[-1]):
            return await blocking.run_sync(_exec, path, list(argv),
                                           abandon_on_cancel=abandon_on_cancel)


class WholeLines:
    """A text stream over `stream` that writes each thread's output a whole line at a time.

    The scripts of one `python -m pystack run` are threads of one process sharing
    sys.stdout, where on a real machine each has its own: a `print` is several writes (its
    arguments, separators, end), and two threads printing at once could interleave inside a
    line. Here each thread's text waits until its line is complete (or it flushes), then goes
    out in one write; `close_lines` writes what every thread left unfinished."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()
        self._pending: dict[int, str] = {}  # by thread: text after its last newline

    def write(self, text: str) -> int:
        me = threading.get_ident()
        with self._lock:
            pending = self._pending.pop(me, "") + text
            cut = pending.rfind("\n") + 1
            if cut < len(pending):
                self._pending[me] = pending[cut:]
            if cut:
                self._stream.write(pending[:cut])
        return len(text)

    def writelines(self, texts: Any) -> None:
        for text in texts:
            self.write(text)

    def flush(self) -> None:
        with self._lock:
            pending = self._pending.pop(threading.get_ident(), "")
            if pending:
                self._stream.write(pending)
            self._stream.flush()

    def close_lines(self) -> None:
        with self._lock:
            for text in self._pending.values():
                self._stream.write(text)
            self._pending.clear()
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:  # encoding, fileno, isatty, buffer ...
        return getattr(self._stream, name)


def _server_ready(host: Any) -> bool:
    for row in host.sockets():
        if row.state == "LISTEN" or (row.netid == "udp" and row.pid is not None):
            return True
    return False


async def _run_world(args: argparse.Namespace) -> int:
    import pystack
    net = pystack.Network(seed=args.seed)
    async with net:
        sw = net.add_switch("sw0")
        server = net.add_host("server")
        links = [net.add_link(server, sw, subnet="10.0.0.0/24")]
        clients = []
        for i, _spec in enumerate(args.client, 1):
            h = net.add_host(f"client{i}")
            links.append(net.add_link(h, sw))
            clients.append(h)
        forwarder = None
        if args.forward is not None:
            # Linked after the clients, so their addresses do not depend on --forward.
            via = net.add_host("forward")
            links.append(net.add_link(via, sw))
            listen_port, port = args.forward
            forwarder = PortForwarder(via, "server", port, listen_port)
            try:
                forwarder.open()
            except OSError as e:
                print(f"pystack run: cannot listen on 127.0.0.1:{listen_port}: {e}",
                      file=sys.stderr)
                return 1
        for link in links:
            link.set(delay=args.delay, loss=args.loss)
        if args.pcap:
            net.capture(args.pcap)  # closed when the network stops
        if args.trace is not None:
            # To stderr (the scripts' prints stay on stdout), one a line.
            net.trace(lambda event: print(event, file=sys.stderr), match=args.trace or None)
        if args.path:
            sender = clients[0] if clients else forwarder.via if forwarder else server
            args.followed = (sender.name, sender.follow_next_packet())
        if not clients and forwarder is None:
            return await run_script(args.script, args.args, host=server)
        try:
            return await _run_together(args, server, clients, forwarder)
        finally:
            if forwarder is not None:
                forwarder.close()


async def _run_together(args: argparse.Namespace, server: Any, clients: list,
                        forwarder: PortForwarder | None) -> int:
    """The server script with clients, a forwarded port, or both; see the module docstring
    for when the run ends."""
    status: dict[str, int] = {}
    async with trio.open_nursery() as nursery:
        server_done = trio.Event()

        async def serve() -> None:
            status["server"] = await run_script(args.script, args.args, host=server,
                                                abandon_on_cancel=True)
            server_done.set()
        nursery.start_soon(serve)
        if forwarder is not None and threading.current_thread() is threading.main_thread():
            nursery.start_soon(_stop_on_signal, nursery.cancel_scope, status)
        # Clients and forwarded connections start once the server listens (or gave up
        # waiting: 10 s).
        with trio.move_on_after(10):
            while not _server_ready(server) and "server" not in status:
                await trio.sleep(0.01)
        if forwarder is not None and "server" not in status:
            nursery.start_soon(forwarder.serve)
            print(f"pystack run: forwarding 127.0.0.1:{forwarder.listen_port} to "
                  f"server:{forwarder.port} (from host forward, "
                  f"{forwarder.via.address()})", file=sys.stderr, flush=True)
        if not clients:
            await server_done.wait()
            # The server's last words (a FIN, a reply) reach the real peers: at most 1 s.
            forwarder.close()
            with trio.move_on_after(1):
                await forwarder.wait_idle()
            nursery.cancel_scope.cancel()
            return status["server"]
        async with trio.open_nursery() as cn:
            for i, (h, spec) in enumerate(zip(clients, args.client), 1):
                words = shlex.split(spec)

                async def client(h: Any = h, words: list = words, i: int = i) -> None:
                    status[f"client{i}"] = await run_script(words[0], words[1:], host=h)
                cn.start_soon(client)
        # Let the server finish what the clients' last packets started (a close seen,
        # a line logged) before it is stopped: one second.
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    if "signal" in status:
        return 0
    return max((v for k, v in status.items() if k != "server"), default=0)


async def _stop_on_signal(scope: trio.CancelScope, status: dict[str, int]) -> None:
    """SIGINT (Ctrl-C) or SIGTERM ends a forwarding run cleanly: every script is stopped,
    the pcap is closed, and the run exits 0 (as `python -m http.server` does on Ctrl-C)."""
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            print(f"pystack run: {signal.Signals(signum).name}: stopping", file=sys.stderr,
                  flush=True)
            status["signal"] = signum
            scope.cancel()
            return


_OPTIONS = ("--client", "--pcap", "--delay", "--loss", "--seed", "--forward", "--time")
_FLAGS = ("--trace", "--path")  # take no separate value (`--trace=PREFIX` names one)


def _options_first(argv: list[str]) -> list[str]:
    """pystack's options may come before or after SCRIPT; everything else (and all after a
    `--`) is the script's own command line."""
    ours: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            rest.extend(argv[i + 1:])
            break
        if word in _OPTIONS and i + 1 < len(argv):
            ours += [word, argv[i + 1]]
            i += 2
            continue
        if word.split("=", 1)[0] in _OPTIONS + _FLAGS or (word in ("-h", "--help")
                                                           and not rest):
            ours.append(word)
        else:
            rest.append(word)
        i += 1
    return ours + ["--"] + rest


def _forward_spec(text: str) -> tuple[int, int]:
    try:
        return parse_forward(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: Sequence[str]) -> int:
    """`python -m pystack run [options] SCRIPT [ARGS...]`."""
    p = argparse.ArgumentParser(prog="python -m pystack run",
                                description="Run an unmodified script on an emulated host "
                                            "named `server` (clients: client1, client2 ...).")
    p.add_argument("--client", action="append", default=[], metavar="SCRIPT",
                   help="a client program (with its arguments, quoted) on its own host; "
                        "repeatable. The run ends when every client has finished.")
    p.add_argument("--pcap", metavar="FILE", help="capture every interface to a pcapng file")
    p.add_argument("--delay", type=float, default=0.0, help="one-way link delay, seconds")
    p.add_argument("--loss", type=float, default=0.0, help="link loss probability, 0..1")
    p.add_argument("--seed", type=int, default=0, help="the network's seed")
    p.add_argument("--trace", nargs="?", const="", default=None, metavar="PREFIX",
                   help="print every tracepoint (`--trace=tcp:`: those whose name starts "
                        "with PREFIX) to stderr as it fires, in virtual time")
    p.add_argument("--path", action="store_true",
                   help="print the path through the kernels of the first data client1 (or "
                        "host forward, or the server, alone) sends: a TCP segment with "
                        "payload, a datagram")
    p.add_argument("--forward", type=_forward_spec, metavar="PORT[:PORT]",
                   help="listen on the real 127.0.0.1:PORT and carry each connection to the "
                        "server's second PORT (default the same) from host `forward`; runs "
                        "in real time and ends when the server script ends, or on Ctrl-C")
    p.add_argument("--time", choices=("virtual", "real"), default=None,
                   help="the network's clock: virtual (trio's autojump MockClock, the "
                        "default) or real (the default with --forward)")
    p.add_argument("script")
    p.add_argument("args", nargs="*")
    args = p.parse_args(_options_first(list(argv)))
    if args.time is None:
        args.time = "real" if args.forward is not None else "virtual"
    clock = None
    if args.time == "virtual":
        from trio._core import MockClock  # = trio.testing.MockClock, without importing pytest
        clock = MockClock(autojump_threshold=0)
    stdout = sys.stdout
    sys.stdout = lines = WholeLines(stdout)
    try:
        with routed():
            status = _real_trio_run(_run_world, args, clock=clock)
    finally:
        lines.close_lines()
        sys.stdout = stdout
    followed = getattr(args, "followed", None)
    if followed is not None:
        name, path = followed
        print(f"path of the first data {name} sent:\n{path}" if path.hops else
              f"path: {name} sent no data", file=sys.stderr)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
