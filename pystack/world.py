"""The emulated world: a Network of hosts, switches and the wires between them.

Read first: DESIGN.md §1 (the public face), §3 (time and determinism) and §7 (faults); then
pystack/net/sched/sch_netem.py, the qdisc each direction of a wire runs.

A wire (`Link`) joins two ports. A port belongs to a host's NIC or to a switch. A frame sent
on a port passes that direction's netem qdisc (`link.a_to_b`, `link.b_to_a`: delay, jitter,
loss, duplication, reordering, corruption, rate, queue limit; every draw from a generator
derived from the network's seed), then reaches the other end. Delayed deliveries wait in one
heap served by one trio task, `wire`, which hands every frame due at an instant to its NIC in
one go, in the order they were sent: a burst lands in the rx ring together, as it would at
line rate. Frames with no wait are delivered at once, in the sender's context.

Faults beyond netem: `net.partition(a, b, oneway=)` / `net.heal()` cut frames between hosts
where they reach a host's NIC (by the host that first put them on the wire: a switch passes
that on); `link.hold()` keeps every frame that would reach either end until `link.release()`;
`net.crash(host)` powers a host off and `net.restart(host)` boots it with a fresh kernel on
the same NICs and addresses.

A `Switch` is a learning bridge: it learns source MACs per port (ageing 300 s), forwards known
unicast to its port and floods broadcast, multicast and unknown destinations to every other
port, in port order.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from typing import Any, Callable

import trio

from .drivers.net.nic import EthernetNic, GsoBurst, wire_copy
from .net.core.dev import IFF_LOOPBACK
from .host import Host
from .tap import add_tap
from .dropin.trio import install as install_trio_face
from .kernel.ktime import bind_clock, unbind_clock
from .kernel.sched import seed_trio_scheduler
from .net.core.net_namespace import derive_rng
from .net.ipv4.devinet import inet_insert_ifa
from .net.sched.sch_netem import _KNOBS as NETEM_KNOBS
from .net.sched.sch_netem import Netem
from .pcap import PcapngWriter
from . import programs
from .trace import TraceEvent, Tracer
from .uapi.ethernet import ETH_HLEN

__all__ = ["Network", "Link", "Switch", "LinkProfile"]

SWITCH_AGEING_TIME = 300.0


# The netem qdisc of one link direction is its profile (the name the public face has used).
LinkProfile = Netem


class Port:
    """One end of a link: `transmit` sends a frame toward the other end through this
    direction's netem qdisc (`profile`)."""

    def __init__(self, network: "Network", link: "Link", name: str):
        self.network = network
        self.link = link
        self.name = name
        self.peer: Port | None = None
        self.node: Host | Switch | None = None  # who owns this end (set when attached)
        self.host: Host | None = None  # the node, when it is a host
        self.receive: Callable[..., None] | None = None  # set by the owner
        # ... and for a GsoBurst (drivers/net/nic.py), if the owner takes one whole
        self.receive_burst: Callable[[GsoBurst], None] | None = None
        self.profile = Netem(derive_rng(network.seed, "link", name))
        self.tx_frames = 0
        self.lost_frames = 0   # lost by netem's loss model, a down link, or its queue limit
        self.cut_frames = 0    # dropped by a partition at the host this port faces
        self.crashed_frames = 0  # arrived while this port's host was crashed
        self.nic: EthernetNic | None = None  # the NIC of a host end

    @property
    def netem(self) -> Netem:
        return self.profile

    def set(self, **knobs: Any) -> Netem:
        """Impair this direction only (the frames this port sends): see `Link.set`."""
        return self.profile.set(**knobs)

    def transmit(self, frame: bytearray, trace: Any = None, origin: Host | None = None) -> None:
        """A frame leaves this port. `origin` is the host that first sent it (a switch passes
        it on); by default this port's host."""
        self.tx_frames += 1
        if origin is None:
            origin = self.host
        if not self.link.up:
            self.lost_frames += 1
            return
        netem = self.profile
        if netem.idle:
            self._deliver(frame, trace, origin)  # a plain wire: at once, in the sender's context
            return
        now = trio.current_time() if netem.needs_clock else 0.0
        copies, reason = netem.enqueue(frame, now)
        if reason is not None:
            self.lost_frames += 1
            if trace is not None and not copies:
                trace.hops.append(trace.hops[-1].__class__(trio.current_time(), "wire", 0,
                                                           "wire", f"{self.name}: {reason}"))
        for when, copy in copies:
            tr = trace if copy is frame else None
            if when <= now:
                netem.dequeue_done()
                self._deliver(copy, tr, origin)
            else:
                self.network._schedule(when, self, copy, tr, origin)

    def transmit_burst(self, burst: GsoBurst, origin: Host | None = None) -> None:
        """A burst of frames leaves this port: passed on whole when nothing on the way acts
        on single frames (no netem, hold or partition, a receiver that takes bursts);
        otherwise its frames go one by one."""
        if origin is None:
            origin = self.host
        receive_burst = self.peer.receive_burst
        link = self.link
        if (receive_burst is None or not self.profile.idle or not link.up
                or link.held is not None or self.network._cuts):
            for frame in burst.frames():
                self.transmit(frame, None, origin)
            return
        self.tx_frames += burst.segs
        self.network._wire_origin = origin
        receive_burst(burst)

    def _lost_to_crash(self, frame: bytearray, trace: Any = None) -> None:
        self.crashed_frames += 1

    def _deliver(self, frame: bytearray, trace: Any, origin: Host | None) -> None:
        """The frame reaches the other end: unless the link is held or a partition cuts it."""
        link = self.link
        if link.held is not None:
            link.held.append((self, frame, trace, origin))
            return
        peer = self.peer
        node = peer.node
        if self.network._cuts and isinstance(node, Host):
            if origin is not None and (origin.name, node.name) in self.network._cuts:
                peer.cut_frames += 1
                self.network.partition_drops += 1
                return
        # A switch reads the frame's origin here (`receive` keeps its (frame, trace) form).
        self.network._wire_origin = origin
        peer.receive(frame, trace)


class Link:
    """A wire between two ports. `set()` changes both directions; `a_to_b`/`b_to_a` one."""

    def __init__(self, network: "Network", name: str, subnet: ipaddress.IPv4Network | None):
        self.network = network
        self.name = name
        self.subnet = subnet
        self.a = Port(network, self, f"{name}:a")
        self.b = Port(network, self, f"{name}:b")
        self.a.peer = self.b
        self.b.peer = self.a
        self.up = True
        self.held: list[tuple[Port, bytearray, Any, Host | None]] | None = None

    @property
    def a_to_b(self) -> Netem:
        """The netem qdisc of the a → b direction (set its attributes, or call `.set(...)`)."""
        return self.a.profile

    @property
    def b_to_a(self) -> Netem:
        return self.b.profile

    def set(self, **knobs: Any) -> None:
        """Impair both directions with netem (tc-netem's knobs; see pystack/net/sched/
        sch_netem.py): delay, jitter (seconds, one way), delay_correlation, distribution,
        loss, loss_correlation, loss_model=('gemodel', p, r, 1-h, 1-k), duplicate, reorder,
        gap, corrupt (probabilities in [0, 1], with *_correlation), rate (bits per second),
        limit (frames). Parameters not given are kept."""
        # Validate against both directions before changing either.
        for port in (self.a, self.b):
            trial = Netem()
            for k in NETEM_KNOBS:
                setattr(trial, k, getattr(port.profile, k))
            trial.set(**knobs)
        for port in (self.a, self.b):
            port.profile.set(**knobs)

    # -- hold and release -------------------------------------------------------------------
    def hold(self) -> None:
        """Keep every frame that would reach either end, from now on (frames already on the
        wire included), until `release()`."""
        if self.held is None:
            self.held = []

    def release(self) -> int:
        """Deliver the held frames, in the order they would have arrived, now; returns how
        many were held."""
        held, self.held = self.held, None
        if not held:
            return 0
        for port, frame, trace, origin in held:
            port._deliver(frame, trace, origin)
        return len(held)

    def __repr__(self) -> str:
        return f"<Link {self.name}>"


class Switch:
    """A learning L2 switch."""

    def __init__(self, network: "Network", name: str):
        self.network = network
        self.name = name
        self.ports: list[Port] = []
        self.fdb: dict[bytes, tuple[Port, float]] = {}  # MAC → (port, last seen)
        self.subnet: ipaddress.IPv4Network | None = None
        self._next_host = 1
        self.flooded = 0
        self.forwarded = 0
        self.filtered = 0

    def __repr__(self) -> str:
        return f"<Switch {self.name}>"

    def attach(self, port: Port) -> None:
        self.ports.append(port)
        port.node = self
        port.host = None
        port.receive = lambda frame, trace=None, port=port: self._receive(port, frame, trace)
        port.receive_burst = lambda burst, port=port: self._receive_burst(port, burst)

    def _receive(self, in_port: Port, frame: bytearray, trace: Any) -> None:
        origin = self.network._wire_origin  # the host that sent it onto the wire
        if len(frame) < ETH_HLEN:
            return
        now = trio.current_time()
        src = bytes(frame[6:12])
        if not src[0] & 1:
            self.fdb[src] = (in_port, now)
        dst = bytes(frame[0:6])
        if not dst[0] & 1:
            entry = self.fdb.get(dst)
            if entry is not None and now - entry[1] <= SWITCH_AGEING_TIME:
                out = entry[0]
                if out is in_port:
                    self.filtered += 1
                    return
                self.forwarded += 1
                out.transmit(frame, trace, origin)
                return
        self.flooded += 1
        others = [p for p in self.ports if p is not in_port]
        for i, port in enumerate(others):
            # Every port gets its own copy of the frame, the last one the original.
            port.transmit(frame if i == len(others) - 1 else wire_copy(frame),
                          trace if i == len(others) - 1 else None, origin)

    def _receive_burst(self, in_port: Port, burst: GsoBurst) -> None:
        """A burst, as `_receive` would treat each of its frames (they share their addresses):
        forwarded whole to a known port; flooded frame by frame."""
        origin = self.network._wire_origin
        now = trio.current_time()
        src = burst.src
        if not src[0] & 1:
            self.fdb[src] = (in_port, now)
        dst = burst.dst
        if not dst[0] & 1:
            entry = self.fdb.get(dst)
            if entry is not None and now - entry[1] <= SWITCH_AGEING_TIME:
                out = entry[0]
                if out is in_port:
                    self.filtered += burst.segs
                    return
                self.forwarded += burst.segs
                out.transmit_burst(burst, origin)
                return
        for frame in burst.frames():
            self.network._wire_origin = origin
            self._receive(in_port, frame, None)

    def mac_table(self) -> list[tuple[str, str, float]]:
        from .uapi.ethernet import mac_str
        return [(mac_str(mac), port.name, seen) for mac, (port, seen) in self.fdb.items()]


class Network:
    """The emulated world. All randomness comes from `seed`."""

    def __init__(self, seed: int = 0):
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self.tracer = Tracer()
        self.hosts: dict[str, Host] = {}
        self.switches: dict[str, Switch] = {}
        self.links: list[Link] = []
        self._nursery: trio.Nursery | None = None
        self._nursery_cm: Any = None
        self._heap: list[tuple[float, int, Port, bytearray, Any, Host | None]] = []
        self._cuts: set[tuple[str, str]] = set()  # (from host, to host) pairs cut
        self.partition_drops = 0
        self._wire_origin: Host | None = None
        self._seq = 0
        self._wire_lot = trio.lowlevel.ParkingLot()
        self._wire_sleep_until = math.inf
        self._captures: list[_Capture] = []
        self._auto_subnet = 0

    # -- lifetime -------------------------------------------------------------------------------
    async def __aenter__(self) -> "Network":
        if self._nursery is not None:
            raise RuntimeError("this Network is already running")
        # Deterministic mode: trio's order among simultaneously runnable tasks follows the seed.
        seed_trio_scheduler(derive_rng(self.seed, "trio-scheduler").getrandbits(64))
        # trio.socket, serve_tcp, open_tcp_stream ... in a process context reach its host.
        install_trio_face()
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
        self._clock_before = bind_clock()
        self._nursery.start_soon(self._wire_task, name="wire")
        for host in self.hosts.values():
            host._start(self._nursery)
        return self

    async def __aexit__(self, *exc: Any) -> bool | None:
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()
        try:
            return await self._nursery_cm.__aexit__(*exc)
        finally:
            self._nursery = None
            unbind_clock(self._clock_before)
            for cap in self._captures:
                cap.close()

    # -- building -------------------------------------------------------------------------------
    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("a name must be a non-empty string")
        if name in self.hosts or name in self.switches:
            raise ValueError(f"the network already has a node named {name!r}")

    def add_host(self, name: str, cpus: int = 1) -> Host:
        """A host with lo 127.0.0.1/8 up, and `cpus` CPUs."""
        self._check_name(name)
        host = Host(self, name, cpus)
        self.hosts[name] = host
        if self._nursery is not None:
            host._start(self._nursery)
        return host

    def add_router(self, name: str, cpus: int = 1) -> Host:
        """A host with net.ipv4.ip_forward = 1."""
        host = self.add_host(name, cpus)
        host.set_sysctl("net.ipv4.ip_forward", 1)
        return host

    def add_switch(self, name: str) -> Switch:
        self._check_name(name)
        sw = Switch(self, name)
        self.switches[name] = sw
        return sw

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def add_link(self, a: Host | Switch, b: Host | Switch, subnet: str | None = None, *,
                 mtu: int = 1500, rx_ring: int | None = None) -> Link:
        """A wire between two nodes. A host end gets a new NIC (eth0, eth1 ...) with an address
        from `subnet`: .1 and .2 in argument order between two hosts, the next free one in
        order of linking on a switch."""
        net = ipaddress.IPv4Network(subnet) if subnet is not None else None
        for node in (a, b):
            if isinstance(node, Switch) and node.subnet is not None:
                if net is None:
                    net = node.subnet
                elif net != node.subnet:
                    raise ValueError(f"switch {node.name} is on {node.subnet}, not {net}")
        if net is None:
            net = ipaddress.IPv4Network(f"10.{self._auto_subnet // 256}."
                                        f"{self._auto_subnet % 256}.0/24")
            self._auto_subnet += 1
        link = Link(self, f"{_node_name(a)}-{_node_name(b)}", net)
        self.links.append(link)
        hosts_index = 1
        for node, port in ((a, link.a), (b, link.b)):
            if isinstance(node, Switch):
                if node.subnet is None:
                    node.subnet = net
                node.attach(port)
        for node, port in ((a, link.a), (b, link.b)):
            if isinstance(node, Host):
                switch = next((n for n in (a, b) if isinstance(n, Switch)), None)
                if switch is not None:
                    index = switch._next_host
                    switch._next_host += 1
                else:
                    index = hosts_index
                    hosts_index += 1
                self._attach_nic(node, port, net, index, mtu, rx_ring)
        return link

    def _attach_nic(self, host: Host, port: Port, subnet: ipaddress.IPv4Network, index: int,
                    mtu: int, rx_ring: int | None) -> EthernetNic:
        n = sum(1 for d in host.net.dev_base if d.startswith("eth"))
        name = f"eth{n}"
        rng = derive_rng(self.seed, "mac", host.name, name)
        mac = bytes([0x02] + [rng.randrange(256) for _ in range(5)])
        kwargs = {"rx_ring_size": rx_ring} if rx_ring else {}
        nic = EthernetNic(host.net, name, mac, host.cpus[0], mtu=mtu, **kwargs)
        host._register(nic)
        self._plug(nic, port)
        if index >= subnet.num_addresses - 1:
            raise ValueError(f"subnet {subnet} has no address left for {host.name}")
        addr = int(subnet.network_address) + index
        with host._kernel():
            inet_insert_ifa(nic, addr, subnet.prefixlen)
        return nic

    # -- the wire's clock -----------------------------------------------------------------------
    def _schedule(self, when: float, port: Port, frame: bytearray, trace: Any,
                  origin: Host | None = None) -> None:
        """`port` sent `frame`; deliver it to the other end at `when` (frames due at one
        instant keep the order they were scheduled in)."""
        self._seq += 1
        heap = self._heap
        earliest = heap[0][0] if heap else math.inf
        heapq.heappush(heap, (when, self._seq, port, frame, trace, origin))
        if when < earliest and when < self._wire_sleep_until and self._wire_lot:
            self._wire_lot.unpark_all()

    async def _wire_task(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _when, _seq, port, frame, trace, origin = heapq.heappop(heap)
                port.profile.dequeue_done()
                port._deliver(frame, trace, origin)
            deadline = heap[0][0] if heap else math.inf
            self._wire_sleep_until = deadline
            try:
                with trio.move_on_at(deadline):
                    await self._wire_lot.park()
            finally:
                self._wire_sleep_until = math.inf

    # -- partitions -----------------------------------------------------------------------------
    def _host_names(self, group: Any) -> list[str]:
        items = [group] if isinstance(group, (Host, str)) else list(group)
        names = []
        for item in items:
            name = item.name if isinstance(item, Host) else item
            if name not in self.hosts:
                raise ValueError(f"no host named {name!r} in this network")
            names.append(name)
        return names

    def partition(self, a: Any, b: Any, *, oneway: bool = False) -> None:
        """Cut the network between host (or hosts) `a` and host (or hosts) `b`: frames sent
        by a host of one side no longer reach a host of the other; with `oneway`, only those
        from `a` to `b`. Frames already on the wire are cut too. Acts where a frame reaches a
        host's NIC, by the host that sent it onto the wire (a router forwarding is the sender
        of what it forwards: to cut a routed path, put the router in a group)."""
        side_a, side_b = self._host_names(a), self._host_names(b)
        for x in side_a:
            for y in side_b:
                if x == y:
                    raise ValueError(f"host {x} is on both sides of the partition")
                self._cuts.add((x, y))
                if not oneway:
                    self._cuts.add((y, x))

    def heal(self, a: Any = None, b: Any = None, *, oneway: bool = False) -> None:
        """Undo `partition(a, b, oneway=...)`; with no arguments, every partition."""
        if a is None and b is None:
            self._cuts.clear()
            return
        if a is None or b is None:
            raise TypeError("heal() takes both sides, or none to heal everything")
        for x in self._host_names(a):
            for y in self._host_names(b):
                self._cuts.discard((x, y))
                if not oneway:
                    self._cuts.discard((y, x))

    def partitioned(self, a: Any, b: Any) -> bool:
        """Whether frames from host `a` to host `b` are cut."""
        return (self._host_names(a)[0], self._host_names(b)[0]) in self._cuts

    # -- crash and restart ----------------------------------------------------------------------
    def crash(self, host: Host | str) -> None:
        """Power `host` off: from now on it sends nothing and every frame for it is lost
        (`Port.crashed_frames`). Its kernel's state goes with it at `restart`; code that was
        running on it (its processes) must be treated as dead by the test."""
        host = self.hosts[host] if isinstance(host, str) else host
        if getattr(host, "crashed", False):
            raise RuntimeError(f"host {host.name} has already crashed")
        host.crashed = True  # type: ignore[attr-defined]
        for port in self._ports_of(host):
            nic = port.nic
            nic.wire_tx = None
            nic.wire_tx_burst = None
            nic.carrier = False
            port.receive = port._lost_to_crash
            port.receive_burst = None

    def restart(self, host: Host | str) -> Host:
        """Boot a crashed `host` again: a fresh kernel (no sockets, no processes, empty
        neighbour tables, default sysctls, routes other than its addresses' subnets gone), the
        same NICs (names, MACs, MTUs, ring sizes) on the same wires with the same addresses.
        A peer whose connection lived on the old kernel gets a RST when it next sends."""
        host = self.hosts[host] if isinstance(host, str) else host
        if not getattr(host, "crashed", False):
            raise RuntimeError(f"host {host.name} is running: crash() it first")
        ports = self._ports_of(host)
        saved = []
        for port in ports:
            nic = port.nic
            saved.append((port, nic.name, nic.dev_addr, nic.mtu, nic.rx_ring_size,
                          [ipaddress.IPv4Interface(str(ifa)) for ifa in nic.ip_ptr.ifa_list]))
        # The old kernel's contexts keep their (now unreachable) CPUs; the new one gets its
        # own. Host.__init__ builds the kernel from scratch on the same object, so references
        # the test holds to `host` see the new kernel.
        Host.__init__(host, self, host.name, len(host.cpus))
        host.crashed = False  # type: ignore[attr-defined]
        for port, name, mac, mtu, rx_ring, ifas in saved:
            nic = EthernetNic(host.net, name, mac, host.cpus[0], mtu=mtu, rx_ring_size=rx_ring)
            host._register(nic)
            self._plug(nic, port)
            with host._kernel():
                for ifa in ifas:
                    inet_insert_ifa(nic, int(ifa.ip), ifa.network.prefixlen)
        if self._nursery is not None:
            host._start(self._nursery)
        return host

    def _ports_of(self, host: Host) -> list[Port]:
        return [port for link in self.links for port in (link.a, link.b) if port.node is host]

    def _plug(self, nic: EthernetNic, port: Port) -> None:
        nic.wire_tx = port.transmit
        nic.wire_tx_burst = port.transmit_burst
        nic.carrier = True
        port.node = port.host = nic.nd_net.host
        port.nic = nic
        port.receive = nic.dma_rx
        port.receive_burst = nic.dma_rx_burst

    # -- seeing inside --------------------------------------------------------------------------
    def trace(self, callback: Callable[[TraceEvent], None],
              match: Callable[[str], bool] | str | None = None) -> Callable[[], None]:
        """Subscribe to tracepoints (all, or those whose name starts with `match`).
        Returns a function that unsubscribes."""
        if isinstance(match, str):
            prefix = match
            match = lambda name: name.startswith(prefix)  # noqa: E731
        return self.tracer.subscribe(callback, match)

    def add_tap(self, host: Host, ifname: str, subnet: str, *, host_index: int = 2) -> Any:
        """Wire `host` to a real Linux TAP interface (see pystack/tap.py); real time only."""
        return add_tap(self, host, ifname, subnet, host_index=host_index)

    def capture(self, path: Any) -> "_Capture":
        """Write every interface's frames, from now on, to a pcapng file at `path`."""
        cap = _Capture(PcapngWriter(path))
        self._captures.append(cap)
        for host in self.hosts.values():
            for dev in host.net.dev_base.values():
                cap.add(host, dev)
        return cap

    # -- programs: servers and clients for a test (pystack/programs.py) ----------------------
    def server(self, host: Host | str, target: Any, *args: Any, port: int | None = None,
               name: str | None = None, ready_timeout: float = 10.0) -> Any:
        """`async with net.server(host, target, *args) as program:` starts `target` (an async
        function, a function or a script's path) on `host` in a process of its own, enters the
        block once it listens (on `port`, if given) and stops it when the block ends. If it
        fails meanwhile, the block is cancelled and ProgramError raised."""
        return programs.server(self, host, target, *args, port=port, name=name,
                               ready_timeout=ready_timeout)

    async def run(self, host: Host | str, target: Any, *args: Any, name: str | None = None,
                  timeout: float | None = None, check: bool = True) -> "programs.Program":
        """Run `target(*args)` (or the script `target` with `args`) on `host` to its end and
        return its Program (status, result, stdout, stderr). A failure raises ProgramError
        (unless check=False); so does running past `timeout` virtual seconds."""
        return await programs.run(self, host, target, *args, name=name, timeout=timeout,
                                  check=check)

    async def run_clients(self, hosts: Any, target: Any, *args: Any, name: str | None = None,
                          timeout: float | None = None, check: bool = True
                          ) -> list["programs.Program"]:
        """`run` on each of `hosts` at once; their Programs, in the order of `hosts`."""
        return await programs.run_clients(self, hosts, target, *args, name=name,
                                          timeout=timeout, check=check)

    def _device_added(self, host: Host, dev: Any) -> None:
        for cap in self._captures:
            cap.add(host, dev)


class _Capture:
    """Taps on every device, writing to one pcapng file."""

    def __init__(self, writer: PcapngWriter):
        self.writer = writer
        self._ids: dict[int, int] = {}
        self._taps: list[tuple[Any, Any]] = []
        self.closed = False

    def add(self, host: Host, dev: Any) -> None:
        iface = self.writer.add_interface(f"{host.name}:{dev.name}")
        # On lo every packet passes the taps twice, going out and coming back in; capture
        # tools keep only the incoming copy (libpcap skips outgoing packets on loopback), so a
        # capture of lo shows each packet once, as `tcpdump -i lo` does.
        skip = "tx" if dev.flags & IFF_LOOPBACK else None

        def tap(skb: Any, dev: Any, direction: str, iface: int = iface) -> None:
            if self.closed or direction == skip:
                return
            start = skb.mac_header if direction == "rx" and skb.mac_header >= 0 else skb.data
            self.writer.write_packet(iface, trio.current_time(),
                                     memoryview(skb.buf)[start:skb.tail])

        dev.ptype_all.append(tap)
        self._taps.append((dev, tap))

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            for dev, tap in self._taps:
                if tap in dev.ptype_all:
                    dev.ptype_all.remove(tap)
            self.writer.close()


def network_fixture(make: Callable[[Any], Network]) -> Callable[[Any], Any]:
    """An async generator function `(request)` that runs the Network `make(request)` returns
    for the body of a pytest fixture (the pytest plugin's `net`; it lives here because
    pystack/pytest_plugin.py is kept free of async code, see tests/test_layout.py)."""
    async def net(request: Any) -> Any:
        network = make(request)
        async with network:
            yield network
    net.__doc__ = make.__doc__
    return net


def _node_name(node: Host | Switch) -> str:
    return node.name
