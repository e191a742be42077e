"""The sysctls of one host, as net/ipv4/sysctl_net_ipv4.c, net/core/sysctl_net_core.c and the
neighbour table parameters (net/core/neighbour.c, Documentation/networking/ip-sysctl.rst).

Read first: Documentation/networking/ip-sysctl.rst for each knob's meaning and default.

Each knob is an attribute (read on hot paths) and is also reachable by its /proc/sys name with
dots: `host.sysctl["net.ipv4.tcp_rmem"] = (4096, 131072, 6291456)`. Times are in seconds.
"""

from __future__ import annotations

from typing import Any, Final

from ...lib.compiled import mypyc_attr

# /proc/sys name → attribute; the attribute's default is Linux's.
_DEFAULTS: dict[str, tuple[str, Any]] = {
    "net.core.netdev_budget": ("netdev_budget", 300),
    "net.core.netdev_budget_usecs": ("netdev_budget_usecs", 2000),
    "net.core.netdev_max_backlog": ("netdev_max_backlog", 1000),
    "net.core.dev_weight": ("dev_weight", 64),
    "net.core.rmem_default": ("rmem_default", 212992),
    "net.core.rmem_max": ("rmem_max", 212992),
    "net.core.wmem_default": ("wmem_default", 212992),
    "net.core.wmem_max": ("wmem_max", 212992),
    "net.core.somaxconn": ("somaxconn", 4096),
    "net.ipv4.ip_forward": ("ip_forward", 0),
    "net.ipv4.ip_default_ttl": ("ip_default_ttl", 64),
    "net.ipv4.ip_local_port_range": ("ip_local_port_range", (32768, 60999)),
    "net.ipv4.ip_nonlocal_bind": ("ip_nonlocal_bind", 0),
    "net.ipv4.ip_no_pmtu_disc": ("ip_no_pmtu_disc", 0),
    "net.ipv4.route.mtu_expires": ("ip_rt_mtu_expires", 600),  # a learned PMTU's life
    "net.ipv4.route.min_pmtu": ("ip_rt_min_pmtu", 552),
    "net.ipv4.ipfrag_time": ("ipfrag_time", 30),
    "net.ipv4.ipfrag_high_thresh": ("ipfrag_high_thresh", 4 * 1024 * 1024),
    "net.ipv4.ipfrag_low_thresh": ("ipfrag_low_thresh", 3 * 1024 * 1024),
    "net.ipv4.icmp_echo_ignore_all": ("icmp_echo_ignore_all", 0),
    "net.ipv4.icmp_echo_ignore_broadcasts": ("icmp_echo_ignore_broadcasts", 1),
    "net.ipv4.icmp_ratelimit": ("icmp_ratelimit", 1000),  # ms
    "net.ipv4.icmp_ratemask": ("icmp_ratemask", 0x1818),
    "net.ipv4.icmp_msgs_per_sec": ("icmp_msgs_per_sec", 1000),
    "net.ipv4.icmp_msgs_burst": ("icmp_msgs_burst", 50),
    "net.ipv4.ping_group_range": ("ping_group_range", (1, 0)),
    "net.ipv4.udp_rmem_min": ("udp_rmem_min", 4096),
    "net.ipv4.udp_wmem_min": ("udp_wmem_min", 4096),
    # TCP (used from the TCP issue on)
    "net.ipv4.tcp_rmem": ("tcp_rmem", (4096, 131072, 6291456)),
    "net.ipv4.tcp_wmem": ("tcp_wmem", (4096, 16384, 4194304)),
    "net.ipv4.tcp_syn_retries": ("tcp_syn_retries", 6),
    "net.ipv4.tcp_synack_retries": ("tcp_synack_retries", 5),
    "net.ipv4.tcp_retries1": ("tcp_retries1", 3),
    "net.ipv4.tcp_retries2": ("tcp_retries2", 15),
    "net.ipv4.tcp_fin_timeout": ("tcp_fin_timeout", 60),
    "net.ipv4.tcp_keepalive_time": ("tcp_keepalive_time", 7200),
    "net.ipv4.tcp_keepalive_intvl": ("tcp_keepalive_intvl", 75),
    "net.ipv4.tcp_keepalive_probes": ("tcp_keepalive_probes", 9),
    "net.ipv4.tcp_max_syn_backlog": ("tcp_max_syn_backlog", 128),
    "net.ipv4.tcp_syncookies": ("tcp_syncookies", 1),
    "net.ipv4.tcp_timestamps": ("tcp_timestamps", 1),
    "net.ipv4.tcp_sack": ("tcp_sack", 1),
    "net.ipv4.tcp_dsack": ("tcp_dsack", 1),
    "net.ipv4.tcp_window_scaling": ("tcp_window_scaling", 1),
    "net.ipv4.tcp_congestion_control": ("tcp_congestion_control", "cubic"),
    "net.ipv4.tcp_abort_on_overflow": ("tcp_abort_on_overflow", 0),
    "net.ipv4.tcp_early_retrans": ("tcp_early_retrans", 3),  # 3: tail loss probes on
    "net.ipv4.tcp_slow_start_after_idle": ("tcp_slow_start_after_idle", 1),
    "net.ipv4.tcp_min_tso_segs": ("tcp_min_tso_segs", 2),
    "net.ipv4.tcp_recovery": ("tcp_recovery", 1),  # 1: RACK loss detection
    "net.ipv4.tcp_max_reordering": ("tcp_max_reordering", 300),
    "net.ipv4.tcp_tso_win_divisor": ("tcp_tso_win_divisor", 3),
    "net.ipv4.tcp_tso_rtt_log": ("tcp_tso_rtt_log", 9),
    "net.ipv4.tcp_pacing_ss_ratio": ("tcp_pacing_ss_ratio", 200),
    "net.ipv4.tcp_pacing_ca_ratio": ("tcp_pacing_ca_ratio", 120),
    # neighbour parameters (net.ipv4.neigh.default.*), seconds
    "net.ipv4.neigh.default.base_reachable_time": ("neigh_base_reachable_time", 30.0),
    "net.ipv4.neigh.default.retrans_time": ("neigh_retrans_time", 1.0),
    "net.ipv4.neigh.default.delay_first_probe_time": ("neigh_delay_first_probe_time", 5.0),
    "net.ipv4.neigh.default.gc_stale_time": ("neigh_gc_stale_time", 60.0),
    "net.ipv4.neigh.default.mcast_solicit": ("neigh_mcast_solicit", 3),
    "net.ipv4.neigh.default.ucast_solicit": ("neigh_ucast_solicit", 3),
    "net.ipv4.neigh.default.app_solicit": ("neigh_app_solicit", 0),
    "net.ipv4.neigh.default.mcast_resolicit": ("neigh_mcast_resolicit", 0),
    "net.ipv4.neigh.default.unres_qlen_bytes": ("neigh_unres_qlen_bytes", 212992),
    "net.ipv4.neigh.default.locktime": ("neigh_locktime", 1.0),
}

_ATTR_TO_NAME: Final = {attr: name for name, (attr, _) in _DEFAULTS.items()}


@mypyc_attr(native_class=False)
class Sysctls:
    """The knobs of one host, by attribute or by /proc/sys dotted name."""

    def __init__(self) -> None:
        for attr, value in _DEFAULTS.values():
            setattr(self, attr, value)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, self._attr(name))

    def __setitem__(self, name: str, value: Any) -> None:
        attr = self._attr(name)
        default = _DEFAULTS[name][1]
        if isinstance(default, tuple):
            if isinstance(value, str):
                value = tuple(int(v) for v in value.split())
            value = tuple(value)
            if len(value) != len(default):
                raise ValueError(f"{name} takes {len(default)} numbers, got {value!r}")
        elif isinstance(default, bool) or isinstance(default, int):
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        setattr(self, attr, value)

    def __contains__(self, name: object) -> bool:
        return name in _DEFAULTS

    def names(self) -> list[str]:
        return list(_DEFAULTS)

    @staticmethod
    def _attr(name: str) -> str:
        try:
            return _DEFAULTS[name][0]
        except KeyError:
            raise KeyError(f"no sysctl {name!r} in pystack (known: see Sysctls.names())") from None
