#!/usr/bin/env python3
"""A Redis Sentinel that says only what the spec tells it, for
spec/integration/sentinel_role_spec.lua.

    fake_sentinel.py PORTFILE ADDRFILE

Listens on 127.0.0.1 (a port of the kernel's choice, written to PORTFILE once
it accepts) and speaks just enough RESP for corsgate's sentinel client:

  SENTINEL get-master-addr-by-name NAME
                the primary as ["IP", "port"], read from ADDRFILE ("IP:port")
                at every request, so the spec changes the answer by rewriting
                the file; an empty or missing file answers a nil (no primary)
  SUBSCRIBE CH...
                the confirmation of each channel, then nothing: this sentinel
                never publishes +switch-master (the spec plays a missed one)
  PING          +PONG (in a subscription too, as Redis answers it there)
  AUTH ...      +OK
  anything else an error

Each request is logged on stdout (flushed), so the spec can see who asked.
One thread serves every client through a selector. It ends on SIGTERM (the
spec's proc.stop), or by itself after IDLE_S seconds without a request.
"""
import os
import selectors
import signal
import socket
import sys
import time

IDLE_S = 300  # bounded: nobody asked anything for this long, the spec is gone
MAX_BUF = 1 << 20


def bulk(s):
    b = s.encode() if isinstance(s, str) else s
    return b"$%d\r\n%s\r\n" % (len(b), b)


def parse(buf):
    """One command off the front of buf: (args, rest), or (None, buf) when
    incomplete. Multibulk as clients send it, or an inline command."""
    if not buf:
        return None, buf
    if buf[:1] != b"*":
        nl = buf.find(b"\n")
        if nl < 0:
            return None, buf
        return buf[:nl].strip().split(), buf[nl + 1:]
    nl = buf.find(b"\r\n")
    if nl < 0:
        return None, buf
    n = int(buf[1:nl])
    pos, args = nl + 2, []
    for _ in range(n):
        nl = buf.find(b"\r\n", pos)
        if nl < 0:
            return None, buf
        if buf[pos:pos + 1] != b"$":
            raise ValueError("expected a bulk string")
        size = int(buf[pos + 1:nl])
        if size < 0:
            raise ValueError("a negative length")
        start = nl + 2
        if len(buf) < start + size + 2:
            return None, buf
        args.append(buf[start:start + size])
        pos = start + size + 2
    return args, buf[pos:]


def master_addr(addrfile):
    try:
        with open(addrfile) as f:
            text = f.read().strip()
    except OSError:
        text = ""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port:
        return b"*-1\r\n"
    return b"*2\r\n" + bulk(host) + bulk(port)


def answer(args, addrfile, state):
    cmd = args[0].decode(errors="replace").lower() if args else ""
    if cmd == "ping":
        if state.get("subscribed"):
            return b"*2\r\n" + bulk("pong") + bulk("")
        return b"+PONG\r\n"
    if cmd == "auth":
        return b"+OK\r\n"
    if cmd == "sentinel" and len(args) == 3 and args[1].lower() == b"get-master-addr-by-name":
        return master_addr(addrfile)
    if cmd == "subscribe" and len(args) > 1:
        out = b""
        for ch in args[1:]:
            state["subscribed"] = state.get("subscribed", 0) + 1
            out += b"*3\r\n" + bulk("subscribe") + bulk(ch) + b":%d\r\n" % state["subscribed"]
        return out
    return b"-ERR unknown command '%s' (a fake sentinel)\r\n" % cmd.encode()


def main():
    portfile, addrfile = sys.argv[1:3]
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sel = selectors.DefaultSelector()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    srv.setblocking(False)
    sel.register(srv, selectors.EVENT_READ, None)
    with open(portfile + ".tmp", "w") as f:
        f.write("%d" % srv.getsockname()[1])
    os.rename(portfile + ".tmp", portfile)
    print("listening on 127.0.0.1:%d" % srv.getsockname()[1], flush=True)

    clients = {}  # socket -> {"buf": bytes, "subscribed": n}
    last = time.monotonic()

    def close(conn):
        sel.unregister(conn)
        clients.pop(conn, None)
        conn.close()

    while not stop and time.monotonic() - last < IDLE_S:
        for key, _ in sel.select(timeout=0.5):
            if key.fileobj is srv:
                try:
                    conn, _ = srv.accept()
                except OSError:
                    continue
                conn.setblocking(True)
                conn.settimeout(2)  # a reply is small: a client that does not read is dropped
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                clients[conn] = {"buf": b""}
                sel.register(conn, selectors.EVENT_READ, None)
                continue
            conn = key.fileobj
            st = clients[conn]
            try:
                data = conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                close(conn)
                continue
            st["buf"] += data
            try:
                out = b""
                while True:
                    args, st["buf"] = parse(st["buf"])
                    if args is None:
                        break
                    if args:
                        last = time.monotonic()
                        print("request: %s" % " ".join(a.decode(errors="replace") for a in args), flush=True)
                        out += answer(args, addrfile, st)
                if len(st["buf"]) > MAX_BUF:
                    raise ValueError("a request too large")
                if out:
                    conn.sendall(out)
            except (ValueError, OSError) as e:
                try:
                    conn.sendall(b"-ERR %s\r\n" % str(e).encode())
                except OSError:
                    pass
                close(conn)
    for conn in list(clients):
        close(conn)
    srv.close()


if __name__ == "__main__":
    main()
