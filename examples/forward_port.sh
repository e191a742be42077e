#!/bin/sh
# Example: forward a real port into pystack and poke the server with real tools.
#
# Read first: README.md ("Poke it with real tools"), pystack/dropin/forward.py.
#
# compat/http_server.py (http.server, unmodified) runs on the emulated host `server`; every
# link delays 20 ms, so a segment takes 40 ms from host `forward` through the switch to it.
# `--forward 8080:8000` opens the real 127.0.0.1:8080; every connection to it is carried, as
# an emulated TCP connection from host `forward`, to server:8000. curl talks to it as to any
# web server; the pcap shows the emulated frames.
# Run from the repository's root after `make test` (which creates .venv):
#
#     sh examples/forward_port.sh
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PCAP=${PCAP:-/tmp/pystack-forward.pcapng}
cd "$ROOT/compat"   # http.server serves its working directory
"$ROOT/.venv/bin/python" -m pystack run http_server.py 8000 --forward 8080:8000 \
    --delay 0.02 --pcap "$PCAP" &
RUN=$!
trap 'kill -INT $RUN 2>/dev/null; wait $RUN' EXIT
for _ in $(seq 50); do   # the run listens once Python and the server are up: wait 5 s at most
    curl -s -o /dev/null http://127.0.0.1:8080/ && break
    sleep 0.1
done
curl -s -w '(%{time_total} s: handshake, request, reply: four crossings of 40 ms)\n' \
    http://127.0.0.1:8080/hello.txt
echo "frames in $PCAP: open it in Wireshark, or: tshark -r $PCAP"
