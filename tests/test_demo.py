"""`python -m pystack demo` runs, tells the story it promises, and replays by seed."""

import io
import subprocess
import sys

from pystack.demo import main


def _run(seed: int) -> str:
    out = io.StringIO()
    assert main([str(seed)], out=out) == 0
    return out.getvalue()


def test_demo_prints_ping_echo_counters_and_a_path():
    text = _run(7)
    assert "alice → 10.0.0.2: echo reply in 8.000 ms" in text  # ARP + echo, 2 ms each way
    for i in range(1, 6):
        assert f"echoed b'message {i}'" in text
    assert "b'loop 2' → b'loop 2' from 127.0.0.1:7" in text
    tcp = text.split("== TCP echo over Ethernet")[1].split("== counters")[0]
    assert tcp.count("echoed 102400 bytes intact") == 2  # the lossy cable and loopback
    assert "RetransSegs=0" not in tcp.split("== TCP echo over loopback")[0]  # loss was repaired
    path = text.split("== the path of one datagram")[1].split("==")[0]
    order = ["udp_sendmsg", "ip_local_out", "dev_queue_xmit", "eth0: xmit", "eth0: napi_poll",
             "netif_receive_skb", "ip_rcv", "ip_local_deliver", "udp_rcv", "udp_recvmsg"]
    positions = [path.index(fn) for fn in order]
    assert positions == sorted(positions)


def test_demo_is_deterministic_by_seed():
    assert _run(7) == _run(7)
    assert _run(7) != _run(8)


def test_python_dash_m_pystack_demo_exits_zero():
    proc = subprocess.run([sys.executable, "-m", "pystack", "demo"], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "== counters" in proc.stdout
