"""Fetch a file with `urllib.request.urlopen`, as its docs show; host and port from argv.
Read first: compat/run.py."""
import sys
import urllib.request

HOST, PORT = sys.argv[1], int(sys.argv[2])
with urllib.request.urlopen(f"http://{HOST}:{PORT}/compat/hello.txt") as f:
    print(f.status, f.headers["Content-Type"])
    print(f.read().decode("utf-8"), end="")
