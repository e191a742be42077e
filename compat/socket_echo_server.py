"""Echo server program: the blocking echo server of the Python `socket` module docs
(https://docs.python.org/3/library/socket.html#example), unmodified but for the port read from
argv. Read first: compat/run.py."""
import socket
import sys

HOST = ''                 # Symbolic name meaning all available interfaces
PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 50007
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
    s.bind((HOST, PORT))
    s.listen(1)
    conn, addr = s.accept()
    with conn:
        print('Connected by', addr)
        while True:
            data = conn.recv(1024)
            if not data: break
            conn.sendall(data)
