"""`%{ }%` code blocks: TCP_INFO snapshots and the Python that asserts on them.

Read first: packetdrill's code.c (run_code_event takes a getsockopt(TCP_INFO) snapshot of the
socket under test at the block's time; code_execute runs every block, each preceded by its
snapshot as `tcpi_*` variables, in one Python program after the script has ended),
include/uapi/linux/tcp.h (struct tcp_info).

The snapshot may come back from pystack as the C struct's bytes (decoded here with Linux's
x86-64 layout), as a mapping of field names, or as an object with `tcpi_*` attributes. The
blocks run in this process, in one namespace, in script order, after the script's events, as
packetdrill runs them.
"""

from __future__ import annotations

import struct
import textwrap
import traceback
from typing import Any

import attrs

__all__ = ["decode_tcp_info", "CodeBlock", "run_code_blocks", "CODE_SYMBOLS"]

# struct tcp_info, in order: (name, struct format). The first eight bytes are u8s, two of
# them split into bit-fields.
_U8_FIELDS = ("tcpi_state", "tcpi_ca_state", "tcpi_retransmits", "tcpi_probes",
              "tcpi_backoff", "tcpi_options")
_LAYOUT: list[tuple[str, str]] = [(name, "I") for name in (
    "tcpi_rto", "tcpi_ato", "tcpi_snd_mss", "tcpi_rcv_mss", "tcpi_unacked", "tcpi_sacked",
    "tcpi_lost", "tcpi_retrans", "tcpi_fackets", "tcpi_last_data_sent", "tcpi_last_ack_sent",
    "tcpi_last_data_recv", "tcpi_last_ack_recv", "tcpi_pmtu", "tcpi_rcv_ssthresh", "tcpi_rtt",
    "tcpi_rttvar", "tcpi_snd_ssthresh", "tcpi_snd_cwnd", "tcpi_advmss", "tcpi_reordering",
    "tcpi_rcv_rtt", "tcpi_rcv_space", "tcpi_total_retrans")] + [
    ("tcpi_pacing_rate", "Q"), ("tcpi_max_pacing_rate", "Q"), ("tcpi_bytes_acked", "Q"),
    ("tcpi_bytes_received", "Q"), ("tcpi_segs_out", "I"), ("tcpi_segs_in", "I"),
    ("tcpi_notsent_bytes", "I"), ("tcpi_min_rtt", "I"), ("tcpi_data_segs_in", "I"),
    ("tcpi_data_segs_out", "I"), ("tcpi_delivery_rate", "Q"), ("tcpi_busy_time", "Q"),
    ("tcpi_rwnd_limited", "Q"), ("tcpi_sndbuf_limited", "Q"), ("tcpi_delivered", "I"),
    ("tcpi_delivered_ce", "I"), ("tcpi_bytes_sent", "Q"), ("tcpi_bytes_retrans", "Q"),
    ("tcpi_dsack_dups", "I"), ("tcpi_reord_seen", "I"), ("tcpi_rcv_ooopack", "I"),
    ("tcpi_snd_wnd", "I"), ("tcpi_rcv_wnd", "I"), ("tcpi_rehash", "I"),
    ("tcpi_total_rto", "H"), ("tcpi_total_rto_recoveries", "H"), ("tcpi_total_rto_time", "I"),
]

# What packetdrill defines for the code (code.c write_symbols), Linux's values.
CODE_SYMBOLS = {
    "TCP_ESTABLISHED": 1, "TCP_SYN_SENT": 2, "TCP_SYN_RECV": 3, "TCP_FIN_WAIT1": 4,
    "TCP_FIN_WAIT2": 5, "TCP_TIME_WAIT": 6, "TCP_CLOSE": 7, "TCP_CLOSE_WAIT": 8,
    "TCP_LAST_ACK": 9, "TCP_LISTEN": 10, "TCP_CLOSING": 11,
    "TCP_CA_Open": 0, "TCP_CA_Disorder": 1, "TCP_CA_CWR": 2, "TCP_CA_Recovery": 3,
    "TCP_CA_Loss": 4,
    "TCPI_OPT_TIMESTAMPS": 1, "TCPI_OPT_SACK": 2, "TCPI_OPT_WSCALE": 4, "TCPI_OPT_ECN": 8,
    "TCPI_OPT_ECN_SEEN": 16, "TCPI_OPT_SYN_DATA": 32, "TCPI_OPT_USEC_TS": 64,
    "TCPI_OPT_TFO_CHILD": 128,
}


def _decode_struct(raw: bytes) -> dict[str, int]:
    if len(raw) < 8:
        raise ValueError(f"TCP_INFO of {len(raw)} bytes is shorter than its first fields")
    out = dict(zip(_U8_FIELDS, raw[:6]))
    out["tcpi_snd_wscale"] = raw[6] & 0xF
    out["tcpi_rcv_wscale"] = raw[6] >> 4
    out["tcpi_delivery_rate_app_limited"] = raw[7] & 1
    out["tcpi_fastopen_client_fail"] = (raw[7] >> 1) & 3
    off = 8
    for name, fmt in _LAYOUT:
        size = struct.calcsize(fmt)
        align = size
        off = (off + align - 1) // align * align
        if off + size > len(raw):
            break
        out[name] = struct.unpack_from("<" + fmt, raw, off)[0]
        off += size
    return out


def decode_tcp_info(value: Any) -> dict[str, int]:
    """A getsockopt(TCP_INFO) result as {tcpi_name: value}."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode_struct(bytes(value))
    if isinstance(value, dict):
        return {(k if k.startswith("tcpi_") else f"tcpi_{k}"): v for k, v in value.items()}
    names = [n for n in dir(value) if n.startswith("tcpi_")]
    if not names:
        raise ValueError(f"TCP_INFO returned {type(value).__name__}, which has no tcpi_ fields")
    return {n: getattr(value, n) for n in names}


@attrs.define
class CodeBlock:
    line: int
    text: str
    snapshot: dict[str, int]


def run_code_blocks(blocks: list[CodeBlock], filename: str) -> str | None:
    """Run the blocks as packetdrill's generated program does; the first error as
    "line N: error in Python code: ..." or None."""
    namespace: dict[str, Any] = {"__name__": "__packetdrill__"}
    namespace.update(CODE_SYMBOLS)
    for block in blocks:
        namespace.update(block.snapshot)
        first, _, rest = block.text.partition("\n")
        source = (first.strip() + "\n" + textwrap.dedent(rest)).strip()
        if source.endswith("\\"):
            # In packetdrill's generated program more code follows each block, so a last
            # line ending in `;\` continues onto it harmlessly; here nothing follows.
            source = source[:-1].rstrip()
        try:
            code = compile(source + "\n", f"{filename}:{block.line}", "exec")
            exec(code, namespace)  # noqa: S102 -- the script's own assertions, as packetdrill
        except Exception as e:  # noqa: BLE001 -- any error in the block fails the script
            lines = source.splitlines()
            where = ""
            tb = traceback.extract_tb(e.__traceback__)
            for frame in reversed(tb):
                if frame.filename == f"{filename}:{block.line}" and frame.lineno:
                    if 0 < frame.lineno <= len(lines):
                        where = f" at `{lines[frame.lineno - 1].strip()}`"
                    break
            if isinstance(e, SyntaxError) and e.lineno and 0 < e.lineno <= len(lines):
                where = f" at `{lines[e.lineno - 1].strip()}`"
            detail = f"{type(e).__name__}" + (f": {e}" if str(e) else "")
            return f"line {block.line}: error in Python code{where}: {detail}"
    return None
