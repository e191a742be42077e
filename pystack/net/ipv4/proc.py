"""SNMP counters and their /proc views, as net/ipv4/proc.c and include/uapi/linux/snmp.h.

Read first: net/ipv4/proc.c (snmp4_ipstats_list, snmp4_icmp_list, snmp4_tcp_list,
snmp4_udp_list, snmp4_net_list), RFC 4293 (IP-MIB), RFC 4022 (TCP-MIB), RFC 4113 (UDP-MIB);
for `netstat_text`, net-tools' statistics.c (the sentences `netstat -s` prints).

Counters live in plain dicts keyed by the names /proc/net/snmp prints, created with every key
at zero so views list them all. Protocol code increments them as `mib.ip["InReceives"] += 1`.
Two text views read a snapshot: `snmp_text` (/proc/net/snmp's name and value lines) and
`netstat_text` (what `netstat -s` makes of /proc/net/snmp and /proc/net/netstat).
"""

from __future__ import annotations

from typing import Final

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
_ICMP_IN: Final = {0: "InEchoReps", 3: "InDestUnreachs", 4: "InSrcQuenchs", 5: "InRedirects",
            8: "InEchos", 11: "InTimeExcds", 12: "InParmProbs", 13: "InTimestamps",
            14: "InTimestampReps"}
_ICMP_OUT: Final = {0: "OutEchoReps", 3: "OutDestUnreachs", 4: "OutSrcQuenchs", 5: "OutRedirects",
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


# -- netstat -s ----------------------------------------------------------------------------------
# /proc/net/netstat's TcpExt names in the kernel's order (snmp4_net_list); netstat prints them
# in this order. Names the stack bumps that are missing here follow, sorted.
TCPEXT_ORDER = (
    "SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "EmbryonicRsts", "PruneCalled",
    "RcvPruned", "OfoPruned", "OutOfWindowIcmps", "LockDroppedIcmps", "ArpFilter", "TW",
    "TWRecycled", "TWKilled", "PAWSActive", "PAWSEstab", "DelayedACKs", "DelayedACKLocked",
    "DelayedACKLost", "ListenOverflows", "ListenDrops", "TCPHPHits", "TCPPureAcks", "TCPHPAcks",
    "TCPRenoRecovery", "TCPSackRecovery", "TCPSACKReneging", "TCPSACKReorder", "TCPRenoReorder",
    "TCPTSReorder", "TCPFullUndo", "TCPPartialUndo", "TCPDSACKUndo", "TCPLossUndo",
    "TCPLostRetransmit", "TCPRenoFailures", "TCPSackFailures", "TCPLossFailures",
    "TCPFastRetrans", "TCPSlowStartRetrans", "TCPTimeouts", "TCPLossProbes",
    "TCPLossProbeRecovery", "TCPRenoRecoveryFail", "TCPSackRecoveryFail", "TCPRcvCollapsed",
    "TCPBacklogCoalesce", "TCPDSACKOldSent", "TCPDSACKOfoSent", "TCPDSACKRecv",
    "TCPDSACKOfoRecv", "TCPAbortOnData", "TCPAbortOnClose", "TCPAbortOnMemory",
    "TCPAbortOnTimeout", "TCPAbortOnLinger", "TCPAbortFailed", "TCPMemoryPressures",
    "TCPMemoryPressuresChrono", "TCPSACKDiscard", "TCPDSACKIgnoredOld", "TCPDSACKIgnoredNoUndo",
    "TCPSpuriousRTOs", "TCPMD5NotFound", "TCPMD5Unexpected", "TCPMD5Failure", "TCPSackShifted",
    "TCPSackMerged", "TCPSackShiftFallback", "TCPBacklogDrop", "PFMemallocDrop",
    "TCPMinTTLDrop", "TCPDeferAcceptDrop", "IPReversePathFilter", "TCPTimeWaitOverflow",
    "TCPReqQFullDoCookies", "TCPReqQFullDrop", "TCPRetransFail", "TCPRcvCoalesce",
    "TCPOFOQueue", "TCPOFODrop", "TCPOFOMerge", "TCPChallengeACK", "TCPSYNChallenge",
    "TCPFastOpenActive", "TCPFastOpenActiveFail", "TCPFastOpenPassive", "TCPFastOpenPassiveFail",
    "TCPFastOpenListenOverflow", "TCPFastOpenCookieReqd", "TCPFastOpenBlackhole",
    "TCPSpuriousRtxHostQueues", "BusyPollRxPackets", "TCPAutoCorking", "TCPFromZeroWindowAdv",
    "TCPToZeroWindowAdv", "TCPWantZeroWindowAdv", "TCPSynRetrans", "TCPOrigDataSent",
    "TCPHystartTrainDetect", "TCPHystartTrainCwnd", "TCPHystartDelayDetect",
    "TCPHystartDelayCwnd", "TCPACKSkippedSynRecv", "TCPACKSkippedPAWS", "TCPACKSkippedSeq",
    "TCPACKSkippedFinWait2", "TCPACKSkippedTimeWait", "TCPACKSkippedChallenge", "TCPWinProbe",
    "TCPKeepAlive", "TCPMTUPFail", "TCPMTUPSuccess", "TCPDelivered", "TCPDeliveredCE",
    "TCPAckCompressed", "TCPZeroWindowDrop", "TCPRcvQDrop", "TCPWqueueTooBig",
    "TCPFastOpenPassiveAltKey", "TcpTimeoutRehash", "TcpDuplicateDataRehash",
    "TCPDSACKRecvSegs", "TCPDSACKIgnoredDubious",
)

# How netstat prints a counter: ALWAYS its sentence; NONZERO its sentence, only when the
# value is not 0; IN/OUT a line of the ICMP input/output histogram (only when not 0, under a
# title printed once); HIDDEN nothing (configuration, such as DefaultTTL, that netstat -s
# shows only with an option pystack does not model, and RtoMin/RtoMax/MaxConn). A counter
# with no entry prints as "Name: value" when it is not 0.
ALWAYS: Final = "always"
NONZERO: Final = "nonzero"
IN: Final = "in"
OUT: Final = "out"
HIDDEN: Final = "hidden"

# net-tools' wording. netstat finds a counter's sentence with a binary search over a table
# that is not quite in strcmp order, so it misses some: Ip's Forwarding, and in TcpExt
# TCPSackRecovery, TCPTimeouts, TCPDSACKRecv and others. Those print as "Name: value" on a
# real Linux machine ("Forwarding: 1", "TCPTimeouts: 3"), so they have no sentence here.
NETSTAT_SENTENCES: dict[str, dict[str, tuple[str, str]]] = {
    "Ip": {
        "DefaultTTL": (HIDDEN, ""),
        "InReceives": (ALWAYS, "{} total packets received"),
        "InHdrErrors": (NONZERO, "{} with invalid headers"),
        "InAddrErrors": (NONZERO, "{} with invalid addresses"),
        "ForwDatagrams": (ALWAYS, "{} forwarded"),
        "InUnknownProtos": (NONZERO, "{} with unknown protocol"),
        "InDiscards": (ALWAYS, "{} incoming packets discarded"),
        "InDelivers": (ALWAYS, "{} incoming packets delivered"),
        "OutRequests": (ALWAYS, "{} requests sent out"),
        "OutDiscards": (NONZERO, "{} outgoing packets dropped"),
        "OutNoRoutes": (NONZERO, "{} dropped because of missing route"),
        "ReasmTimeout": (NONZERO, "{} fragments dropped after timeout"),
        "ReasmReqds": (NONZERO, "{} reassemblies required"),
        "ReasmOKs": (NONZERO, "{} packets reassembled ok"),
        "ReasmFails": (NONZERO, "{} packet reassemblies failed"),
        "FragOKs": (NONZERO, "{} outgoing packets fragmented ok"),
        "FragFails": (NONZERO, "{} outgoing packets failed fragmentation"),
        "FragCreates": (NONZERO, "{} fragments created"),
    },
    "Icmp": {
        "InMsgs": (ALWAYS, "{} ICMP messages received"),
        "InErrors": (ALWAYS, "{} input ICMP message failed"),
        "InDestUnreachs": (IN, "destination unreachable: {}"),
        "InTimeExcds": (IN, "timeout in transit: {}"),
        "InParmProbs": (IN, "wrong parameters: {}"),
        "InSrcQuenchs": (IN, "source quenches: {}"),
        "InRedirects": (IN, "redirects: {}"),
        "InEchos": (IN, "echo requests: {}"),
        "InEchoReps": (IN, "echo replies: {}"),
        "InTimestamps": (IN, "timestamp request: {}"),
        "InTimestampReps": (IN, "timestamp reply: {}"),
        "InAddrMasks": (IN, "address mask request: {}"),
        "InAddrMaskReps": (IN, "address mask replies: {}"),
        "OutMsgs": (ALWAYS, "{} ICMP messages sent"),
        "OutErrors": (ALWAYS, "{} ICMP messages failed"),
        "OutDestUnreachs": (OUT, "destination unreachable: {}"),
        "OutTimeExcds": (OUT, "time exceeded: {}"),
        "OutParmProbs": (OUT, "wrong parameters: {}"),
        "OutSrcQuenchs": (OUT, "source quench: {}"),
        "OutRedirects": (OUT, "redirect: {}"),
        "OutEchos": (OUT, "echo requests: {}"),
        "OutEchoReps": (OUT, "echo replies: {}"),
        "OutTimestamps": (OUT, "timestamp requests: {}"),
        "OutTimestampReps": (OUT, "timestamp replies: {}"),
        "OutAddrMasks": (OUT, "address mask requests: {}"),
        "OutAddrMaskReps": (OUT, "address mask replies: {}"),
    },
    "Tcp": {
        "RtoAlgorithm": (HIDDEN, ""), "RtoMin": (HIDDEN, ""), "RtoMax": (HIDDEN, ""),
        "MaxConn": (HIDDEN, ""),
        "ActiveOpens": (ALWAYS, "{} active connection openings"),
        "PassiveOpens": (ALWAYS, "{} passive connection openings"),
        "AttemptFails": (ALWAYS, "{} failed connection attempts"),
        "EstabResets": (ALWAYS, "{} connection resets received"),
        "CurrEstab": (ALWAYS, "{} connections established"),
        "InSegs": (ALWAYS, "{} segments received"),
        "OutSegs": (ALWAYS, "{} segments sent out"),
        "RetransSegs": (ALWAYS, "{} segments retransmitted"),
        "InErrs": (ALWAYS, "{} bad segments received"),
        "OutRsts": (ALWAYS, "{} resets sent"),
    },
    "Udp": {
        "InDatagrams": (ALWAYS, "{} packets received"),
        "NoPorts": (ALWAYS, "{} packets to unknown port received"),
        "InErrors": (ALWAYS, "{} packet receive errors"),
        "OutDatagrams": (ALWAYS, "{} packets sent"),
        "RcvbufErrors": (ALWAYS, "{} receive buffer errors"),
        "SndbufErrors": (ALWAYS, "{} send buffer errors"),
    },
    "TcpExt": {
        "SyncookiesSent": (NONZERO, "{} SYN cookies sent"),
        "SyncookiesRecv": (NONZERO, "{} SYN cookies received"),
        "SyncookiesFailed": (NONZERO, "{} invalid SYN cookies received"),
        "EmbryonicRsts": (NONZERO, "{} resets received for embryonic SYN_RECV sockets"),
        "PruneCalled": (NONZERO, "{} packets pruned from receive queue because of socket "
                                 "buffer overrun"),
        "RcvPruned": (NONZERO, "{} packets pruned from receive queue"),
        "OfoPruned": (NONZERO, "{} packets dropped from out-of-order queue because of "
                               "socket buffer overrun"),
        "OutOfWindowIcmps": (NONZERO, "{} ICMP packets dropped because they were "
                                      "out-of-window"),
        "LockDroppedIcmps": (NONZERO, "{} ICMP packets dropped because socket was locked"),
        "TW": (NONZERO, "{} TCP sockets finished time wait in fast timer"),
        "TWRecycled": (NONZERO, "{} time wait sockets recycled by time stamp"),
        "PAWSActive": (NONZERO, "{} active connections rejected because of time stamp"),
        "PAWSEstab": (NONZERO, "{} packets rejected in established connections because of "
                               "timestamp"),
        "DelayedACKs": (NONZERO, "{} delayed acks sent"),
        "DelayedACKLocked": (NONZERO, "{} delayed acks further delayed because of locked "
                                      "socket"),
        "DelayedACKLost": (NONZERO, "Quick ack mode was activated {} times"),
        "ListenOverflows": (NONZERO, "{} times the listen queue of a socket overflowed"),
        "ListenDrops": (NONZERO, "{} SYNs to LISTEN sockets dropped"),
        "TCPHPHits": (ALWAYS, "{} packet headers predicted"),
        "TCPPureAcks": (NONZERO, "{} acknowledgments not containing data payload received"),
        "TCPHPAcks": (NONZERO, "{} predicted acknowledgments"),
        "TCPRenoRecovery": (NONZERO, "{} times recovered from packet loss due to fast "
                                     "retransmit"),
        "TCPSACKReorder": (NONZERO, "Detected reordering {} times using SACK"),
        "TCPRenoReorder": (NONZERO, "Detected reordering {} times using reno fast "
                                    "retransmit"),
        "TCPTSReorder": (NONZERO, "Detected reordering {} times using time stamp"),
        "TCPFullUndo": (NONZERO, "{} congestion windows fully recovered without slow start"),
        "TCPPartialUndo": (NONZERO, "{} congestion windows partially recovered using Hoe "
                                    "heuristic"),
        "TCPLossUndo": (NONZERO, "{} congestion windows recovered without slow start after "
                                 "partial ack"),
        "TCPRenoFailures": (NONZERO, "{} timeouts after reno fast retransmit"),
        "TCPLossFailures": (NONZERO, "{} timeouts in loss state"),
        "TCPFastRetrans": (NONZERO, "{} fast retransmits"),
        "TCPSlowStartRetrans": (NONZERO, "{} retransmits in slow start"),
        "TCPRcvCollapsed": (NONZERO, "{} packets collapsed in receive queue due to low "
                                     "socket buffer"),
        "TCPAbortOnData": (NONZERO, "{} connections reset due to unexpected data"),
        "TCPAbortOnClose": (NONZERO, "{} connections reset due to early user close"),
        "TCPAbortOnMemory": (NONZERO, "{} connections aborted due to memory pressure"),
        "TCPAbortOnTimeout": (NONZERO, "{} connections aborted due to timeout"),
        "TCPAbortOnLinger": (NONZERO, "{} connections aborted after user close in linger "
                                      "timeout"),
        "TCPAbortFailed": (NONZERO, "{} times unable to send RST due to no memory"),
        "TCPMemoryPressures": (NONZERO, "TCP ran low on memory {} times"),
    },
}

# Sections netstat knows start at the normal indent; for the others (IcmpMsg, IpExt) the
# indent carries over from the section before, which is why IcmpMsg's lines sit 8 deep.
_NETSTAT_KNOWN: Final = ("Ip", "Icmp", "Tcp", "Udp", "TcpExt")
_HISTOGRAM_TITLES: Final = {IN: "ICMP input histogram:", OUT: "ICMP output histogram:"}


def _netstat_order(group: str, values: dict[str, int]) -> list[tuple[str, int]]:
    """The counters in the order /proc prints them (the order netstat reads)."""
    if group == "TcpExt":
        rank = {name: i for i, name in enumerate(TCPEXT_ORDER)}
        names = sorted(values, key=lambda n: (rank.get(n, len(rank)), n))
    elif group == "IcmpMsg":  # every InTypeN by N, then every OutTypeN
        names = sorted(values, key=lambda n: (n.startswith("Out"), int(n.split("Type")[1])))
    else:
        names = list(values)
    return [(name, values[name]) for name in names]


def netstat_text(snapshot: dict[str, dict[str, int]]) -> str:
    """`netstat -s`'s layout (net-tools): a heading per group, one indented line per counter,
    in /proc's order: /proc/net/snmp's Ip, Icmp, IcmpMsg, Tcp, Udp, then /proc/net/netstat's
    TcpExt and IpExt."""
    lines: list[str] = []
    state = ALWAYS  # netstat's running state: the kind of the last counter it placed
    for group in ("Ip", "Icmp", "IcmpMsg", "Tcp", "Udp", "TcpExt", "IpExt"):
        if group not in snapshot or (group == "IcmpMsg" and not snapshot[group]):
            continue
        lines.append(f"{group}:")
        if group in _NETSTAT_KNOWN:
            state = ALWAYS
        sentences = NETSTAT_SENTENCES.get(group, {})
        for name, value in _netstat_order(group, snapshot[group]):
            indent = " " * (8 if state in (IN, OUT) else 4)
            kind, sentence = sentences.get(name, (None, ""))
            if kind is None:
                if value:
                    lines.append(f"{indent}{name}: {value}")
                continue
            if kind == HIDDEN:
                continue
            if kind in (IN, OUT):
                if state != kind:
                    lines.append(indent + _HISTOGRAM_TITLES[kind])
                if value:
                    lines.append(" " * 8 + sentence.format(value))
            elif value or kind == ALWAYS:
                lines.append(" " * 4 + sentence.format(value))
            state = kind
    return "\n".join(lines) + "\n"
