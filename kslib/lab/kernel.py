"""KernelCluster: the model's cluster rebuilt out of network namespaces on the real Linux kernel,
with exactly the rules ``cluster.render(node)`` prints loaded into every node.

The lab's network (all namespaces of one lab, see netns.py; nothing links to the host):

    out (external clients; the node network's gateway)      sw (the node network: bridge br0)
      eth0 ─────────────────────────────────────────────────── out ┐
    node n<i>: eth0 (InternalIP) ───────────────────────────── n<i> ┘ br0
      v<j> (the pod CIDR's gateway address /32) ── pod p<j>: eth0 (the pod IP /32, default via gateway)

- A node forwards (ip_forward=1), routes every other node's pod CIDR via that node's InternalIP and
  everything else to the node network's gateway (the ``out`` namespace).
- Pods hang off their node on routed veths, with the node's pod gateway address (the first address
  of its podCIDR, the model's cni0 address) on the node end: every packet a pod sends crosses its
  node's netfilter hooks, and MASQUERADE towards a local pod picks that address, as on a cni0
  bridge with br_netfilter.
- ``out`` holds the external clients' addresses and sends each connection to the node it enters at
  (``via``, the node IP, or the node the load balancer picks). It does not forward: a packet that
  leaves the cluster for any other address ends there (the model counts it delivered outside).
- An echo server (echo.py) answers in every pod on its declared ports (or, when it declares none,
  on the ports its EndpointSlices send to) and on each node's host ports, telling who answered, the
  source address it saw and the address the packet arrived at.
"""
from __future__ import annotations

import errno
import ipaddress
import json
import random
import re
import selectors
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..dataplane import codes as C
from ..dataplane import entry as E
from ..dataplane.network import PROTO_NAMES
from ..dataplane.trace import Connection
from .netns import LabError, Namespaces, available, clean_stale

ECHO = Path(__file__).with_name("echo.py")
LOAD_SYSCTLS = {"iptables": {"net.ipv4.conf.all.route_localnet": 1},   # kube-proxy sets it for localhost
                "nftables": {"net.ipv4.conf.all.route_localnet": 0}}   # NodePorts; the nft proxier has none
# what each errno of a failed connect()/recv() means: a REJECT answers with an ICMP error (or a TCP
# RST), which the socket reports; a DROP leaves the socket waiting (the timeout)
FAILURES = {errno.ECONNREFUSED: ("rejected", "connection refused"),
            errno.EHOSTUNREACH: ("rejected", "ICMP host unreachable"),
            errno.ENETUNREACH: ("rejected", "ICMP network unreachable")}


class LabUnavailable(RuntimeError):
    """This machine cannot run the kernel lab; the message says why."""


@dataclass(frozen=True)
class Layout:
    """What the namespaces are built from: nodes (name, ip, pod CIDR, host ports) and pods
    (key, ip, node, ports the echo server listens on)."""
    nodes: tuple
    pods: tuple
    node_net: str


class KernelCluster:
    """``with KernelCluster(cluster) as k: k.connect(src, dst, port)``: the same cluster on the real
    kernel (shared/API.md). It follows the cluster: after ``apply``/``set_mode``/``scale`` the next
    call reloads every node's rules (and rebuilds the namespaces when nodes or pods changed)."""

    def __init__(self, cluster, timeout: float = 1.0, seed: int = 0):
        ok, reason = available(cluster.mode)
        if not ok:
            raise LabUnavailable(reason)
        self.cluster = cluster
        self.timeout = float(timeout)
        self._rng = random.Random(seed)            # the node a load balancer hands a packet to
        self._ns: Namespaces | None = None
        self._echo: subprocess.Popen | None = None
        self._layout: Layout | None = None
        self._version = None
        self._routes: dict[str, str] = {}
        self._clients: set[str] = set()
        self.load_seconds: dict[str, float] = {}     # per node: the last iptables-restore / nft -f (+ sysctls)
        self.stale_removed = clean_stale()
        try:
            self.sync()
        except BaseException:
            self.close()
            raise

    # ---- building -----------------------------------------------------------------------------------
    def _read_layout(self) -> Layout:
        c = self.cluster
        hosts, pods = c._hosts()
        served: dict[str, set] = {}
        if any(p.ports is None for p in pods):          # pods that declare no ports: their slices' ports
            for s in c.api.list("EndpointSlice"):
                for ep in s.endpoints:
                    for p in s.ports:
                        if p.port:
                            served.setdefault(ep.addresses[0], set()).add((p.protocol, p.port))
        pods = tuple((p.key, p.ip, p.node, tuple(sorted(
            {(PROTO_NAMES[proto], port) for proto, port in p.ports} if p.ports is not None else served.get(p.ip, ()))))
            for p in sorted(pods, key=lambda p: p.key))
        nodes = tuple((n.name, n.ip, n.pod_cidr, tuple(sorted({(PROTO_NAMES[pr], port) for pr, port in n.host_ports})))
                      for n in sorted(hosts, key=lambda n: n.name))
        return Layout(nodes, pods, str(c.api.node_net))

    def sync(self) -> None:
        """Bring the kernel up to the cluster: rebuild when nodes or pods changed, reload the rules
        when the proxiers synced since (in the cluster's current mode)."""
        c = self.cluster
        if c.mode not in LOAD_SYSCTLS:
            raise LabUnavailable(available(c.mode)[1])
        version = (c.mode, c.syncs)      # every change to the cluster ends in a proxier sync
        if version == self._version:
            return
        layout = self._read_layout()
        if layout != self._layout:
            self._teardown()
            self._build(layout)
        previous = self._version[0] if self._version else None
        for name, *_ in layout.nodes:
            text = c.render(name)
            start = time.perf_counter()
            self._load(self._node_ns[name], c.mode, text, previous)
            self.load_seconds[name] = time.perf_counter() - start
        self._version = version

    def _build(self, layout: Layout) -> None:
        self._layout = layout
        ns = self._ns = Namespaces()
        node_names = [n[0] for n in layout.nodes]
        roles = ["sw", "out"] + [f"n{i}" for i in range(len(layout.nodes))] + [f"p{j}" for j in range(len(layout.pods))]
        names = dict(zip(roles, ns.add(*roles)))
        self._switch, self._out = names["sw"], names["out"]
        self._node_ns = {n: names[f"n{i}"] for i, n in enumerate(node_names)}
        self._pod_ns = {p[0]: names[f"p{j}"] for j, p in enumerate(layout.pods)}
        self._node_ip = {n: ip for n, ip, *_ in layout.nodes}
        self._pod_node = {key: node for key, _, node, _ in layout.pods}
        self._routes, self._clients = {}, set()
        used = set(self._node_ip.values())
        gateway = next(str(h) for h in ipaddress.ip_network(layout.node_net).hosts() if str(h) not in used)
        quiet = {"net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0}
        for name in names.values():
            ns.sysctl(name, quiet)
        for name in self._node_ns.values():
            ns.sysctl(name, {"net.ipv4.ip_forward": 1, "net.ipv4.conf.all.send_redirects": 0,
                             "net.ipv4.conf.default.send_redirects": 0})
        # the node network: a bridge in its own namespace, one veth per node and one to the outside
        sw = ["link set lo up", "link add br0 type bridge", "link set br0 up"]
        for i, n in enumerate(node_names):
            sw += [f"link add n{i} type veth peer name eth0 netns {self._node_ns[n]}", f"link set n{i} master br0",
                   f"link set n{i} up"]
        sw += [f"link add out type veth peer name eth0 netns {self._out}", "link set out master br0", "link set out up"]
        ns.ip(self._switch, sw)
        on_link = [f"route add {ip}/32 dev eth0" for ip in used]
        ns.ip(self._out, ["link set lo up", "link set eth0 up", f"addr add {gateway}/32 dev eth0"] + on_link)
        for i, (n, ip, pod_cidr, _) in enumerate(layout.nodes):
            gw = str(next(ipaddress.ip_network(pod_cidr).hosts()))
            cmds = ["link set lo up", "link set eth0 up", f"addr add {ip}/32 dev eth0", f"route add {gateway}/32 dev eth0"]
            cmds += [f"route add {other}/32 dev eth0" for other in used if other != ip]
            for j, (key, pod_ip, node, _) in enumerate(layout.pods):
                if node == n:
                    cmds += [f"link add v{j} type veth peer name eth0 netns {self._pod_ns[key]}",
                             f"addr add {gw}/32 dev v{j}", f"link set v{j} up", f"route add {pod_ip}/32 dev v{j}"]
            cmds += [f"route add {ocidr} via {oip}" for on, oip, ocidr, _ in layout.nodes if on != n]
            cmds += [f"route add default via {gateway}"]
            ns.ip(self._node_ns[n], cmds)
        cidr = {n: c for n, _, c, _ in layout.nodes}
        for key, pod_ip, node, _ in layout.pods:
            gw = str(next(ipaddress.ip_network(cidr[node]).hosts()))
            ns.ip(self._pod_ns[key], ["link set lo up", "link set eth0 up", f"addr add {pod_ip}/32 dev eth0",
                                      f"route add {gw}/32 dev eth0", f"route add default via {gw} dev eth0"])
        self._start_echo(layout)

    def _start_echo(self, layout: Layout) -> None:
        spec = [{"ns": self._pod_ns[key], "who": key, "node": node, "ports": ports}
                for key, _, node, ports in layout.pods]
        spec += [{"ns": self._node_ns[n], "who": None, "node": n, "ports": ports} for n, _, _, ports in layout.nodes]
        for host in spec:
            host["ports"] = [p for p in host["ports"] if p[0] in ("TCP", "UDP")]     # no SCTP listeners
        self._echo = subprocess.Popen([sys.executable, "-I", str(ECHO)], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)
        self._echo.stdin.write(json.dumps(spec) + "\n")
        self._echo.stdin.flush()
        with selectors.DefaultSelector() as sel:
            sel.register(self._echo.stdout, selectors.EVENT_READ)
            line = self._echo.stdout.readline().strip() if sel.select(30) else "error: no answer in 30 s"
        if line != "ready":
            raise LabError(f"the echo servers did not start: {line or 'exited'}")

    def _load(self, ns: str, mode: str, text: str, previous: str | None) -> None:
        """Load one node's rendered rules as kube-proxy would, removing the other mode's leftovers."""
        if mode == "iptables":
            if previous == "nftables":
                self._ns.exec(ns, ["nft", "delete", "table", "ip", "kube-proxy"], check=False)
            self._ns.nfacct(ns, sorted(set(re.findall(r"--nfacct-name (\S+)", text))))
            self._ns.exec(ns, ["iptables-restore"], input=text)
        else:
            if previous == "iptables":
                self._ns.exec(ns, ["iptables-restore"], input="*nat\nCOMMIT\n*filter\nCOMMIT\n")
            # a fresh table each time: create-if-missing, delete, then the whole render, in one transaction
            self._ns.exec(ns, ["nft", "-f", "-"], input="table ip kube-proxy\ndelete table ip kube-proxy\n" + text)
        self._ns.sysctl(ns, LOAD_SYSCTLS[mode])

    # ---- connections --------------------------------------------------------------------------------
    def _source(self, src, dst, port, protocol, via):
        """(namespace, address to bind or None, entry node, Connection) for one connection; a
        Connection with its outcome already decided when nothing routes it into the cluster."""
        self.sync()
        c = self.cluster
        entry, dst, port, protocol = c._entry(src, dst, port, protocol)
        if protocol == "SCTP":
            raise ValueError("protocol: the kernel lab's echo servers answer TCP and UDP only")
        conn = Connection(entry.label, dst, port, protocol)
        if entry.kind == C.FROM_WIRE:
            node = E.entry_node(c, entry, dst, via, self._rng)
            if node is None:
                conn.reason = E.unreachable(c, dst) + " (not sent)"
                return None, None, None, conn
            self._route_from_outside(entry.src_ip, dst, node)
            return self._out, entry.src_ip, node, conn
        if via is not None:
            raise ValueError("via: only an external client enters the cluster at a chosen node")
        ns = self._pod_ns[entry.label] if entry.kind == C.FROM_POD else self._node_ns[entry.node]
        return ns, None, entry.node, conn

    def _route_from_outside(self, client: str, dst: str, node: str) -> None:
        if client not in self._clients:
            self._ns.ip(self._out, [f"addr add {client}/32 dev lo"])
            self._clients.add(client)
        if self._routes.get(dst) != node:
            hop = "" if dst == self._node_ip[node] else f" via {self._node_ip[node]}"
            self._ns.ip(self._out, [f"route replace {dst}/32{hop} dev eth0"])
            self._routes[dst] = node

    def connect(self, src, dst, port=None, protocol="TCP", via=None) -> Connection:
        """Open one real connection and report what the kernel did with it: the same fields as the
        model's ``Cluster.connect`` (no trace: the kernel keeps none), plus ``latency`` in seconds."""
        ns, bind, node, conn = self._source(src, dst, port, protocol, via)
        if ns is None:
            return conn
        return self._finish(conn, node, self._ns.run(ns, _socket, conn.protocol, bind))

    def connect_many(self, src, dst, port, n, protocol="TCP", via=None) -> Counter:
        """``n`` connections, one after another: a Counter over the pods that answered ("namespace/name"),
        "host" for a node's own sockets, "rejected" and "dropped"."""
        out = Counter()
        for conn in (self.connect(src, dst, port, protocol, via) for _ in range(int(n))):
            out[conn.pod or ("host" if conn.outcome == "delivered" else conn.outcome)] += 1
        return out

    def _finish(self, conn: Connection, node: str, sock: socket.socket) -> Connection:
        sock.settimeout(self.timeout)
        try:
            start = time.perf_counter()
            sock.connect((conn.dst, conn.port))
            if conn.protocol == "TCP":
                conn.latency = time.perf_counter() - start
                peer = sock.getpeername()
                data = b""
                while not data.endswith(b"\n"):
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            else:
                try:
                    sock.send(b"hello\n")
                except PermissionError:
                    # a verdict against a host's own packet in OUTPUT fails the send (EPERM), DROP and
                    # REJECT alike; a REJECT's ICMP error then reaches the socket, a DROP leaves silence
                    pass
                data, peer = sock.recvfrom(4096)
                conn.latency = time.perf_counter() - start
        except socket.timeout:
            conn.outcome, conn.node = "dropped", node
            conn.reason = f"no answer within {self.timeout:g} s: the packet was dropped"
            return conn
        except OSError as e:
            if e.errno not in FAILURES:
                raise
            conn.outcome, why = FAILURES[e.errno]
            conn.node, conn.reason = node, f"{why} ({e.strerror})"
            return conn
        finally:
            sock.close()
        reply = json.loads(data)
        conn.outcome = "delivered"
        conn.pod, conn.node = reply["who"], reply["node"]
        conn.endpoint = f"{reply['local'][0]}:{reply['local'][1]}"
        conn.source_ip, conn.source_port = reply["peer"][0], int(reply["peer"][1])
        conn.reply_source = peer[0]
        conn.reason = (f"answered by {conn.pod or 'the host network of ' + conn.node} at {conn.endpoint}, "
                       f"which saw the client as {conn.source_ip}:{conn.source_port}")
        return conn

    def latency(self, src, dst, port, n: int | None = None, batch: int = 200) -> np.ndarray:
        """Seconds from connect() to an established TCP connection (the SYN out through every hook, the
        SYN-ACK back): the first-packet cost of the rules. ``dst`` is one address for ``n`` connections,
        or a list of addresses, one connection each; they go one after another."""
        dsts = [dst] * int(n) if isinstance(dst, str) else list(dst)
        out = np.empty(len(dsts))
        resolved: dict[str, tuple] = {}
        for start in range(0, len(dsts), batch):
            chunk = dsts[start:start + batch]
            for d in chunk:
                if d not in resolved:
                    ns, bind, _, conn = self._source(src, d, port, "TCP", None)
                    if ns is None:
                        raise LabError(f"latency: {conn.reason}")
                    resolved[d] = (ns, bind, (conn.dst, conn.port))
            ns, bind, _ = resolved[chunk[0]]
            socks = self._ns.run(ns, lambda k: [_socket("TCP", bind) for _ in range(k)], len(chunk))
            for i, (s, d) in enumerate(zip(socks, chunk), start):
                s.settimeout(self.timeout)
                try:
                    t0 = time.perf_counter()
                    s.connect(resolved[d][2])
                    out[i] = time.perf_counter() - t0
                except OSError as e:
                    raise LabError(f"latency: connection {i + 1} to {d}:{port} failed: {e}") from None
                finally:
                    s.close()
        return out

    # ---- what the kernel holds ----------------------------------------------------------------------
    def conntrack(self, node: str) -> list[str]:
        """``conntrack -L`` in the node's namespace."""
        self.sync()
        return self._ns.exec(self._node_ns[self.cluster._node(node).name], ["conntrack", "-L"]).stdout.splitlines()

    def ruleset(self, node: str) -> str:
        """What the node's kernel holds, listed by the kernel's own tools (``iptables-save`` or
        ``nft list ruleset``), to set beside ``cluster.render(node)``."""
        self.sync()
        ns = self._node_ns[self.cluster._node(node).name]
        argv = ["iptables-save"] if self._version[0] == "iptables" else ["nft", "list", "ruleset"]
        return self._ns.exec(ns, argv).stdout

    @property
    def namespaces(self) -> list[str]:
        return list(self._ns.names) if self._ns else []

    # ---- cleaning up --------------------------------------------------------------------------------
    def _teardown(self) -> None:
        if self._echo is not None:
            _stop(self._echo)
            self._echo = None
        if self._ns is not None:
            self._ns.close()
            self._ns = None
        self._layout = self._version = None

    def close(self) -> None:
        """Stop the echo servers and delete every namespace of the lab."""
        self._teardown()

    def __enter__(self) -> KernelCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = f"{len(self._node_ns)} nodes, {len(self._pod_ns)} pods, {self._version[0]}" if self._ns else "closed"
        return f"<KernelCluster {state}>"


def _socket(protocol: str, bind: str | None) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM if protocol == "TCP" else socket.SOCK_DGRAM)
    if bind:
        s.bind((bind, 0))
    return s


def _stop(proc: subprocess.Popen) -> None:
    try:
        proc.stdin.close()                  # the echo server exits at end of input
        proc.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    proc.stdout.close()
