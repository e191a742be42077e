"""The names a packetdrill script may use for numbers: Linux's constants, as its headers
define them (the values packetdrill's symbols_linux.c takes from the C headers).

Read first: packetdrill's symbols_linux.c; include/uapi/linux/{socket.h,in.h,tcp.h,
sockios.h,poll.h,eventpoll.h}, include/uapi/asm-generic/{fcntl.h,errno*.h,socket.h}.

The values are Linux x86-64's, written out here rather than taken from Python's `socket`
module, so a run means the same thing on every machine. Errno names come from Python's `errno`
module (identical to Linux's on Linux; this table overrides where it matters).
"""

from __future__ import annotations

import errno as _errno

__all__ = ["SYMBOLS", "lookup", "errno_name"]

SYMBOLS: dict[str, int] = {
    # address families, socket types and flags
    "AF_UNSPEC": 0, "AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_PACKET": 17,
    "PF_INET": 2, "PF_INET6": 10,
    "SOCK_STREAM": 1, "SOCK_DGRAM": 2, "SOCK_RAW": 3, "SOCK_SEQPACKET": 5,
    "SOCK_NONBLOCK": 0o4000, "SOCK_CLOEXEC": 0o2000000,
    # protocols and option levels
    "IPPROTO_IP": 0, "IPPROTO_ICMP": 1, "IPPROTO_TCP": 6, "IPPROTO_UDP": 17,
    "IPPROTO_IPV6": 41, "IPPROTO_ICMPV6": 58, "IPPROTO_RAW": 255,
    "SOL_SOCKET": 1, "SOL_IP": 0, "SOL_TCP": 6, "SOL_UDP": 17, "SOL_IPV6": 41,
    # SOL_SOCKET options
    "SO_DEBUG": 1, "SO_REUSEADDR": 2, "SO_TYPE": 3, "SO_ERROR": 4, "SO_DONTROUTE": 5,
    "SO_BROADCAST": 6, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_OOBINLINE": 10,
    "SO_NO_CHECK": 11, "SO_PRIORITY": 12, "SO_LINGER": 13, "SO_BSDCOMPAT": 14,
    "SO_REUSEPORT": 15, "SO_PASSCRED": 16, "SO_PEERCRED": 17, "SO_RCVLOWAT": 18,
    "SO_SNDLOWAT": 19, "SO_RCVTIMEO": 20, "SO_SNDTIMEO": 21, "SO_BINDTODEVICE": 25,
    "SO_TIMESTAMP": 29, "SO_ACCEPTCONN": 30, "SO_SNDBUFFORCE": 32, "SO_RCVBUFFORCE": 33,
    "SO_MARK": 36, "SO_TIMESTAMPING": 37, "SO_PROTOCOL": 38, "SO_DOMAIN": 39,
    "SO_RXQ_OVFL": 40, "SO_MAX_PACING_RATE": 47, "SO_INCOMING_CPU": 49, "SO_ZEROCOPY": 60,
    "SO_TXTIME": 61, "SO_MEMINFO": 55,
    # IPPROTO_TCP options
    "TCP_NODELAY": 1, "TCP_MAXSEG": 2, "TCP_CORK": 3, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5,
    "TCP_KEEPCNT": 6, "TCP_SYNCNT": 7, "TCP_LINGER2": 8, "TCP_DEFER_ACCEPT": 9,
    "TCP_WINDOW_CLAMP": 10, "TCP_INFO": 11, "TCP_QUICKACK": 12, "TCP_CONGESTION": 13,
    "TCP_MD5SIG": 14, "TCP_THIN_LINEAR_TIMEOUTS": 16, "TCP_THIN_DUPACK": 17,
    "TCP_USER_TIMEOUT": 18, "TCP_REPAIR": 19, "TCP_REPAIR_QUEUE": 20, "TCP_QUEUE_SEQ": 21,
    "TCP_REPAIR_OPTIONS": 22, "TCP_FASTOPEN": 23, "TCP_TIMESTAMP": 24,
    "TCP_NOTSENT_LOWAT": 25, "TCP_CC_INFO": 26, "TCP_SAVE_SYN": 27, "TCP_SAVED_SYN": 28,
    "TCP_REPAIR_WINDOW": 29, "TCP_FASTOPEN_CONNECT": 30, "TCP_ULP": 31,
    "TCP_MD5SIG_EXT": 32, "TCP_FASTOPEN_KEY": 33, "TCP_FASTOPEN_NO_COOKIE": 34,
    "TCP_ZEROCOPY_RECEIVE": 35, "TCP_INQ": 36, "TCP_TX_DELAY": 37,
    # IPPROTO_IP options
    "IP_TOS": 1, "IP_TTL": 2, "IP_HDRINCL": 3, "IP_OPTIONS": 4, "IP_PKTINFO": 8,
    "IP_MTU_DISCOVER": 10, "IP_RECVERR": 11, "IP_RECVTTL": 12, "IP_RECVTOS": 13,
    "IP_MTU": 14, "IP_FREEBIND": 15, "IP_TRANSPARENT": 19, "IP_BIND_ADDRESS_NO_PORT": 24,
    "IP_PMTUDISC_DONT": 0, "IP_PMTUDISC_WANT": 1, "IP_PMTUDISC_DO": 2, "IP_PMTUDISC_PROBE": 3,
    # msg flags
    "MSG_OOB": 0x1, "MSG_PEEK": 0x2, "MSG_DONTROUTE": 0x4, "MSG_CTRUNC": 0x8,
    "MSG_TRUNC": 0x20, "MSG_DONTWAIT": 0x40, "MSG_EOR": 0x80, "MSG_WAITALL": 0x100,
    "MSG_CONFIRM": 0x800, "MSG_ERRQUEUE": 0x2000, "MSG_NOSIGNAL": 0x4000, "MSG_MORE": 0x8000,
    "MSG_FASTOPEN": 0x20000000, "MSG_ZEROCOPY": 0x4000000,
    # files
    "O_RDONLY": 0, "O_WRONLY": 1, "O_RDWR": 2, "O_CREAT": 0o100, "O_APPEND": 0o2000,
    "O_NONBLOCK": 0o4000, "O_NDELAY": 0o4000, "O_CLOEXEC": 0o2000000,
    "F_DUPFD": 0, "F_GETFD": 1, "F_SETFD": 2, "F_GETFL": 3, "F_SETFL": 4, "FD_CLOEXEC": 1,
    # ioctls
    "SIOCINQ": 0x541B, "FIONREAD": 0x541B, "SIOCOUTQ": 0x5411, "TIOCOUTQ": 0x5411,
    "SIOCOUTQNSD": 0x894B, "FIONBIO": 0x5421,
    # shutdown
    "SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
    # poll / epoll
    "POLLIN": 0x1, "POLLPRI": 0x2, "POLLOUT": 0x4, "POLLERR": 0x8, "POLLHUP": 0x10,
    "POLLNVAL": 0x20, "POLLRDNORM": 0x40, "POLLRDBAND": 0x80, "POLLWRNORM": 0x100,
    "POLLWRBAND": 0x200, "POLLMSG": 0x400, "POLLRDHUP": 0x2000,
    "EPOLLIN": 0x1, "EPOLLPRI": 0x2, "EPOLLOUT": 0x4, "EPOLLERR": 0x8, "EPOLLHUP": 0x10,
    "EPOLLRDNORM": 0x40, "EPOLLRDBAND": 0x80, "EPOLLWRNORM": 0x100, "EPOLLWRBAND": 0x200,
    "EPOLLRDHUP": 0x2000, "EPOLLET": 1 << 31, "EPOLLONESHOT": 1 << 30,
    "EPOLL_CTL_ADD": 1, "EPOLL_CTL_DEL": 2, "EPOLL_CTL_MOD": 3,
    "EPOLLEXCLUSIVE": 1 << 28,
    # errqueue, timestamping (include/uapi/linux/errqueue.h, net_tstamp.h)
    "SO_EE_ORIGIN_NONE": 0, "SO_EE_ORIGIN_LOCAL": 1, "SO_EE_ORIGIN_ICMP": 2,
    "SO_EE_ORIGIN_ICMP6": 3, "SO_EE_ORIGIN_TIMESTAMPING": 4, "SO_EE_ORIGIN_ZEROCOPY": 5,
    "SO_EE_ORIGIN_TXTIME": 6, "SO_EE_CODE_ZEROCOPY_COPIED": 1,
    "SCM_TIMESTAMPING": 37, "SCM_TSTAMP_SND": 0, "SCM_TSTAMP_SCHED": 1, "SCM_TSTAMP_ACK": 2,
    "SOF_TIMESTAMPING_TX_HARDWARE": 1 << 0, "SOF_TIMESTAMPING_TX_SOFTWARE": 1 << 1,
    "SOF_TIMESTAMPING_RX_HARDWARE": 1 << 2, "SOF_TIMESTAMPING_RX_SOFTWARE": 1 << 3,
    "SOF_TIMESTAMPING_SOFTWARE": 1 << 4, "SOF_TIMESTAMPING_OPT_ID": 1 << 7,
    "SOF_TIMESTAMPING_TX_SCHED": 1 << 8, "SOF_TIMESTAMPING_TX_ACK": 1 << 9,
    "TCP_CM_INQ": 36,
    # misc
    "NULL": 0, "SOMAXCONN": 4096,
}


def lookup(name: str) -> int | None:
    """The value of a constant's name, or None when neither this table nor errno knows it."""
    value = SYMBOLS.get(name)
    if value is not None:
        return value
    if name.startswith("E") and hasattr(_errno, name):
        return getattr(_errno, name)
    return None


def errno_name(err: int) -> str:
    return _errno.errorcode.get(err, str(err))
