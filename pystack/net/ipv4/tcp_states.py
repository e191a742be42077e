"""Socket states shared by every inet socket, as include/net/tcp_states.h."""

from typing import Final

TCP_ESTABLISHED: Final = 1
TCP_SYN_SENT: Final = 2
TCP_SYN_RECV: Final = 3
TCP_FIN_WAIT1: Final = 4
TCP_FIN_WAIT2: Final = 5
TCP_TIME_WAIT: Final = 6
TCP_CLOSE: Final = 7
TCP_CLOSE_WAIT: Final = 8
TCP_LAST_ACK: Final = 9
TCP_LISTEN: Final = 10
TCP_CLOSING: Final = 11
TCP_NEW_SYN_RECV: Final = 12

# As ss prints them.
TCP_STATE_NAMES = {
    TCP_ESTABLISHED: "ESTAB", TCP_SYN_SENT: "SYN-SENT", TCP_SYN_RECV: "SYN-RECV",
    TCP_FIN_WAIT1: "FIN-WAIT-1", TCP_FIN_WAIT2: "FIN-WAIT-2", TCP_TIME_WAIT: "TIME-WAIT",
    TCP_CLOSE: "UNCONN", TCP_CLOSE_WAIT: "CLOSE-WAIT", TCP_LAST_ACK: "LAST-ACK",
    TCP_LISTEN: "LISTEN", TCP_CLOSING: "CLOSING", TCP_NEW_SYN_RECV: "NEW-SYN-RECV",
}

# As the kernel's tracepoints print them (show_tcp_state_name in include/trace/events/sock.h).
TCP_STATE_SYMBOLS = {state: name for name, state in globals().items()
                     if name.startswith("TCP_") and isinstance(state, int)}
