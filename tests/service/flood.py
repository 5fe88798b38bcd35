"""Holds many idle or slow connections against one listener, from its own process.

Run as ``python -m tests.service.flood PORT IDLE HALF SLOW CERT KEY SECONDS``:

* IDLE plain TCP connections that send nothing;
* HALF connections that send the first bytes of a TLS ClientHello and stop;
* SLOW connections that complete a TLS handshake with the client
  certificate CERT/KEY and then trickle a request's header a byte every
  0.2 s (the server certificate is not checked: this client only attacks).

It prints ``ready`` when all are open, then watches them for SECONDS and
prints one JSON line: for each kind, the seconds after ``ready`` at which the
server closed each connection (``null``: still open), and for SLOW the
status line the server answered. A separate process keeps the test's own
file descriptors and reactor out of it.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import sys
import time


def main(argv: list[str]) -> None:
    port, idle, half, slow = (int(v) for v in argv[:4])
    cert, key, seconds = argv[4], argv[5], float(argv[6])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.load_cert_chain(cert, key)
    conns: dict[str, list[socket.socket]] = {"idle": [], "half": [], "slow": []}
    for _ in range(slow):  # the expensive ones first, so the others are fresh at "ready"
        tls = context.wrap_socket(socket.create_connection(("127.0.0.1", port)))
        tls.sendall(b"POST /api/v1/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        tls.setblocking(False)
        conns["slow"].append(tls)
    for _ in range(idle):
        conns["idle"].append(socket.create_connection(("127.0.0.1", port)))
    for _ in range(half):
        raw = socket.create_connection(("127.0.0.1", port))
        raw.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a ClientHello, cut short
        conns["half"].append(raw)
    for raw in conns["idle"] + conns["half"]:
        raw.setblocking(False)
    print("ready", flush=True)
    start = time.monotonic()
    closed: dict[str, list[float | None]] = {k: [None] * len(v) for k, v in conns.items()}
    answers: list[str] = []
    selector = selectors.DefaultSelector()
    for kind, sockets in conns.items():
        for i, s in enumerate(sockets):
            selector.register(s, selectors.EVENT_READ, (kind, i))
    next_trickle = start
    while time.monotonic() - start < seconds and selector.get_map():
        now = time.monotonic()
        if now >= next_trickle:
            for i, s in enumerate(conns["slow"]):
                if closed["slow"][i] is None:
                    try:
                        s.send(b"X")
                    except (OSError, ssl.SSLError):
                        pass
            next_trickle = now + 0.2
        for selected, _ in selector.select(timeout=0.05):
            kind, i = selected.data
            s = conns[kind][i]
            try:
                data = s.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except (OSError, ssl.SSLError):
                data = b""
            if kind == "slow" and data:
                answers.append(data.split(b"\r\n", 1)[0].decode("ascii", "replace"))
                continue
            if not data:
                closed[kind][i] = round(time.monotonic() - start, 2)
                selector.unregister(s)
                s.close()
    print(json.dumps({"closed": closed, "answers": answers}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
