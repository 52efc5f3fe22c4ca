"""The lab's echo server: every backend pod (and every node's host network) answers each TCP
connection and each UDP datagram with one JSON line saying who answered and what addresses the
kernel showed it: the peer (the source address after any SNAT) and the local address (the pod
address and port after DNAT).

One process serves the whole lab: it creates each listening socket in a thread that joined the
pod's network namespace (setns.py), then serves them all from one selector loop. It exits when
its standard input closes, so it never outlives the lab (or a crashed parent).

Run by the lab as a plain script (standard library only, fast to start):
``python echo.py`` with one JSON line on stdin: [{"ns": ..., "who": ..., "node": ..., "ports": [["TCP", 8080], ...]}].
It prints "ready" once every socket listens, or "error: ..." and exits.
"""
from __future__ import annotations

import json
import os
import selectors
import socket
import sys

if __package__:
    from .setns import in_netns
else:                                           # run as a script by the lab
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from setns import in_netns

IP_PKTINFO = 8                                      # linux/in.h; struct in_pktinfo's ipi_addr is at offset 8


def answer(host: dict, peer, local) -> bytes:
    return (json.dumps({"who": host["who"], "node": host["node"], "peer": list(peer[:2]),
                        "local": list(local[:2])}) + "\n").encode()


def listen(ns: str, protocol: str, port: int) -> socket.socket:
    kind = socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM

    def make():
        s = socket.socket(socket.AF_INET, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        if kind == socket.SOCK_STREAM:
            s.listen(4096)
        else:                                       # each datagram's destination address, as received
            s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.setblocking(False)
        return s
    return in_netns(ns, make)


def serve(spec: list[dict]) -> None:
    sel = selectors.DefaultSelector()
    for host in spec:
        for protocol, port in host["ports"]:
            s = listen(host["ns"], protocol, int(port))
            sel.register(s, selectors.EVENT_READ, (host, protocol))
    sel.register(sys.stdin, selectors.EVENT_READ, None)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data is None:                    # stdin: EOF means the lab is gone
                if not sys.stdin.readline():
                    return
                continue
            host, protocol = key.data
            try:
                if protocol == "TCP":
                    conn, peer = key.fileobj.accept()
                    with conn:
                        conn.setblocking(True)
                        conn.settimeout(1.0)
                        conn.sendall(answer(host, peer, conn.getsockname()))
                else:
                    _, ancillary, _, peer = key.fileobj.recvmsg(2048, socket.CMSG_SPACE(12))
                    local = [socket.inet_ntoa(data[8:12]) for level, kind, data in ancillary
                             if (level, kind) == (socket.IPPROTO_IP, IP_PKTINFO)]
                    key.fileobj.sendto(answer(host, peer, (local[0], key.fileobj.getsockname()[1])), peer)
            except OSError:
                continue                            # a client that went away first (a latency probe)


def main() -> int:
    try:
        spec = json.loads(sys.stdin.readline())
        serve(spec)
    except Exception as e:                          # reported to the lab, which raises it
        print(f"error: {type(e).__name__}: {e}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
