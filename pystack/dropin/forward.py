"""A real localhost port that leads into the emulated network: `python -m pystack run --forward`.

Read first: pystack/dropin/trio.py (EmulatedSocket, and why the trio hooks build real sockets
outside every process context), pystack/dropin/runner.py (`_run_together`, which starts this),
man 7 tcp (SO_LINGER with a zero timeout: close sends RST), man 2 shutdown.

`PortForwarder` listens on a real socket at 127.0.0.1:PORT. For each connection the real
kernel accepts, a process `forward` on an emulated host opens an emulated TCP connection to
the target (host and port), and two pumps carry bytes across, one each way:

- data read on one side is written to the other, in order, as it comes;
- end of stream (a FIN, `shutdown(SHUT_WR)`) read on one side becomes `shutdown(SHUT_WR)` on
  the other, so half-closed conversations (`nc -N`, HTTP/1.0 clients) work;
- an error (ECONNRESET, EPIPE, ETIMEDOUT ...) on either side aborts both: the socket is closed
  with SO_LINGER {on, 0}, which sends RST, so the peer on the far side sees a reset too. An
  emulated connect that fails (ECONNREFUSED: nothing listens) resets the real connection.

The real sockets are the stdlib's, made and accepted outside every process context (so the
blocking face's `socket` class and trio's socket factory give real ones) and wrapped with
`trio.socket.from_stdlib_socket`. The emulated sockets belong to one process of the
forwarding host, spawned without entering its context: nothing in the pumps runs "inside"
the emulated host except the EmulatedSocket calls themselves.

Time: the real peer lives in real time, so a network with a forwarded port should run on
trio's real clock. Under an autojump MockClock, virtual time races ahead whenever every task
waits for the real peer (timers fire early); `run --forward --time virtual` allows it.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
from typing import TYPE_CHECKING, Any

import trio

from .trio import EmulatedSocket

if TYPE_CHECKING:
    from ..host import Host

__all__ = ["PortForwarder", "parse_forward"]

BUFSIZE = 65536
LISTEN_BACKLOG = 128
_LINGER_RESET = struct.pack("ii", 1, 0)  # struct linger {l_onoff = 1, l_linger = 0}


def parse_forward(spec: str) -> tuple[int, int]:
    """`PORT[:PORT]` → (real listening port, emulated target port). The second defaults to
    the first; a listening port of 0 takes any free port (then the target must be given)."""
    parts = spec.split(":")
    if len(parts) > 2:
        raise ValueError(f"--forward takes PORT or PORT:PORT, not {spec!r}")
    try:
        ports = [int(p) for p in parts]
    except ValueError:
        raise ValueError(f"--forward takes PORT or PORT:PORT, not {spec!r}") from None
    listen, target = ports[0], ports[-1]
    if len(ports) == 1 and listen == 0:
        raise ValueError("--forward 0 listens on any free port: name the server's port, "
                         "as in --forward 0:8888")
    if not 0 <= listen <= 65535 or not 1 <= target <= 65535:
        raise ValueError(f"ports are 1-65535 (0 to listen on any free port), not {spec!r}")
    return listen, target


def _abort(sock: Any) -> None:
    """Close with RST (SO_LINGER {1, 0}), as Linux does for an abortive close."""
    try:
        sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_LINGER, _LINGER_RESET)
    except OSError:
        pass  # already reset or closed: close quietly
    sock.close()


class PortForwarder:
    """Real 127.0.0.1:`listen_port` → `target`:`port`, from a process on host `via`."""

    def __init__(self, via: "Host", target: str, port: int, listen_port: int):
        self.via = via
        self.target = target
        self.port = port
        self.listen_port = listen_port
        self.accepted = 0   # real connections accepted
        self.refused = 0    # of which the emulated connect failed (the real one was reset)
        self.resets = 0     # connections ended by a reset on either side
        self.active = 0     # connections being carried now
        self._listener: trio.socket.SocketType | None = None
        self._idle = trio.lowlevel.ParkingLot()  # woken as a connection ends

    def open(self) -> int:
        """Bind and listen on 127.0.0.1 (SO_REUSEADDR, as servers do); returns the port. Call
        outside every process context. OSError (EADDRINUSE ...) as the real kernel says."""
        sock = _stdsocket.socket(_stdsocket.AF_INET, _stdsocket.SOCK_STREAM)
        try:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.listen_port))
            sock.listen(LISTEN_BACKLOG)
        except OSError:
            sock.close()
            raise
        self.listen_port = sock.getsockname()[1]
        self._listener = trio.socket.from_stdlib_socket(sock)
        return self.listen_port

    def close(self) -> None:
        """Stop accepting (connections being carried go on)."""
        if self._listener is not None:
            self._listener.close()

    async def serve(self) -> None:
        """Accept real connections and carry each into the emulated network, until cancelled
        or closed. The emulated sockets belong to one process `forward` of the host."""
        if self._listener is None:
            self.open()
        listener = self._listener
        task = self.via.spawn_task("forward")
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    try:
                        real, _addr = await listener.accept()
                    except (trio.ClosedResourceError, OSError):
                        if listener.fileno() == -1:
                            return  # closed: stop accepting
                        raise
                    self.accepted += 1
                    self.active += 1
                    nursery.start_soon(self._carry, real, task)
        finally:
            listener.close()
            self.via._exit_task(task)

    async def wait_idle(self) -> None:
        """Until no connection is being carried."""
        while self.active:
            await self._idle.park()

    async def _carry(self, real: Any, task: Any) -> None:
        emulated = None
        try:
            try:
                emulated = EmulatedSocket.create(task, _stdsocket.AF_INET,
                                                 _stdsocket.SOCK_STREAM)
                await emulated.connect((self.target, self.port))
            except OSError:  # ECONNREFUSED, ETIMEDOUT, EMFILE ...: the real peer sees a reset
                self.refused += 1
                _abort(real)
                return
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._pump, real, emulated, nursery.cancel_scope)
                nursery.start_soon(self._pump, emulated, real, nursery.cancel_scope)
        finally:
            real.close()
            if emulated is not None:
                emulated.close()
            self.active -= 1
            self._idle.unpark_all()

    async def _pump(self, src: Any, dst: Any, both: trio.CancelScope) -> None:
        """src → dst until end of stream (then half-close dst) or an error on either side
        (ECONNRESET, EPIPE, ETIMEDOUT ...: then abort both, so each peer sees a reset)."""
        try:
            while True:
                data = await src.recv(BUFSIZE)
                if not data:
                    dst.shutdown(_stdsocket.SHUT_WR)
                    return
                view = memoryview(data)
                while view:
                    view = view[await dst.send(view):]
        except trio.ClosedResourceError:
            return  # the other pump aborted both sockets
        except OSError:
            self.resets += 1
            both.cancel()
            _abort(src)
            _abort(dst)
