#!/usr/bin/env python3
"""A TLS upstream that misbehaves on purpose, for spec/integration/upstream_tls_spec.lua.

    tls_upstream.py PORTFILE CERT KEY

Listens on 127.0.0.1 (a port of the kernel's choice, written to PORTFILE once
it accepts, followed by a second port that closes every connection it
accepts before a byte is read) and answers each HTTP/1.1 request by its
path:

  /extra        the response, then a second response nobody asked for
                ("SMUGGLE!"), each in its own TLS record but both in one TCP
                write, so the gateway reads them together
  /cut          a body delimited by the connection's end, then a TCP close
                without TLS's close_notify (a response cut short)
  /whole        the same body, then a close_notify before the close
  anything else 200 "ok:PATH"

TLS runs over memory BIOs, so the bytes of several records can be put on the
socket in one write.
"""
import socket
import ssl
import sys
import threading


def serve(conn, ctx):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(inc, out, server_side=True)

    def flush():
        data = out.read()
        if data:
            conn.sendall(data)

    def feed():
        data = conn.recv(65536)
        if not data:
            return False
        inc.write(data)
        return True

    try:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                flush()
                if not feed():
                    return
        flush()
        buf = b""
        while True:
            while b"\r\n\r\n" not in buf:
                try:
                    buf += tls.read(65536)
                except ssl.SSLWantReadError:
                    flush()
                    if not feed():
                        return
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    return
            head, buf = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode()
            if path.endswith("/extra"):
                tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nfirst!")
                tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLE!")
                flush()  # both records, one write
            elif path.endswith("/cut") or path.endswith("/whole"):
                tls.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 1000)
                if path.endswith("/whole"):
                    try:
                        tls.unwrap()
                    except ssl.SSLWantReadError:
                        pass
                flush()
                return
            else:
                body = ("ok:" + path).encode()
                tls.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                flush()
    except (OSError, ssl.SSLError):
        pass
    finally:
        conn.close()


def main():
    portfile, cert, key = sys.argv[1:4]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.num_tickets = 0
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    closer = socket.socket()
    closer.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    closer.bind(("127.0.0.1", 0))
    closer.listen(64)

    def close_all():
        while True:
            c, _ = closer.accept()
            c.close()

    threading.Thread(target=close_all, daemon=True).start()
    with open(portfile + ".tmp", "w") as f:
        f.write("%d %d" % (srv.getsockname()[1], closer.getsockname()[1]))
    import os
    os.rename(portfile + ".tmp", portfile)
    srv.settimeout(120)  # bounded: stops by itself when nobody comes
    while True:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            return
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(conn, ctx), daemon=True).start()


if __name__ == "__main__":
    main()
