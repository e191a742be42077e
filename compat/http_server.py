"""The `http.server` docs' example: SimpleHTTPRequestHandler on socketserver.TCPServer, serving
the current directory; port from argv. Read first: compat/run.py."""
import http.server
import socketserver
import sys

PORT = int(sys.argv[1]) if len(sys.argv) > 1 else 8000

Handler = http.server.SimpleHTTPRequestHandler

with socketserver.TCPServer(("", PORT), Handler) as httpd:
    print("serving at port", PORT)
    httpd.serve_forever()
