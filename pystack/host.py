"""An emulated host: a small Linux kernel with CPUs, devices, IPv4 and processes.

Read first: DESIGN.md §1-2. Nothing in here is on a packet's path: this is the public face
over the kernel objects (the namespace `host.net`, its devices and tables) plus the process
contexts and `ping`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket as _stdsocket
from typing import TYPE_CHECKING, Any, AsyncIterator

import attrs
import trio

from .drivers.net.loopback import LoopbackDevice
from .dropin.trio import EmulatedSocket
from .fs.file import FdTable
from .kernel.sched import Cpu, Task, current, run_ksoftirqd
from .kernel.softirq import NET_RX_SOFTIRQ, NET_TX_SOFTIRQ, local_bh_disable, local_bh_enable
from .net.core.dev import Napi, NetDevice, net_rx_action, net_tx_action, process_backlog
from .net.core.dev import register_netdevice
from .net.core.neighbour import NUD_NAMES, NUD_VALID
from .net.core.net_namespace import Net
from .net.ipv4.af_inet import inet_init
from .net.ipv4.inet_connection_sock import tcp_init
from .net.ipv4.inet_diag import inet_diag_timer
from .net.ipv4.ip_sockglue import IP_RECVERR, IP_TTL
from .net.ipv4.devinet import InDevice, inet_insert_ifa
from .net.ipv4.fib import RT_TABLE_MAIN, RTN_NAMES, RTN_UNICAST, RTPROT_BOOT, FibAlias
from .net.ipv4.devinet import RT_SCOPE_LINK, RT_SCOPE_UNIVERSE
from .net.ipv4.ping import PingEndpoint
from .net.ipv4.tcp_states import TCP_STATE_NAMES
from .net.ipv4.route import RouteError, ip_route_output
from .net.ipv4.icmp import _icmp_push
from .trace import PathTrace
from .uapi.errqueue import SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_LOCAL, SockExtendedErr
from .uapi.ethernet import mac_str
from .uapi.icmp import ICMP_DEST_UNREACH, ICMP_ECHO, ICMP_PORT_UNREACH, ICMP_TIME_EXCEEDED
from .uapi.ip import ip_int, ip_str
from .net.ipv4.udp import ICMP_ERR_CONVERT
from .views import (CachedRoute, NeighbourEntry, NeighbourList, RouteList, SocketEntry,
                    SocketList, Stats, Traceroute, TracerouteHop, TracerouteProbe)

if TYPE_CHECKING:
    from .world import Network

IRQ_BASE = 24  # the first interrupt line handed to a NIC, as on a PC's IO-APIC


class Host:
    """One emulated machine. Made by `Network.add_host`."""

    def __init__(self, network: "Network", name: str, cpus: int = 1):
        if cpus < 1:
            raise ValueError(f"a host needs at least one CPU, got cpus={cpus}")
        self.network = network
        self.name = name
        self.net = Net(self, network.seed, network.tracer)
        self.cpus = [Cpu(self, i) for i in range(cpus)]
        self.this_cpu = self.cpus[0]
        for cpu in self.cpus:
            cpu.softirq_vec[NET_RX_SOFTIRQ] = net_rx_action
            cpu.softirq_vec[NET_TX_SOFTIRQ] = net_tx_action
            cpu.backlog = Napi(process_backlog, self.net.sysctl.dev_weight, cpu, None,
                               f"backlog/{cpu.id}")
        self._irq = IRQ_BASE - 1
        inet_init(self.net)
        tcp_init(self.net)
        lo = LoopbackDevice(self.net, self.cpus[0])
        self._register(lo)
        self.net.loopback_dev = lo
        inet_insert_ifa(lo, ip_int("127.0.0.1"), 8)
        self._pid = 1
        self.init_task = Task(self, 1, "init", FdTable(), self.cpus[0])
        self.tasks: dict[int, Task] = {1: self.init_task}
        self._ping_ident = self.net.rng("ping").randrange(1, 65536)
        self.running = False

    def __repr__(self) -> str:
        return f"<Host {self.name}>"

    # -- kernel plumbing ------------------------------------------------------------------------
    def new_irq(self) -> int:
        self._irq += 1
        return self._irq

    def _register(self, dev: NetDevice) -> None:
        register_netdevice(self.net, dev)
        dev.ip_ptr = InDevice(dev)
        dev.ip_ptr.forwarding = bool(self.net.sysctl.ip_forward)
        self.network._device_added(self, dev)

    def _start(self, nursery: trio.Nursery) -> None:
        if self.running:
            return
        self.running = True
        for cpu in self.cpus:
            nursery.start_soon(run_ksoftirqd, cpu, name=f"{self.name}/ksoftirqd/{cpu.id}")

    @contextlib.contextmanager
    def _kernel(self) -> Any:
        """Run kernel code from outside any context (the API): on CPU 0, bottom halves off."""
        cpu = self.cpus[0]
        prev = self.this_cpu
        self.this_cpu = cpu
        local_bh_disable(cpu)
        try:
            yield cpu
        finally:
            local_bh_enable(cpu)
            self.this_cpu = prev

    # -- configuration --------------------------------------------------------------------------
    @property
    def sysctl(self) -> Any:
        return self.net.sysctl

    def set_sysctl(self, name: str, value: Any) -> None:
        self.net.sysctl[name] = value
        if name == "net.ipv4.ip_forward":
            for dev in self.net.dev_base.values():
                dev.ip_ptr.forwarding = bool(self.net.sysctl.ip_forward)
            self.net.mib.ip["Forwarding"] = 1 if self.net.sysctl.ip_forward else 2
            self.net.ipv4.fib.genid += 1

    @property
    def interfaces(self) -> dict[str, NetDevice]:
        return dict(self.net.dev_base)

    def interface(self, name: str) -> NetDevice:
        try:
            return self.net.dev_base[name]
        except KeyError:
            raise KeyError(f"host {self.name!r} has no interface {name!r} "
                           f"(it has {', '.join(self.net.dev_base)})") from None

    def add_address(self, dev: str, cidr: str) -> None:
        iface = ipaddress.IPv4Interface(cidr)
        with self._kernel():
            inet_insert_ifa(self.interface(dev), int(iface.ip), iface.network.prefixlen)

    def addresses(self, dev: str | None = None) -> list[str]:
        out = []
        for d in self.net.dev_base.values():
            if dev is not None and d.name != dev:
                continue
            out.extend(str(ifa) for ifa in d.ip_ptr.ifa_list)
        return out

    def address(self, dev: str = "eth0") -> str:
        """The first IPv4 address of `dev`, without its prefix length."""
        ifas = self.interface(dev).ip_ptr.ifa_list
        if not ifas:
            raise LookupError(f"{self.name}:{dev} has no IPv4 address")
        return ip_str(ifas[0].local)

    def resolve(self, name: str) -> int | None:
        """Names this host knows, like its /etc/hosts: localhost, and every host's name."""
        if name in ("localhost", "localhost.localdomain", "ip6-localhost"):
            return 0x7F000001
        if name == self.name:
            return self._first_address() or 0x7F000001
        other = self.network.hosts.get(name)
        if other is not None:
            return other._first_address()
        return None

    def _lookup(self, address: str) -> int:
        """A name this host knows, or a dotted quad; socket.gaierror otherwise."""
        addr = self.resolve(address)
        if addr is None:
            try:
                addr = ip_int(address)
            except ValueError:
                raise _stdsocket.gaierror(_stdsocket.EAI_NONAME,
                                          "Name or service not known") from None
        return addr

    def _first_address(self) -> int:
        for dev in self.net.dev_base.values():
            if dev.name == "lo":
                continue
            for ifa in dev.ip_ptr.ifa_list:
                return ifa.local
        return 0

    def add_route(self, prefix: str, via: str | None = None, dev: str | None = None,
                  *, metric: int = 0, mtu: int = 0) -> None:
        """`ip route add PREFIX [via GW] [dev DEV] [metric N] [mtu N]`."""
        net = ipaddress.IPv4Network("0.0.0.0/0" if prefix == "default" else prefix)
        gw = ip_int(via) if via else 0
        if dev is not None:
            device = self.interface(dev)
        elif gw:
            device = self._device_for_gateway(gw)
        else:
            raise ValueError("add_route needs via= or dev=")
        scope = RT_SCOPE_UNIVERSE if gw else RT_SCOPE_LINK
        fa = FibAlias(int(net.network_address), net.prefixlen, RTN_UNICAST, device, gateway=gw,
                      metric=metric, scope=scope, protocol=RTPROT_BOOT, table=RT_TABLE_MAIN,
                      mtu=mtu)
        try:
            self.net.ipv4.fib.insert(fa, excl=True)
        except FileExistsError:
            raise OSError(errno.EEXIST, "RTNETLINK answers: File exists") from None

    def _device_for_gateway(self, gw: int) -> NetDevice:
        fa = self.net.ipv4.fib.main.lookup(gw)
        if fa is None or fa.gateway or fa.dev is None:
            raise OSError(errno.ENETUNREACH, f"Nexthop has invalid gateway: {ip_str(gw)} is "
                          "not on a connected subnet")
        return fa.dev

    def del_route(self, prefix: str, via: str | None = None, dev: str | None = None,
                  *, metric: int | None = None) -> None:
        net = ipaddress.IPv4Network("0.0.0.0/0" if prefix == "default" else prefix)
        try:
            self.net.ipv4.fib.delete(RT_TABLE_MAIN, int(net.network_address), net.prefixlen,
                                     gateway=ip_int(via) if via else None,
                                     dev=self.interface(dev) if dev else None, metric=metric)
        except LookupError:
            raise OSError(errno.ESRCH, "RTNETLINK answers: No such process") from None

    # -- views ----------------------------------------------------------------------------------
    def routes(self, table: str = "main") -> RouteList:
        """The routing table, printing like `ip route` (table="local" for the local table;
        table="cache" for the learned path MTUs, like `ip route show cache`)."""
        fib = self.net.ipv4.fib
        if table == "cache":
            now = trio.current_time()
            return RouteList(self._cached_route(e.fa, e.daddr, e, now)
                             for e in fib.exceptions.values() if now < e.expires)
        if table not in ("main", "local"):
            raise ValueError(f"no routing table {table!r} (main, local or cache)")
        t = fib.local if table == "local" else fib.main
        return RouteList(t.routes())

    def route_get(self, address: str) -> CachedRoute:
        """The route a packet to `address` would take, printing like `ip route get`.
        OSError(ENETUNREACH) when there is none."""
        addr = self._lookup(address)
        try:
            rt = ip_route_output(self.net, addr)
        except RouteError as e:
            raise OSError(e.errno, os.strerror(e.errno)) from None
        fnhe = self.net.ipv4.fib.exception(rt.fa, rt.daddr) if rt.fa is not None else None
        route = self._cached_route(rt.fa, rt.daddr, fnhe, trio.current_time(), rt=rt)
        return attrs.evolve(route, src=ip_str(rt.saddr), uid=self._current_task().cred.uid)

    @staticmethod
    def _cached_route(fa: FibAlias | None, daddr: int, fnhe: Any, now: float,
                      rt: Any = None) -> CachedRoute:
        expires = mtu = None
        locked = False
        if fnhe is not None and now < fnhe.expires:
            expires, mtu, locked = int(fnhe.expires - now), fnhe.pmtu, fnhe.mtu_locked
        elif fa is not None and fa.mtu:
            mtu = fa.mtu
        if rt is not None:
            gateway, dev, type_ = rt.gateway, rt.dev, rt.type
        else:
            assert fa is not None and fa.dev is not None
            gateway = fa.gateway if fa.scope == RT_SCOPE_UNIVERSE else 0
            dev, type_ = fa.dev, fa.type
        return CachedRoute(ip_str(daddr), dev.name, ip_str(gateway) if gateway else None,
                           type=RTN_NAMES[type_], expires=expires, mtu=mtu,
                           mtu_locked=locked)

    def neighbours(self) -> NeighbourList:
        """The ARP cache, printing like `ip neigh`."""
        rows = NeighbourList()
        for n in self.net.ipv4.arp_tbl.entries.values():
            ll = mac_str(n.ha) if n.nud_state & NUD_VALID else None
            rows.append(NeighbourEntry(ip_str(n.primary_key), ll, n.dev.name,
                                       NUD_NAMES.get(n.nud_state, hex(n.nud_state))))
        return rows

    def neighbour_state(self, address: str, dev: str = "eth0") -> str | None:
        n = self.net.ipv4.arp_tbl.lookup(ip_int(address), self.interface(dev))
        return None if n is None else NUD_NAMES.get(n.nud_state)

    def sockets(self) -> SocketList:
        """Open sockets, printing like `ss -uano`/`ss -tano` (a TCP row with a timer armed
        ends with ss's timer:(name,left,retransmissions) column)."""
        owners: dict[int, tuple[int, int]] = {}
        for task in self.tasks.values():
            for fd, f in enumerate(task.files.fds):
                if f is not None and getattr(f.private_data, "sk", None) is not None:
                    owners[id(f.private_data.sk)] = (task.pid, fd)
        rows = SocketList()
        for sk in self.net.ipv4.udp_table.sockets():
            rows.append(self._socket_row("udp", sk, owners))
        tcp = self.net.ipv4.tcp
        if tcp is not None:
            for sk in tcp.all_sockets():
                rows.append(self._socket_row("tcp", sk, owners))
        return rows

    @staticmethod
    def _socket_row(netid: str, sk: Any, owners: dict) -> SocketEntry:
        local = f"{ip_str(sk.inet_rcv_saddr) if sk.inet_rcv_saddr else '0.0.0.0'}:{sk.inet_num}"
        peer = f"{ip_str(sk.inet_daddr)}:{sk.inet_dport}" if sk.inet_dport else "0.0.0.0:*"
        state = TCP_STATE_NAMES.get(sk.sk_state, str(sk.sk_state))
        pid, fd = owners.get(id(sk), (None, None))
        recv_q = getattr(sk, "recv_q", None)
        send_q = getattr(sk, "send_q", None)
        timer, left, retrans = inet_diag_timer(sk) if netid == "tcp" else ("off", 0.0, 0)
        return SocketEntry(netid, state,
                           recv_q() if callable(recv_q) else sk.sk_rmem_alloc,
                           send_q() if callable(send_q) else sk.sk_wmem_alloc,
                           local, peer, pid, fd, sk.sk_drops, timer, left, retrans)

    def stats(self) -> Stats:
        """A snapshot of the counters (Ip, Icmp, Udp, Tcp … as /proc/net/snmp)."""
        return Stats(self.net.mib.snapshot(), [c.softnet_stat() for c in self.cpus],
                     {name: d.stats.as_dict() for name, d in self.net.dev_base.items()},
                     dict(sorted(self.net.drop_reasons.items())))

    def drops(self) -> dict[str, int]:
        """Dropped packets by Linux drop reason."""
        return dict(sorted(self.net.drop_reasons.items()))

    def softnet_stat(self) -> list[dict[str, int]]:
        return [c.softnet_stat() for c in self.cpus]

    # -- processes and sockets ------------------------------------------------------------------
    def _current_task(self) -> Task:
        task = current.get()
        if task is not None and task.host is self and not task.exited:
            return task
        return self.init_task

    def spawn_task(self, name: str) -> Task:
        self._pid += 1
        cpu = self.cpus[self._pid % len(self.cpus)]
        task = Task(self, self._pid, name, FdTable(), cpu)
        self.tasks[task.pid] = task
        return task

    @contextlib.asynccontextmanager
    async def process(self, name: str = "proc") -> AsyncIterator[Task]:
        """A process context: its own fd table; sockets made inside belong to it, and the
        process's descriptors are closed when it ends."""
        task = self.spawn_task(name)
        token = current.set(task)
        try:
            yield task
        finally:
            current.reset(token)
            self._exit_task(task)

    def _exit_task(self, task: Task) -> None:
        from .net.socket import sys_close
        task.exited = True
        for fd in task.files.open_fds():
            if fd > 2:
                with contextlib.suppress(OSError):
                    sys_close(task, fd)
        self.tasks.pop(task.pid, None)

    def socket(self, family: int = _stdsocket.AF_INET, type: int = _stdsocket.SOCK_STREAM,
               proto: int = 0) -> "EmulatedSocket":
        """A socket in the current process of this host (or its init process), with trio's
        socket interface."""
        return EmulatedSocket.create(self._current_task(), family, type, proto)

    def follow_next_packet(self) -> PathTrace:
        """The next packet this host sends from a socket (for TCP: the next segment carrying
        data) will record every function it passes through, on every host, into the returned
        PathTrace."""
        trace = PathTrace()
        self.net.follow_next = trace
        return trace

    # -- faults -------------------------------------------------------------------------------
    def crash(self) -> None:
        """Pull the plug: the host stops answering; its peers see silence."""
        self.network.crash(self)

    def restart(self) -> None:
        """Boot again with the same interfaces and addresses, and no sockets or processes:
        a peer that sends on an old connection gets a RST, as from a rebooted Linux host."""
        self.network.restart(self)

    # -- ping -----------------------------------------------------------------------------------
    async def ping(self, address: str, *, timeout: float = 10.0, size: int = 56,
                   ttl: int | None = None) -> float:
        """Send one ICMP echo request; return the round-trip time in (virtual) seconds.

        Raises TimeoutError if no reply comes within `timeout`, or OSError with the errno an
        ICMP error maps to (EHOSTUNREACH when ARP resolution fails, ...).
        """
        addr = self._lookup(address)
        ident = self._ping_ident
        self._ping_ident = self._ping_ident % 65535 + 1
        result: dict[str, Any] = {}
        done = trio.Event()

        def on_reply(seq: int, payload: bytes) -> None:
            if seq == 1 and not done.is_set():
                result["time"] = trio.current_time()
                done.set()

        def on_error(type_: int, code: int, info: int) -> None:
            if done.is_set():
                return
            if type_ == ICMP_DEST_UNREACH and code < len(ICMP_ERR_CONVERT):
                result["errno"] = ICMP_ERR_CONVERT[code][0]
            elif type_ == ICMP_TIME_EXCEEDED:
                result["errno"] = errno.EHOSTUNREACH
            else:
                result["errno"] = errno.EPROTO
            done.set()

        table = self.net.ipv4.ping_table
        table[ident] = PingEndpoint(ident, on_reply, on_error)
        try:
            start = trio.current_time()
            with self._kernel():
                try:
                    rt = ip_route_output(self.net, addr)
                except RouteError as e:
                    raise OSError(e.errno, os.strerror(e.errno)) from None
                body = (ident.to_bytes(2, "big") + (1).to_bytes(2, "big")
                        + bytes(i & 0xFF for i in range(size)))
                trace = getattr(self.net, "follow_next", None)
                self.net.follow_next = None
                _icmp_push(self.net, rt, ICMP_ECHO, 0, body, addr, rt.saddr, trace,
                           ttl=ttl)
            with trio.move_on_after(timeout):
                await done.wait()
            if "errno" in result:
                err = result["errno"]
                raise OSError(err, os.strerror(err))
            if "time" not in result:
                raise TimeoutError(f"no echo reply from {ip_str(addr)} within {timeout} s")
            return result["time"] - start
        finally:
            table.pop(ident, None)

    # -- traceroute -----------------------------------------------------------------------------
    async def traceroute(self, address: str, *, max_hops: int = 30, queries: int = 3,
                         port: int = 33434, wait: float = 5.0, first_ttl: int = 1,
                         packetlen: int = 60) -> Traceroute:
        """traceroute(8)'s UDP method: probes with rising TTL (`queries` per hop, destination
        ports from `port` up, one per probe), each from its own socket with IP_TTL and
        IP_RECVERR, each answer read from the error queue (recvmsg MSG_ERRQUEUE). Stops at
        the hop where the destination answers (port unreachable) or an unreachable (!H, !N
        …) comes back. Returns the hops; str() prints them as `traceroute -n` does.
        OSError as traceroute reports it when a probe cannot be sent (ENETUNREACH: no
        route)."""
        if not 1 <= first_ttl <= max_hops <= 255:
            raise ValueError(f"need 1 <= first_ttl <= max_hops <= 255, got first_ttl="
                             f"{first_ttl}, max_hops={max_hops}")
        if packetlen < 28 or packetlen > 65535:
            raise ValueError(f"packetlen must be 28..65535 bytes (IP and UDP headers "
                             f"included), got {packetlen}")
        addr = self._lookup(address)
        dst = ip_str(addr)
        result = Traceroute(dst, max_hops, packetlen)
        payload = bytes(0x40 + (i & 0x3F) for i in range(packetlen - 28))  # "@ABC…", as it
        dport = port
        async with self.process("traceroute") as task:
            for ttl in range(first_ttl, max_hops + 1):
                probes = []
                for _ in range(queries):
                    probes.append(await self._traceroute_probe(task, dst, dport, ttl,
                                                               payload, wait))
                    dport = dport + 1 if dport < 65535 else port
                result.append(TracerouteHop(ttl, tuple(probes)))
                if any(p.address == dst or p.annotation for p in probes):
                    break
        return result

    async def _traceroute_probe(self, task: Task, dst: str, dport: int, ttl: int,
                                payload: bytes, wait: float) -> TracerouteProbe:
        from .net.socket import sys_poll_wait
        with self.socket(_stdsocket.AF_INET, _stdsocket.SOCK_DGRAM) as s:
            s.setsockopt(_stdsocket.IPPROTO_IP, IP_TTL, ttl)
            s.setsockopt(_stdsocket.IPPROTO_IP, IP_RECVERR, 1)
            await s.connect((dst, dport))
            start = trio.current_time()
            await s.send(payload)
            deadline = start + wait
            while True:
                left = deadline - trio.current_time()
                if left <= 0 or not await sys_poll_wait(task, [(s.fileno(), 0x001)], left):
                    return TracerouteProbe(None)
                try:
                    _d, anc, _f, _a = await s.recvmsg(512, 512, _stdsocket.MSG_ERRQUEUE)
                except BlockingIOError:
                    await s.recv(65536)  # a datagram back instead of an error: not ours
                    continue
                rtt = trio.current_time() - start
                ee = SockExtendedErr.parse(anc[0][2])
                if ee.ee_origin not in (SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_LOCAL):
                    continue
                who = ip_str(ee.offender) if ee.offender is not None else dst
                return TracerouteProbe(who, rtt, _traceroute_mark(ee))


def _traceroute_mark(ee: Any) -> str:
    """What traceroute(8) prints after the time for an unreachable: !H, !N, !P … (nothing
    for time exceeded, nor for port unreachable: the destination answered)."""
    if ee.ee_type == ICMP_TIME_EXCEEDED:
        return ""
    if ee.ee_type != ICMP_DEST_UNREACH:
        return f"!<{ee.ee_type}>" if ee.ee_origin == SO_EE_ORIGIN_ICMP else ""
    code = ee.ee_code
    if code == ICMP_PORT_UNREACH:
        return ""
    marks = {0: "!N", 6: "!N", 8: "!N", 11: "!N", 1: "!H", 7: "!H", 12: "!H", 2: "!P",
             4: f"!F-{ee.ee_info}", 5: "!S", 9: "!X", 10: "!X", 13: "!X", 14: "!V", 15: "!C"}
    return marks.get(code, f"!<{code}>")


__all__ = ["Host"]
