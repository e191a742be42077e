"""The counters' text views (pystack/net/ipv4/proc.py): `netstat -s`'s layout.

Reference: net-tools' statistics.c (the sentences, the ICMP histograms, "Name: value" for a
counter it has no sentence for), net/ipv4/proc.c (the order of /proc/net/snmp and
/proc/net/netstat, which is the order netstat prints).
"""

from __future__ import annotations

import socket

import trio

import pystack
from pystack.net.ipv4.proc import (ICMP_FIELDS, IP_FIELDS, TCP_FIELDS, UDP_FIELDS, Mib,
                                   netstat_text)

from nethelpers import connected_pair

# `netstat -s` on a real Linux machine (net-tools 2.10), from a public troubleshooting note;
# the UdpLite and MPTcpExt headings it also printed are left out (pystack has neither).
REAL_NETSTAT = """\
Ip:
    Forwarding: 1
    158971535 total packets received
    0 forwarded
    0 incoming packets discarded
    158956187 incoming packets delivered
    158955681 requests sent out
    44 dropped because of missing route
Icmp:
    34 ICMP messages received
    0 input ICMP message failed
    ICMP input histogram:
        destination unreachable: 34
    0 ICMP messages sent
    0 ICMP messages failed
    ICMP output histogram:
IcmpMsg:
        InType3: 34
Tcp:
    4108041 active connection openings
    4107593 passive connection openings
    220 failed connection attempts
    5690 connection resets received
    1467 connections established
    158028358 segments received
    158027202 segments sent out
    618 segments retransmitted
    0 bad segments received
    5715 resets sent
Udp:
    927760 packets received
    0 packets to unknown port received
    0 packet receive errors
    928571 packets sent
    0 receive buffer errors
    0 send buffer errors
    IgnoredMulti: 67
TcpExt:
    2 invalid SYN cookies received
    1 resets received for embryonic SYN_RECV sockets
    7429656 TCP sockets finished time wait in fast timer
    2 packets rejected in established connections because of timestamp
    1182560 delayed acks sent
    5 delayed acks further delayed because of locked socket
    Quick ack mode was activated 450 times
    48145934 packet headers predicted
    43329821 acknowledgments not containing data payload received
    49430888 predicted acknowledgments
    TCPSackRecovery: 134
    Detected reordering 6 times using SACK
    TCPDSACKUndo: 1
    2 congestion windows recovered without slow start after partial ack
    TCPLostRetransmit: 5
    173 fast retransmits
    TCPTimeouts: 3
    TCPLossProbes: 437
    TCPLossProbeRecovery: 1
    TCPBacklogCoalesce: 6
    TCPDSACKOldSent: 450
    TCPDSACKRecv: 424
    TCPDSACKOfoRecv: 1
    200 connections reset due to unexpected data
    7 connections reset due to early user close
    5 connections aborted due to timeout
    TCPDSACKIgnoredNoUndo: 420
    TCPSackShifted: 47
    TCPSackMerged: 1523
    TCPSackShiftFallback: 171
    TCPDeferAcceptDrop: 7912
    TCPRcvCoalesce: 8014
    TCPOFOQueue: 17
    TCPAutoCorking: 182
    TCPSynRetrans: 4
    TCPOrigDataSent: 67480919
    TCPHystartTrainDetect: 1
    TCPHystartTrainCwnd: 24
    TCPHystartDelayDetect: 1
    TCPHystartDelayCwnd: 24
    TCPKeepAlive: 27618451
    TCPDelivered: 71589150
    TcpTimeoutRehash: 8
IpExt:
    InMcastPkts: 1279
    InBcastPkts: 14136
    InOctets: 14516684539
    OutOctets: 14476928457
    InMcastOctets: 46044
    InBcastOctets: 919142
    InNoECTPkts: 158969646
    InECT0Pkts: 1950
"""


def _name_value_lines(text: str, heading: str) -> dict[str, int]:
    """The "Name: value" lines under `heading` in a netstat -s text."""
    out: dict[str, int] = {}
    for line in text.split(f"{heading}:\n", 1)[1].splitlines():
        if not line.startswith(" "):
            break
        name, sep, value = line.strip().partition(": ")
        if sep and value.isdigit():
            out[name] = int(value)
    return out


def test_netstat_layout_matches_a_real_machine_for_the_same_counters() -> None:
    # The counters behind REAL_NETSTAT, as /proc/net/snmp and /proc/net/netstat hold them:
    # every Ip/Icmp/Tcp/Udp field (zero where the sample shows nothing).
    ip = dict.fromkeys(IP_FIELDS, 0)
    ip.update(Forwarding=1, DefaultTTL=64, InReceives=158971535, InDelivers=158956187,
              OutRequests=158955681, OutNoRoutes=44)
    icmp = dict.fromkeys(ICMP_FIELDS, 0)
    icmp.update(InMsgs=34, InDestUnreachs=34)
    tcp = dict.fromkeys(TCP_FIELDS, 0)
    tcp.update(RtoAlgorithm=1, RtoMin=200, RtoMax=120000, MaxConn=-1, ActiveOpens=4108041,
               PassiveOpens=4107593, AttemptFails=220, EstabResets=5690, CurrEstab=1467,
               InSegs=158028358, OutSegs=158027202, RetransSegs=618, OutRsts=5715)
    udp = dict.fromkeys(UDP_FIELDS, 0)
    udp.update(InDatagrams=927760, OutDatagrams=928571, IgnoredMulti=67)
    # TcpExt: the counters netstat has a sentence for, by name; the "Name: value" ones as
    # the sample prints them. The dict is sorted by name: netstat's order is the kernel's.
    tcpext = {"SyncookiesFailed": 2, "EmbryonicRsts": 1, "TW": 7429656, "PAWSEstab": 2,
              "DelayedACKs": 1182560, "DelayedACKLocked": 5, "DelayedACKLost": 450,
              "TCPHPHits": 48145934, "TCPPureAcks": 43329821, "TCPHPAcks": 49430888,
              "TCPSACKReorder": 6, "TCPLossUndo": 2, "TCPFastRetrans": 173,
              "TCPAbortOnData": 200, "TCPAbortOnClose": 7, "TCPAbortOnTimeout": 5,
              **_name_value_lines(REAL_NETSTAT, "TcpExt")}
    snapshot = {"Ip": ip, "IpExt": _name_value_lines(REAL_NETSTAT, "IpExt"),
                "Icmp": icmp, "IcmpMsg": {"InType3": 34}, "Tcp": tcp,
                "TcpExt": dict(sorted(tcpext.items())), "Udp": udp}
    assert netstat_text(snapshot) == REAL_NETSTAT


def test_netstat_prints_icmp_histograms_in_type_order_and_skips_empty_icmpmsg() -> None:
    mib = Mib()
    for type_ in (11, 3, 0, 3):
        mib.icmp_in(type_)
        mib.icmp["InMsgs"] += 1
    mib.icmp_out(8)
    text = netstat_text(mib.snapshot())
    icmp = text.split("Icmp:\n", 1)[1].split("Tcp:\n", 1)[0]
    assert icmp == """\
    4 ICMP messages received
    0 input ICMP message failed
    ICMP input histogram:
        destination unreachable: 2
        timeout in transit: 1
        echo replies: 1
    0 ICMP messages sent
    0 ICMP messages failed
    ICMP output histogram:
        echo requests: 1
IcmpMsg:
        InType0: 1
        InType3: 2
        InType11: 1
        OutType8: 1
"""
    assert "IcmpMsg" not in netstat_text(Mib().snapshot())
    assert netstat_text(Mib().snapshot()).splitlines()[:2] == ["Ip:", "    Forwarding: 2"]


async def test_a_hosts_netstat_text_counts_what_happened() -> None:
    net = pystack.Network(seed=3)
    async with net:
        a, b = net.add_host("a"), net.add_host("b")
        net.add_link(a, b)
        await a.ping("10.0.0.2")
        c, conn = await connected_pair(a, b, "10.0.0.2")
        await c.send(b"x" * 5000)
        assert len(await conn.recv(10000)) == 5000
        u = a.socket(socket.AF_INET, socket.SOCK_DGRAM)
        await u.sendto(b"hi", ("10.0.0.2", 9))  # a closed port: b answers port unreachable
        await trio.sleep(1)
        sa, sb = a.stats(), b.stats()
        ta, tb = sa.netstat(), sb.netstat()
    assert [line for line in ta.splitlines() if not line.startswith(" ")] == [
        "Ip:", "Icmp:", "IcmpMsg:", "Tcp:", "Udp:", "TcpExt:", "IpExt:"]
    for text, s in ((ta, sa), (tb, sb)):
        assert f"    {s['Ip']['InReceives']} total packets received\n" in text
        assert f"    {s['Tcp']['OutSegs']} segments sent out\n" in text
        assert f"    {s['Udp']['OutDatagrams']} packets sent\n" in text
        assert f"    InOctets: {s['IpExt']['InOctets']}\n" in text
    assert "    1 active connection openings\n    0 passive connection openings\n" in ta
    assert "    0 active connection openings\n    1 passive connection openings\n" in tb
    assert "    0 segments retransmitted\n" in ta
    assert "    ICMP input histogram:\n        destination unreachable: 1\n" \
           "        echo replies: 1\n" in ta
    assert "    1 packets to unknown port received\n" in tb
    assert "ICMP output histogram:\n        destination unreachable: 1\n" \
           "        echo replies: 1\n" in tb
