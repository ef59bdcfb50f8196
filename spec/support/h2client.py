#!/usr/bin/python3
"""An HTTP/2 client of raw frames for the specs: it says on the wire exactly
what a spec asks, well-formed or hostile, and reports what came back.

    /usr/bin/python3 h2client.py '{"port": 8443, "tls": true, "mode": "requests", ...}'

Debian's python3-h2 brings hpack and hyperframe: frames are built and parsed
with them, without h2's state machine, so a spec can send what a correct
client never would. Prints one JSON object:

    {"alpn": "h2", "streams": {"1": {"status": 200, "headers": [[n, v], ...],
     "body": "...", "body_len": N, "ended": true, "reset": null}},
     "goaway": {"code": 0, "last_stream_id": 1} or null, "closed": bool,
     "elapsed": seconds, ...mode's own fields}

Modes (each with its own keys in the request object):
  requests       "requests": [{"headers": [[n, v]...], "body": "text" |
                 "body_len": N | "body_blob": N (blob.lua's bytes), "end_stream":
                 true, "raw_block": "hex", "frames": ["DATA payload", ...],
                 "after": seconds to wait first, "frames_now": [...] sent right
                 behind the HEADERS, "body_after": seconds before the body}] all
                 sent at once on one connection (bodies under flow control);
                 "wait" seconds at most for their answers.
  rapid_reset    "count" streams opened and at once reset (CVE-2023-44487);
                 "extra": [[name, value], ...] fields of each.
  continuation   a HEADERS without END_HEADERS, then "count" CONTINUATIONs.
  hpack_bomb     one 4,000-byte field put in the dynamic table, then header
                 blocks of "refs" one-byte references to it.
  flood          "frame": "settings" | "ping" | "empty_data", "count" of them,
                 written without reading the answers first.
  zero_window    SETTINGS_INITIAL_WINDOW_SIZE 0, a request for "path", then a
                 PING every 0.2 s: how long until the server closes.
  streams        "count" requests for "path" opened at once.
"""
import json
import socket
import ssl
import sys
import time
import zlib

import hpack
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame,
                              RstStreamFrame, SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# spec/support/blob.lua's bodies: blocks of 64 KiB, each starting with its index
BLOCK = 65536
FILLER = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_" * (BLOCK // 64)


def blob_bytes(offset, n, total):
    out = []
    while n > 0:
        i, at = divmod(offset, BLOCK)
        block = (b"[%010d]" % i + FILLER[12:])[:min(BLOCK, total - i * BLOCK)]
        piece = block[at:at + n]
        out.append(piece)
        offset += len(piece)
        n -= len(piece)
    return b"".join(out)


def checksum(value):
    """blob.lua's digest of an Adler-32 value."""
    return "%04x%04x" % (value >> 16, value & 0xFFFF)


class Client:
    def __init__(self, port, tls=False, servername="localhost", settings=None, window_updates=True):
        self.t0 = time.time()
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.alpn = None
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            raw = ctx.wrap_socket(raw, server_hostname=servername)
            self.alpn = raw.selected_alpn_protocol()
        self.sock = raw
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 30
        self.buf = b""
        self.streams = {}
        self.goaway = None
        self.closed = False
        self.window_updates = window_updates
        self.block = {}  # stream id: header block fragments until END_HEADERS
        self.send_conn_window = 65535
        self.send_stream_window = {}
        self.peer_initial_window = 65535
        self.peer_settings = {}
        self.pings_acked = 0
        self.sock.sendall(PREFACE + SettingsFrame(0, settings=settings or {}).serialize())

    # --- sending ---------------------------------------------------------------
    def send(self, *frames):
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            self.closed = True
            return False

    def stream(self, sid):
        return self.streams.setdefault(sid, {"status": None, "headers": [], "body": b"", "body_len": 0,
                                             "ended": False, "reset": None, "informational": [], "adler": 1})

    def headers_frame(self, sid, headers=None, end_stream=True, raw_block=None, end_headers=True):
        block = raw_block if raw_block is not None else self.enc.encode(
            [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str) else v) for n, v in headers])
        flags = set()
        if end_headers:
            flags.add("END_HEADERS")
        if end_stream:
            flags.add("END_STREAM")
        self.stream(sid)
        self.send_stream_window.setdefault(sid, self.peer_initial_window)
        return HeadersFrame(sid, data=block, flags=flags)

    def send_body(self, sid, body, end=True, deadline=30.0):
        """body: bytes, an int (that many bytes of a fixed pattern), or {"blob": N} (blob.lua's N
        bytes), sent as the windows allow."""
        blob = body.get("blob") if isinstance(body, dict) else None
        total = blob if blob is not None else body if isinstance(body, int) else len(body)
        pattern = (b"0123456789abcdef" * 1024)
        sent = 0
        stop = time.time() + deadline
        while sent < total and not self.closed and time.time() < stop:
            room = min(self.send_conn_window, self.send_stream_window.get(sid, 0), 16384, total - sent)
            s = self.streams.get(sid)
            if s and (s["reset"] is not None or s["ended"]) and s["status"]:
                break  # answered already: the rest is not wanted
            if room <= 0:
                self.pump(0.2, lambda: self.send_conn_window > 0 and self.send_stream_window.get(sid, 0) > 0)
                continue
            if blob is not None:
                chunk = blob_bytes(sent, room, total)
            elif isinstance(body, int):
                chunk = (pattern * (room // len(pattern) + 1))[:room]
            else:
                chunk = body[sent:sent + room]
            last = end and sent + room >= total
            if not self.send(DataFrame(sid, data=chunk, flags={"END_STREAM"} if last else set())):
                break
            self.send_conn_window -= room
            self.send_stream_window[sid] -= room
            sent += room
            self.pump(0)  # take what came back meanwhile: window updates
        if end and total == 0:
            self.send(DataFrame(sid, data=b"", flags={"END_STREAM"}))
        return sent

    # --- receiving --------------------------------------------------------------
    def frames(self):
        while len(self.buf) >= 9:
            f, length = Frame.parse_frame_header(memoryview(self.buf[:9]))
            if len(self.buf) < 9 + length:
                return
            f.parse_body(memoryview(self.buf[9:9 + length]))
            self.buf = self.buf[9 + length:]
            yield f

    def handle(self, f):
        t = f.type
        if t == SettingsFrame.type:
            if "ACK" not in f.flags:
                self.peer_settings.update(f.settings)
                iw = f.settings.get(SettingsFrame.INITIAL_WINDOW_SIZE)
                if iw is not None:
                    delta = iw - self.peer_initial_window
                    self.peer_initial_window = iw
                    for k in self.send_stream_window:
                        self.send_stream_window[k] += delta
                self.send(SettingsFrame(0, flags={"ACK"}))
        elif t == PingFrame.type:
            if "ACK" in f.flags:
                self.pings_acked += 1
            else:
                self.send(PingFrame(0, opaque_data=f.opaque_data, flags={"ACK"}))
        elif t == WindowUpdateFrame.type:
            if f.stream_id == 0:
                self.send_conn_window += f.window_increment
            else:
                self.send_stream_window[f.stream_id] = self.send_stream_window.get(f.stream_id, 0) + f.window_increment
        elif t in (HeadersFrame.type, ContinuationFrame.type):
            self.block[f.stream_id] = self.block.get(f.stream_id, b"") + f.data
            if "END_HEADERS" in f.flags:
                hdrs = self.dec.decode(self.block.pop(f.stream_id), raw=True)
                s = self.stream(f.stream_id)
                pairs = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in hdrs]
                status = next((int(v) for n, v in pairs if n == ":status"), None)
                if status is not None and status < 200:
                    s["informational"].append(status)
                elif s["status"] is None:
                    s["status"] = status
                    s["headers"] = pairs
                else:
                    s["trailers"] = pairs
            if "END_STREAM" in f.flags:
                self.stream(f.stream_id)["ended"] = True
        elif t == DataFrame.type:
            s = self.stream(f.stream_id)
            s["body_len"] += len(f.data)
            s["adler"] = zlib.adler32(f.data, s["adler"])
            if len(s["body"]) < 65536:
                s["body"] += f.data[:65536 - len(s["body"])]
            if "END_STREAM" in f.flags:
                s["ended"] = True
            n = f.flow_controlled_length
            if self.window_updates and n:
                self.send(WindowUpdateFrame(0, window_increment=n), WindowUpdateFrame(f.stream_id, window_increment=n))
        elif t == RstStreamFrame.type:
            self.stream(f.stream_id)["reset"] = f.error_code
        elif t == GoAwayFrame.type:
            self.goaway = {"code": f.error_code, "last_stream_id": f.last_stream_id,
                           "debug": f.additional_data.decode("latin-1")}

    def pump(self, timeout, until=None):
        """Reads and handles frames until until() holds, the connection ends, or timeout s pass."""
        stop = time.time() + timeout
        while not self.closed:
            if until and until():
                return True
            left = stop - time.time()
            if left <= 0:
                break
            self.sock.settimeout(min(left, 0.5) if timeout > 0 else 0.0001)
            try:
                d = self.sock.recv(262144)
            except (socket.timeout, ssl.SSLWantReadError, BlockingIOError):
                if timeout == 0:
                    break
                continue
            except OSError:
                self.closed = True
                break
            if not d:
                self.closed = True
                break
            self.buf += d
            for f in self.frames():
                self.handle(f)
        return bool(until and until())

    def done(self, ids):
        return all(self.stream(i)["ended"] or self.stream(i)["reset"] is not None for i in ids)

    def over(self, ids):
        """Every stream ended, or the server said it will not serve the ones still open."""
        if self.done(ids):
            return True
        if self.goaway is None:
            return False
        last = self.goaway["last_stream_id"]
        return all(i > last or self.stream(i)["ended"] or self.stream(i)["reset"] is not None for i in ids)

    def result(self, **extra):
        out = {"alpn": self.alpn, "goaway": self.goaway, "closed": self.closed,
               "elapsed": round(time.time() - self.t0, 3), "streams": {}, "peer_settings": self.peer_settings}
        for sid, s in self.streams.items():
            s = dict(s)
            s["body"] = s["body"].decode("latin-1")
            s["checksum"] = checksum(s.pop("adler"))
            out["streams"][str(sid)] = s
        out.update(extra)
        return out


def run(req):
    mode = req.get("mode", "requests")
    kw = {"tls": req.get("tls", False), "servername": req.get("servername", "localhost"),
          "settings": {int(k): v for k, v in req.get("settings", {}).items()}}
    if mode == "zero_window":
        kw["settings"][SettingsFrame.INITIAL_WINDOW_SIZE] = 0
        kw["window_updates"] = False
    c = Client(req["port"], **kw)
    authority = req.get("authority", "localhost")

    def get(path, extra=()):
        return [(":method", "GET"), (":scheme", "https" if req.get("tls") else "http"), (":authority", authority),
                (":path", path)] + list(extra)

    if mode == "requests":
        ids = []
        for i, r in enumerate(req["requests"]):
            sid = 1 + 2 * i
            ids.append(sid)
            has_body = any(k in r for k in ("body", "body_len", "body_blob", "frames", "frames_now"))
            end = r.get("end_stream", not has_body)
            block = bytes.fromhex(r["raw_block"]) if "raw_block" in r else None
            if r.get("after"):  # seconds to wait (reading) before this request
                c.pump(r["after"], lambda: c.closed)
            c.send(c.headers_frame(sid, r.get("headers"), end_stream=end, raw_block=block))
            for j, piece in enumerate(r.get("frames_now", [])):  # DATA right behind the HEADERS, the last ending
                last = j == len(r["frames_now"]) - 1
                c.send(DataFrame(sid, data=piece.encode("latin-1"), flags={"END_STREAM"} if last else set()))
        for i, r in enumerate(req["requests"]):
            if r.get("body_after"):  # seconds between the HEADERS and the body
                c.pump(r["body_after"], lambda: c.closed)
            for j, piece in enumerate(r.get("frames", [])):  # DATA frames exactly as given, the last one ending
                last = j == len(r["frames"]) - 1 and r.get("end_body", True)
                c.send(DataFrame(1 + 2 * i, data=piece.encode("latin-1"), flags={"END_STREAM"} if last else set()))
            if "body" in r or "body_len" in r or "body_blob" in r:
                body = r["body"].encode("latin-1") if "body" in r else (
                    {"blob": r["body_blob"]} if "body_blob" in r else r["body_len"])
                c.send_body(1 + 2 * i, body, end=r.get("end_body", True), deadline=req.get("wait", 10))
        c.pump(req.get("wait", 10), lambda: c.over(ids))
        return c.result()

    if mode == "rapid_reset":
        n, opened = req["count"], 0
        sid = 1
        batch = []
        for _ in range(n):
            extra = [tuple(h) for h in req.get("extra", [])]  # more fields, as [[name, value], ...]
            batch.append(c.headers_frame(sid, get(req.get("path", "/"), extra), end_stream=True).serialize())
            batch.append(RstStreamFrame(sid, error_code=req.get("code", 8)).serialize())  # CANCEL by default
            sid += 2
            opened += 1
            if len(batch) >= 200:
                if not c.send(b"".join(batch)):
                    break
                batch = []
                c.pump(0)
                if c.goaway is not None or c.closed:
                    break
        if batch:
            c.send(b"".join(batch))
        c.pump(req.get("wait", 5), lambda: c.goaway is not None and c.closed)
        answered = sum(1 for s in c.streams.values() if s["status"])
        return c.result(opened=opened, answered=answered, streams={})

    if mode == "continuation":
        block = c.enc.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", authority.encode()),
                              (b":path", b"/")])
        c.send(HeadersFrame(1, data=block, flags=set()))
        sent = 0
        for i in range(req["count"]):
            if not c.send(ContinuationFrame(1, data=c.enc.encode([(b"x-flood-%d" % i, b"y" * 100)]), flags=set())):
                break
            sent += 1
            if i % 100 == 0:
                c.pump(0)
                if c.goaway is not None or c.closed:
                    break
        c.pump(req.get("wait", 5), lambda: c.goaway is not None and c.closed)
        return c.result(sent=sent)

    if mode == "hpack_bomb":
        big = b"b" * 4000
        # one request that puts the field in the table (literal, incremental indexing)
        c.send(c.headers_frame(1, get("/", [("x-bomb", big)]), end_stream=True))
        c.pump(3, lambda: c.done([1]))
        sid = 3
        sent = 0
        for _ in range(req.get("blocks", 20)):
            head = c.enc.encode([(b":method", b"POST" if req.get("trailers") else b"GET"), (b":scheme", b"http"),
                                 (b":authority", authority.encode()), (b":path", b"/")])
            if req.get("trailers"):  # the bomb as the trailers of a request whose head is fine
                c.send(HeadersFrame(sid, data=head, flags={"END_HEADERS"}))
                head = b""
            block = head + b"\xbe" * req.get("refs", 16000)  # index 62: the newest entry of the dynamic table
            if not c.send(HeadersFrame(sid, data=block[:16384], flags={"END_STREAM"} | (
                    {"END_HEADERS"} if len(block) <= 16384 else set()))):
                break
            rest = block[16384:]
            while rest:
                chunk, rest = rest[:16384], rest[16384:]
                c.send(ContinuationFrame(sid, data=chunk, flags=set() if rest else {"END_HEADERS"}))
            sent += 1
            sid += 2
            c.pump(0.05)
            if c.goaway is not None or c.closed:
                break
        c.pump(req.get("wait", 5), lambda: c.goaway is not None and c.closed)
        return c.result(blocks_sent=sent)

    if mode == "flood":
        kind, n = req["frame"], req["count"]
        if kind == "empty_data":
            c.send(c.headers_frame(1, [(":method", "POST"), (":scheme", "http"), (":authority", authority),
                                       (":path", req.get("path", "/"))], end_stream=False))
            one = DataFrame(1, data=b"").serialize()
        elif kind == "settings":
            one = SettingsFrame(0, settings={SettingsFrame.ENABLE_PUSH: 0}).serialize()
        else:
            one = PingFrame(0, opaque_data=b"12345678").serialize()
        sent = 0
        while sent < n and not c.closed:
            k = min(1000, n - sent)
            if not c.send(one * k):
                break
            sent += k
        c.pump(req.get("wait", 5), lambda: c.goaway is not None and c.closed)
        return c.result(sent=sent)

    if mode == "zero_window":
        c.send(c.headers_frame(1, get(req["path"]), end_stream=True))
        stop = time.time() + req.get("wait", 10)
        while not c.closed and time.time() < stop:
            c.send(PingFrame(0, opaque_data=b"keepbusy"))
            c.pump(0.2)
        return c.result()

    if mode == "streams":
        n = req["count"]
        frames = [c.headers_frame(1 + 2 * i, get(req["path"]), end_stream=True).serialize() for i in range(n)]
        c.send(b"".join(frames))
        ids = [1 + 2 * i for i in range(n)]
        c.pump(req.get("wait", 10), lambda: c.over(ids))
        return c.result()

    raise SystemExit("unknown mode " + mode)


if __name__ == "__main__":
    spec = json.loads(sys.argv[1] if len(sys.argv) > 1 else sys.stdin.read())
    out = run(spec)
    if spec.get("bodies") is False:
        for s in out["streams"].values():
            s["body"] = ""
    print(json.dumps(out))
