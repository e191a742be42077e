"""The emulated world: a Network of hosts, switches and the wires between them.

Read first: DESIGN.md §1 (the public face) and §3 (time and determinism).

A wire (`Link`) joins two ports. A port belongs to a host's NIC or to a switch. A frame sent
on a port is delivered to the other end after the link's delay, unless the link's loss
profile drops it (decided by a generator derived from the network's seed). Delayed deliveries
wait in one heap served by one trio task, `wire`, which hands every frame due at an instant
to its NIC in one go: a burst lands in the rx ring together, as it would at line rate.
Zero-delay deliveries happen at once, in the sender's context.

A `Switch` is a learning bridge: it learns source MACs per port (ageing 300 s), forwards known
unicast to its port and floods broadcast, multicast and unknown destinations to every other
port, in port order.
"""

from __future__ import annotations

import heapq
import ipaddress
import math
from typing import Any, Callable

import attrs
import trio

from .drivers.net.nic import EthernetNic
from .host import Host
from .kernel.sched import seed_trio_scheduler
from .net.core.net_namespace import derive_rng
from .net.ipv4.devinet import inet_insert_ifa
from .pcap import PcapngWriter
from .trace import TraceEvent, Tracer
from .uapi.ethernet import ETH_HLEN

__all__ = ["Network", "Link", "Switch", "LinkProfile"]

SWITCH_AGEING_TIME = 300.0


@attrs.define
class LinkProfile:
    """The impairments of one direction of a link (the rest of netem comes with the faults
    work: jitter, duplication, reordering, corruption, rate)."""
    delay: float = 0.0
    loss: float = 0.0

    def check(self) -> None:
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")
        if not 0.0 <= self.loss <= 1.0:
            raise ValueError(f"loss is a probability in [0, 1], got {self.loss}")


class Port:
    """One end of a link."""

    def __init__(self, network: "Network", link: "Link", name: str):
        self.network = network
        self.link = link
        self.name = name
        self.peer: Port | None = None
        self.receive: Callable[[bytearray, Any], None] | None = None  # set by the owner
        self.profile = LinkProfile()
        self.rng = derive_rng(network.seed, "link", name)
        self.tx_frames = 0
        self.lost_frames = 0

    def transmit(self, frame: bytearray, trace: Any = None) -> None:
        self.tx_frames += 1
        profile = self.profile
        if not self.link.up:
            self.lost_frames += 1
            return
        if profile.loss and self.rng.random() < profile.loss:
            self.lost_frames += 1
            if trace is not None:
                trace.hops.append(trace.hops[-1].__class__(trio.current_time(), "wire", 0,
                                                           "wire", f"{self.name}: lost"))
            return
        peer = self.peer
        if profile.delay:
            self.network._schedule(trio.current_time() + profile.delay, peer, frame, trace)
        else:
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

    @property
    def a_to_b(self) -> LinkProfile:
        return self.a.profile

    @property
    def b_to_a(self) -> LinkProfile:
        return self.b.profile

    def set(self, *, delay: float | None = None, loss: float | None = None, **netem: Any) -> None:
        """Impair both directions: `delay` (seconds, one way), `loss` (probability)."""
        if netem:
            raise NotImplementedError(
                f"link.set({', '.join(netem)}=...): only delay and loss are implemented yet "
                "(jitter, duplicate, reorder, corrupt and rate come with the netem qdisc)")
        for port in (self.a, self.b):
            new = LinkProfile(port.profile.delay if delay is None else float(delay),
                              port.profile.loss if loss is None else float(loss))
            new.check()
            port.profile = new

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
        port.receive = lambda frame, trace, port=port: self._receive(port, frame, trace)

    def _receive(self, in_port: Port, frame: bytearray, trace: Any) -> None:
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
                out.transmit(frame, trace)
                return
        self.flooded += 1
        others = [p for p in self.ports if p is not in_port]
        for i, port in enumerate(others):
            # Every port gets its own copy of the frame, the last one the original.
            port.transmit(frame if i == len(others) - 1 else bytearray(frame),
                          trace if i == len(others) - 1 else None)

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
        self._heap: list[tuple[float, int, Port, bytearray, Any]] = []
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
        self._nursery_cm = trio.open_nursery()
        self._nursery = await self._nursery_cm.__aenter__()
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
        nic.wire_tx = port.transmit
        nic.carrier = True
        port.receive = nic.dma_rx
        if index >= subnet.num_addresses - 1:
            raise ValueError(f"subnet {subnet} has no address left for {host.name}")
        addr = int(subnet.network_address) + index
        with host._kernel():
            inet_insert_ifa(nic, addr, subnet.prefixlen)
        return nic

    # -- the wire's clock -----------------------------------------------------------------------
    def _schedule(self, when: float, port: Port, frame: bytearray, trace: Any) -> None:
        self._seq += 1
        heap = self._heap
        earliest = heap[0][0] if heap else math.inf
        heapq.heappush(heap, (when, self._seq, port, frame, trace))
        if when < earliest and when < self._wire_sleep_until and self._wire_lot:
            self._wire_lot.unpark_all()

    async def _wire_task(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _when, _seq, port, frame, trace = heapq.heappop(heap)
                port.receive(frame, trace)
            deadline = heap[0][0] if heap else math.inf
            self._wire_sleep_until = deadline
            try:
                with trio.move_on_at(deadline):
                    await self._wire_lot.park()
            finally:
                self._wire_sleep_until = math.inf

    # -- seeing inside --------------------------------------------------------------------------
    def trace(self, callback: Callable[[TraceEvent], None],
              match: Callable[[str], bool] | str | None = None) -> Callable[[], None]:
        """Subscribe to tracepoints (all, or those whose name starts with `match`).
        Returns a function that unsubscribes."""
        if isinstance(match, str):
            prefix = match
            match = lambda name: name.startswith(prefix)  # noqa: E731
        return self.tracer.subscribe(callback, match)

    def capture(self, path: Any) -> "_Capture":
        """Write every interface's frames, from now on, to a pcapng file at `path`."""
        cap = _Capture(PcapngWriter(path))
        self._captures.append(cap)
        for host in self.hosts.values():
            for dev in host.net.dev_base.values():
                cap.add(host, dev)
        return cap

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

        def tap(skb: Any, dev: Any, direction: str, iface: int = iface) -> None:
            if self.closed:
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


def _node_name(node: Host | Switch) -> str:
    return node.name
