"""Echo client program: the blocking echo client of the Python `socket` module docs, with the
server's host and port from argv. Read first: compat/run.py."""
import socket
import sys

HOST = sys.argv[1] if len(sys.argv) > 1 else 'localhost'    # The remote host
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 50007     # The same port as used by the server
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.connect((HOST, PORT))
    s.sendall(b'Hello, world')
    data = s.recv(1024)
print('Received', repr(data))
