#!/usr/bin/python3
"""https_server.py - the MTA-STS policy host of the loopback test world (tests/lib/world.sh).

Standard library only. Serves files from DOCROOT over HTTPS (TLS >= 1.2, one thread per
connection, the TLS handshake done in that thread so a stalled client cannot block the others).

Usage: https_server.py ADDR PORT CHAIN_PEM KEY_PEM DOCROOT [--ready FILE] [--requests FILE]

Behaviour is chosen per request by DOCROOT/.behaviour (read on every request; missing = ok):
one line "WORD [ARG]":
  ok              200, Content-Type text/plain, the file's bytes (404 if the file is missing)
  charset         200, Content-Type "text/plain; charset=utf-8"
  html            200, Content-Type text/html
  notype          200 without a Content-Type header
  redirect [URL]  301 with Location URL (default https://<host>/moved.txt) and a valid body
  status N        status N with the file's bytes as text/plain (e.g. 404, 204, 304, 500)
  404             = status 404
  big             = size 70000
  bigchunked      = chunked 70000
  size N          200 text/plain, N bytes with Content-Length (policy text, then '#' padding)
  chunked N       the same N bytes with Transfer-Encoding: chunked and no Content-Length
  hang [SEC]      read the request, answer nothing for SEC seconds (default 30), then close
Each request is appended to --requests FILE as "METHOD PATH" followed by its header lines
and a blank line, so a test can check what the client sent.
"""
import http.server
import os
import socket
import socketserver
import ssl
import sys
import threading
import time

HANDSHAKE_TIMEOUT = 10
MAX_HANG = 120


def parse_args(argv):
    if len(argv) < 6:
        sys.exit("usage: https_server.py ADDR PORT CHAIN_PEM KEY_PEM DOCROOT "
                 "[--ready FILE] [--requests FILE]")
    opts = {"addr": argv[1], "port": int(argv[2]), "chain": argv[3], "key": argv[4],
            "docroot": argv[5], "ready": None, "requests": None}
    rest = argv[6:]
    while rest:
        if len(rest) < 2 or rest[0] not in ("--ready", "--requests"):
            sys.exit("https_server.py: bad option %r" % rest[0])
        opts[rest[0][2:]] = rest[1]
        rest = rest[2:]
    return opts


OPTS = parse_args(sys.argv)
LOG_LOCK = threading.Lock()


def read_behaviour():
    try:
        with open(os.path.join(OPTS["docroot"], ".behaviour"), encoding="ascii") as f:
            words = f.read().split()
    except (OSError, UnicodeDecodeError):
        words = []
    if not words:
        return "ok", None
    return words[0], (words[1] if len(words) > 1 else None)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "world-https/1"

    def setup(self):
        self.request.settimeout(HANDSHAKE_TIMEOUT)
        self.request.do_handshake()
        super().setup()

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def record_request(self):
        if not OPTS["requests"]:
            return
        with LOG_LOCK, open(OPTS["requests"], "a", encoding="utf-8") as f:
            f.write("%s %s\n" % (self.command, self.path))
            for k, v in self.headers.items():
                f.write("%s: %s\n" % (k, v))
            f.write("\n")

    def file_body(self):
        rel = self.path.split("?", 1)[0].lstrip("/")
        root = os.path.realpath(OPTS["docroot"])
        path = os.path.realpath(os.path.join(root, rel))
        if not path.startswith(root + os.sep) or not os.path.isfile(path):
            return None
        with open(path, "rb") as f:
            return f.read()

    def padded(self, n):
        base = self.file_body() or b""
        if n <= len(base):
            return base[:n]
        pad = n - len(base)
        lines = b""
        while len(lines) < pad:
            lines += b"#" * 63 + b"\n"
        return base + lines[:pad]

    def send_simple(self, code, body, ctype="text/plain", extra=()):
        self.send_response(code)
        if ctype is not None:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        if code in (204, 304):
            body = b""
        else:
            self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.record_request()
        self.close_connection = True
        word, arg = read_behaviour()
        if word == "404":
            word, arg = "status", "404"
        elif word == "big":
            word, arg = "size", "70000"
        elif word == "bigchunked":
            word, arg = "chunked", "70000"
        body = self.file_body()
        if word == "hang":
            secs = min(float(arg or 30), MAX_HANG)
            time.sleep(secs)
            return
        if word == "redirect":
            loc = arg or "https://%s/moved.txt" % (self.headers.get("Host") or "localhost")
            self.send_simple(301, body or b"moved\n", extra=[("Location", loc)])
            return
        if word == "status":
            self.send_simple(int(arg or 500), body or b"error\n")
            return
        if word == "size":
            self.send_simple(200, self.padded(int(arg or 70000)))
            return
        if word == "chunked":
            data = self.padded(int(arg or 70000))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for i in range(0, len(data), 4096):
                    chunk = data[i:i + 4096]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            except OSError:
                pass   # the client stopped reading: expected for an over-long body
            return
        if body is None:
            self.send_simple(404, b"not found\n")
            return
        ctype = {"ok": "text/plain", "charset": "text/plain; charset=utf-8",
                 "html": "text/html", "notype": None}.get(word, "text/plain")
        self.send_simple(200, body, ctype=ctype)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx):
        self.address_family = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
        self.ctx = ctx
        super().__init__(addr, Handler)

    def server_bind(self):
        # no socket.getfqdn(): starting must not depend on DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[0], self.server_address[1]

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request, client_address):
        sys.stderr.write("%s error: %s\n" % (client_address[0], sys.exc_info()[1]))


def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(OPTS["chain"], OPTS["key"])
    httpd = Server((OPTS["addr"], OPTS["port"]), ctx)
    sys.stderr.write("listening on %s port %d\n" % (OPTS["addr"], OPTS["port"]))
    sys.stderr.flush()
    if OPTS["ready"]:
        with open(OPTS["ready"], "w", encoding="ascii") as f:
            f.write("%d\n" % os.getpid())
    httpd.serve_forever()


if __name__ == "__main__":
    main()
