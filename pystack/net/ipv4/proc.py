"""SNMP counters and their /proc views, as net/ipv4/proc.c and include/uapi/linux/snmp.h.

Read first: net/ipv4/proc.c (snmp4_ipstats_list, snmp4_icmp_list, snmp4_tcp_list,
snmp4_udp_list, snmp4_net_list), RFC 4293 (IP-MIB), RFC 4022 (TCP-MIB), RFC 4113 (UDP-MIB).

Counters live in plain dicts keyed by the names /proc/net/snmp prints, created with every key
at zero so views list them all. Protocol code increments them as `mib.ip["InReceives"] += 1`.
"""

from __future__ import annotations

IP_FIELDS = ("Forwarding", "DefaultTTL", "InReceives", "InHdrErrors", "InAddrErrors",
             "ForwDatagrams", "InUnknownProtos", "InDiscards", "InDelivers", "OutRequests",
             "OutDiscards", "OutNoRoutes", "ReasmTimeout", "ReasmReqds", "ReasmOKs",
             "ReasmFails", "FragOKs", "FragFails", "FragCreates", "OutTransmits")
# /proc/net/netstat's IpExt, the ones the stack bumps
IPEXT_FIELDS = ("InNoRoutes", "InTruncatedPkts", "InBcastPkts", "OutBcastPkts", "InOctets",
                "OutOctets", "InBcastOctets", "OutBcastOctets", "InCsumErrors")
ICMP_FIELDS = ("InMsgs", "InErrors", "InCsumErrors", "InDestUnreachs", "InTimeExcds",
               "InParmProbs", "InSrcQuenchs", "InRedirects", "InEchos", "InEchoReps",
               "InTimestamps", "InTimestampReps", "InAddrMasks", "InAddrMaskReps",
               "OutMsgs", "OutErrors", "OutRateLimitGlobal", "OutRateLimitHost",
               "OutDestUnreachs", "OutTimeExcds", "OutParmProbs", "OutSrcQuenchs",
               "OutRedirects", "OutEchos", "OutEchoReps", "OutTimestamps", "OutTimestampReps",
               "OutAddrMasks", "OutAddrMaskReps")
TCP_FIELDS = ("RtoAlgorithm", "RtoMin", "RtoMax", "MaxConn", "ActiveOpens", "PassiveOpens",
              "AttemptFails", "EstabResets", "CurrEstab", "InSegs", "OutSegs", "RetransSegs",
              "InErrs", "OutRsts", "InCsumErrors")
UDP_FIELDS = ("InDatagrams", "NoPorts", "InErrors", "OutDatagrams", "RcvbufErrors",
              "SndbufErrors", "InCsumErrors", "IgnoredMulti", "MemErrors")

# ICMP message types by name, for the In/Out counters of /proc/net/snmp's Icmp line.
_ICMP_IN = {0: "InEchoReps", 3: "InDestUnreachs", 4: "InSrcQuenchs", 5: "InRedirects",
            8: "InEchos", 11: "InTimeExcds", 12: "InParmProbs", 13: "InTimestamps",
            14: "InTimestampReps"}
_ICMP_OUT = {0: "OutEchoReps", 3: "OutDestUnreachs", 4: "OutSrcQuenchs", 5: "OutRedirects",
             8: "OutEchos", 11: "OutTimeExcds", 12: "OutParmProbs", 13: "OutTimestamps",
             14: "OutTimestampReps"}


class Mib:
    """The SNMP counters of one host."""

    def __init__(self) -> None:
        self.ip = dict.fromkeys(IP_FIELDS, 0)
        self.ip["Forwarding"] = 2  # 1 = forwarding, 2 = not (RFC 4293)
        self.ip["DefaultTTL"] = 64
        self.ipext = dict.fromkeys(IPEXT_FIELDS, 0)
        self.icmp = dict.fromkeys(ICMP_FIELDS, 0)
        self.icmpmsg: dict[str, int] = {}  # InType8, OutType0 …: only those seen
        self.tcp = dict.fromkeys(TCP_FIELDS, 0)
        self.tcp.update(RtoAlgorithm=1, RtoMin=200, RtoMax=120000, MaxConn=-1)
        self.tcpext: dict[str, int] = {}
        self.udp = dict.fromkeys(UDP_FIELDS, 0)

    def icmp_in(self, type_: int) -> None:
        name = _ICMP_IN.get(type_)
        if name:
            self.icmp[name] += 1
        key = f"InType{type_}"
        self.icmpmsg[key] = self.icmpmsg.get(key, 0) + 1

    def icmp_out(self, type_: int) -> None:
        name = _ICMP_OUT.get(type_)
        if name:
            self.icmp[name] += 1
        key = f"OutType{type_}"
        self.icmpmsg[key] = self.icmpmsg.get(key, 0) + 1

    def tcpext_inc(self, name: str, n: int = 1) -> None:
        self.tcpext[name] = self.tcpext.get(name, 0) + n

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {"Ip": dict(self.ip), "IpExt": dict(self.ipext), "Icmp": dict(self.icmp),
                "IcmpMsg": dict(sorted(self.icmpmsg.items())), "Tcp": dict(self.tcp),
                "TcpExt": dict(sorted(self.tcpext.items())), "Udp": dict(self.udp)}


def snmp_text(snapshot: dict[str, dict[str, int]]) -> str:
    """/proc/net/snmp's layout: a header line of names, then a line of values, per group."""
    lines = []
    for group, values in snapshot.items():
        if not values:
            continue
        lines.append(f"{group}: " + " ".join(values))
        lines.append(f"{group}: " + " ".join(str(v) for v in values.values()))
    return "\n".join(lines) + "\n"
