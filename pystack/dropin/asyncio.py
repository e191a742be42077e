"""The asyncio face: an asyncio event loop that runs inside the network's trio run.

Read first: DESIGN.md §5 ("Drop-in faces"), Lib/asyncio/base_events.py (run_forever,
_run_once: one iteration is "wait for I/O or the next timer, then run what is ready"),
Lib/asyncio/selector_events.py (how transports, servers and the sock_* methods call the socket
object and register descriptors), Lib/asyncio/runners.py (asyncio.run), then
pystack/dropin/blocking.py (the socket objects asyncio makes here) and
pystack/dropin/trio.py (`run_nonblocking`).

`EventLoop` is asyncio's own `SelectorEventLoop` with three things changed:
- **time** is trio's clock, so virtual time reaches `asyncio.sleep`, `wait_for`,
  `call_later` and every timeout built on them;
- **waiting** happens in trio: the loop's driver task awaits the next timer's deadline or a
  nudge, and then runs `_run_once`, whose `select()` only asks (it never blocks: the waiting
  is done). The selector is an epoll: each registered emulated socket carries a wait-queue
  entry (`add_wait_queue`) that marks it and nudges the loop when the kernel wakes it, so a
  wait costs nothing per idle descriptor; real descriptors are waited on with trio's epoll.
  Between iterations other trio tasks (other hosts, ksoftirqd, the wire) run;
- **descriptors** are told apart: a number the loop's process holds as a socket is
  emulated, any other is real (the blocking face's rule). The loop has no self-pipe: a wake-up
  from another thread goes through trio's token, so every descriptor in the loop is one the
  program registered.

Everything else — transports, streams, protocols, servers, `sock_*`, datagram endpoints,
tasks, futures — is the standard library's code, unchanged. asyncio makes its sockets with
`socket.socket`, which the blocking face makes emulated inside a process context; their calls
are non-blocking, and `run_nonblocking` answers them at once in the trio thread. (A blocking
socket called from asyncio code is answered too if the call need not wait; one that would
wait raises RuntimeError, since waiting would stop every host.)

A loop belongs to the process it was made in (`pystack.kernel.sched.current`); made outside
every process its sockets are the real ones (its time is still trio's). It is running only
while its driver task runs an iteration: `asyncio.get_running_loop()` answers inside its
callbacks and tasks, and other trio code around it sees no running loop.

Two ways in:
- trio side: `await pystack.asyncio_run(main(), host=h)` (or, without `host`, inside
  `async with h.process(...)`), as `asyncio.run` (cancelling the trio caller cancels the
  asyncio task, which may clean up);
- a script (`run_script`, `python -m pystack run`): `install()` routes `asyncio.new_event_loop`
  in emulated threads here, so `asyncio.run`, `asyncio.Runner` and
  `new_event_loop().run_until_complete` work unchanged; `run_forever` crosses from the
  script's thread into the trio run (`blocking.call_in_trio`) and back when it stops.

Why not trio-asyncio (the plan's suggestion): importing it replaces asyncio's event-loop
policy and `new_event_loop`/`get_event_loop`/`get_running_loop` for the whole interpreter, so
`asyncio.run` anywhere (outside every process, outside trio) runs on its SyncTrioEventLoop —
code outside a process context would no longer be untouched; and its reader/writer waits go to
trio's epoll on the raw number, which emulated descriptors are not. What it would have given
(a loop on trio's clock) is the small part; see docs/design.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import heapq
import math
import selectors
import sys as _sys
import threading
from typing import Any, Callable, Iterator

import sniffio
import trio

from ..kernel.sched import current
from ..net import socket as sys
from ..net.core.sock import add_wait_queue, remove_wait_queue
from ..net.ipv4.udp import POLLERR, POLLHUP, POLLIN, POLLOUT
from . import blocking
from .trio import current_task, emulated_getaddrinfo, emulated_getnameinfo

__all__ = ["EventLoop", "asyncio_run", "new_event_loop", "install", "uninstall", "installed"]

_real_new_event_loop = asyncio.events.new_event_loop


def _poll_mask(events: int) -> int:
    return (POLLIN if events & selectors.EVENT_READ else 0) | \
        (POLLOUT if events & selectors.EVENT_WRITE else 0)


def _selector_events(revents: int) -> int:
    """poll bits → selector events, as EpollSelector reads them (errors and hang-ups wake
    both directions)."""
    return (selectors.EVENT_READ if revents & ~POLLOUT else 0) | \
        (selectors.EVENT_WRITE if revents & ~POLLIN else 0)


def _socket_at(task: Any, fd: int) -> Any:
    """The socket the process's descriptor `fd` holds, or None (no such descriptor, or not a
    socket, or a closed one)."""
    table = task.files.fds
    f = table[fd] if 0 <= fd < len(table) else None
    sock = getattr(f, "private_data", None) if f is not None else None
    return sock if getattr(sock, "sk", None) is not None else None


class _Selector(selectors._BaseSelectorImpl):  # the key bookkeeping of every stdlib selector
    """The loop's selector, an epoll over emulated sockets (fs/eventpoll.c's shape).

    Registering an emulated descriptor adds an entry to its socket's wait queue
    (`add_wait_queue`): every wake-up of the socket marks the descriptor as a candidate and
    nudges the loop, so a wait costs nothing per registered descriptor, and `select()` asks
    only the candidates. A candidate found ready stays one (level-triggered, as epoll's
    default); one found not ready waits for its next wake-up. A descriptor closed (or whose
    number now holds another socket) while registered is skipped, as epoll drops a closed
    file. Real descriptors are asked every time, and waited on with trio's own epoll.

    `select()` never blocks: the loop's driver task has waited already (`wait()`)."""

    def __init__(self, loop: "EventLoop"):
        super().__init__()
        self._loop = loop
        self._watched: dict[int, tuple[Any, Callable[[Any], None]]] = {}  # fd → (sk, entry)
        self._candidates: dict[int, None] = {}  # ordered: the order of wake-ups
        self._real: dict[int, None] = {}

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        key = super().register(fileobj, events, data)
        task = self._loop._process
        if task is None or not blocking._sync(self._watch, task, key.fd):
            self._real[key.fd] = None
        self._loop._nudge()
        return key

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        key = super().unregister(fileobj)
        self._real.pop(key.fd, None)
        self._candidates.pop(key.fd, None)
        watched = self._watched.pop(key.fd, None)
        if watched is not None:
            blocking._sync(remove_wait_queue, *watched)
        self._loop._nudge()
        return key

    def close(self) -> None:
        for sk, entry in self._watched.values():
            blocking._sync(remove_wait_queue, sk, entry)
        self._watched.clear()
        super().close()

    def _watch(self, task: Any, fd: int) -> bool:
        sock = _socket_at(task, fd)
        if sock is None:
            return False
        entry = functools.partial(self._woken, fd)
        add_wait_queue(sock.sk, entry)
        self._watched[fd] = (sock.sk, entry)
        self._candidates[fd] = None
        return True

    def _woken(self, fd: int, sk: Any) -> None:
        """The wait-queue entry (ep_poll_callback): runs in whoever woke the socket."""
        self._candidates[fd] = None
        self._loop._nudge()

    def _poll(self) -> list[tuple[int, int]]:
        """[(fd, revents)] of the ready descriptors, asking the candidates and the real ones;
        the ready candidates stay candidates."""
        ready = []
        if self._candidates:
            task = self._loop._process
            sys._enter(task)
            keys = self._fd_to_key
            for fd in self._candidates:
                sock = _socket_at(task, fd)
                if sock is None or sock.sk is not self._watched[fd][0]:
                    continue
                revents = sock.ops.poll(sock) & (_poll_mask(keys[fd].events) | POLLERR | POLLHUP)
                if revents:
                    ready.append((fd, revents))
            self._candidates = dict.fromkeys(fd for fd, _ in ready)
        if self._real:
            p = blocking._real["poll"]()
            for fd in self._real:
                p.register(fd, _poll_mask(self._fd_to_key[fd].events))
            ready += [(fd, ev) for fd, ev in p.poll(0) if not ev & sys.POLLNVAL]
        return ready

    def ready_now(self) -> bool:
        return bool(self._poll())

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        out = []
        for fd, revents in self._poll():
            key = self._fd_to_key[fd]
            events = _selector_events(revents) & key.events
            if events:
                out.append((key, events))
        return out

    async def wait(self) -> None:
        """Until a real descriptor is ready (emulated ones nudge the loop when woken)."""
        if self._real:
            real = [(fd, _poll_mask(self._fd_to_key[fd].events)) for fd in self._real]
            await blocking._poll_async(None, [], real, None)
        else:
            await trio.sleep_forever()


class EventLoop(asyncio.SelectorEventLoop):
    """asyncio's selector event loop, driven from the trio run, on trio's clock, over the
    descriptors of the process it was made in (see the module docstring)."""

    def __init__(self) -> None:
        if blocking._in_trio_thread():
            self._trio_token = trio.lowlevel.current_trio_token()
            self._trio_clock = trio.lowlevel.current_clock()
        else:  # made in an emulated thread (asyncio.run in a script)
            self._trio_token = blocking._TOKEN.get()
            if self._trio_token is None:
                raise RuntimeError("pystack's asyncio loop is made inside the network's trio "
                                   "run or in a thread of one of its processes")
            self._trio_clock = trio.from_thread.run_sync(trio.lowlevel.current_clock,
                                                         trio_token=self._trio_token)
        self._process = current_task()
        self._wait_scope: trio.CancelScope | None = None
        self._jobs = 0                          # run_in_executor calls still running
        self._jobs_done: asyncio.Future | None = None
        super().__init__(_Selector(self))

    def __repr__(self) -> str:
        where = "real" if self._process is None else \
            f"{self._process.host.name}:{self._process.pid}"
        return (f"<pystack EventLoop {where} running={self.is_running()} "
                f"closed={self.is_closed()} debug={self.get_debug()}>")

    # -- time -----------------------------------------------------------------------------------
    def time(self) -> float:
        return self._trio_clock.current_time()

    # -- no self-pipe: wake-ups go through trio ----------------------------------------------
    def _make_self_pipe(self) -> None:
        self._ssock = self._csock = None

    def _close_self_pipe(self) -> None:
        pass

    def _write_to_self(self) -> None:
        """call_soon_threadsafe's wake-up, from any thread."""
        with contextlib.suppress(trio.RunFinishedError):
            self._trio_token.run_sync_soon(self._nudge)

    def _nudge(self) -> None:
        """New work from outside the loop's own iteration (another trio task, a thread's
        call_soon_threadsafe): stop waiting and look again."""
        scope = self._wait_scope
        if scope is not None and threading.get_ident() == self._thread_id:
            scope.cancel()

    def _call_soon(self, callback: Any, args: Any, context: Any) -> asyncio.Handle:
        handle = super()._call_soon(callback, args, context)
        self._nudge()
        return handle

    def call_at(self, when: float, callback: Callable[..., Any], *args: Any,
                context: contextvars.Context | None = None) -> asyncio.TimerHandle:
        timer = super().call_at(when, callback, *args, context=context)
        self._nudge()
        return timer

    # -- running --------------------------------------------------------------------------------
    def run_forever(self) -> None:
        """From a thread of a process (a script's asyncio.run): run in the trio run until
        stop(). The trio thread itself cannot block: there, await run_forever_async()."""
        if blocking._in_trio_thread():
            raise RuntimeError("pystack's asyncio loop cannot block the trio run: from trio "
                               "code, `await pystack.asyncio_run(main())` (or "
                               "`await loop.run_until_complete_async(...)`)")
        self._check_closed()
        self._check_running()
        if self._process is not None and self._process.exited:
            raise RuntimeError(f"process {self._process.pid} has exited: its loop cannot run")
        try:
            return blocking.call_in_trio(self.run_forever_async, trio_token=self._trio_token)
        except BaseException:
            if self._process is not None and self._process.exited:
                # Stopped under the loop (the run's end stops a server as a SIGTERM would):
                # like a killed process, its unfinished tasks go without a word.
                for task in asyncio.all_tasks(self):
                    task._log_destroy_pending = False
            raise

    async def run_forever_async(self) -> None:
        """Run until stop() is called (BaseEventLoop.run_forever, awaiting in trio)."""
        self._check_closed()
        self._check_running()
        self._set_coroutine_origin_tracking(self._debug)
        self._thread_id = threading.get_ident()
        try:
            while True:
                await self._wait_for_work()
                with self._running():
                    self._run_once()
                if self._stopping:
                    break
        finally:
            self._stopping = False
            self._thread_id = None
            self._set_coroutine_origin_tracking(False)

    async def run_until_complete_async(self, future: Any) -> Any:
        """BaseEventLoop.run_until_complete from trio. If the trio caller is cancelled, the
        future is cancelled and the loop runs (shielded) until it is done, so asyncio code
        can clean up as it would on a cancellation; then trio's Cancelled goes on."""
        self._check_closed()
        self._check_running()
        new_task = not asyncio.isfuture(future)
        future = asyncio.ensure_future(future, loop=self)
        if new_task:
            future._log_destroy_pending = False  # an unfinished task raises below instead
        future.add_done_callback(_stop_when_done)
        try:
            try:
                await self.run_forever_async()
            except trio.Cancelled:
                future.cancel()
                with trio.CancelScope(shield=True):
                    while not future.done():
                        await self.run_forever_async()
                raise
        except BaseException:
            if new_task and future.done() and not future.cancelled():
                future.exception()  # consumed: the caller sees the trio exception
            raise
        finally:
            future.remove_done_callback(_stop_when_done)
        if not future.done():
            raise RuntimeError("Event loop stopped before Future completed.")
        return future.result()

    async def _wait_for_work(self) -> None:
        """What _run_once's select(timeout) would wait for, awaited in trio: a ready
        descriptor, the earliest timer, or a nudge (a socket's wake-up, new work from another
        task or thread). With work at hand it waits for nothing, but the loop still yields to
        trio once an iteration, so other tasks run."""
        if self._ready or self._stopping or self._selector.ready_now():
            await trio.lowlevel.checkpoint()
            return
        scheduled = self._scheduled
        while scheduled and scheduled[0]._cancelled:  # as _run_once drops them
            self._timer_cancelled_count -= 1
            heapq.heappop(scheduled)._scheduled = False
        deadline = scheduled[0]._when if scheduled else math.inf
        with trio.CancelScope(deadline=deadline) as scope:
            self._wait_scope = scope
            try:
                await self._selector.wait()
            finally:
                self._wait_scope = None

    @contextlib.contextmanager
    def _running(self) -> Iterator[None]:
        """During one iteration the loop is the running loop of the thread, its async
        generator hooks are in force, and sniffio says "asyncio" (trio's task would say
        "trio"); other trio code, between iterations, sees none of this."""
        hooks = _sys.get_asyncgen_hooks()
        library = sniffio.thread_local.name
        outer = asyncio.events._get_running_loop()  # a host loop, if trio runs as a guest
        asyncio.events._set_running_loop(self)
        _sys.set_asyncgen_hooks(firstiter=self._asyncgen_firstiter_hook,
                                finalizer=self._asyncgen_finalizer_hook)
        sniffio.thread_local.name = "asyncio"
        try:
            yield
        finally:
            sniffio.thread_local.name = library
            _sys.set_asyncgen_hooks(*hooks)
            asyncio.events._set_running_loop(outer)

    # -- names: the host's resolver ------------------------------------------------------------
    async def getaddrinfo(self, host: Any, port: Any, *, family: int = 0, type: int = 0,
                          proto: int = 0, flags: int = 0) -> list[tuple]:
        if self._process is None:
            return await super().getaddrinfo(host, port, family=family, type=type,
                                             proto=proto, flags=flags)
        return emulated_getaddrinfo(self._process, host, port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr: Any, flags: int = 0) -> tuple[str, str]:
        if self._process is None:
            return await super().getnameinfo(sockaddr, flags)
        return emulated_getnameinfo(self._process, sockaddr, flags)

    # -- the default executor: emulated threads of the process ---------------------------------
    def run_in_executor(self, executor: Any, func: Callable[..., Any], *args: Any
                        ) -> asyncio.Future:
        """With no executor given (nor set as default), `func` runs in a new emulated thread
        of the loop's process, as `trio.to_thread.run_sync` there would: its socket calls
        reach the host and the clock waits for it."""
        self._check_closed()
        if executor is not None or self._default_executor is not None or self._process is None:
            return super().run_in_executor(executor, func, *args)
        self._check_default_executor()
        if self._debug:
            self._check_callback(func, "run_in_executor")
        fut = self.create_future()
        self._jobs += 1
        context = contextvars.copy_context()
        context.run(current.set, self._process)
        spawn = trio.lowlevel.spawn_system_task
        if blocking._in_trio_thread():
            spawn(self._job, fut, func, args, context=context)
        else:
            trio.from_thread.run_sync(lambda: spawn(self._job, fut, func, args,
                                                    context=context),
                                      trio_token=self._trio_token)
        return fut

    async def _job(self, fut: asyncio.Future, func: Callable[..., Any], args: tuple) -> None:
        try:
            result: Any = await blocking.run_sync(func, *args)
            error: BaseException | None = None
        except trio.Cancelled:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the future, as an executor does
            result, error = None, exc
        finally:
            self._jobs -= 1
        if self.is_closed():
            return
        self.call_soon(_settle, fut, result, error)
        if self._jobs == 0 and self._jobs_done is not None:
            self.call_soon(_settle, self._jobs_done, None, None)

    async def shutdown_default_executor(self) -> None:
        await super().shutdown_default_executor()
        if self._jobs:
            self._jobs_done = self.create_future()
            await self._jobs_done

    # -- what an emulated process cannot do ----------------------------------------------------
    def add_signal_handler(self, sig: int, callback: Callable[..., Any], *args: Any) -> None:
        raise NotImplementedError("signal handlers on pystack's asyncio loop are not "
                                  "implemented yet (emulated processes get no signals)")

    async def _sock_sendfile_native(self, sock: Any, file: Any, offset: int,
                                    count: int | None) -> int:
        if blocking._emu(sock) is not None:
            # os.sendfile needs a real descriptor; asyncio falls back to send().
            raise asyncio.exceptions.SendfileNotAvailableError(
                "os.sendfile() cannot write to an emulated socket")
        return await super()._sock_sendfile_native(sock, file, offset, count)


def _stop_when_done(fut: asyncio.Future) -> None:
    """base_events._run_until_complete_cb: stop the loop when the future is done (unless it
    ended the loop by SystemExit/KeyboardInterrupt already)."""
    if not fut.cancelled():
        exc = fut.exception()
        if isinstance(exc, (SystemExit, KeyboardInterrupt)):
            return
    fut.get_loop().stop()


def _settle(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


# -- the trio side -------------------------------------------------------------------------------
async def asyncio_run(main: Any, *, host: Any = None, name: str = "asyncio",
                      debug: bool | None = None) -> Any:
    """`asyncio.run(main)` from trio code: run the coroutine on a new asyncio loop in the same
    trio run, on trio's clock, in a new process `name` of `host` (or, without `host`, in the
    current process: inside `async with host.process(...)`); then cancel what is left,
    finalize async generators, wait for executor threads, close the loop. Cancelling the trio
    caller cancels `main` (which may clean up), then raises trio's Cancelled."""
    if not asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    if host is not None:
        async with host.process(name):
            return await asyncio_run(main, debug=debug)
    install()
    try:
        loop = EventLoop()
        try:
            if debug is not None:
                loop.set_debug(debug)
            return await loop.run_until_complete_async(main)
        finally:
            with trio.CancelScope(shield=True):
                await _shutdown(loop)
            loop.close()
    finally:
        uninstall()


async def _shutdown(loop: EventLoop) -> None:
    """asyncio.Runner.close's work: cancel the loop's remaining tasks and let them finish,
    then shut down async generators and the default executor."""
    tasks = asyncio.all_tasks(loop)
    if tasks:
        for task in tasks:
            task.cancel()
        await loop.run_until_complete_async(asyncio.gather(*tasks, return_exceptions=True))
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                loop.call_exception_handler({
                    "message": "unhandled exception during asyncio_run() shutdown",
                    "exception": task.exception(), "task": task})
    await loop.run_until_complete_async(loop.shutdown_asyncgens())
    await loop.run_until_complete_async(loop.shutdown_default_executor())


# -- routing for scripts -------------------------------------------------------------------------
def new_event_loop() -> asyncio.AbstractEventLoop:
    """`asyncio.new_event_loop` (and so `asyncio.run` and `asyncio.Runner`): pystack's loop
    in an emulated thread, the standard one anywhere else."""
    if blocking.in_emulated_thread():
        return EventLoop()
    return _real_new_event_loop()


_ROUTES = blocking.Patches(lambda: [(asyncio.events, "new_event_loop", new_event_loop),
                                    (asyncio, "new_event_loop", new_event_loop)])


def install() -> None:
    """The blocking face (asyncio makes its sockets through it), and `asyncio.new_event_loop`
    routed for emulated threads. Nested calls count."""
    blocking.install()
    _ROUTES.install()


def uninstall() -> None:
    _ROUTES.uninstall()
    blocking.uninstall()


@contextlib.contextmanager
def installed() -> Iterator[None]:
    install()
    try:
        yield
    finally:
        uninstall()
