#!/usr/bin/env python3
"""A hostile app behind `ssh -R` (t/191-security-csrf-browser.t).

Serves one plain page for every GET (the attack's script is run in it by
the browser test) and answers every POST with 204, and writes the headers
of every request it receives, one JSON object per line, to LOG: the test
reads them to prove the admin's cookies never reached a tunnel.  Standard
library only.

    evil.py LOG         listens on a free port of 127.0.0.1, prints it
"""

import http.server
import json
import socketserver
import sys
import threading

LOG = sys.argv[1]
_lock = threading.Lock()

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>totally harmless</title></head>
<body><h1>A page served through a tunnel</h1></body></html>
"""


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY the body
    # waits for the ACK of the headers (Nagle + delayed ACK, ~40 ms a
    # request on a reused connection)
    disable_nagle_algorithm = True

    def record(self):
        entry = {"method": self.command, "path": self.path,
                 "headers": {k.lower(): v for k, v in self.headers.items()}}
        with _lock, open(LOG, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def do_GET(self):
        self.record()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def do_POST(self):
        self.record()
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
