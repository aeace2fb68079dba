#!/usr/bin/python3
"""strip_proxy.py - a STARTTLS-stripping TCP proxy for the end-to-end tests (an active attacker).

Listens on LISTEN_ADDR:LISTEN_PORT, forwards each connection to UPSTREAM_ADDR:UPSTREAM_PORT (a real
receiver that offers STARTTLS), removes STARTTLS from every EHLO reply, answers a STARTTLS command
itself with 454, and logs one line per client command to LOGFILE, e.g.
    proxy: conn 1 from 127.0.0.1
    proxy: conn 1 client command in clear: MAIL FROM:<a@b>
so a test can prove whether a transaction command passed through in clear.
Usage: strip_proxy.py LISTEN_ADDR LISTEN_PORT UPSTREAM_ADDR UPSTREAM_PORT LOGFILE
Standard library only; loopback use only.
"""
import socket
import sys
import threading

MAX_LINE = 4096


def log(fh, lock, text):
    with lock:
        fh.write(text + "\n")
        fh.flush()


def server_to_client(up, down, n, fh, lock):
    """Forward replies, dropping STARTTLS lines from multi-line replies."""
    rf = up.makefile("rb")
    pending = []
    try:
        while True:
            line = rf.readline(MAX_LINE)
            if not line:
                break
            pending.append(line)
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            kept = [l for l in pending if l[4:12].upper() != b"STARTTLS"]
            pending = []
            if not kept:
                continue
            last = kept[-1]
            if last[3:4] == b"-":
                kept[-1] = last[:3] + b" " + last[4:]
            down.sendall(b"".join(kept))
            log(fh, lock, "proxy: conn %d server reply: %s" % (n, kept[-1].decode("latin-1").rstrip("\r\n")))
    except OSError as e:
        log(fh, lock, "proxy: conn %d server side error: %s" % (n, e))
    finally:
        for s in (up, down):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def client_to_server(down, up, n, fh, lock):
    rf = down.makefile("rb")
    in_data = False
    try:
        while True:
            line = rf.readline(MAX_LINE)
            if not line:
                break
            text = line.decode("latin-1").rstrip("\r\n")
            if in_data:
                if text == ".":
                    in_data = False
                    log(fh, lock, "proxy: conn %d client sent end of data in clear" % n)
                up.sendall(line)
                continue
            log(fh, lock, "proxy: conn %d client command in clear: %s" % (n, text))
            verb = text.split(" ", 1)[0].upper()
            if verb == "STARTTLS":
                down.sendall(b"454 4.7.0 TLS not available\r\n")
                continue
            if verb == "DATA":
                in_data = True
            up.sendall(line)
    except OSError:
        pass
    finally:
        # half-close only: the client may shut down its sending side after a pipelined QUIT
        # and still wait for the replies, which server_to_client goes on forwarding
        try:
            up.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main():
    if len(sys.argv) != 6:
        sys.stderr.write(__doc__)
        return 64
    laddr, lport, uaddr, uport, logfile = sys.argv[1:6]
    fam = socket.AF_INET6 if ":" in laddr else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((laddr, int(lport)))
    srv.listen(16)
    fh = open(logfile, "a", encoding="utf-8")
    lock = threading.Lock()
    log(fh, lock, "proxy: listening on %s:%s -> %s:%s" % (laddr, lport, uaddr, uport))
    n = 0
    while True:
        down, peer = srv.accept()
        n += 1
        log(fh, lock, "proxy: conn %d from %s" % (n, peer[0]))
        try:
            up = socket.create_connection((uaddr, int(uport)), timeout=10)
            up.settimeout(None)
        except OSError as e:
            log(fh, lock, "proxy: conn %d upstream failed: %s" % (n, e))
            down.close()
            continue
        threading.Thread(target=server_to_client, args=(up, down, n, fh, lock), daemon=True).start()
        threading.Thread(target=client_to_server, args=(down, up, n, fh, lock), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
