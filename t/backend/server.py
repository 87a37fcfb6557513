#!/usr/bin/env python3
"""Test backend for ngx-tunnel: the user's local app behind `ssh -R`.

One threaded HTTP/1.1 server on 127.0.0.1 with keepalive.  Standard library
only.  It does not serve files, TLS or HTTP/2; it exists so the end-to-end
tests can check exact bytes, streaming, upgrades and connection reuse.

    server.py PORT [NAME]     PORT 0 picks a free port and prints it

Endpoints:
    GET  /               "hello from backend NAME"
    GET  /conn           serial number of this TCP connection (1, 2, ...)
    GET  /bytes/N        N deterministic bytes (see pattern_chunk), streamed
    POST /sha256         hex sha256 of the body (Content-Length or chunked)
    GET  /sse            text/event-stream: 3 events 1 s apart, chunked
    GET  /ws             WebSocket echo (text, binary, ping -> pong, close)
    GET  /headers        JSON object of the request headers (names lower case)
    GET  /slow?ms=N      answers "slept N" after N ms

Every response carries X-Conn: the serial number of its connection.

The byte pattern of /bytes/N is shared with t/lib/NgxTunnel/Test.pm: a
65536-byte base block made of sha256("ngx-tunnel-" + k) for k = 0..2047,
and block j of the stream is the base block with its first 8 bytes replaced
by j as a big-endian 64-bit integer.  Any lost, duplicated or reordered
block changes the stream's sha256.
"""

import base64
import hashlib
import http.server
import itertools
import json
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

BLOCK = 65536
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

_base = b"".join(hashlib.sha256(b"ngx-tunnel-%d" % k).digest()
                 for k in range(BLOCK // 32))
_serial = itertools.count(1)
_serial_lock = threading.Lock()


def pattern_chunk(j):
    return struct.pack(">Q", j) + _base[8:]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes: without TCP_NODELAY the body
    # waits for the ACK of the headers (Nagle + delayed ACK, ~40 ms a
    # request on a reused connection)
    disable_nagle_algorithm = True
    server_version = "ngx-tunnel-test-backend"
    backend_name = "backend"

    def setup(self):
        super().setup()
        with _serial_lock:
            self.conn_serial = next(_serial)

    def log_message(self, fmt, *args):
        sys.stderr.write("backend %s: conn %d: %s\n"
                         % (self.backend_name, self.conn_serial, fmt % args))
        sys.stderr.flush()

    # -- helpers ---------------------------------------------------------

    def send_response(self, code, message=None):
        super().send_response(code, message)
        self.send_header("X-Conn", str(self.conn_serial))

    def send_simple(self, status, body, ctype="text/plain; charset=utf-8"):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def read_body(self, sink):
        """Streams the request body into sink(bytes); returns its length."""
        te = self.headers.get("Transfer-Encoding", "")
        total = 0
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise ConnectionError("eof in chunk size")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        line = self.rfile.readline(8192)
                        if line in (b"\r\n", b"\n", b""):
                            break
                    return total
                left = size
                while left:
                    data = self.rfile.read(min(left, BLOCK))
                    if not data:
                        raise ConnectionError("eof in chunk")
                    sink(data)
                    left -= len(data)
                    total += len(data)
                self.rfile.readline(8)  # CRLF after the chunk
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            data = self.rfile.read(min(left, BLOCK))
            if not data:
                raise ConnectionError("eof in body")
            sink(data)
            left -= len(data)
            total += len(data)
        return total

    def discard_body(self):
        if (self.headers.get("Content-Length")
                or self.headers.get("Transfer-Encoding")):
            self.read_body(lambda data: None)

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    # -- methods ---------------------------------------------------------

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        self.discard_body()

        if path == "/":
            self.send_simple(200, "hello from backend %s" % self.backend_name)
        elif path == "/conn":
            self.send_simple(200, str(self.conn_serial))
        elif path.startswith("/bytes/") and path[7:].isdigit():
            self.send_bytes(int(path[7:]))
        elif path == "/sse":
            self.send_sse()
        elif path == "/ws":
            self.websocket()
        elif path == "/headers":
            hdrs = {}
            for k, v in self.headers.items():
                k = k.lower()
                hdrs[k] = hdrs[k] + ", " + v if k in hdrs else v
            self.send_simple(200, json.dumps(hdrs, sort_keys=True),
                             "application/json")
        elif path == "/slow":
            q = urllib.parse.parse_qs(url.query)
            ms = int(q.get("ms", ["0"])[0])
            time.sleep(ms / 1000.0)
            self.send_simple(200, "slept %d" % ms)
        else:
            self.send_simple(404, "not found: %s" % path)

    do_HEAD = do_GET

    def do_POST(self):
        path = urllib.parse.urlsplit(self.path).path
        if path != "/sha256":
            self.discard_body()
            self.send_simple(404, "not found: %s" % path)
            return
        h = hashlib.sha256()
        n = self.read_body(h.update)
        body = h.hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Body-Length", str(n))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    # -- endpoints -------------------------------------------------------

    def send_bytes(self, n):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        self.end_headers()
        if self.command == "HEAD":
            return
        j = 0
        while n > 0:
            chunk = pattern_chunk(j)[:n]
            self.wfile.write(chunk)
            n -= len(chunk)
            j += 1
        self.wfile.flush()

    def send_sse(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for i in range(1, 4):
            if i > 1:
                time.sleep(1)
            self.write_chunk(b"id: %d\ndata: event %d\n\n" % (i, i))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade", "").lower() != "websocket"
                or not key):
            self.send_simple(400, "websocket upgrade expected")
            return
        accept = base64.b64encode(
            hashlib.sha1((key.strip() + WS_GUID).encode()).digest())
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept.decode())
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True

        message, message_op = b"", None
        while True:
            frame = self.ws_read_frame()
            if frame is None:
                return
            fin, op, payload = frame
            if op == 0x8:           # close: echo the status code back
                self.ws_send(0x8, payload[:2])
                return
            if op == 0x9:           # ping
                self.ws_send(0xA, payload)
                continue
            if op == 0xA:           # unsolicited pong
                continue
            if op in (0x1, 0x2):
                message, message_op = payload, op
            elif op == 0x0 and message_op is not None:
                message += payload
            else:
                self.ws_send(0x8, struct.pack(">H", 1002))
                return
            if fin:
                self.ws_send(message_op, message)
                message, message_op = b"", None

    def ws_read_exact(self, n):
        data = self.rfile.read(n) if n else b""
        if len(data) != n:
            return None
        return data

    def ws_read_frame(self):
        hdr = self.ws_read_exact(2)
        if hdr is None:
            return None
        fin, op = hdr[0] & 0x80, hdr[0] & 0x0F
        masked, n = hdr[1] & 0x80, hdr[1] & 0x7F
        if n == 126:
            ext = self.ws_read_exact(2)
            if ext is None:
                return None
            n = struct.unpack(">H", ext)[0]
        elif n == 127:
            ext = self.ws_read_exact(8)
            if ext is None:
                return None
            n = struct.unpack(">Q", ext)[0]
        mask = self.ws_read_exact(4) if masked else b"\0\0\0\0"
        payload = self.ws_read_exact(n)
        if mask is None or payload is None:
            return None
        if masked:
            m = (mask * (n // 4 + 1))[:n]
            payload = (int.from_bytes(payload, "big")
                       ^ int.from_bytes(m, "big")).to_bytes(n, "big")
        return bool(fin), op, payload

    def ws_send(self, op, payload):
        n = len(payload)
        if n < 126:
            hdr = struct.pack(">BB", 0x80 | op, n)
        elif n < 65536:
            hdr = struct.pack(">BBH", 0x80 | op, 126, n)
        else:
            hdr = struct.pack(">BBQ", 0x80 | op, 127, n)
        self.wfile.write(hdr + payload)
        self.wfile.flush()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: server.py PORT [NAME]\n")
        return 2
    Handler.backend_name = sys.argv[2] if len(sys.argv) > 2 else "backend"
    srv = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    sys.stdout.write("%d\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
