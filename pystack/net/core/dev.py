"""Network devices, the receive core and the transmit entry, as net/core/dev.c.

Read first: net/core/dev.c (netif_rx, enqueue_to_backlog, process_backlog, net_rx_action,
napi_poll, __netif_receive_skb_core, dev_queue_xmit, __dev_xmit_skb, net_tx_action),
include/linux/netdevice.h (net_device, net_device_ops, napi_struct),
Documentation/networking/napi.rst, net/sched/sch_generic.c (qdisc_run, dev_hard_start_xmit).

RX: a driver's NAPI poll (or `process_backlog` for loopback) hands each skb to
`netif_receive_skb`, which gives it to the packet taps and to the ptype handler for its
protocol (`ip_rcv`, `arp_rcv`). `net_rx_action` polls the NAPI instances on a CPU's poll list,
`weight` packets each, until the softirq budget (`netdev_budget`, 300) runs out; running out
with work left counts a `time_squeeze` and leaves the rest for the next round.

TX: `dev_queue_xmit` disables bottom halves, passes the skb through the device's qdisc (or
straight to the driver for `noqueue` devices such as lo) and re-enables them, which is where
the softirqs raised on the way (a loopback delivery, a TX completion) run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Final

from ...kernel.softirq import NET_RX_SOFTIRQ, NET_TX_SOFTIRQ, __do_softirq, raise_softirq
from . import drop_reason as dr
from .drop_reason import consume_skb, kfree_skb
from .skbuff import CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY, skb_checksum_help

if TYPE_CHECKING:
    from ...kernel.sched import Cpu
    from .net_namespace import Net
    from .skbuff import SkBuff

__all__ = ["NetDevice", "NetDeviceStats", "Napi", "register_netdevice", "dev_add_pack",
           "netif_rx", "netif_receive_skb", "napi_schedule", "napi_complete_done",
           "net_rx_action", "net_tx_action", "dev_queue_xmit", "netif_stop_queue",
           "netif_wake_queue", "NETDEV_TX_OK", "NETDEV_TX_BUSY", "NET_XMIT_SUCCESS",
           "NET_XMIT_DROP", "NET_XMIT_CN", "IFF_UP", "IFF_BROADCAST", "IFF_LOOPBACK",
           "IFF_RUNNING", "IFF_MULTICAST", "IFF_NOARP"]

IFF_UP: Final = 0x1
IFF_BROADCAST: Final = 0x2
IFF_LOOPBACK: Final = 0x8
IFF_NOARP: Final = 0x80
IFF_RUNNING: Final = 0x40
IFF_MULTICAST: Final = 0x1000

NETDEV_TX_OK: Final = 0
NETDEV_TX_BUSY: Final = 0x10
NET_XMIT_SUCCESS: Final = 0
NET_XMIT_DROP: Final = 1
NET_XMIT_CN: Final = 2

_NET_RX_BIT: Final = 1 << NET_RX_SOFTIRQ

TAP_RX: Final = "rx"
TAP_TX = "tx"


_STATS_FIELDS: Final = ("rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors",
                        "tx_errors", "rx_dropped", "tx_dropped", "rx_missed_errors",
                        "rx_length_errors", "rx_nohandler", "multicast", "collisions")


class NetDeviceStats:
    """`struct rtnl_link_stats64`, the counters `ip -s link` prints."""

    __slots__ = _STATS_FIELDS

    def __init__(self) -> None:
        # Each counter by name (not a loop over the slots): a compiled build lays them out
        # from these assignments.
        self.rx_packets = 0
        self.tx_packets = 0
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.rx_errors = 0
        self.tx_errors = 0
        self.rx_dropped = 0
        self.tx_dropped = 0
        self.rx_missed_errors = 0
        self.rx_length_errors = 0
        self.rx_nohandler = 0
        self.multicast = 0
        self.collisions = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in _STATS_FIELDS}


class NetDevice:
    """`struct net_device`. Drivers subclass it and provide `ndo_start_xmit`."""

    def __init__(self, net: "Net", name: str, *, mtu: int, flags: int, addr: bytes,
                 broadcast: bytes, hard_header_len: int, tx_queue_len: int, irq_cpu: "Cpu"):
        self.nd_net = net
        self.name = name
        self.ifindex = 0
        self.mtu = mtu
        self.min_mtu = 68
        self.max_mtu = 65535
        self.flags = flags
        self.dev_addr = addr
        self.broadcast = broadcast
        self.hard_header_len = hard_header_len
        self.tx_queue_len = tx_queue_len
        self.irq_cpu = irq_cpu
        self.stats = NetDeviceStats()
        self.qdisc: Any = None  # None: noqueue
        self.queue_stopped = False
        self.ip_ptr: Any = None  # struct in_device
        self.ptype_all: list[Callable[["SkBuff", "NetDevice", str], None]] = []  # taps
        self.header_ops: Any = None
        # NETIF_F_TSO, NETIF_F_GSO, NETIF_F_GRO (`ethtool -K DEV tso off ...`). TCP builds
        # skbs of many segments either way (tcp_tso.sk_can_gso); a device without TSO
        # gets them cut in software (dev_queue_xmit); GRO merges what a NAPI poll receives.
        self.tso = True
        self.gso = True
        self.gro = True
        # NETIF_F_HW_CSUM: the device completes CHECKSUM_PARTIAL checksums itself (lo, whose
        # data never leaves the machine; the emulated NIC "in hardware"). Without it
        # dev_queue_xmit completes them in software first (validate_xmit_skb).
        self.hw_csum = False
        self.gso_max_size = 65536
        self.gso_max_segs = 65535

    def __repr__(self) -> str:
        return f"<NetDevice {self.nd_net.host.name}:{self.name}>"

    def ndo_start_xmit(self, skb: "SkBuff") -> int:
        raise NotImplementedError(f"{type(self).__name__} has no transmit function")

    def xmit_gso_segments(self, skb: "SkBuff") -> int | None:
        """Send a GSO packet's segments in one call: a driver that can overrides this. None
        declines, and dev_queue_xmit cuts the packet in software. (A method, not a class
        attribute a driver replaces: the compiled build reads a native class's attributes
        from the instance, where a subclass's method would not be seen.)"""
        return None

    def ndo_open(self) -> None:
        pass

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IFF_UP)


def register_netdevice(net: "Net", dev: NetDevice) -> None:
    if dev.name in net.dev_base:
        raise ValueError(f"host {net.host.name!r} already has a device named {dev.name!r}")
    dev.ifindex = net.new_ifindex()
    net.dev_base[dev.name] = dev
    net.dev_index[dev.ifindex] = dev


# ptype_base: protocol handlers, global as in Linux (the handlers are the same on every host).
ptype_base: dict[int, Callable[["SkBuff", NetDevice], None]] = {}


def dev_add_pack(protocol: int, func: Callable[["SkBuff", NetDevice], None]) -> None:
    ptype_base[protocol] = func


# offload_base: GSO and GRO per protocol (struct packet_offload), registered by the protocol
# families as their handlers are: (segment a GSO skb, try to merge one into a NAPI's batch).
offload_base: dict[int, tuple[Callable[["SkBuff"], list["SkBuff"]], Callable[..., bool],
                              Callable[..., None]]] = {}


def dev_add_offload(protocol: int, gso_segment: Callable[["SkBuff"], list["SkBuff"]],
                    gro_receive: Callable[..., bool], gro_flush: Callable[..., None]) -> None:
    offload_base[protocol] = (gso_segment, gro_receive, gro_flush)


class Napi:
    """`struct napi_struct`: a poll function, a weight, and whether it is scheduled."""

    __slots__ = ("poll", "weight", "dev", "cpu", "scheduled", "name", "gro_list")

    def __init__(self, poll: Callable[["Napi", int], int], weight: int, cpu: "Cpu",
                 dev: NetDevice | None = None, name: str = "napi"):
        self.poll = poll
        self.weight = weight
        self.dev = dev
        self.cpu = cpu
        self.scheduled = False
        self.name = name
        self.gro_list: dict = {}  # flows being merged by GRO during a poll


def napi_schedule(napi: Napi) -> None:
    """Put `napi` on its CPU's poll list (once) and raise NET_RX."""
    if napi.scheduled:
        return
    napi.scheduled = True
    cpu = napi.cpu
    cpu.poll_list.append(napi)
    raise_softirq(cpu, NET_RX_SOFTIRQ)


def napi_complete_done(napi: Napi, work_done: int) -> bool:
    if napi.gro_list:
        napi_gro_flush(napi)
    napi.scheduled = False
    return True


def net_rx_action(cpu: "Cpu") -> None:
    """NET_RX softirq: poll the scheduled NAPI instances within the budget."""
    net = cpu.host.net
    budget = net.sysctl.netdev_budget
    work_list = cpu.poll_list
    cpu.poll_list = []
    repoll: list[Napi] | None = None
    i = 0  # how many were polled (work_list does not grow: napi_schedule appends to the new list)
    for napi in work_list:
        i += 1
        weight = napi.weight
        if net.tracer.active:
            net.tracer.emit(net, "napi:napi_poll", napi=napi.name, budget=weight)
        work = napi.poll(napi, weight)
        budget -= work
        if work >= weight and napi.scheduled:
            if repoll is None:
                repoll = []
            repoll.append(napi)
        if budget <= 0:
            cpu.time_squeeze += 1
            break
    # Whatever was not polled, then what got scheduled meanwhile, then the repolls. (The
    # usual case, every instance polled to completion, leaves cpu.poll_list as it is.)
    if i < len(work_list) or repoll:
        remaining = work_list[i:]
        remaining.extend(cpu.poll_list)
        remaining.extend(repoll or ())
        cpu.poll_list = remaining
    if cpu.poll_list:
        raise_softirq(cpu, NET_RX_SOFTIRQ)


def netif_receive_skb(skb: "SkBuff") -> None:
    """__netif_receive_skb_core: taps, then the protocol handler."""
    if skb.dev.ptype_all:
        _deliver_to_taps(skb, skb.dev, TAP_RX)
    _netif_receive_skb(skb)


def _deliver_to_taps(skb: "SkBuff", dev: NetDevice, direction: str) -> None:
    """The packet taps (captures) of `dev` see `skb`. A CHECKSUM_PARTIAL skb gets its checksum
    completed first, so a capture shows the bytes a wire would carry (Linux's tcpdump would
    show the partial sum, "incorrect cksum"); the stack computed it, so it stays trusted."""
    if skb.ip_summed == CHECKSUM_PARTIAL:
        skb_checksum_help(skb)
        skb.ip_summed = CHECKSUM_UNNECESSARY
    for tap in dev.ptype_all:
        tap(skb, dev, direction)


def _netif_receive_skb(skb: "SkBuff") -> None:
    dev: NetDevice = skb.dev
    net = dev.nd_net
    net.host.this_cpu.processed += 1
    if skb.trace is not None:
        skb.trace.hop(net, "netif_receive_skb")
    if net.tracer.active:
        net.tracer.emit(net, "net:netif_receive_skb", dev=dev.name, len=skb.tail - skb.data,
                        protocol=f"0x{skb.protocol:04x}")
    skb.network_header = skb.data
    handler = ptype_base.get(skb.protocol)
    if handler is None:
        dev.stats.rx_nohandler += 1
        kfree_skb(skb, dr.UNHANDLED_PROTO)
        return
    handler(skb, dev)


def napi_gro_receive(napi: Napi, skb: "SkBuff") -> None:
    """GRO entry point: with the device's GRO on, a segment may wait in the poll's batch to
    be merged with the next ones of its flow (see net/ipv4/tcp_offload.py)."""
    dev: NetDevice = skb.dev
    # Taps see each frame as it came off the wire (a capture shows segments, not what GRO
    # made of them: Linux's tcpdump would show the merged packet, with a stale checksum).
    if dev.ptype_all:
        _deliver_to_taps(skb, dev, TAP_RX)
    if dev.gro:
        off = offload_base.get(skb.protocol)
        if off is not None and off[1](napi, skb, _netif_receive_skb):
            return
    _netif_receive_skb(skb)


def napi_gro_flush(napi: Napi) -> None:
    """Pass up whatever GRO holds (end of a poll)."""
    if napi.gro_list:
        for off in offload_base.values():
            off[2](napi, _netif_receive_skb)


def netif_rx(skb: "SkBuff") -> int:
    """Queue a received skb on this CPU's backlog (loopback and software devices)."""
    dev: NetDevice = skb.dev
    return enqueue_to_backlog(skb, dev.nd_net.host.this_cpu)


def enqueue_to_backlog(skb: "SkBuff", cpu: "Cpu") -> int:
    net = cpu.host.net
    q = cpu.input_pkt_queue
    if len(q) <= net.sysctl.netdev_max_backlog:
        if skb.trace is not None:
            skb.trace.hop(net, "enqueue_to_backlog")
        q.append(skb)
        backlog = cpu.backlog
        if not backlog.scheduled:  # napi_schedule, inline
            backlog.scheduled = True
            cpu.poll_list.append(backlog)
            cpu.softirq_pending |= _NET_RX_BIT  # raise_softirq: run at local_bh_enable ...
            if not (cpu.hardirq_count or cpu.softirq_count):
                cpu.wake_ksoftirqd()  # ... or, outside any bh-disabled section, by ksoftirqd
        return NET_XMIT_SUCCESS
    cpu.dropped += 1
    skb.dev.stats.rx_dropped += 1
    kfree_skb(skb, dr.CPU_BACKLOG)
    return NET_XMIT_DROP


def process_backlog(napi: Napi, quota: int) -> int:
    """The backlog's NAPI poll: deliver up to `quota` queued skbs."""
    q = napi.cpu.input_pkt_queue
    work = 0
    while q and work < quota:
        skb = q.popleft()
        work += 1
        if skb.trace is not None:
            skb.trace.hop(skb.dev.nd_net, "process_backlog")
        netif_receive_skb(skb)
    if not q:
        # As Linux's process_backlog: an inline napi_complete (the backlog does no GRO, and
        # only its own CPU touches it).
        napi.scheduled = False
    return work


# ---- transmit --------------------------------------------------------------------------------

def dev_queue_xmit(skb: "SkBuff") -> int:
    """Queue an skb for transmission on skb.dev; runs pending softirqs on the way out."""
    dev: NetDevice = skb.dev
    cpu = dev.nd_net.host.this_cpu
    cpu.softirq_count += 1  # local_bh_disable (inline, as Linux's is)
    try:
        if skb.trace is not None:
            skb.trace.hop(dev.nd_net, "dev_queue_xmit")
        if not dev.flags & IFF_UP:
            kfree_skb(skb, dr.DEV_READY)
            return NET_XMIT_DROP
        if skb.gso_size and not dev.tso:
            # validate_xmit_skb → skb_gso_segment: a device that cannot segment gets the
            # segments (cut here, before the qdisc and the taps, so captures show them) —
            # unless its driver can take them as one burst with the same effect (the
            # emulated NIC, when nothing watches: see drivers/net/nic.py).
            rc = dev.xmit_gso_segments(skb)
            if rc is not None:
                consume_skb(skb)
                return rc
            rc = NET_XMIT_SUCCESS
            for seg in offload_base[skb.protocol][0](skb):
                rc = _dev_queue_one(seg, dev, cpu) or rc
            consume_skb(skb)
            return rc
        if skb.ip_summed == CHECKSUM_PARTIAL and not dev.hw_csum:
            skb_checksum_help(skb)  # validate_xmit_skb: the device cannot complete it
        q = dev.qdisc
        if q is None:  # noqueue (lo): straight to the driver
            return dev_hard_start_xmit(skb, dev)
        return __dev_xmit_skb(skb, q, dev, cpu)
    finally:
        # local_bh_enable, inline: the softirqs raised on the way (a loopback delivery, a TX
        # completion) run here, in the sender's context.
        cpu.softirq_count -= 1
        if not cpu.softirq_count and not cpu.hardirq_count and cpu.softirq_pending:
            __do_softirq(cpu)


def _dev_queue_one(skb: "SkBuff", dev: NetDevice, cpu: "Cpu") -> int:
    q = dev.qdisc
    if q is None:
        return dev_hard_start_xmit(skb, dev)
    return __dev_xmit_skb(skb, q, dev, cpu)


def dev_hard_start_xmit(skb: "SkBuff", dev: NetDevice) -> int:
    if dev.ptype_all:
        _deliver_to_taps(skb, dev, TAP_TX)  # dev_queue_xmit_nit
    net = dev.nd_net
    if skb.trace is not None:
        skb.trace.hop(net, "dev_hard_start_xmit")
    if not net.tracer.active:
        return dev.ndo_start_xmit(skb)
    length = skb.tail - skb.data
    rc = dev.ndo_start_xmit(skb)
    net.tracer.emit(net, "net:net_dev_xmit", dev=dev.name, len=length, rc=rc)
    return rc


def __dev_xmit_skb(skb: "SkBuff", q: Any, dev: NetDevice, cpu: "Cpu") -> int:
    # TCQ_F_CAN_BYPASS: an empty queue on a running device sends at once.
    if not q and not dev.queue_stopped:
        rc = dev_hard_start_xmit(skb, dev)
        if rc == NETDEV_TX_BUSY:
            q.requeue(skb)
            return NET_XMIT_SUCCESS
        return NET_XMIT_SUCCESS
    rc = q.enqueue(skb)
    if rc == NET_XMIT_SUCCESS:
        qdisc_run(q, dev)
    return rc


def qdisc_run(q: Any, dev: NetDevice) -> None:
    while not dev.queue_stopped:
        skb = q.dequeue()
        if skb is None:
            return
        if dev_hard_start_xmit(skb, dev) == NETDEV_TX_BUSY:
            q.requeue(skb)
            return


def netif_stop_queue(dev: NetDevice) -> None:
    dev.queue_stopped = True


def netif_wake_queue(dev: NetDevice) -> None:
    """Restart a stopped queue: the qdisc runs again from NET_TX."""
    if dev.queue_stopped:
        dev.queue_stopped = False
        if dev.qdisc is not None and dev.qdisc:
            __netif_schedule(dev)


def __netif_schedule(dev: NetDevice) -> None:
    cpu = dev.nd_net.host.this_cpu
    if dev not in cpu.output_queue:
        cpu.output_queue.append(dev)
    raise_softirq(cpu, NET_TX_SOFTIRQ)


def net_tx_action(cpu: "Cpu") -> None:
    devs = cpu.output_queue
    cpu.output_queue = []
    for dev in devs:
        if dev.qdisc is not None:
            qdisc_run(dev.qdisc, dev)
