"""The CORS conformance cases of ../shared/conformance over HTTP/2.

    python3 ../shared/conformance/runner.py --adapter scripts/conformance/h2_adapter.py \
        ../shared/conformance/cases.json

Run it with Debian's python3 (/usr/bin/python3: python3-h2 is installed there).
The shared adapter's policies and config (corsgate_adapter.py beside the
runner), on a listener with http2 = true, and every case's request sent as
one HTTP/2 stream with prior knowledge (h2c) by spec/support/h2client.py:
what the runner's checks read is what came back in HEADERS and DATA frames.
"""
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

import runner

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(runner.__file__)), "adapters"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "spec", "support"))
import corsgate_adapter as base  # noqa: E402
import h2client  # noqa: E402

PolicyRejected = base.PolicyRejected
_state = {}


def start(policy):
    up = runner.UpstreamServer()
    port = base._free_port()
    d = tempfile.mkdtemp(prefix="cg-conf-h2-")
    _state.update(up=up, dir=d, proc=None)
    conf = os.path.join(d, "gw.lua")
    cfg = {
        "workers": 1,
        "upstreams": {"up": {"targets": [up.url.split("//", 1)[1]]}},
        "routes": [{"name": "r", "prefix": "/", "upstream": "up", "cors": base._cors(policy)}],
    }
    with open(conf, "w") as f:
        f.write("return { listen = { { address = \"127.0.0.1:%d\", http2 = true } }, %s\n" % (port, base._lua(cfg)[2:]))
    chk = subprocess.run([base._bin(), "check", "-c", conf], capture_output=True, text=True, timeout=20)
    if chk.returncode == 2:
        raise PolicyRejected(chk.stdout + chk.stderr)
    if chk.returncode != 0:
        raise RuntimeError("corsgate check exit %d: %s" % (chk.returncode, (chk.stdout + chk.stderr)[:300]))
    log = open(os.path.join(d, "gw.log"), "w")
    _state["proc"] = subprocess.Popen([base._bin(), "run", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            runner.socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return "http://127.0.0.1:%d" % port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("corsgate did not listen")


def stop():
    p = _state.get("proc")
    if p:
        p.terminate()
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
    if _state.get("up"):
        _state["up"].close()
    if _state.get("dir"):
        base.shutil.rmtree(_state["dir"], ignore_errors=True)
    _state.clear()


def send_h2(base_url, req):
    """The runner's send(), as one HTTP/2 stream."""
    u = urllib.parse.urlsplit(base_url)
    method = req["method"]
    path = (u.path.rstrip("/") + req.get("path", "/")) or "/"
    headers = [(":method", method), (":scheme", "http"), (":authority", "%s:%d" % (u.hostname, u.port)),
               (":path", path)]
    for name, value in runner._header_lines(dict(req.get("headers", {}))):
        headers.append((name.lower(), value))  # HTTP/2 field names are lower case (RFC 9113 8.2.1)
    c = h2client.Client(u.port)
    c.send(c.headers_frame(1, headers, end_stream=True))
    c.pump(runner.REQUEST_TIMEOUT_S, lambda: c.over([1]))
    c.sock.close()
    s = c.stream(1)
    if s["status"] is None and s["reset"] == 1 and req.get("raw"):
        # A field HTTP/2 cannot carry (CR, LF or NUL in a value: the HTTP/1.1
        # wire-format cases) makes the request malformed, a stream error of
        # type PROTOCOL_ERROR (RFC 9113 8.1.1, 8.2.1): nothing comes back,
        # which the checks read as a refusal without headers.
        return runner.Response(400, [], b"")
    if s["status"] is None:
        raise RuntimeError("no HTTP/2 response (reset %r, goaway %r)" % (s["reset"], c.goaway))
    pairs = [(n, v) for n, v in s["headers"] if not n.startswith(":")]
    return runner.Response(s["status"], pairs, s["body"])


# the runner (run as __main__) sends through this module's send from now on
sys.modules["__main__"].send = send_h2
