"""A TLS client that sends its Finished and pipelined requests in one write.

    python3 tls_pipeline.py PORT SERVERNAME N [--forge]

Browsers and HTTP clients send their first request right behind the
handshake's last message, so the server reads both in one read. This client
does exactly that with N GET requests (the last with Connection: close),
then prints everything the server answered, decrypted, to stdout.

--forge: a record that no key sealed (random bytes under an application_data
header) goes between the Finished and the requests; the server must close
without answering: "closed after the forged record" is printed when it does.
"""
import os
import socket
import ssl
import sys


def main():
    port, name, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    forge = "--forge" in sys.argv[4:]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=name)
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = outgoing.read()
            if pending:
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                sys.exit("closed during the handshake")
            incoming.write(data)
    # the Finished is in `outgoing`, not sent yet: the requests join it
    if forge:
        sock.sendall(outgoing.read() + b"\x17\x03\x03\x00\x30" + os.urandom(48))
    for i in range(n):
        last = "Connection: close\r\n" if i == n - 1 else ""
        tls.write(f"GET /echo?n={i} HTTP/1.1\r\nHost: {name}\r\n{last}\r\n".encode())
    sock.sendall(outgoing.read())
    out = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            if forge:
                out += b"closed after the forged record\n"
            break
        incoming.write(data)
        while True:
            try:
                chunk = tls.read(65536)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                chunk = b""
            except ssl.SSLError as e:
                out += f"alert: {e.reason}\n".encode()
                chunk = b""
            if not chunk:
                break
            out += chunk
        pending = outgoing.read()
        if pending:
            sock.sendall(pending)
    sys.stdout.write(out.decode("latin-1"))


main()
